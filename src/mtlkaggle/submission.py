"""Submission files exactly as the spec describes them: render, validate, write, read back.

A submission file has an optional id column, then one column per task (``columns`` maps the
output column name to the task). Multiclass values are class indices (or names), multi-label
values are ascending label indices joined by the task's ``label_sep`` (a row may be empty), and
regression values use ``float_format``. Files end every line with ``\\n``.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np

from mtlkaggle.errors import UserError
from mtlkaggle.io import write_text_atomic
from mtlkaggle.spec import Spec, SubmissionSpec, TaskSpec


def header(sub: SubmissionSpec) -> list[str]:
    """The column names of a submission file, in order."""
    return ([sub.id_column] if sub.id_column else []) + list(sub.columns)


def _format(task: TaskSpec, sub: SubmissionSpec, value) -> str:
    if task.kind == "multiclass":
        return task.label_names[int(value)] if sub.label_format == "name" else str(int(value))
    if task.kind == "multilabel":
        return task.label_sep.join(str(k) for k in np.flatnonzero(value))
    return format(float(value), sub.float_format)


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


def validate_predictions(
    spec: Spec, ids: np.ndarray, predictions: dict[str, np.ndarray], test_ids: np.ndarray
) -> None:
    """Check predictions before anything is written.

    Raises:
        UserError: on an id mismatch with the test file (duplicated, missing, extra, or out of
            order), a row count mismatch, a label out of range, or NaN.
    """
    fix = "predict again from the current test file"
    check_ids("predictions", ids, test_ids, "the test file", fix)
    if len(ids) != len(test_ids) or not np.array_equal(ids, test_ids):
        raise UserError(f"predictions hold the test ids in another order; {fix}")
    for task in spec.tasks:
        if task.name not in predictions:
            continue
        pred = np.asarray(predictions[task.name])
        if len(pred) != len(ids):
            raise UserError(f"task '{task.name}': {len(pred)} predictions for {len(ids)} test rows")
        if task.kind == "multiclass" and (pred.min() < 0 or pred.max() >= task.size):
            raise UserError(f"task '{task.name}': class {int(pred.max())} outside 0..{task.size - 1}")
        if task.kind == "multilabel" and not np.isin(pred, (0, 1)).all():
            raise UserError(f"task '{task.name}': multi-label predictions must be 0/1")
        if task.kind == "binary" and not (np.isfinite(pred).all() and ((pred >= 0) & (pred <= 1)).all()):
            raise UserError(f"task '{task.name}': binary predictions must be probabilities or 0/1 in [0, 1]")
        if task.kind == "regression" and not np.isfinite(pred).all():
            raise UserError(
                f"task '{task.name}': {int((~np.isfinite(pred)).sum())} predictions are NaN or inf"
            )


def render_submission(
    spec: Spec, sub: SubmissionSpec, ids: np.ndarray, predictions: dict[str, np.ndarray]
) -> str:
    """The text of one submission file."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=sub.sep, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    if sub.header:
        writer.writerow(header(sub))
    tasks = [spec.task(name) for name in sub.columns.values()]
    for i, row_id in enumerate(ids):
        values = [_format(task, sub, predictions[task.name][i]) for task in tasks]
        writer.writerow(([row_id] if sub.id_column else []) + values)
    return out.getvalue()


def write_submissions(
    spec: Spec, ids: np.ndarray, predictions: dict[str, np.ndarray], test_ids: np.ndarray, out_dir: Path
) -> list[Path]:
    """Validate, then write every submission file the spec names (atomically)."""
    if not spec.submissions:
        raise UserError(f"competition '{spec.name}' names no submission files ([[submissions]])")
    validate_predictions(spec, ids, predictions, test_ids)
    rendered = {
        out_dir / sub.file: render_submission(spec, sub, ids, predictions) for sub in spec.submissions
    }
    for path, text in rendered.items():
        write_text_atomic(path, text)
    return list(rendered)


def read_submission(
    spec: Spec, sub: SubmissionSpec, path: Path
) -> tuple[list[str] | None, dict[str, np.ndarray]]:
    """Parse a submission file back into ids (None without an id column) and predictions.

    Raises:
        UserError: naming the file and line of the first malformed row.
    """
    from mtlkaggle.readback import read_text

    text = read_text(path, f"write it with `mtlkaggle predict {spec.name}`", "submission file")
    try:
        rows = [row for row in csv.reader(io.StringIO(text, newline=""), delimiter=sub.sep)]
    except csv.Error as e:
        raise UserError(f"{path}: not a readable CSV ({e}); predict again") from None
    expected = header(sub)
    start = 0
    if sub.header:
        if not rows or rows[0] != expected:
            found = rows[0] if rows else "an empty file"
            raise UserError(f"{path}:1: header should be {sub.sep.join(expected)!r}, found {found}")
        start = 1
    tasks = [spec.task(name) for name in sub.columns.values()]
    ids: list[str] = []
    values: dict[str, list] = {t.name: [] for t in tasks}
    offset = 1 if sub.id_column else 0
    for line, row in enumerate(rows[start:], start=start + 1):
        if len(row) != len(expected):
            raise UserError(f"{path}:{line}: expected {len(expected)} fields, found {len(row)}")
        if sub.id_column:
            ids.append(row[0])
        for task, cell in zip(tasks, row[offset:], strict=True):
            values[task.name].append(_parse(task, sub, cell, f"{path}:{line}"))
    return (ids if sub.id_column else None), {k: np.array(v) for k, v in values.items()}


def _parse(task: TaskSpec, sub: SubmissionSpec, cell: str, where: str):
    try:
        if task.kind == "multiclass":
            k = task.label_names.index(cell) if sub.label_format == "name" else int(cell)
            if not 0 <= k < task.size:
                raise ValueError
            return k
        if task.kind == "multilabel":
            row = np.zeros(task.size, dtype=np.float32)
            indices = [int(t) for t in cell.split(task.label_sep if task.label_sep.strip() else None)]
            if any(not 0 <= k < task.size for k in indices):
                raise ValueError
            row[indices] = 1
            return row
        x = float(cell)
        if not math.isfinite(x):
            raise ValueError
        return x
    except ValueError:
        raise UserError(f"{where}: {cell!r} is not a valid value for task '{task.name}'") from None
