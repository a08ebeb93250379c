"""Fold-parallel training (``train --jobs N``): N folds at a time, one process and one device each.

Each fold runs in a spawned process on its own device (``cuda:0..N-1``; on CPU every process gets
an equal share of the cores) and draws on the parent's progress display through a queue, so the
user sees one combined view. A fold that fails is reported with its number; the others run on
and keep their results.
"""

from __future__ import annotations

import os
import queue as queue_module
from dataclasses import replace
from typing import Any

from mtlkaggle.engine.trainer import FoldResult, TrainOptions
from mtlkaggle.errors import UserError
from mtlkaggle.progress import make_progress
from mtlkaggle.spec import Spec


class QueueProgress:
    """The part of rich's Progress the trainer uses, forwarded to the parent through a queue."""

    def __init__(self, queue: Any, fold: str):
        self.queue, self.fold, self._next = queue, fold, 0
        self.console = self

    def add_task(self, description: str, **fields: Any) -> int:
        self._next += 1
        self.queue.put(("add", self.fold, self._next, {"description": description, **fields}))
        return self._next

    def advance(self, task: int, amount: float) -> None:
        self.queue.put(("advance", self.fold, task, amount))

    def update(self, task: int, **fields: Any) -> None:
        self.queue.put(("update", self.fold, task, fields))

    def remove_task(self, task: int) -> None:
        self.queue.put(("remove", self.fold, task, None))

    def print(self, line: str, **_: Any) -> None:
        self.queue.put(("print", self.fold, 0, line))


def job_devices(device: str | None, jobs: int) -> list[str]:
    """One device per concurrent fold: ``cuda:0..N-1`` with CUDA (N at most the GPU count), else cpu."""
    import torch

    if device and not device.startswith("cuda"):
        return [device] * jobs
    if not torch.cuda.is_available():
        if device:
            raise UserError(f"--device {device}: CUDA is not available on this machine; use --device cpu")
        return ["cpu"] * jobs
    count = torch.cuda.device_count()
    if jobs > count:
        raise UserError(
            f"--jobs {jobs}: this machine has {count} CUDA device(s); use --jobs {count} or fewer"
        )
    return [f"cuda:{k}" for k in range(jobs)]


def train_parallel(
    spec: Spec, folds: list[str], options: TrainOptions, jobs: int
) -> tuple[list[FoldResult], dict[str, str]]:
    """Train ``folds`` with up to ``jobs`` processes at once.

    Returns:
        The finished folds' results in fold order, and an error line per failed fold.
    """
    import multiprocessing as mp

    if options.on_epoch_end is not None:
        raise UserError("an on_epoch_end hook cannot cross into --jobs processes; use --jobs 1")
    devices = job_devices(options.device, jobs)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    threads = max(1, cpus // jobs)
    context = mp.get_context("spawn")
    events = context.Queue()
    pending, running, free = list(folds), {}, list(range(jobs))
    results: dict[str, FoldResult] = {}
    failures: dict[str, str] = {}
    with make_progress() as progress:
        bars: dict[tuple[str, int], Any] = {}
        while pending or running:
            while pending and free:
                fold, slot = pending.pop(0), free.pop(0)
                job_options = replace(options, device=devices[slot])
                args = (spec.model_dump(mode="json"), fold, job_options, threads, jobs, events)
                process = context.Process(target=_fold_job, args=args, name=f"mtlkaggle-fold{fold}")
                process.start()
                running[fold] = (process, slot)
            try:
                event = events.get(timeout=0.5)
            except queue_module.Empty:
                event = None
            if event is not None:
                _apply(event, progress, bars, results, failures)
            for fold, (process, slot) in list(running.items()):
                if fold in results or fold in failures:
                    process.join()
                    del running[fold]
                    free.append(slot)
                elif not process.is_alive():
                    _drain(events, progress, bars, results, failures)
                    if fold not in results and fold not in failures:
                        failures[fold] = (
                            f"its process ended with exit code {process.exitcode} before reporting"
                        )
                    process.join()
                    del running[fold]
                    free.append(slot)
    return [results[f] for f in folds if f in results], failures


def _drain(events: Any, progress, bars: dict, results: dict, failures: dict) -> None:
    """Apply every event still in the queue (a process that ended may have left some)."""
    while True:
        try:
            event = events.get(timeout=1.0)
        except queue_module.Empty:
            return
        _apply(event, progress, bars, results, failures)


def _apply(event: tuple, progress, bars: dict, results: dict, failures: dict) -> None:
    kind, fold, task, payload = event
    if kind == "add":
        bars[fold, task] = progress.add_task(**payload)
    elif kind == "advance":
        progress.advance(bars[fold, task], payload)
    elif kind == "update":
        progress.update(bars[fold, task], **payload)
    elif kind == "remove":
        progress.remove_task(bars.pop((fold, task)))
    elif kind == "print":
        progress.console.print(payload, highlight=False)
    elif kind == "done":
        results[fold] = payload
    elif kind == "error":
        failures[fold] = payload
        progress.console.print(f"[bold red]fold {fold} failed:[/] {_escape(payload)}", highlight=False)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _fold_job(
    spec_json: dict, fold: str, options: TrainOptions, threads: int, jobs: int, events: Any
) -> None:
    """The body of one fold's process (spawned: the spec arrives as plain data, the options pickled)."""
    import torch

    from mtlkaggle.data.loading import default_workers
    from mtlkaggle.engine.fold import train_fold

    torch.set_num_threads(threads)
    try:
        spec = Spec.model_validate(spec_json)
        workers = spec.train.num_workers
        if options.device == "cpu" and workers != 0:
            workers = default_workers() if workers is None else workers  # None: shared out too
            spec = spec.model_copy(
                update={"train": spec.train.model_copy(update={"num_workers": max(0, workers // jobs)})}
            )
        result = train_fold(spec, fold, options, QueueProgress(events, fold))
        events.put(("done", fold, 0, result))
    except UserError as e:
        events.put(("error", fold, 0, str(e)))
    except Exception as e:  # noqa: BLE001 - reported with its fold, not lost in a child's traceback
        events.put(("error", fold, 0, f"{type(e).__name__}: {e}"))
