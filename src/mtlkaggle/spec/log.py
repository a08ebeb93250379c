"""The ``[log]`` section: the experiment trackers a run also logs to (TensorBoard, MLflow, W&B)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from mtlkaggle.spec.base import _Strict

Tracker = Literal["tensorboard", "mlflow", "wandb"]
TRACKERS: tuple[str, ...] = ("tensorboard", "mlflow", "wandb")


class LogSpec(_Strict):
    """Experiment trackers fed beside ``metrics.csv``; none by default, nothing in ``runs/`` needs them."""

    trackers: list[Tracker] = Field(
        default_factory=list,
        description="Trackers to log to: tensorboard, mlflow, wandb (default none; a comma string "
        'works too), e.g. trackers = ["tensorboard", "mlflow"].',
    )
    mlflow_uri: str | None = Field(
        None,
        description="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else "
        'sqlite:///mlruns/mlflow.db), e.g. "http://localhost:5000".',
    )
    experiment: str | None = Field(
        None,
        description="MLflow experiment and W&B project name (default: the competition's name), "
        'e.g. "plant-pathology".',
    )

    @field_validator("trackers", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        """``"tensorboard,mlflow"`` (the ``--log`` option) as a list; ``"none"`` or ``""`` as none."""
        if isinstance(value, str):
            value = [] if value.strip().lower() in ("", "none") else value.split(",")
        if isinstance(value, list | tuple):
            names = [v.strip().lower() if isinstance(v, str) else v for v in value]
            return list(dict.fromkeys(names))
        return value
