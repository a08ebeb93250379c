"""The cells of a submission file: what each column (or long row) holds, how it is written and
read, and the competition's sample submission as the contract of ids, order and header.

A column's source is a task (``values``: its label, probability or value), one class's
probability (``"task:CLASS"``), or under a ``{class}`` header every class's probability as one
column each; a LONG file (``id_template``) has one row per (image, task[, class]).
"""

from __future__ import annotations

import csv
import io
import math
import re
import string
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mtlkaggle.errors import UserError
from mtlkaggle.metric_formulas import LOG_LOSS_EPS
from mtlkaggle.spec import PROBABILISTIC, Spec, SubmissionSpec, TaskSpec
from mtlkaggle.spec.output import template_fields

LOG_LOSS_CLIP = LOG_LOSS_EPS  # the metric's clip: a 0 or 1 cell would cost infinity


@dataclass(frozen=True)
class Cell:
    """What one column (wide) or one row's value (long) holds."""

    column: str
    task: TaskSpec
    kind: str  # label, probability, value
    index: int | None = None  # the class whose probability it is (None: the task's own value)
    label: str = ""  # that class's name, for a long file's {class}


def value_kind(task: TaskSpec, sub: SubmissionSpec) -> str:
    """What a whole-task cell holds: the spec's ``values``, or by default a probability where the
    task's primary metric scores probabilities, a value for regression, else a label."""
    if sub.values != "auto":
        return sub.values
    if task.kind == "regression":  # a grade cut from a regression output (kappa) is a label
        return "label" if task.resolved_metrics[0] == "qwk" else "value"
    return "probability" if task.resolved_metrics[0] in PROBABILISTIC else "label"


def _positive_index(task: TaskSpec, column: str, sub: SubmissionSpec) -> int:
    """The class a whole-task probability cell holds: a one-probability task's, or class 1 of two."""
    if task.size == 1:
        return 0
    if task.kind == "multiclass" and task.size == 2:
        return 1
    raise UserError(
        f"submission {sub.file}: column '{column}' holds one probability but task '{task.name}' has "
        f"{task.size} classes; name one (\"{task.name}:CLASS\") or use a '{{class}}' header"
    )


def _task_cell(task: TaskSpec, sub: SubmissionSpec, column: str) -> Cell:
    kind = value_kind(task, sub)
    if kind == "value" and task.kind != "regression":
        raise UserError(f"submission {sub.file}: column '{column}': values = 'value' needs a regression task")
    if kind == "probability":
        if task.kind == "regression":
            raise UserError(f"submission {sub.file}: column '{column}': a regression task has no probability")
        index = _positive_index(task, column, sub)
        return Cell(column, task, kind, index, task.label_names[index])
    return Cell(column, task, kind)


def _class_cells(task: TaskSpec, column: str) -> list[Cell]:
    """One probability cell per class, the header (or the long file's {class}) named by the class."""
    return [
        Cell(column.replace("{class}", label), task, "probability", k, label)
        for k, label in enumerate(task.label_names)
    ]


def plan(spec: Spec, sub: SubmissionSpec) -> list[Cell]:
    """The cells of one image's row (wide) or of one image's rows (long), in file order.

    Raises:
        UserError: a column whose kind does not fit its task (a probability of a many-class task
            without a class, a value of a classification task).
    """
    per_class = sub.long and "{class}" in (sub.id_template or "")
    cells: list[Cell] = []
    for column, name, label in sub.sources():
        task = spec.task(name)
        if label is not None:
            index = task.label_names.index(label)
            cells.append(Cell(column, task, "probability", index, label))
        elif "{class}" in column or per_class:
            cells += _class_cells(task, column)
        else:
            cells.append(_task_cell(task, sub, column))
    return cells


def header(spec: Spec, sub: SubmissionSpec) -> list[str]:
    """The column names of a submission file, in order."""
    ids = [sub.id_column] if sub.id_column else []
    if sub.long:
        return ids + list(sub.columns)
    return ids + [cell.column for cell in plan(spec, sub)]


def row_ids(sub: SubmissionSpec, cells: list[Cell], image_ids) -> list[str]:
    """Every row's id: the image's (wide), or the template's for each (image, cell) (long)."""
    if not sub.long:
        return [str(i) for i in image_ids]
    template = sub.id_template or ""
    return [
        template.format(image=image, task=cell.task.name, **{"class": cell.label})
        for image in image_ids
        for cell in cells
    ]


def long_row_keys(sub: SubmissionSpec, cells: list[Cell]) -> tuple[re.Pattern, dict[tuple[str, str], Cell]]:
    """A pattern that splits a long file's row id back into ``image``, ``task`` and ``cls`` (by
    its ``id_template``), and the cell of each (task, class) key (class "" without ``{class}``)."""
    fields = template_fields(sub.id_template or "")
    choices = {
        "task": [c.task.name for c in cells],
        "class": [c.label for c in cells],
    }
    pattern, named = "", set()
    for literal, name, _, _ in string.Formatter().parse(sub.id_template or ""):
        pattern += re.escape(literal)
        if name is None:
            continue
        group = "cls" if name == "class" else name
        if group in named:
            pattern += f"(?P={group})"
        elif name == "image":
            pattern += "(?P<image>.+?)"
        else:
            options = sorted(set(choices[name]), key=len, reverse=True)
            pattern += f"(?P<{group}>" + "|".join(re.escape(o) for o in options) + ")"
        named.add(group)
    keys = {(c.task.name, c.label if "class" in fields else ""): c for c in cells}
    return re.compile(pattern), keys


