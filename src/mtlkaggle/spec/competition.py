"""A whole competition (:class:`Spec`) and command-line overrides of its sections."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationError, model_validator

from mtlkaggle.errors import UserError
from mtlkaggle.spec.base import _Strict
from mtlkaggle.spec.data import DataSpec
from mtlkaggle.spec.log import LogSpec
from mtlkaggle.spec.output import SubmissionSpec
from mtlkaggle.spec.recipe import AugmentSpec, PredictSpec, TrainSpec
from mtlkaggle.spec.tasks import LOWER_IS_BETTER, TaskSpec


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
    log: LogSpec = Field(
        default_factory=LogSpec, description="Experiment trackers fed beside metrics.csv, see [log]."
    )
    submissions: list[SubmissionSpec] = Field(
        default_factory=list, description="The files Kaggle expects, see [[submissions]]."
    )
    monitor: str | None = Field(
        None, description="'task/metric' to pick the best epoch; default: the spec score."
    )
    score_weights: dict[str, float] | None = Field(
        None,
        description="Spec score: weighted mean of tasks' primary metrics; default: equal weights. "
        "E.g. {root = 0.5, vowel = 0.25, consonant = 0.25}.",
    )

    @model_validator(mode="after")
    def _check(self) -> Spec:
        names = [t.name for t in self.tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"task names must be unique, got {names}")
        for sub in self.submissions:
            sub.check_tasks({t.name: t for t in self.tasks})
        if self.data.in_chans != 3 and self.augment.color_jitter:
            raise ValueError(
                f"augment.color_jitter needs RGB images, and data gives {self.data.in_chans} channels; "
                "set color_jitter = 0"
            )
        if self.monitor is not None:
            task, _, metric = self.monitor.partition("/")
            if task not in names or metric not in self.task(task).resolved_metrics:
                raise ValueError(f"monitor '{self.monitor}' is not 'task/metric' of this spec")
        if self.score_weights is not None:
            self._check_score_weights(names)
        return self

    def _check_score_weights(self, names: list[str]) -> None:
        weights = self.score_weights or {}
        unknown = [t for t in weights if t not in names]
        if unknown:
            raise ValueError(f"score_weights names unknown task(s) {unknown}; tasks are {names}")
        if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
            raise ValueError("score_weights must be >= 0 with a positive sum")
        lower = {self.task(t).resolved_metrics[0] in LOWER_IS_BETTER for t, w in weights.items() if w > 0}
        if len(lower) > 1:
            raise ValueError(
                "score_weights mixes tasks whose primary metric is better high with ones better low "
                "(e.g. log_loss, mae); weight only one direction"
            )

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


_OVERRIDABLE = {"train": TrainSpec, "augment": AugmentSpec, "log": LogSpec}
_OPTION_NAMES = {"trackers": "log"}  # a field whose command-line option has another name


def with_overrides(spec: Spec, section: str, **overrides: object) -> Spec:
    """A copy of ``spec`` whose ``section`` (``train``, ``augment`` or ``log``) fields are replaced by the
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
        option = _OPTION_NAMES.get(str(first["loc"][0]), str(first["loc"][0]))
        raise UserError(f"--{option.replace('_', '-')}: {first['msg']}") from None
    return spec.model_copy(update={section: value})


def with_train_overrides(spec: Spec, **overrides: object) -> Spec:
    """:func:`with_overrides` of the ``train`` section."""
    return with_overrides(spec, "train", **overrides)


def with_augment_overrides(spec: Spec, **overrides: object) -> Spec:
    """:func:`with_overrides` of the ``augment`` section."""
    return with_overrides(spec, "augment", **overrides)
