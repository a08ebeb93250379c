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
import os
import re
import shutil
import sys
import uuid
from pathlib import Path
from typing import Any

from mtlkaggle.errors import UserError
from mtlkaggle.io import write_json_atomic
from mtlkaggle.paths import FoldLayout, RunLayout
from mtlkaggle.spec import Spec

DEFAULT_MLFLOW_DIR = Path("mlruns")
_PACKAGES = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}


def check_trackers(spec: Spec) -> None:
    """Refuse, before any training, a tracker whose package is not installed.

    Raises:
        UserError: naming the ``pip install`` that adds it.
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


def mlflow_uri(spec: Spec) -> str:
    """The MLflow store: ``[log] mlflow_uri``, else ``$MLFLOW_TRACKING_URI``, else the local sqlite file."""
    uri = spec.log.mlflow_uri or os.environ.get("MLFLOW_TRACKING_URI")
    return uri or _default_uri()


def _default_uri() -> str:
    return f"sqlite:///{(DEFAULT_MLFLOW_DIR / 'mlflow.db').as_posix()}"


def experiment_name(spec: Spec) -> str:
    """The MLflow experiment and W&B project: ``[log] experiment`` or the competition's name."""
    return spec.log.experiment or spec.name


def wandb_mode() -> str:
    """``$WANDB_MODE`` if set; ``online`` when an API key is known (env or netrc), else ``offline``."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    import netrc

    host = re.sub(r"^https?://", "", os.environ.get("WANDB_BASE_URL", "api.wandb.ai")).split("/")[0]
    try:
        return "online" if netrc.netrc(os.environ.get("NETRC")).authenticators(host) else "offline"
    except (OSError, netrc.NetrcParseError):
        return "offline"


def numeric(row: dict[str, Any]) -> dict[str, float]:
    """The finite numbers of a metrics row, by a name every tracker accepts (NaN metrics are left out)."""
    found = {}
    for key, value in row.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            continue
        found[re.sub(r"[^\w\-./ ]", "_", str(key))] = float(value)
    return found


def flat_params(spec: Spec) -> dict[str, str]:
    """The resolved spec as ``section.field`` -> value strings (lists and tables as JSON), and the command."""
    params: dict[str, str] = {}
    for section, value in spec.model_dump(mode="json").items():
        if isinstance(value, dict):
            params |= {f"{section}.{k}": _text(v) for k, v in value.items()}
        else:
            params[section] = _text(value)
    params["command"] = " ".join(sys.argv)[:6000]
    return params


def _text(value: Any) -> str:
    return (value if isinstance(value, str) else json.dumps(value))[:6000]


def read_ids(path: Path) -> dict[str, Any]:
    """A ``trackers.json`` (a fold's or a run's); empty when missing or unreadable."""
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


class _Guarded:
    """One tracker: every call guarded, so a failure warns once and drops the tracker."""

    def __init__(self, name: str, warn):
        self.name, self._warn, self.alive = name, warn, True

    def call(self, method: str, *args: Any) -> Any:
        if not self.alive:
            return None
        try:
            return getattr(self, method)(*args)
        except Exception as e:  # noqa: BLE001 - a tracker must never stop training
            self.alive = False
            self._warn(f"{self.name} stopped logging ({type(e).__name__}: {e}); training goes on without it")
            return None


class _TensorBoard(_Guarded):
    def start(self, folder: Path, step: int, config: str) -> dict:
        from torch.utils.tensorboard import SummaryWriter

        if step == 0:  # a fresh start: the events of an overwritten run would mix with the new ones
            for old in folder.glob("events.out.tfevents.*"):
                old.unlink()
        self.writer = SummaryWriter(str(folder), purge_step=step + 1 if step else None)
        if not step:
            self.writer.add_text("config", f"```\n{config}\n```", 0)
        return {}

    def metrics(self, values: dict[str, float], step: int) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def files(self, paths: list[Path], step: int) -> None:
        for path in paths:
            if path.suffix == ".png":
                import numpy as np
                from PIL import Image

                image = np.asarray(Image.open(path).convert("RGB"))
                self.writer.add_image(path.stem, image, step, dataformats="HWC")
            elif path.suffix in (".json", ".md", ".txt"):
                self.writer.add_text(path.name, f"```\n{path.read_text(encoding='utf-8')}\n```", step)
        self.writer.flush()

    def finish(self, failed: bool) -> None:
        self.writer.close()


class _MLflow(_Guarded):
    def start(self, spec: Spec, name: str, saved: dict, parent: str | None, run_name: str) -> dict:
        import logging

        from mlflow.tracking import MlflowClient

        for noisy in ("mlflow", "alembic"):  # "Creating initial MLflow database tables..." and such
            logging.getLogger(noisy).setLevel(logging.WARNING)
        uri = mlflow_uri(spec)
        if uri == _default_uri():
            DEFAULT_MLFLOW_DIR.mkdir(exist_ok=True)
        self.client = MlflowClient(tracking_uri=uri)
        if saved.get("run_id") and saved.get("uri") == uri:
            self.run_id = saved["run_id"]
            self.client.update_run(self.run_id, status="RUNNING")
            return saved
        experiment = self._experiment(experiment_name(spec), uri)
        tags = {"mlflow.runName": name, "mtlkaggle.competition": spec.name, "mtlkaggle.run": run_name}
        if parent:
            tags["mlflow.parentRunId"] = parent
        self.run_id = self.client.create_run(experiment, tags=tags).info.run_id
        from mlflow.entities import Param

        params = [Param(k, v) for k, v in flat_params(spec).items()]
        for i in range(0, len(params), 100):
            self.client.log_batch(self.run_id, params=params[i : i + 100])
        return {"run_id": self.run_id, "uri": uri}

    def _experiment(self, name: str, uri: str) -> str:
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        local = uri.startswith("sqlite:///") and not uri.startswith("sqlite:////")
        artifacts = (DEFAULT_MLFLOW_DIR / "artifacts").resolve().as_uri() if local else None
        return self.client.create_experiment(name, artifact_location=artifacts)

    def metrics(self, values: dict[str, float], step: int) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, v, now, step) for k, v in values.items()])

    def files(self, paths: list[Path], step: int) -> None:
        for path in paths:
            self.client.log_artifact(self.run_id, str(path), "figures" if path.suffix == ".png" else None)

    def finish(self, failed: bool) -> None:
        self.client.set_terminated(self.run_id, "FAILED" if failed else "FINISHED")


class _WandB(_Guarded):
    def start(self, spec: Spec, group: str, job_type: str, saved: dict, folder: Path) -> dict:
        import wandb

        run_id = saved.get("id") or uuid.uuid4().hex[:8]
        folder.mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(
            project=experiment_name(spec),
            group=group,
            job_type=job_type,
            name=f"{group}-{job_type}",
            id=run_id,
            resume="allow",
            dir=str(folder),
            mode=wandb_mode(),
            config=spec.model_dump(mode="json") | {"command": " ".join(sys.argv)},
            settings=wandb.Settings(console="off", silent=True, x_disable_stats=True),
            reinit="create_new",
        )
        return {"id": run_id, "dir": str(self.run.dir)}

    def metrics(self, values: dict[str, float], step: int) -> None:
        self.run.log(values, step=step)

    def files(self, paths: list[Path], step: int) -> None:
        import wandb

        images = {p.stem: wandb.Image(str(p)) for p in paths if p.suffix == ".png"}
        if images:
            self.run.log(images, step=step)
        for path in paths:
            if path.suffix != ".png":  # the run's files folder is uploaded with the run (wandb sync)
                shutil.copyfile(path, Path(self.run.dir) / path.name)

    def finish(self, failed: bool) -> None:
        self.run.finish(exit_code=1 if failed else 0)


class Trackers:
    """The trackers one fold (or one run's results) logs to; a no-op when none are asked for.

    Use :func:`open_fold_trackers` or :func:`open_run_trackers`; then :meth:`epoch` per epoch,
    :meth:`files` for artefacts and :meth:`finish` at the end.
    """

    def __init__(self, active: list[_Guarded], ids_file: Path | None, ids: dict[str, Any]):
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

    def values(self, values: dict[str, float], step: int = 0) -> None:
        """Log end-of-run numbers (CV, OOF scores) at ``step``."""
        for tracker in self.active:
            tracker.call("metrics", numeric(values), step)

    def files(self, paths: list[Path]) -> None:
        """Log files: PNG figures as images, the rest as artifacts (existing ones only)."""
        found = [p for p in paths if p.is_file()]
        for tracker in self.active:
            if found:
                tracker.call("files", found, self.step)

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
    started: list[_Guarded] = []
    config = json.dumps(spec.model_dump(mode="json"), indent=1)
    for name in spec.log.trackers:
        if name == "tensorboard":
            tracker, args = _TensorBoard(name, warn), (folder, step, config)
        elif name == "mlflow":
            tracker = _MLflow(name, warn)
            args = (spec, names["mlflow"], ids.get("mlflow", {}), parent, names["run"])
        else:
            tracker = _WandB(name, warn)
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


def open_run_trackers(spec: Spec, run: RunLayout, is_main: bool) -> Trackers:
    """The run-level trackers: the MLflow parent run, the W&B ``cv`` run, the run folder's events."""
    if not spec.log.trackers or not is_main:
        return NO_TRACKERS
    run.dir.mkdir(parents=True, exist_ok=True)
    names = {
        "label": f"run {run.name}",
        "mlflow": run.name,
        "run": str(run.dir),
        "group": run.name,
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
        "group": run.name,
        "job": f"fold{files.name}",
        "wandb_dir": run.dir,
    }
    return _open(spec, files.trackers, files.dir, names, parent)


def log_run_end(spec: Spec, run: RunLayout, summary, thresholds: dict | None, is_main: bool) -> None:
    """The run's results to its trackers: CV mean of each metric, tuned thresholds' OOF scores, and
    the summary, thresholds and config files."""
    trackers = open_run_trackers(_without_failed_mlflow(spec, run), run, is_main)
    if not trackers.active:
        return
    values: dict[str, float] = {}
    mean = summary[summary["fold"] == "mean"] if "fold" in summary else summary.iloc[0:0]
    source = mean if len(mean) else summary
    if len(source):
        row = source.iloc[0].to_dict()
        values |= {f"cv/{k}": v for k, v in row.items() if k not in ("fold", "best_epoch")}
    for task, result in (thresholds or {}).items():
        scores = result.to_json()["scores"] if hasattr(result, "to_json") else result.get("scores", {})
        values |= {f"oof/{task}/{k}": v for k, v in scores.items()}
    trackers.values(values)
    trackers.files([run.summary, run.thresholds, run.config])
    trackers.finish()
