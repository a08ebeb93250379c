"""The ``[[tasks]]`` sections: one prediction target each, its head, loss and metrics."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from mtlkaggle.spec.base import _Strict

TaskKind = Literal["multiclass", "multilabel", "regression"]

# Metrics each task kind may name; the first one listed in a task is its primary score.
METRICS_BY_KIND: dict[str, set[str]] = {
    "multiclass": {"accuracy", "macro_f1", "weighted_f1", "balanced_accuracy", "class_accuracy"},
    "multilabel": {"mean_f1", "macro_f1", "micro_f1", "accuracy"},
    "regression": {"mae", "rmse"},
}
DEFAULT_LOSS = {"multiclass": "ce", "multilabel": "bce", "regression": "smooth_l1"}
LOSSES_BY_KIND = {
    "multiclass": {"ce"},
    "multilabel": {"bce"},
    "regression": {"l1", "mse", "smooth_l1"},
}


# Label encodings each task kind may use; the first is the kind's default (see data/labels.py).
ENCODINGS_BY_KIND: dict[str, list[str]] = {
    "multiclass": ["index", "name", "sign", "columns"],
    "multilabel": ["indices", "names", "columns"],
    "regression": ["value"],
}


class TaskSpec(_Strict):
    """One prediction target and its head, loss and metrics."""

    name: str = Field(..., description='Task name (unique; spaces and hyphens allowed), e.g. "category".')
    kind: TaskKind = Field(..., description="multiclass, multilabel or regression.")
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
    encoding: Literal["index", "name", "sign", "indices", "names", "columns", "value"] | None = Field(
        None,
        description="How labels are stored: multiclass index|name|sign|columns, multilabel "
        "indices|names|columns, regression value; default: the first.",
    )
    label_sep: str = Field(
        " ", description='indices/names: separator between labels, e.g. "|"; default " " = any whitespace.'
    )
    metrics: list[str] = Field(
        default_factory=list, description="Metrics to report, the first is primary; default: the kind's."
    )
    loss: str | None = Field(
        None, description="ce (multiclass), bce (multilabel), l1|mse|smooth_l1 (regression)."
    )
    loss_weight: float = Field(1.0, ge=0, description="Weight of this task's loss in the sum (default 1).")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="Multiclass CE label smoothing (default 0).")
    class_weights: Literal["none", "balanced"] = Field(
        "none", description="Multiclass: balanced weighs classes by inverse frequency (default none)."
    )
    hidden: int = Field(0, ge=0, description="Width of a hidden layer in the head; 0 (default): linear head.")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout before the head's last layer (default 0).")
    at_least_one: bool = Field(False, description="Multilabel: an empty row gets its most probable label.")

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
        return self

    @property
    def size(self) -> int | None:
        """Number of classes (multiclass), labels (multilabel); 1 for regression."""
        if self.kind == "regression":
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
        default = {"multiclass": ["accuracy"], "multilabel": ["mean_f1"], "regression": ["mae"]}
        return list(self.metrics) or default[self.kind]

    @property
    def resolved_loss(self) -> str:
        """The task's loss name, with the kind's default filled in."""
        return self.loss or DEFAULT_LOSS[self.kind]

    @property
    def label_names(self) -> list[str]:
        """Human-readable names of the classes or labels (indices when unnamed)."""
        if self.classes:
            return list(self.classes)
        if self.encoding == "columns" and self.columns:
            return list(self.columns)
        return [str(i) for i in range(self.size or 1)]
