"""The competition spec: one TOML file per competition, validated with pydantic.

A spec says where the data lives, how its label files are laid out, which tasks a model
predicts (and how each is scored), the training recipe, and the submission files Kaggle expects.
Everything competition-specific lives here; the pipeline stages only read a :class:`Spec`.

The sections live in one module each (``data``, ``tasks``, ``recipe``, ``output``); the whole
competition and its overrides in ``competition``; finding and loading files in ``files``.
Everything is re-exported here: ``from mtlkaggle.spec import Spec, load_spec``.
"""

from mtlkaggle.spec.competition import Spec, with_augment_overrides, with_overrides, with_train_overrides
from mtlkaggle.spec.data import DataSpec, KeepSpec, LongSpec
from mtlkaggle.spec.files import PACKAGED_SPECS, copy_template, load_spec, packaged_specs, resolve_spec_path
from mtlkaggle.spec.output import SubmissionSpec
from mtlkaggle.spec.recipe import TTA_VIEW, AugmentSpec, PredictSpec, TrainSpec
from mtlkaggle.spec.tasks import (
    DEFAULT_LOSS,
    ENCODINGS_BY_KIND,
    LOSSES_BY_KIND,
    METRICS_BY_KIND,
    TaskKind,
    TaskSpec,
)

__all__ = [
    "AugmentSpec",
    "DataSpec",
    "DEFAULT_LOSS",
    "ENCODINGS_BY_KIND",
    "KeepSpec",
    "LongSpec",
    "LOSSES_BY_KIND",
    "METRICS_BY_KIND",
    "PACKAGED_SPECS",
    "PredictSpec",
    "Spec",
    "SubmissionSpec",
    "TTA_VIEW",
    "TaskKind",
    "TaskSpec",
    "TrainSpec",
    "copy_template",
    "load_spec",
    "packaged_specs",
    "resolve_spec_path",
    "with_augment_overrides",
    "with_overrides",
    "with_train_overrides",
]
