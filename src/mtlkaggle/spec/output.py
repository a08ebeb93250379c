"""The ``[[submissions]]`` sections: the files Kaggle expects.

A file is WIDE (one row per test image, one column per ``columns`` entry) or, with
``id_template``, LONG (one row per image and task, or image and class; a single value column).
A column's source is a task (``"task"``: its label, probability or value, as ``values`` says),
one class's probability (``"task:CLASS"``), or, under a header containing ``{class}``, every class's
probability as one column each.
"""

from __future__ import annotations

import string
from typing import Literal

from pydantic import Field, model_validator

from mtlkaggle.spec.base import _Strict

ValueKind = Literal["auto", "label", "probability", "value"]
TEMPLATE_FIELDS = ("image", "task", "class")


def template_fields(template: str) -> list[str]:
    """The ``{placeholders}`` of a template, in order.

    Raises:
        ValueError: a malformed template (an unmatched brace).
    """
    return [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]


class SubmissionSpec(_Strict):
    """One file Kaggle expects: its name, columns, row layout, and the competition it is uploaded to."""

    file: str = Field(..., description='File name Kaggle expects, e.g. "submission.csv".')
    columns: dict[str, str | list[str]] = Field(
        ...,
        description="Output column -> 'task', 'task:CLASS' (a class's probability) or, under a header "
        "with '{class}', one probability column per class; a list of tasks in long files. "
        "Example: { label = 'disease' } or { '{class}' = 'catheter' }.",
    )
    id_column: str | None = Field(
        None, description='Header of the id column, e.g. "image_id"; unset: no id column (test order).'
    )
    header: bool = Field(True, description="Write a header line (default true).")
    sep: str = Field(",", description='Field separator (default ",").')
    kaggle: str | None = Field(
        None, description="Kaggle competition slug (needed to upload, not for --dry-run)."
    )
    values: ValueKind = Field(
        "auto",
        description="What a whole-task cell holds: label, probability or value; auto (default): "
        "probability where the task's primary metric scores probabilities (roc_auc, pauc, log_loss), "
        "value for regression, else label.",
    )
    label_format: Literal["index", "name"] = Field(
        "index", description="Labels as class indices or class names (multi-label too); default index."
    )
    label_sep: str | None = Field(
        None, description="Separator of a multi-label cell's labels (default: the task's label_sep)."
    )
    float_format: str = Field(".4f", description='Format of probabilities and values (default ".4f").')
    clip: float | None = Field(
        None,
        ge=0,
        lt=0.5,
        description="Probabilities written within [clip, 1 - clip]; default none, 1e-15 where the "
        "primary metric is log_loss; raised to float_format's step (1e-4 for .4f).",
    )
    id_template: str | None = Field(
        None,
        description="Long file: one row per (image, task[, class]), id from this template with "
        "{image}, {task}, {class}, e.g. '{image}_{task}'; columns then holds one value column.",
    )
    sample: str | None = Field(
        None,
        description="The competition's sample submission, relative to data_dir (e.g. "
        "'sample_submission.csv'): rows are written in its order and submit checks files against it.",
    )

    @model_validator(mode="after")
    def _check(self) -> SubmissionSpec:
        if not self.columns:
            raise ValueError(f"submission '{self.file}' names no columns")
        if self.id_template is None:
            lists = [k for k, v in self.columns.items() if isinstance(v, list)]
            if lists:
                raise ValueError(f"column '{lists[0]}' lists tasks: only a long file (id_template) may")
            return self
        try:
            fields = template_fields(self.id_template)
        except ValueError as e:
            raise ValueError(f"id_template {self.id_template!r}: {e}") from None
        unknown = [f for f in fields if f not in TEMPLATE_FIELDS]
        if unknown or "image" not in fields:
            raise ValueError(
                f"id_template {self.id_template!r}: use {{image}} and optionally {{task}}, {{class}}"
            )
        if len(self.columns) != 1 or not self.id_column:
            raise ValueError("a long file (id_template) needs id_column and exactly one value column")
        if len(self.tasks) > 1 and "task" not in fields:
            raise ValueError(
                f"id_template {self.id_template!r} needs {{task}}: the column lists several tasks"
            )
        return self

    @property
    def long(self) -> bool:
        """One row per (image, task[, class]) rather than one per image."""
        return self.id_template is not None

    @property
    def tasks(self) -> list[str]:
        """The task names the columns read from, in order, each once."""
        return list(dict.fromkeys(name for _, name, _ in self.sources()))

    def task_columns(self) -> list[tuple[str, str]]:
        """Each task the file holds, once, with the first column that holds it: (column, task)."""
        first: dict[str, str] = {}
        for column, name, _ in self.sources():
            first.setdefault(name, column)
        return [(column, name) for name, column in first.items()]

    def sources(self) -> list[tuple[str, str, str | None]]:
        """Every (column, task, class name or None) the columns name, in order."""
        found = []
        for column, source in self.columns.items():
            if isinstance(source, list):
                found += [(column, name, None) for name in source]
            else:
                name, colon, label = source.partition(":")
                found.append((column, name, label if colon else None))
        return found

    def check_tasks(self, tasks: dict) -> None:
        """Refuse columns naming an unknown task or class (``tasks``: name -> TaskSpec).

        Raises:
            ValueError: naming the file and the column.
        """
        per_class = self.long and "class" in template_fields(self.id_template or "")
        for column, name, label in self.sources():
            where = f"submission '{self.file}' column '{column}'"
            if name not in tasks:
                raise ValueError(f"{where} names unknown task '{name}'")
            task = tasks[name]
            if label is not None and label not in task.label_names:
                shown = ", ".join(task.label_names[:5]) + (", ..." if len(task.label_names) > 5 else "")
                raise ValueError(f"{where}: '{label}' is not a class of '{name}' ({shown})")
            if ("{class}" in column or label is not None or per_class) and task.kind == "regression":
                raise ValueError(f"{where}: '{name}' is a regression task, it has no classes")
            if "{class}" in column and label is not None:
                raise ValueError(f"{where}: a '{{class}}' header takes a task, not '{name}:{label}'")
            if label is None and "{class}" not in column and not per_class:
                self._check_whole_task(where, task)

    def _check_whole_task(self, where: str, task) -> None:
        """A column holding a whole task's cell fits its kind (found at load, not after training)."""
        if self.values == "value" and task.kind != "regression":
            raise ValueError(
                f"{where}: values = 'value' needs a regression task, '{task.name}' is {task.kind}"
            )
        if self.values == "probability" and task.kind == "regression":
            raise ValueError(f"{where}: a regression task has no probability; use values = 'value'")
        one = task.size == 1 or (task.kind == "multiclass" and task.size == 2)
        if self.values == "probability" and not one:
            raise ValueError(
                f"{where} holds one probability but '{task.name}' has {task.size} classes; name one "
                f"('{task.name}:CLASS') or put '{{class}}' in the header for one column per class"
            )