def clip_bound(task: TaskSpec, sub: SubmissionSpec) -> float:
    """The clip of a task's probability cells: the spec's, or 1e-15 where the primary metric is
    log loss, raised to the float format's step (1e-4 for ``.4f``) so no cell prints as 0 or 1."""
    clip = (
        sub.clip if sub.clip is not None else (LOG_LOSS_CLIP if task.resolved_metrics[0] == "log_loss" else 0)
    )
    fixed = re.fullmatch(r"\.(\d+)f", sub.float_format)
    if clip > 0 and fixed:
        clip = max(clip, 10.0 ** -int(fixed.group(1)))
    return clip


def file_class_names(task: TaskSpec) -> list[str]:
    """The names of a task's labels in a file: its classes; a binary task's two, at index 0 the
    negative and at 1 the ``positive`` class (its ``classes`` in any order; else 0 and 1); a
    regression task decided into classes: 0..K-1."""
    if task.kind == "binary":
        if task.classes and len(task.classes) == 2 and task.positive in task.classes:
            return [next(c for c in task.classes if c != task.positive), task.positive]
        return ["0", "1"]
    if task.kind == "regression":
        return [str(k) for k in range(task.num_classes or 0)]
    return task.label_names


def _labels(cell: Cell, sub: SubmissionSpec, decided: np.ndarray) -> list[str]:
    task = cell.task
    names = file_class_names(task) if sub.label_format == "name" else None
    if task.kind == "multilabel":
        sep = task.label_sep if sub.label_sep is None else sub.label_sep
        return [sep.join(names[k] if names else str(k) for k in np.flatnonzero(row)) for row in decided]
    flat = np.rint(np.asarray(decided, dtype=np.float64).reshape(len(decided), -1)[:, 0]).astype(int)
    return [names[k] if names else str(k) for k in flat]


def column_text(cell: Cell, sub: SubmissionSpec, decided: dict, probabilities: dict | None) -> list[str]:
    """Every row's text of one cell."""
    task = cell.task
    if cell.kind == "label":
        return _labels(cell, sub, decided[task.name])
    if cell.kind == "value":
        return [format(float(v), sub.float_format) for v in np.ravel(decided[task.name])]
    if probabilities is None or task.name not in probabilities:
        raise UserError(
            f"submission {sub.file}: column '{cell.column}' needs the probabilities of '{task.name}'"
        )
    p = np.asarray(probabilities[task.name], dtype=np.float64)
    p = p.reshape(len(p), -1)[:, cell.index]
    clip = clip_bound(task, sub)
    if clip > 0:
        p = np.clip(p, clip, 1 - clip)
    return [format(float(v), sub.float_format) for v in p]


def check_ids(where: str, ids, expected, expected_name: str, fix: str) -> None:
    """Refuse ids that are duplicated, missing or unexpected, each with its count and examples.

    Args:
        where: The file (or ``predictions``) the ids come from; starts the error line.
        ids: The ids found, in file order.
        expected: The ids that must each appear exactly once.
        expected_name: What ``expected`` is, e.g. ``the test file`` or ``the labels``.
        fix: What to do about it (ends the error line).

    Raises:
        UserError: one line listing every kind of mismatch found.
    """
    from collections import Counter

    counts = Counter(str(i) for i in ids)
    wanted = [str(i) for i in expected]
    wanted_set = set(wanted)
    duplicated = [i for i, n in counts.items() if n > 1]
    missing = [i for i in wanted if i not in counts]
    extra = [i for i in counts if i not in wanted_set]
    found = []
    if duplicated:
        shown = ", ".join(f"'{i}' x{counts[i]}" for i in duplicated[:3])
        found.append(f"{len(duplicated)} id(s) appear more than once ({shown}{_more(duplicated)})")
    if missing:
        found.append(f"{len(missing)} id(s) of {expected_name} are missing ({_examples(missing)})")
    if extra:
        found.append(f"{len(extra)} id(s) are not in {expected_name} ({_examples(extra)})")
    if found:
        raise UserError(f"{where}: {'; '.join(found)}; {fix}")


def _examples(values: list[str]) -> str:
    return ", ".join(f"'{v}'" for v in values[:3]) + _more(values)


def _more(values: list) -> str:
    return ", ..." if len(values) > 3 else ""


def _csv_rows(path: Path, sep: str, fix: str, what: str) -> list[list[str]]:
    from mtlkaggle.readback import read_text

    text = read_text(path, fix, what)
    try:
        return list(csv.reader(io.StringIO(text, newline=""), delimiter=sep))
    except csv.Error as e:
        raise UserError(f"{path}: not a readable CSV ({e}); {fix}") from None


