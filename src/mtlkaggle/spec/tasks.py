"""The ``[[tasks]]`` sections: one prediction target each, its head, loss and metrics."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from mtlkaggle.spec.base import _Strict

TaskKind = Literal["multiclass", "multilabel", "binary", "regression"]

# Metrics each task kind may name; the first one listed in a task is its primary score.
METRICS_BY_KIND: dict[str, set[str]] = {
    "multiclass": {
        "accuracy",
        "macro_f1",
        "weighted_f1",
        "balanced_accuracy",
        "class_accuracy",
        "macro_recall",
        "fbeta",
        "qwk",
        "roc_auc",
        "log_loss",
    },
    "multilabel": {"mean_f1", "macro_f1", "micro_f1", "accuracy", "fbeta", "roc_auc", "log_loss"},
    "binary": {"roc_auc", "pauc", "log_loss", "fbeta", "accuracy"},
    "regression": {"mae", "rmse", "qwk"},
}
LOWER_IS_BETTER = {"mae", "rmse", "log_loss"}
PROBABILISTIC = {"roc_auc", "pauc", "log_loss"}  # scored on probabilities: no threshold, no labels
DEFAULT_METRIC = {"multiclass": "accuracy", "multilabel": "mean_f1", "binary": "roc_auc", "regression": "mae"}
DEFAULT_LOSS = {"multiclass": "ce", "multilabel": "bce", "binary": "bce", "regression": "smooth_l1"}
LOSSES_BY_KIND = {
    "multiclass": {"ce"},
    "multilabel": {"bce"},
    "binary": {"bce"},
    "regression": {"l1", "mse", "smooth_l1"},
}
AVERAGES_BY_KIND = {
    "multiclass": {"macro", "micro", "weighted"},
    "multilabel": {"samples", "micro", "macro"},
    "binary": {"binary"},
    "regression": set(),
}
DEFAULT_AVERAGE = {"multiclass": "macro", "multilabel": "samples", "binary": "binary", "regression": ""}


# Label encodings each task kind may use; the first is the kind's default (see data/labels.py).
ENCODINGS_BY_KIND: dict[str, list[str]] = {
    "multiclass": ["index", "name", "sign", "columns"],
    "multilabel": ["indices", "names", "columns"],
    "binary": ["binary"],
    "regression": ["value"],
}


class TaskSpec(_Strict):
    """One prediction target and its head, loss and metrics."""

    name: str = Field(..., description='Task name (unique; spaces and hyphens allowed), e.g. "category".')
    kind: TaskKind = Field(..., description="multiclass, multilabel, binary (one 0/1 target) or regression.")
    column: str | None = Field(
        None, description='Label column (every encoding but columns), e.g. "ETT - Abnormal".'
    )
    columns: list[str] | None = Field(
        None, description="encoding=columns: one 0/1 column per label (multilabel) or class (one-hot)."
    )
    num_classes: int | None = Field(
        None, ge=1, description="Number of classes or labels; default: len(classes) or len(columns)."
    )
    classes: list[str] | None = Field(
        None, description='Class/label names in index order (needed by name/names), e.g. ["scab", "rust"].'
    )
    encoding: Literal["index", "name", "sign", "indices", "names", "columns", "value", "binary"] | None = (
        Field(
            None,
            description="How labels are stored: multiclass index|name|sign|columns, multilabel "
            "indices|names|columns, binary binary, regression value; default: the first.",
        )
    )
    label_sep: str = Field(
        " ", description='indices/names: separator between labels, e.g. "|"; default " " = any whitespace.'
    )
    metrics: list[str] = Field(
        default_factory=list, description="Metrics to report, the first is primary; default: the kind's."
    )
    loss: str | None = Field(
        None, description="ce (multiclass), bce (multilabel, binary), l1|mse|smooth_l1 (regression)."
    )
    loss_weight: float = Field(1.0, ge=0, description="Weight of this task's loss in the sum (default 1).")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="Multiclass CE label smoothing (default 0).")
    class_weights: Literal["none", "balanced"] = Field(
        "none", description="Multiclass: balanced weighs classes by inverse frequency (default none)."
    )
    hidden: int = Field(0, ge=0, description="Width of a hidden layer in the head; 0 (default): linear head.")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout before the head's last layer (default 0).")
    at_least_one: bool = Field(False, description="Multilabel: an empty row gets its most probable label.")
    positive: str | None = Field(
        None, description="Binary: the column value that is the positive class; default: 0/1 values."
    )
    pos_weight: float | None = Field(
        None, gt=0, description="Binary/multilabel: BCE weight of positives (rare targets), e.g. 10.0."
    )
    beta: float = Field(1.0, gt=0, description="Metric 'fbeta': beta (recall weighs beta times precision).")
    average: Literal["samples", "micro", "macro", "weighted", "binary"] | None = Field(
        None, description="Metric 'fbeta': averaging; default samples/macro/binary by kind."
    )
    min_tpr: float = Field(0.8, ge=0, lt=1, description="Metric 'pauc': the TPR floor (ISIC 2024: 0.8).")
    label_weights: dict[str, float] = Field(
        default_factory=dict,
        description="Metric 'log_loss': weight per label name (others 1), e.g. {any = 2.0}.",
    )

    @model_validator(mode="after")
    def _check(self) -> TaskSpec:
        kind = self.kind
        if "/" in self.name or ":" in self.name:  # they separate names in metric keys and CSV headers
            raise ValueError(f"task name '{self.name}' may not contain '/' or ':'")
        allowed_enc = ENCODINGS_BY_KIND[kind]
        if self.encoding is not None and self.encoding not in allowed_enc:
            raise ValueError(f"encoding must be one of {sorted(allowed_enc)} for a {kind} task")
        if self.encoding == "columns":
            if not self.columns:
                raise ValueError(f"a {kind} task with encoding='columns' needs 'columns'")
        elif not self.column:
            raise ValueError(f"task '{self.name}' needs 'column'")
        if kind == "binary":
            self._check_binary()
        if self.encoding in ("name", "names") and not self.classes:
            raise ValueError(f"task '{self.name}': encoding='{self.encoding}' needs 'classes'")
        if not self.label_sep:
            raise ValueError(f"task '{self.name}': label_sep must not be empty (\" \" = any whitespace)")
        if self.encoding == "columns" and self.size != len(self.columns or []):
            raise ValueError(f"task '{self.name}': {len(self.columns or [])} columns but {self.size} classes")
        names = self.label_names if self.size else []
        if len(set(names)) != len(names):
            raise ValueError(f"task '{self.name}': class/label names must be unique, got {names}")
        if kind != "regression" and self.size is None:
            raise ValueError(f"task '{self.name}' needs 'num_classes' or 'classes'")
        if self.classes and self.num_classes and len(self.classes) != self.num_classes:
            raise ValueError(
                f"task '{self.name}': {len(self.classes)} classes named but num_classes={self.num_classes}"
            )
        bad = [m for m in self.metrics if m not in METRICS_BY_KIND[kind]]
        if bad:
            raise ValueError(
                f"unknown metric {bad} for a {kind} task; choose from {sorted(METRICS_BY_KIND[kind])}"
            )
        if self.loss is not None and self.loss not in LOSSES_BY_KIND[kind]:
            raise ValueError(f"loss must be one of {sorted(LOSSES_BY_KIND[kind])} for {kind}")
        self._check_metric_params()
        return self

    def _check_binary(self) -> None:
        if self.num_classes not in (None, 2) or (self.classes and len(self.classes) != 2):
            raise ValueError(f"binary task '{self.name}': a binary task has 2 classes (or leave them out)")
        if self.classes and self.positive not in self.classes:
            raise ValueError(f"binary task '{self.name}': 'positive' must be one of classes {self.classes}")

    def _check_metric_params(self) -> None:
        if self.average is not None and self.average not in AVERAGES_BY_KIND[self.kind]:
            raise ValueError(
                f"average '{self.average}' is not for a {self.kind} task; "
                f"choose from {sorted(AVERAGES_BY_KIND[self.kind])}"
            )
        unknown = [k for k in self.label_weights if k not in self.label_names]
        if unknown:
            raise ValueError(f"label_weights names unknown label(s) {unknown}; labels are {self.label_names}")
        if any(w < 0 for w in self.label_weights.values()):
            raise ValueError("label_weights must be >= 0")
        if self.kind == "regression" and "qwk" in self.metrics and not self.num_classes:
            raise ValueError(
                f"regression task '{self.name}' scored by 'qwk' needs num_classes (classes 0..K-1)"
            )
        if self.pos_weight is not None and self.kind not in ("binary", "multilabel"):
            raise ValueError("pos_weight is for binary and multilabel tasks")

    @property
    def size(self) -> int | None:
        """Number of classes (multiclass), labels (multilabel); 1 for binary and regression."""
        if self.kind in ("regression", "binary"):
            return 1
        if self.num_classes:
            return self.num_classes
        if self.classes:
            return len(self.classes)
        if self.encoding == "columns" and self.columns:
            return len(self.columns)
        return None

    @property
    def resolved_encoding(self) -> str:
        """The label encoding, with the kind's default filled in."""
        return self.encoding or ENCODINGS_BY_KIND[self.kind][0]

    @property
    def resolved_metrics(self) -> list[str]:
        """The task's metrics; the kind's default when none are named."""
        return list(self.metrics) or [DEFAULT_METRIC[self.kind]]

    @property
    def resolved_average(self) -> str:
        """F-beta's averaging, with the kind's default filled in."""
        return self.average or DEFAULT_AVERAGE[self.kind]

    @property
    def resolved_loss(self) -> str:
        """The task's loss name, with the kind's default filled in."""
        return self.loss or DEFAULT_LOSS[self.kind]

    @property
    def label_names(self) -> list[str]:
        """Human-readable names of the classes or labels (indices when unnamed); a binary task's one
        name is its positive class (``"1"`` for 0/1 values)."""
        if self.kind == "binary":
            return [self.positive if self.positive is not None else "1"]
        if self.classes:
            return list(self.classes)
        if self.encoding == "columns" and self.columns:
            return list(self.columns)
        return [str(i) for i in range(self.size or 1)]
