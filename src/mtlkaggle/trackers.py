"""Experiment trackers (``--log tensorboard,mlflow,wandb`` or ``[log] trackers``): what a fold
writes to ``metrics.csv`` also goes to the tools competitors already look at.

- TensorBoard: event files in each fold's folder (``runs/COMP/RUN/fold{K}/``), the run's CV and
  thresholds in the run folder: ``tensorboard --logdir runs/COMP``.
- MLflow: one parent run per mtlkaggle run, one child per fold, in the experiment named by
  ``[log] experiment`` (default: the competition); store ``[log] mlflow_uri``, else
  ``$MLFLOW_TRACKING_URI``, else ``sqlite:///mlruns/mlflow.db`` (artifacts in ``mlruns/artifacts``).
- Weights & Biases: one run per fold (``group`` = the run, ``job_type`` = ``fold{K}``) and one
  ``cv`` run for the run's results; offline (files under ``runs/COMP/RUN/wandb/``, ``wandb sync``
  later) unless the user is logged in; ``WANDB_MODE`` is respected.

Each tracker run's id and the last epoch it received are kept in ``trackers.json`` (the fold's and
the run's), so ``--resume`` continues the same tracker runs and never logs an epoch twice. Only
the process that writes files logs (rank 0 under torchrun; each ``--jobs`` process its own fold).
A tracker that fails (server gone, disk full) warns once and is dropped; training goes on, and
nothing in ``runs/`` reads what a tracker wrote.
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
import sys
from pathlib import Path
from typing import Any

from mtlkaggle.errors import UserError
from mtlkaggle.io import write_json_atomic
from mtlkaggle.paths import RUNS, FoldLayout, RunLayout
from mtlkaggle.spec import Spec
from mtlkaggle.tracker_backends import (
    DEFAULT_MLFLOW_DIR,
    MlflowBackend,
    TensorBoardBackend,
    TrackerBackend,
    WandbBackend,
    experiment_name,
    flat_params,
    mlflow_uri,
    wandb_mode,
)

__all__ = [
    "DEFAULT_MLFLOW_DIR",
    "NO_TRACKERS",
    "Trackers",
    "check_trackers",
    "experiment_name",
    "flat_params",
    "log_run_end",
    "mlflow_parent",
    "mlflow_uri",
    "numeric",
    "open_fold_trackers",
    "open_run_trackers",
    "read_ids",
    "wandb_mode",
]

_PACKAGES = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}


def check_trackers(spec: Spec, option: str = "--log mlflow", skip: str = "drop mlflow from --log") -> None:
    """Refuse, before any training, a tracker whose package is not installed, or an MLflow server
    URI that nothing answers at.

    Raises:
        UserError: naming the ``pip install`` that adds it, or the URI and how to fix it.
    """
    for name in spec.log.trackers:
        try:
            found = importlib.util.find_spec(_PACKAGES[name])
        except (ImportError, ValueError):  # a broken install, or an import blocked in sys.modules
            found = None
        if found is None:
            raise UserError(
                f"--log {name}: the {_PACKAGES[name]} package is not installed; "
                f"pip install 'mtlkaggle[{name}]' (or drop {name} from --log / [log] trackers)"
            )
    if "mlflow" in spec.log.trackers:
        _reach_mlflow_server(mlflow_uri(spec), option, skip)


def _reach_mlflow_server(uri: str, option: str, skip: str, timeout: float = 5.0) -> None:
    """Refuse an MLflow server URI nothing answers at (one TCP connect, ``timeout`` seconds): MLflow's
    own client would retry for minutes before ``train`` could drop it and go on."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return  # a file or database store: MLflow creates it
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            pass
    except (OSError, ValueError) as e:
        reason = getattr(e, "strerror", None) or str(e) or type(e).__name__
        raise UserError(
            f"{option}: no MLflow server answers at {uri} ({reason}); start it (`mlflow server`), "
            f"point [log] mlflow_uri or $MLFLOW_TRACKING_URI at one, or {skip}"
        ) from None


def numeric(row: dict[str, Any]) -> dict[str, float]:
    """The finite numbers of a metrics row, by a name every tracker accepts (NaN metrics are left out)."""
    found = {}
    for key, value in row.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            continue
        found[re.sub(r"[^\w\-./ ]", "_", str(key))] = float(value)
    return found


def read_ids(path: Path) -> dict[str, Any]:
    """A ``trackers.json`` (a fold's or a run's); empty when missing or unreadable."""
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