def read_rows(spec: Spec, sub: SubmissionSpec, path: Path) -> tuple[list[list[str]], int]:
    """The data rows of a submission file (header checked) and the line number of the first.

    Raises:
        UserError: an unreadable file, another header, or a row with another number of fields.
    """
    fix = f"write it with `mtlkaggle predict {spec.name}`"
    rows = _csv_rows(path, sub.sep, fix, "submission file")
    while rows and rows[-1] == []:  # blank lines at the end (an editor's): Kaggle skips them
        rows.pop()
    expected = header(spec, sub)
    start = 0
    if sub.header:
        if not rows or rows[0] != expected:
            found = rows[0] if rows else "an empty file"
            raise UserError(f"{path}:1: header should be {sub.sep.join(expected)!r}, found {found}")
        start = 1
    for line, row in enumerate(rows[start:], start=start + 1):
        if len(row) != len(expected):
            raise UserError(f"{path}:{line}: expected {len(expected)} fields, found {len(row)}")
    return rows[start:], start + 1


def _what(cell: Cell, sub: SubmissionSpec) -> str:
    task = cell.task
    if cell.kind == "probability":
        return "a probability within [0, 1]"
    if cell.kind == "value":
        return "a finite number"
    names = file_class_names(task)
    shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
    if task.kind == "multilabel":
        sep = task.label_sep if sub.label_sep is None else sub.label_sep
        kind = f"names ({shown})" if sub.label_format == "name" else f"indices 0..{task.size - 1}"
        return f"labels of '{task.name}' ({kind}) separated by {sep!r}"
    if not names:
        return f"a whole number (a class of '{task.name}')"
    if sub.label_format == "name":
        return f"a class of '{task.name}' ({shown})"
    return f"a class index of '{task.name}' (0..{len(names) - 1})"


def _number(text: str) -> float:
    x = float(text)
    if not math.isfinite(x):
        raise ValueError(text)
    return x


def _label(cell: Cell, sub: SubmissionSpec, text: str):
    task = cell.task
    names = file_class_names(task)
    if task.kind == "multilabel":
        sep = task.label_sep if sub.label_sep is None else sub.label_sep
        tokens = [t for t in (text.split(sep) if sep.strip() else text.split()) if t != ""] if text else []
        found = [names.index(t) if sub.label_format == "name" else int(t) for t in tokens]
        if any(not 0 <= k < task.size for k in found):
            raise ValueError(text)
        row = np.zeros(task.size, dtype=np.float32)
        row[found] = 1
        return row
    if task.kind == "regression" and not names:  # decided into classes, their number unknown
        return int(text)
    k = names.index(text) if sub.label_format == "name" else int(text)
    if not 0 <= k < len(names):
        raise ValueError(text)
    return k


def parse_cell(cell: Cell, sub: SubmissionSpec, text: str, where: str):
    """One cell's value: a probability or value (float), a class index, or a multi-label 0/1 row.

    Raises:
        UserError: ``where`` (file, line, row id, column), the text, and what was due.
    """
    try:
        if cell.kind == "label":
            return _label(cell, sub, text)
        x = _number(text)
        if cell.kind == "probability" and not 0 <= x <= 1:
            raise ValueError(text)
        return x
    except ValueError:
        raise UserError(f"{where}: {text!r} is not {_what(cell, sub)}") from None


def read_sample(spec: Spec, sub: SubmissionSpec) -> tuple[Path, list[list[str]]]:
    """The sample submission's path and its data rows (its header checked against the spec's).

    Raises:
        UserError: a missing or unreadable sample, or a header other than the spec's columns give.
    """
    path = spec.data_path / (sub.sample or "")
    fix = f"fix `sample` of submission '{sub.file}' (relative to data_dir) or download the data again"
    rows = _csv_rows(path, sub.sep, fix, "sample submission")
    expected = header(spec, sub)
    if sub.header:
        if not rows or rows[0] != expected:
            found = sub.sep.join(rows[0]) if rows else "an empty file"
            raise UserError(
                f"{path}:1: the sample's header is {found!r}, the spec's columns give "
                f"{sub.sep.join(expected)!r}; fix the columns of submission '{sub.file}'"
            )
        rows = rows[1:]
    return path, rows


def sample_order(spec: Spec, sub: SubmissionSpec, planned: list[str]) -> list[int] | None:
    """Where each row of the sample submission is among the ``planned`` row ids (None: keep the
    planned order, for a sample without ids).

    Raises:
        UserError: the sample's ids differ from the rows the test file gives (ids or count).
    """
    path, rows = read_sample(spec, sub)
    fix = "the sample and the test file (or id_template) disagree; check data.test and id_template"
    if not sub.id_column:
        if len(rows) != len(planned):
            raise UserError(f"{path}: {len(rows)} rows, the test file gives {len(planned)}; {fix}")
        return None
    sample_ids = [row[0] if row else "" for row in rows]
    check_ids(str(path), sample_ids, planned, "the rows the test file gives", fix)
    position = {value: k for k, value in enumerate(planned)}
    return [position[value] for value in sample_ids]
