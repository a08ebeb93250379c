"""The three experiment trackers behind :mod:`mtlkaggle.trackers`, each behind the same four
calls (``start``, ``metrics``, ``files``, ``finish``), each call guarded: a failure warns once and
drops the tracker. Where each one writes (local first) is decided here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import uuid
from pathlib import Path
from typing import Any

from mtlkaggle.spec import Spec

DEFAULT_MLFLOW_DIR = Path("mlruns")


def mlflow_uri(spec: Spec) -> str:
    """The MLflow store: ``[log] mlflow_uri``, else ``$MLFLOW_TRACKING_URI``, else the local sqlite file."""
    uri = spec.log.mlflow_uri or os.environ.get("MLFLOW_TRACKING_URI")
    return uri or _default_uri()


def _default_uri() -> str:
    # absolute: MLflow caches a store per URI string, so a relative one would follow the first cwd
    return f"sqlite:///{(DEFAULT_MLFLOW_DIR / 'mlflow.db').resolve().as_posix()}"


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


class TrackerBackend:
    """One tracker: every call guarded, so a failure warns once and drops the tracker.

    Subclasses implement ``start(...) -> dict`` (the ids to keep in ``trackers.json``),
    ``metrics(values, step)``, ``files(paths, step)`` and ``finish(failed)``; callers go through
    :meth:`call`.
    """

    def __init__(self, name: str, warn):
        self.name, self._warn, self.alive = name, warn, True

    def call(self, method: str, *args: Any) -> Any:
        """``method(*args)``; None (and a single warning) once the tracker has failed."""
        if not self.alive:
            return None
        try:
            return getattr(self, method)(*args)
        except Exception as e:  # noqa: BLE001 - a tracker must never stop training
            self.alive = False
            self._warn(f"{self.name} stopped logging ({type(e).__name__}: {e}); training goes on without it")
            return None


class TensorBoardBackend(TrackerBackend):
    """Event files in the fold's (or run's) folder; a resume purges steps past the last one logged."""

    def start(self, folder: Path, step: int, config: str, fresh: bool) -> dict:
        from torch.utils.tensorboard import SummaryWriter

        if fresh and step == 0:  # a fold started again: its overwritten events would mix with the new
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


class MlflowBackend(TrackerBackend):
    """A run in the competition's experiment (a child of the run's parent for a fold)."""

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
        local = uri == _default_uri()
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


class WandbBackend(TrackerBackend):
    """A W&B run (group = the mtlkaggle run, job type = the fold), resumed by its saved id."""

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