class Trackers:
    """The trackers one fold (or one run's results) logs to; a no-op when none are asked for.

    Use :func:`open_fold_trackers` or :func:`open_run_trackers`; then :meth:`epoch` per epoch,
    :meth:`files` for artefacts and :meth:`finish` at the end.
    """

    def __init__(self, active: list[TrackerBackend], ids_file: Path | None, ids: dict[str, Any]):
        self.active, self.ids_file, self.ids = active, ids_file, ids

    @property
    def step(self) -> int:
        """The last epoch the trackers received (0: none)."""
        return int(self.ids.get("step", 0))

    def epoch(self, row: dict[str, Any]) -> None:
        """Log one ``metrics.csv`` row at step = its epoch, unless that epoch was already logged."""
        step = int(row["epoch"])
        if not self.active or step <= self.step:
            return
        values = numeric(row)
        for tracker in self.active:
            tracker.call("metrics", values, step)
        self._save(step=step)

    def catch_up(self, history: list[dict[str, Any]]) -> None:
        """Log the epochs of a resumed fold that the trackers have not received yet."""
        for row in history:
            self.epoch(row)

    def values(self, values: dict[str, float]) -> None:
        """Log end-of-run numbers (CV, OOF scores) at the next step."""
        if not self.active:
            return
        step = self.step + 1
        for tracker in self.active:
            tracker.call("metrics", numeric(values), step)
        self._save(step=step)

    def files(self, paths: list[Path]) -> None:
        """Log files: PNG figures as images (at the next step), the rest as artifacts."""
        found = [p for p in paths if p.is_file()]
        if not self.active or not found:
            return
        step = self.step + 1 if any(p.suffix == ".png" for p in found) else self.step
        for tracker in self.active:
            tracker.call("files", found, step)
        self._save(step=step)

    def finish(self, failed: bool = False) -> None:
        """Close every tracker run (marked failed when training stopped on an error)."""
        for tracker in self.active:
            tracker.call("finish", failed)
        self.active = []

    def _save(self, **changes: Any) -> None:
        self.ids |= changes
        if self.ids_file is not None:
            write_json_atomic(self.ids_file, self.ids)


NO_TRACKERS = Trackers([], None, {})


def _warner(where: str):
    def warn(message: str) -> None:
        from rich.markup import escape

        from mtlkaggle.console import make_console

        make_console(stderr=True).print(
            f"[yellow]warning ({escape(where)}):[/] {escape(message)}", highlight=False
        )

    return warn


def _open(spec: Spec, ids_file: Path, folder: Path, names: dict[str, str], parent: str | None) -> Trackers:
    """Start each asked-for tracker, continuing the runs whose ids ``ids_file`` holds."""
    ids = read_ids(ids_file)
    step, warn = int(ids.get("step", 0)), _warner(names["label"])
    started: list[TrackerBackend] = []
    config = json.dumps({"command": " ".join(sys.argv), "spec": spec.model_dump(mode="json")}, indent=1)
    for name in spec.log.trackers:
        if name == "tensorboard":
            tracker, args = TensorBoardBackend(name, warn), (folder, step, config, names["job"] != "cv")
        elif name == "mlflow":
            tracker = MlflowBackend(name, warn)
            args = (spec, names["mlflow"], ids.get("mlflow", {}), parent, names["run"])
        else:
            tracker = WandbBackend(name, warn)
            args = (spec, names["group"], names["job"], ids.get("wandb", {}), names["wandb_dir"])
        saved = tracker.call("start", *args)
        if saved is not None:
            started.append(tracker)
            if saved:
                ids[name] = saved
    trackers = Trackers(started, ids_file, ids)
    if started:
        trackers._save()
    return trackers


def _run_name(spec: Spec, run: RunLayout) -> str:
    """The run's name under ``runs/COMP/`` (a seed run of ``--seeds``: ``RUN/seed{S}``)."""
    try:
        return run.dir.resolve().relative_to((RUNS / spec.name).resolve()).as_posix()
    except ValueError:  # a run folder outside runs/COMP
        return run.name


def open_run_trackers(spec: Spec, run: RunLayout, is_main: bool) -> Trackers:
    """The run-level trackers: the MLflow parent run, the W&B ``cv`` run, the run folder's events."""
    if not spec.log.trackers or not is_main:
        return NO_TRACKERS
    run.dir.mkdir(parents=True, exist_ok=True)
    names = {
        "label": f"run {run.name}",
        "mlflow": _run_name(spec, run),
        "run": str(run.dir),
        "group": _run_name(spec, run),
        "job": "cv",
        "wandb_dir": run.dir,
    }
    return _open(spec, run.trackers, run.dir, names, None)


