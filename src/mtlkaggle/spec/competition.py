"""A whole competition (:class:`Spec`) and command-line overrides of its sections."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationError, model_validator

from mtlkaggle.errors import UserError
from mtlkaggle.spec.base import _Strict
from mtlkaggle.spec.data import DataSpec
from mtlkaggle.spec.output import SubmissionSpec
from mtlkaggle.spec.recipe import AugmentSpec, PredictSpec, TrainSpec
from mtlkaggle.spec.tasks import TaskSpec


class Spec(_Strict):
    """A whole competition."""

    name: str = Field(
        ..., description="Competition name (default: the file's name); names folds/, runs/, submissions/."
    )
    description: str = Field("", description='One line about the competition (default "").')
    data_dir: str = Field(
        ...,
        description="Folder of the competition's files, relative to the working directory (--data-dir).",
    )
    data: DataSpec = Field(..., description="Where the label files and images are, see [data].")
    tasks: list[TaskSpec] = Field(..., min_length=1, description="One prediction target each, see [[tasks]].")
    train: TrainSpec = Field(default_factory=TrainSpec, description="The training recipe, see [train].")
    augment: AugmentSpec = Field(
        default_factory=AugmentSpec, description="The augmentation recipe, see [augment]."
    )
    predict: PredictSpec = Field(
        default_factory=PredictSpec, description="Inference settings, see [predict]."
    )
    submissions: list[SubmissionSpec] = Field(
        default_factory=list, description="The files Kaggle expects, see [[submissions]]."
    )
    monitor: str | None = Field(
        None, description="'task/metric' to pick the best epoch; default: mean of primaries."
    )

    @model_validator(mode="after")
    def _check(self) -> Spec:
        names = [t.name for t in self.tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"task names must be unique, got {names}")
        for sub in self.submissions:
            unknown = [t for t in sub.columns.values() if t not in names]
            if unknown:
                raise ValueError(f"submission '{sub.file}' names unknown task(s) {unknown}")
        if self.monitor is not None:
            task, _, metric = self.monitor.partition("/")
            if task not in names or metric not in self.task(task).resolved_metrics:
                raise ValueError(f"monitor '{self.monitor}' is not 'task/metric' of this spec")
        return self

    def task(self, name: str) -> TaskSpec:
        """The task called ``name``."""
        for t in self.tasks:
            if t.name == name:
                return t
        raise KeyError(name)

    @property
    def data_path(self) -> Path:
        """``data_dir`` as a Path (relative paths are relative to the working directory)."""
        return Path(self.data_dir)


_OVERRIDABLE = {"train": TrainSpec, "augment": AugmentSpec}


def with_overrides(spec: Spec, section: str, **overrides: object) -> Spec:
    """A copy of ``spec`` whose ``section`` (``train`` or ``augment``) fields are replaced by the
    non-None ``overrides`` (the command line's options).

    Raises:
        UserError: when an override is out of range or not allowed (e.g. ``--epochs 0``,
            ``--mix blend``), naming the option.
    """
    changes = {k: v for k, v in overrides.items() if v is not None}
    if not changes:
        return spec
    model = _OVERRIDABLE[section]
    try:
        value = model.model_validate({**getattr(spec, section).model_dump(), **changes})
    except ValidationError as e:
        first = e.errors()[0]
        raise UserError(f"--{str(first['loc'][0]).replace('_', '-')}: {first['msg']}") from None
    return spec.model_copy(update={section: value})


def with_train_overrides(spec: Spec, **overrides: object) -> Spec:
    """:func:`with_overrides` of the ``train`` section."""
    return with_overrides(spec, "train", **overrides)


def with_augment_overrides(spec: Spec, **overrides: object) -> Spec:
    """:func:`with_overrides` of the ``augment`` section."""
    return with_overrides(spec, "augment", **overrides)
