"""Submission files exactly as the spec describes them: plan, render, validate, write, read back.

A WIDE file has an optional id column, then its ``columns`` (a ``{class}`` header expands to one
column per class); a LONG file (``id_template``) has one row per image and task (or class), with
the id built from the template, and one value column. Each cell holds one of three kinds:

- ``label``: a class index or name (``label_format``); multi-label: the chosen labels, ascending,
  joined by ``label_sep`` (a row may be empty); a regression task decided into classes: the index;
- ``probability``: one class's probability (a binary task: the positive one), clipped to
  [clip, 1 - clip] where ``clip`` (or the log-loss default) asks, in ``float_format``;
- ``value``: a regression value in the target's units, in ``float_format``.

Rows follow the test file (image-major, tasks and classes in spec order), or the competition's
sample submission when the spec names one (``sample``). Files end every line with ``\\n``.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from mtlkaggle.errors import UserError
from mtlkaggle.io import write_text_atomic
from mtlkaggle.spec import Spec, SubmissionSpec
from mtlkaggle.submission_cells import (
    check_ids,
    column_text,
    header,
    long_row_keys,
    parse_cell,
    plan,
    read_rows,
    read_sample,
    row_ids,
    sample_order,
)

__all__ = [
    "check_file",
    "check_ids",
    "file_rows",
    "read_submission",
    "render_submission",
    "validate_predictions",
    "write_submissions",
]


def validate_predictions(
    spec: Spec,
    ids: np.ndarray,
    predictions: dict[str, np.ndarray],
    test_ids: np.ndarray,
    probabilities: dict[str, np.ndarray] | None = None,
) -> None:
    """Check predictions (and probabilities) before anything is written.

    Raises:
        UserError: on an id mismatch with the test file (duplicated, missing, extra, or out of
            order), a row count mismatch, a label out of range, NaN, or a probability outside [0, 1].
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
        outside = pred[(pred < 0) | (pred >= (task.size or 0))] if task.kind == "multiclass" else []
        if len(outside):
            raise UserError(f"task '{task.name}': class {int(outside[0])} outside 0..{task.size - 1}")
        if task.kind == "multilabel" and not np.isin(pred, (0, 1)).all():
            raise UserError(f"task '{task.name}': multi-label predictions must be 0/1")
        if task.kind == "binary" and not (np.isfinite(pred).all() and ((pred >= 0) & (pred <= 1)).all()):
            raise UserError(f"task '{task.name}': binary predictions must be probabilities or 0/1 in [0, 1]")
        if task.kind == "regression" and not np.isfinite(pred).all():
            raise UserError(
                f"task '{task.name}': {int((~np.isfinite(pred)).sum())} predictions are NaN or inf"
            )
    for task in spec.tasks:
        if task.kind == "regression" or task.name not in (probabilities or {}):
            continue
        p = np.asarray(probabilities[task.name], dtype=np.float64)
        if not (np.isfinite(p) & (p >= 0) & (p <= 1)).all():
            raise UserError(f"task '{task.name}': probabilities must be finite and within [0, 1]; {fix}")


def file_rows(spec: Spec, sub: SubmissionSpec, images: int) -> int:
    """The data rows a file holds for ``images`` test images (a long file: one per image and cell)."""
    return images * len(plan(spec, sub)) if sub.long else images