def mlflow_parent(spec: Spec, run: RunLayout, is_main: bool, retry: bool = True) -> str | None:
    """The run's MLflow parent run id, created (and kept in the run's ``trackers.json``) if new.

    ``train`` calls it once before a run's folds start (so ``--jobs`` processes share one parent).
    When the store cannot be reached it warns, notes the failure in ``trackers.json`` and returns
    None; calls with ``retry=False`` (each fold, the run's end) then skip MLflow without a
    second warning; the next ``train`` tries again.
    """
    if "mlflow" not in spec.log.trackers or not is_main:
        return None
    uri, saved = mlflow_uri(spec), read_ids(run.trackers).get("mlflow", {})
    if saved.get("uri") == uri and (saved.get("run_id") or not retry):
        return saved.get("run_id")
    run_id = open_run_trackers(_only(spec, ["mlflow"]), run, is_main).ids.get("mlflow", {}).get("run_id")
    if run_id is None:
        write_json_atomic(run.trackers, read_ids(run.trackers) | {"mlflow": {"uri": uri, "failed": True}})
    return run_id


def _only(spec: Spec, trackers: list[str]) -> Spec:
    return spec.model_copy(update={"log": spec.log.model_copy(update={"trackers": trackers})})


def _without_failed_mlflow(spec: Spec, run: RunLayout) -> Spec:
    """``spec`` without MLflow when the run's parent could not be created in this ``train``."""
    saved = read_ids(run.trackers).get("mlflow", {})
    if "mlflow" in spec.log.trackers and saved.get("failed") and saved.get("uri") == mlflow_uri(spec):
        return _only(spec, [t for t in spec.log.trackers if t != "mlflow"])
    return spec


def open_fold_trackers(spec: Spec, run: RunLayout, files: FoldLayout, is_main: bool) -> Trackers:
    """A fold's trackers: a child of the run's MLflow parent, a W&B run in the run's group, and
    TensorBoard events in the fold's folder. Opens the parent first if the run has none yet."""
    if not spec.log.trackers or not is_main:
        return NO_TRACKERS
    parent = mlflow_parent(spec, run, is_main, retry=False)
    spec = _without_failed_mlflow(spec, run)
    names = {
        "label": f"fold {files.name}",
        "mlflow": f"fold{files.name}",
        "run": str(run.dir),
        "group": _run_name(spec, run),
        "job": f"fold{files.name}",
        "wandb_dir": run.dir,
    }
    return _open(spec, files.trackers, files.dir, names, parent)


def log_report(spec: Spec, run: RunLayout, figures: list[Path], report: Path) -> None:
    """A run's report figures (as images) and ``report.md`` to the trackers it was trained with
    (its ``config.json``) and those the spec asks for: the MLflow parent, the W&B ``cv`` run and
    the run folder's TensorBoard events."""
    trained = read_ids(run.config).get("log", {}).get("trackers") or []
    wanted = [t for t in dict.fromkeys([*trained, *spec.log.trackers]) if t in _PACKAGES]
    if not wanted:
        return
    trackers = open_run_trackers(_without_failed_mlflow(_only(spec, wanted), run), run, True)
    trackers.files([*figures, report])
    trackers.finish()


def run_end_values(spec: Spec, summary, thresholds: dict | None) -> dict[str, float]:
    """The numbers a run's end sends: ``cv/...`` means of ``summary``, ``oof/TASK/...`` scores of the
    tuned decisions, ``threshold/TASK/LABEL`` (and ``/global``) or, for kappa's cut points,
    ``cut/TASK/J``."""
    values: dict[str, float] = {}
    mean = summary[summary["fold"] == "mean"] if "fold" in summary else summary.iloc[0:0]
    source = mean if len(mean) else summary
    if len(source):
        row = source.iloc[0].to_dict()
        values |= {f"cv/{k}": v for k, v in row.items() if k not in ("fold", "best_epoch")}
    for task, result in (thresholds or {}).items():
        tuned = result.to_json() if hasattr(result, "to_json") else result
        values |= {f"oof/{task}/{k}": v for k, v in tuned.get("scores", {}).items()}
        if tuned.get("metric") == "qwk":  # cut points between classes, not a threshold per class
            values |= {f"cut/{task}/{j}": c for j, c in enumerate(tuned.get("thresholds", []))}
            continue
        names = spec.task(task).label_names
        values |= {
            f"threshold/{task}/{n}": t for n, t in zip(names, tuned.get("thresholds", []), strict=False)
        }
        values[f"threshold/{task}/global"] = tuned.get("global_threshold", math.nan)
    return values


def log_run_end(spec: Spec, run: RunLayout, summary, thresholds: dict | None, is_main: bool) -> None:
    """The run's results to its trackers: CV mean of each metric, tuned thresholds' OOF scores, and
    the summary, thresholds and config files."""
    trackers = open_run_trackers(_without_failed_mlflow(spec, run), run, is_main)
    if not trackers.active:
        return
    trackers.values(run_end_values(spec, summary, thresholds))
    trackers.files([run.summary, run.thresholds, run.config])
    trackers.finish()
