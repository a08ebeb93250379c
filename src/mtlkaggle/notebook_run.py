"""``mtlkaggle notebook --run-local``: execute the generated notebook here, as Kaggle would run it.

The run folder holds ``input/`` laid out like ``/kaggle/input`` (links to the local bundle and the
competition's data, where the notebook expects them), ``working/`` (the notebook's output,
``submission.csv``), ``site-packages/`` (the wheel is installed there with ``pip --target`` and
imported from there: the Python running the notebook is never changed) and the executed notebook
with its outputs. The notebook runs in a real Jupyter kernel (nbclient + ipykernel) on this
Python, which has torch and timm as Kaggle's image does. Wall time and peak memory are measured
so a user sees before pushing whether the run fits the competition's limits.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from mtlkaggle.errors import UserError
from mtlkaggle.notebook import (
    SUBMISSION,
    NotebookOptions,
    build_notebook,
    check_submission_csv,
    competition_slug,
)
from mtlkaggle.spec import Spec

_KERNEL_NAME = "mtlkaggle-local"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
LOG_TAIL = 25


@dataclass(frozen=True)
class LocalRunOptions:
    """The local bundle and data standing in for Kaggle's attached inputs, and the run folder."""

    bundle_dir: Path
    data_dir: Path
    out_dir: Path
    timeout: float | None = None  # per cell, seconds; None: no limit


@dataclass
class LocalRun:
    """What the local run did: where its files are, how long and how much memory it took."""

    out_dir: Path
    notebook: Path
    submission: Path
    seconds: float = 0.0
    peak_rss: int = 0  # bytes: kernel and child processes together, sampled every 0.1 s
    error: str | None = None  # the failing cell's error; None when every cell ran
    log_tail: list[str] = field(default_factory=list)
    checked: str = ""


def run_local(spec: Spec, options: NotebookOptions, run: LocalRunOptions) -> LocalRun:
    """Execute the notebook against a local ``/kaggle/input``-like folder and check ``submission.csv``.

    Args:
        spec: The competition (its submission format and Kaggle slug).
        options: The notebook's bundle source and TTA; its paths are replaced by the run folder's.
        run: The bundle and data folders, the run folder and the per-cell timeout.

    Returns:
        The run; ``error`` is set (and ``log_tail`` holds the failing cell's last lines) when a cell
        failed or timed out, otherwise ``checked`` says what the output check covered.

    Raises:
        UserError: no bundle or data folder, or a ``submission.csv`` that fails the check.
    """
    bundle_dir, data_dir = Path(run.bundle_dir).resolve(), Path(run.data_dir).resolve()
    if not (bundle_dir / "bundle.json").is_file():
        raise UserError(
            f"--bundle {run.bundle_dir}: no bundle.json; run `mtlkaggle export {spec.name}` first"
        )
    if not data_dir.is_dir():
        raise UserError(f"{run.data_dir}: no such data folder; pass --data-dir")
    out = Path(run.out_dir).resolve()
    folders = {name: out / name for name in ("input", "working", "site-packages")}
    for folder in folders.values():  # a fresh run: nothing left over from the previous one
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    _link(folders["input"] / options.source.mounts()[0], bundle_dir)
    _link(folders["input"] / competition_slug(spec), data_dir)
    local = replace(
        options,
        input_root=str(folders["input"]),
        working=str(folders["working"]),
        pip_target=str(folders["site-packages"]),
    )
    notebook = build_notebook(spec, local)
    result = LocalRun(out, out / f"{spec.name}-local.ipynb", folders["working"] / SUBMISSION)
    _execute(notebook, folders["working"], run.timeout, result)
    import nbformat

    from mtlkaggle.io import write_text_atomic

    write_text_atomic(result.notebook, nbformat.writes(notebook))
    if result.error is None:
        checked_spec = spec.model_copy(update={"data_dir": str(data_dir)})
        result.checked = check_submission_csv(checked_spec, result.submission)
    return result


def _link(path: Path, target: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target, target_is_directory=True)


def _execute(notebook, cwd: Path, timeout: float | None, result: LocalRun) -> None:
    """Run every cell in a fresh kernel on this Python; fill in time, memory and any error."""
    try:
        import ipykernel  # noqa: F401 - the kernel the spec below starts
        import psutil  # noqa: F401
        from jupyter_client.kernelspec import KernelSpecManager
        from jupyter_client.manager import AsyncKernelManager
        from nbclient import NotebookClient
        from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
    except ImportError as e:
        raise UserError(f"--run-local needs {e.name}: pip install 'mtlkaggle[notebook]'") from None

    with tempfile.TemporaryDirectory(prefix="mtlkaggle-kernelspec-") as specs:
        spec_dir = Path(specs) / _KERNEL_NAME
        spec_dir.mkdir()
        argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        kernel_json = {"argv": argv, "display_name": "mtlkaggle (local run)", "language": "python"}
        (spec_dir / "kernel.json").write_text(json.dumps(kernel_json))
        manager = AsyncKernelManager(
            kernel_name=_KERNEL_NAME, kernel_spec_manager=KernelSpecManager(kernel_dirs=[specs])
        )
        client = NotebookClient(
            notebook,
            km=manager,
            kernel_name=_KERNEL_NAME,
            timeout=int(timeout) if timeout else None,
            resources={"metadata": {"path": str(cwd)}},
        )
        sampler = _PeakMemory()
        sampler.start()
        start = time.perf_counter()
        try:  # the kernel's own console (and its echo of every cell's output) goes to a log file
            with open(result.out_dir / "kernel.log", "w", encoding="utf-8") as log:
                # we made the manager, so nbclient would leave the kernel running without cleanup_kc
                client.execute(cleanup_kc=True, stdout=log, stderr=log)
        except (CellExecutionError, CellTimeoutError, DeadKernelError, TimeoutError) as e:
            result.error = _first_line(str(e)) if not isinstance(e, CellExecutionError) else _error_name(e)
            result.log_tail = _failing_cell_tail(notebook) or _clean(str(e))[-LOG_TAIL:]
        finally:
            result.seconds = time.perf_counter() - start
            sampler.stop()
            result.peak_rss = sampler.peak


def _first_line(text: str) -> str:
    lines = _clean(text)
    return lines[0] if lines else "the kernel stopped"


def _error_name(error) -> str:
    return f"{getattr(error, 'ename', 'Error')}: {_first_line(getattr(error, 'evalue', '') or '')}"


def _clean(text: str) -> list[str]:
    return [line.rstrip() for line in _ANSI.sub("", text).splitlines() if line.strip()]


def _failing_cell_tail(notebook) -> list[str]:
    """The last lines of the cell that failed: what it printed (the predict command's own error
    line among them), then the exception."""
    for cell in notebook.cells:
        outputs = cell.get("outputs", [])
        if any(o.get("output_type") == "error" for o in outputs):
            lines: list[str] = []
            for output in outputs:
                if output.get("output_type") == "stream":
                    lines += _clean(output.get("text", ""))
                elif output.get("output_type") == "error":
                    lines += _clean(f"{output.get('ename')}: {output.get('evalue')}")
            return lines[-LOG_TAIL:]
    return []


class _PeakMemory(threading.Thread):
    """The largest total resident memory of this process's children (the kernel and what it
    starts), sampled every 0.1 s."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = 0
        self._done = threading.Event()

    def run(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._done.wait(0.1):
            total = 0
            for child in me.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except psutil.Error:  # it ended between the listing and the reading
                    pass
            self.peak = max(self.peak, total)

    def stop(self) -> None:
        """Stop sampling and wait for the thread."""
        self._done.set()
        self.join()