def render_submission(
    spec: Spec,
    sub: SubmissionSpec,
    ids: np.ndarray,
    predictions: dict[str, np.ndarray],
    probabilities: dict[str, np.ndarray] | None = None,
    order: list[int] | None = None,
) -> str:
    """The text of one submission file (rows in ``order`` of the rows as planned, when given)."""
    cells = plan(spec, sub)
    texts = [column_text(cell, sub, predictions, probabilities) for cell in cells]
    if sub.long:
        ids_out = row_ids(sub, cells, ids)
        rows = [
            [ids_out[i * len(cells) + c], texts[c][i]] for i in range(len(ids)) for c in range(len(cells))
        ]
    else:
        prefix = [[str(i)] for i in ids] if sub.id_column else [[] for _ in ids]
        rows = [prefix[i] + [t[i] for t in texts] for i in range(len(ids))]
    out = io.StringIO()
    writer = csv.writer(out, delimiter=sub.sep, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    if sub.header:
        writer.writerow(header(spec, sub))
    writer.writerows(rows if order is None else [rows[k] for k in order])
    return out.getvalue()


def write_submissions(
    spec: Spec,
    ids: np.ndarray,
    predictions: dict[str, np.ndarray],
    test_ids: np.ndarray,
    out_dir: Path,
    probabilities: dict[str, np.ndarray] | None = None,
) -> list[Path]:
    """Validate, then write every submission file the spec names (atomically), each in the row
    order of its sample submission when the spec names one.

    Args:
        predictions: Decided predictions per task (class indices, 0/1 labels, values).
        probabilities: The probabilities per task, for the probability cells.
    """
    if not spec.submissions:
        raise UserError(f"competition '{spec.name}' names no submission files ([[submissions]])")
    validate_predictions(spec, ids, predictions, test_ids, probabilities)
    rendered = {}
    for sub in spec.submissions:
        order = sample_order(spec, sub, row_ids(sub, plan(spec, sub), ids)) if sub.sample else None
        rendered[out_dir / sub.file] = render_submission(spec, sub, ids, predictions, probabilities, order)
    for path, text in rendered.items():
        write_text_atomic(path, text)
    return list(rendered)


def read_submission(
    spec: Spec, sub: SubmissionSpec, path: Path
) -> tuple[list[str] | None, dict[str, np.ndarray]]:
    """Parse a submission file back into image ids (None without an id column) and predictions
    per task, one row per image: decided labels and values; a task's probability cells as an
    (n, classes) array (NaN for classes the file does not hold). A long file's rows are split
    back into image, task and class by its ``id_template``.

    Raises:
        UserError: naming the file, line and column of the first malformed row or cell.
    """
    cells = plan(spec, sub)
    rows, start = read_rows(spec, sub, path)
    if sub.long:
        ids, found = _read_long(sub, cells, rows, start, path)
    else:
        offset = 1 if sub.id_column else 0
        ids = [row[0] for row in rows] if sub.id_column else None
        found = [
            (
                cell,
                [
                    _parse_at(sub, cell, row, row[offset + c], line, path)
                    for line, row in enumerate(rows, start)
                ],
            )
            for c, cell in enumerate(cells)
        ]
    n = len(ids) if ids is not None else len(rows)
    probs: dict[str, np.ndarray] = {}
    decided: dict[str, np.ndarray] = {}
    for cell, values in found:
        if cell.kind == "probability":
            probs.setdefault(cell.task.name, np.full((n, cell.task.size), np.nan))[:, cell.index] = values
        else:
            decided[cell.task.name] = np.array(values)
    return ids, {**probs, **decided}  # a task written both ways: its decided labels


def _parse_at(sub: SubmissionSpec, cell, row: list[str], text: str, line: int, path: Path):
    where = f"{path}:{line}: " + (f"row '{row[0]}', " if sub.id_column else "")
    return parse_cell(cell, sub, text, where + f"column '{cell.column}'")


def _read_long(sub: SubmissionSpec, cells: list, rows: list[list[str]], start: int, path: Path):
    """A long file's image ids (in first-seen order) and each cell's values, one per image."""
    pattern, by_key = long_row_keys(sub, cells)
    column = next(iter(sub.columns))
    images: dict[str, int] = {}
    seen: dict[tuple, object] = {}
    for line, row in enumerate(rows, start=start):
        match = pattern.fullmatch(row[0])
        if match is None:
            raise UserError(f"{path}:{line}: row '{row[0]}' is not an id of the form {sub.id_template!r}")
        key = (match.groupdict().get("task") or cells[0].task.name, match.groupdict().get("cls") or "")
        image = images.setdefault(match.group("image"), len(images))
        if (image, key) in seen:
            raise UserError(f"{path}:{line}: row '{row[0]}' appears more than once")
        cell = by_key.get(key)
        if cell is None:  # the template's task and class groups each matched, but not together
            raise UserError(f"{path}:{line}: row '{row[0]}': task '{key[0]}' has no class '{key[1]}'")
        seen[image, key] = parse_cell(cell, sub, row[1], f"{path}:{line}: row '{row[0]}', column '{column}'")
    found = []
    for key, cell in by_key.items():
        missing = [image for image, k in images.items() if (k, key) not in seen]
        if missing:
            raise UserError(f"{path}: no row for image '{missing[0]}' and {'/'.join(filter(None, key))}")
        found.append((cell, [seen[k, key] for k in range(len(images))]))
    return list(images), found


def check_file(spec: Spec, sub: SubmissionSpec, path: Path, test_ids) -> int:
    """Check one submission file as Kaggle will read it: header, ids (each once, those of the
    sample submission, or of the test file), row count, and every cell's kind.

    Returns:
        The number of rows.

    Raises:
        UserError: one line naming the first problem, or the first bad cell (line, row id, column).
    """
    fix = f"predict again (`mtlkaggle predict {spec.name}`) or correct the file"
    rows, start = read_rows(spec, sub, path)
    cells = plan(spec, sub)
    planned = row_ids(sub, cells, test_ids)
    if sub.sample:
        sample_order(spec, sub, planned)  # a sample that lost ids is the sample's fault, not the file's
        sample_path, sample_rows = read_sample(spec, sub)
        expected = [row[0] if row else "" for row in sample_rows] if sub.id_column else None
        count, against = len(sample_rows), f"the sample submission {sample_path.name}"
    else:
        expected, count, against = planned, len(planned), "the test file"
    if sub.id_column:
        check_ids(str(path), [row[0] for row in rows], expected, against, fix)
    if len(rows) != count:
        raise UserError(f"{path}: {len(rows)} rows, {against} has {count}; {fix}")
    by_id = dict(zip(planned, cells * len(test_ids), strict=True)) if sub.long else {}
    offset = 1 if sub.id_column else 0
    for line, row in enumerate(rows, start=start):
        where = f"{path}:{line}: row '{row[0]}'," if sub.id_column else f"{path}:{line}:"
        if sub.long and row[0] not in by_id:
            raise UserError(f"{where} not an id that id_template gives for the test file; {fix}")
        for cell, text in zip([by_id[row[0]]] if sub.long else cells, row[offset:], strict=True):
            column = next(iter(sub.columns)) if sub.long else cell.column
            parse_cell(cell, sub, text, f"{where} column '{column}'")
    return len(rows)
