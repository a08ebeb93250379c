"""Label files: each split parsed into a :class:`LabelTable` (ids, image paths, targets per task).

Parsing collects every :class:`~mtlkaggle.errors.Problem` instead of stopping at the first one, so
``mtlkaggle check`` can list them all; :func:`read_split` raises on the first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mtlkaggle.data.formats import RawSplit, has_split, read_csv_file, read_raw
from mtlkaggle.data.locate import build_source, image_columns, patterns
from mtlkaggle.data.long import pivot_long, unique_ids
from mtlkaggle.data.sources import FileSource, ImageSource
from mtlkaggle.errors import Problem, UserError
from mtlkaggle.spec import Spec, TaskSpec

__all__ = [
    "DECODERS",
    "LabelTable",
    "decode_task",
    "has_split",
    "parse_label_file",
    "parse_split",
    "read_rows",
    "read_split",
    "split_tokens",
    "task_matrix",
]


@dataclass
class LabelTable:
    """The rows of one split: ids, image locations, the image source, and decoded targets per task.

    Targets: multiclass -> int64 (n,), multilabel -> float32 (n, L) of 0/1,
    regression -> float32 (n,). ``targets`` is empty for an unlabelled test file.
    ``paths`` names each row's image file (the container for pixels and HDF5); ``source`` reads
    the images (default: the files at ``paths``).
    """

    split: str
    file: Path
    ids: np.ndarray
    paths: list[Path]
    targets: dict[str, np.ndarray] = field(default_factory=dict)
    source: ImageSource | None = None
    lines: np.ndarray | None = None  # each row's line in ``file`` (-1 where rows are not lines)

    def __post_init__(self) -> None:
        if self.source is None:
            self.source = FileSource(list(self.paths))

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def has_targets(self) -> bool:
        """Whether this split carries labels."""
        return bool(self.targets)

    def subset(self, index: np.ndarray) -> LabelTable:
        """Rows at ``index`` (integer positions)."""
        return LabelTable(
            self.split,
            self.file,
            self.ids[index],
            [self.paths[i] for i in index],
            {k: v[index] for k, v in self.targets.items()},
            self.source.subset(index),
            self.lines[index] if self.lines is not None else None,
        )

    def line(self, row: int) -> int | None:
        """The line of ``file`` that row ``row`` came from (None where rows are not lines)."""
        if self.lines is None or self.lines[row] < 1:
            return None
        return int(self.lines[row])


def read_split(spec: Spec, split: str, labelled: bool | None = None) -> LabelTable:
    """Read and validate one split's label file.

    Args:
        spec: The competition.
        split: ``train``, ``val``, ``test`` or ``test_labels``.
        labelled: Whether targets must be present; default: all splits but ``test``.

    Raises:
        UserError: on the first problem found (``mtlkaggle check`` lists them all).
    """
    table, problems = parse_split(spec, split, labelled)
    fatal = [p for p in problems if p.fatal]
    if fatal:
        more = f" (and {len(fatal) - 1} more; run `mtlkaggle check`)" if len(fatal) > 1 else ""
        raise UserError(f"{fatal[0]}{more}")
    return table


def parse_split(spec: Spec, split: str, labelled: bool | None = None) -> tuple[LabelTable, list[Problem]]:
    """Parse one split in the spec's format, returning the table and every problem found."""
    labelled = split != "test" if labelled is None else labelled
    return _parse_raw(spec, read_rows(spec, split, labelled), labelled, split)


def read_rows(spec: Spec, split: str, labelled: bool) -> RawSplit:
    """One split's rows before decoding: the format's reader, then the long-format pivot
    (``[data.long]``) and, for the test split, one row per id (``data.repeated_test_ids``)."""
    raw = read_raw(spec, split, labelled)
    if spec.data.long is not None:
        raw = pivot_long(spec, raw, labelled)
    if split == "test" and spec.data.repeated_test_ids == "first":
        raw = unique_ids(spec, raw)
    return raw


def parse_label_file(
    spec: Spec, path: Path, labelled: bool = True, split: str = "labels"
) -> tuple[LabelTable, list[Problem]]:
    """Parse a CSV laid out like the spec's label columns (e.g. held-out test labels)."""
    if not path.is_file():
        raise UserError(f"{path}: label file not found; pass --labels with a CSV of the true labels")
    raw = read_csv_file(spec, path)
    if spec.data.long is not None:
        raw = pivot_long(spec, raw, labelled)
    return _parse_raw(spec, raw, labelled, split)


def needed_columns(spec: Spec, split: str, labelled: bool) -> dict[str, str]:
    """The columns ``split``'s label file must hold, each with the spec field that names it."""
    needed = {spec.data.id_column: "data.id_column"}
    found = patterns(spec, split)
    for column in sorted(image_columns(spec, split)):
        where = ", ".join(repr(p) for p in found) if found else ""
        needed.setdefault(column, f"the image pattern {where}" if found else "data.image_column")
    if labelled:
        for task in spec.tasks:
            for column in task.columns or [task.column]:
                needed.setdefault(column, f"task {task.name!r}")
    if split == "train" and spec.data.group_column:
        needed.setdefault(spec.data.group_column, "data.group_column")  # `folds` groups by it
    return needed


def _parse_raw(spec: Spec, raw: RawSplit, labelled: bool, split: str) -> tuple[LabelTable, list[Problem]]:
    frame, path = raw.frame, raw.file
    problems: list[Problem] = list(raw.problems)
    name = str(path)
    needed = needed_columns(spec, split, labelled)
    missing = sorted(c for c in needed if c not in frame.columns)
    if missing:
        line = 1 if spec.data.format in ("csv", "pixels_csv") else None
        named = "; ".join(f"{c!r} named by {needed[c]}" for c in missing)
        found = list(frame.columns)
        message = f"missing column(s) {missing} ({named}); found {found}; fix the spec or the file"
        problems.append(Problem(name, line, None, message))
        return LabelTable(split, path, np.array([], dtype=object), []), problems
    ids = frame[spec.data.id_column].to_numpy(dtype=object)
    lines = raw.lines
    _check_ids(ids, spec.data.id_column, name, problems, lines)
    paths, source = build_source(spec, split, frame, raw.pixels, path, np.asarray(lines), problems)
    targets = {}
    if labelled:
        for task in spec.tasks:
            targets[task.name] = decode_task(task, frame, name, problems, lines)
    return LabelTable(split, path, ids, paths, targets, source, np.asarray(lines)), problems


def _check_ids(ids: np.ndarray, column: str, file: str, problems: list[Problem], lines: np.ndarray) -> None:
    """One problem per empty id and per repeat of an id (naming its first line), in row order."""
    series = pd.Series(ids, dtype=object)
    empty = (series == "").to_numpy()
    seen = series[~empty]
    repeat = np.zeros(len(ids), dtype=bool)
    repeat[np.flatnonzero(~empty)[seen.duplicated(keep="first").to_numpy()]] = True
    if not (empty.any() or repeat.any()):
        return
    first = ~empty & ~repeat
    first_line = dict(zip(ids[first].tolist(), np.asarray(lines)[first].tolist(), strict=True))
    for row in np.flatnonzero(empty | repeat):
        line = int(lines[row])
        if empty[row]:
            problems.append(Problem(file, line, column, "empty id"))
        else:
            value = ids[row]
            where = f"first on line {first_line[value]}"
            problems.append(Problem(file, line, column, f"duplicate id '{value}' ({where})"))


def decode_task(
    task: TaskSpec, frame: pd.DataFrame, file: str, problems: list[Problem], lines: np.ndarray
) -> np.ndarray:
    """Decode one task's targets from the label columns of ``frame`` (strings), by its encoding.

    Each bad value is appended to ``problems`` with its line; its row keeps a zero target.
    """
    return DECODERS[task.resolved_encoding](task, frame, file, problems, lines)


def split_tokens(value: str, sep: str) -> list[str]:
    """The labels in one cell: split by ``sep`` (a blank ``sep`` means any whitespace), no empties."""
    tokens = value.split(sep) if sep.strip() else value.split()
    return [t.strip() for t in tokens if t.strip()]


_TRUE, _FALSE = {"1", "1.0", "true", "True", "TRUE"}, {"0", "0.0", "false", "False", "FALSE"}


def _decode_binary(
    task: TaskSpec, frame: pd.DataFrame, file: str, problems: list[Problem], lines
) -> np.ndarray:
    """A binary task's column as 0/1 float32 (n, 1): 0/1 (or true/false) values, or class names
    with ``positive`` naming the positive one (values outside ``classes``, when given, are refused)."""
    out = np.zeros((len(frame), 1), dtype=np.float32)
    for row, value in enumerate(frame[task.column]):
        text = str(value).strip()
        if task.positive is not None:
            if task.classes and text not in task.classes:
                why = f"unknown class '{value}'; expected one of {task.classes}"
                problems.append(Problem(file, int(lines[row]), task.column, why))
            out[row, 0] = float(text == task.positive)
        elif text in _TRUE or text in _FALSE:
            out[row, 0] = float(text in _TRUE)
        else:
            why = f"'{value}' is not 0 or 1; name the positive class with positive = \"...\""
            problems.append(Problem(file, int(lines[row]), task.column, why))
    return out


def _decode_index(
    task: TaskSpec, frame: pd.DataFrame, file: str, problems: list[Problem], lines
) -> np.ndarray:
    n = task.size
    out = np.zeros(len(frame), dtype=np.int64)
    for row, value in enumerate(frame[task.column]):
        try:
            k = int(value)
        except ValueError:
            problems.append(
                Problem(file, int(lines[row]), task.column, f"'{value}' is not a class index (0..{n - 1})")
            )
            continue
        if not 0 <= k < n:
            problems.append(Problem(file, int(lines[row]), task.column, f"class {k} out of range 0..{n - 1}"))
            continue
        out[row] = k
    return out


def _expected(names: list[str]) -> str:
    shown = ", ".join(f"'{n}'" for n in names[:10])
    return f"expected one of [{shown}{', ...' if len(names) > 10 else ''}]"


def _decode_name(
    task: TaskSpec, frame: pd.DataFrame, file: str, problems: list[Problem], lines
) -> np.ndarray:
    lookup = {c: i for i, c in enumerate(task.classes or [])}
    out = np.zeros(len(frame), dtype=np.int64)
    for row, value in enumerate(frame[task.column]):
        if value not in lookup:
            problems.append(
                Problem(
                    file, int(lines[row]), task.column, f"unknown class '{value}'; {_expected(list(lookup))}"
                )
            )
        else:
            out[row] = lookup[value]
    return out


def _decode_sign(
    task: TaskSpec, frame: pd.DataFrame, file: str, problems: list[Problem], lines
) -> np.ndarray:
    """A binary task stored as 1 / -1 (or 1 / 0): 1 -> class 1, otherwise class 0."""
    out = np.zeros(len(frame), dtype=np.int64)
    for row, value in enumerate(frame[task.column]):
        if value == "1":
            out[row] = 1
        elif value not in ("-1", "0"):
            problems.append(Problem(file, int(lines[row]), task.column, f"'{value}' is not 1 or -1"))
    return out


def _decode_indices(
    task: TaskSpec, frame: pd.DataFrame, file: str, problems: list[Problem], lines
) -> np.ndarray:
    """Label indices joined by ``label_sep`` (e.g. "8|5|0"); an empty cell is no label."""
    n = task.size
    out = np.zeros((len(frame), n), dtype=np.float32)
    for row, value in enumerate(frame[task.column]):
        for token in split_tokens(value, task.label_sep):
            try:
                k = int(token)
            except ValueError:
                problems.append(
                    Problem(
                        file, int(lines[row]), task.column, f"'{token}' is not a label index (0..{n - 1})"
                    )
                )
                continue
            if not 0 <= k < n:
                problems.append(
                    Problem(file, int(lines[row]), task.column, f"label {k} out of range 0..{n - 1}")
                )
                continue
            out[row, k] = 1.0
    return out


def _decode_names(
    task: TaskSpec, frame: pd.DataFrame, file: str, problems: list[Problem], lines
) -> np.ndarray:
    """Label names joined by ``label_sep`` (e.g. "scab frog_eye_leaf_spot"); an empty cell is no label."""
    lookup = {c: i for i, c in enumerate(task.classes or [])}
    out = np.zeros((len(frame), len(lookup)), dtype=np.float32)
    for row, value in enumerate(frame[task.column]):
        for token in split_tokens(value, task.label_sep):
            if token in lookup:
                out[row, lookup[token]] = 1.0
            else:
                message = f"unknown label '{token}'; {_expected(list(lookup))}"
                problems.append(Problem(file, int(lines[row]), task.column, message))
    return out


_ONE, _ZERO = {"1", "1.0", "true", "True"}, {"0", "0.0", "-1", "false", "False"}


def _decode_columns(
    task: TaskSpec, frame: pd.DataFrame, file: str, problems: list[Problem], lines
) -> np.ndarray:
    """One 0/1 column per label (multilabel) or per class (multiclass one-hot: one 1 a row)."""
    out = np.zeros((len(frame), len(task.columns)), dtype=np.float32)
    bad = np.zeros(len(frame), dtype=bool)
    for j, column in enumerate(task.columns):
        for row, value in enumerate(frame[column]):
            if value in _ONE:
                out[row, j] = 1.0
            elif value not in _ZERO:
                bad[row] = True
                problems.append(Problem(file, int(lines[row]), column, f"'{value}' is not 0/1"))
    if task.kind != "multiclass":
        return out
    ones = out.sum(axis=1)
    for row in np.flatnonzero((ones != 1) & ~bad):
        message = f"expected exactly one 1 across the class columns, found {int(ones[row])}"
        problems.append(Problem(file, int(lines[row]), None, message))
    return out.argmax(axis=1).astype(np.int64)


def _decode_value(
    task: TaskSpec, frame: pd.DataFrame, file: str, problems: list[Problem], lines
) -> np.ndarray:
    out = np.zeros(len(frame), dtype=np.float32)
    for row, value in enumerate(frame[task.column]):
        try:
            x = float(value)
        except ValueError:
            x = math.nan
        if not math.isfinite(x):
            problems.append(Problem(file, int(lines[row]), task.column, f"'{value}' is not a finite number"))
            continue
        out[row] = x
    return out


# encoding name -> decoder (task, frame of strings, file, problems, lines) -> targets
DECODERS = {
    "index": _decode_index,
    "name": _decode_name,
    "sign": _decode_sign,
    "indices": _decode_indices,
    "names": _decode_names,
    "columns": _decode_columns,
    "value": _decode_value,
    "binary": _decode_binary,
}


def task_matrix(spec: Spec, table: LabelTable) -> np.ndarray:
    """All targets as one 0/1 matrix: one-hot classes, multi-hot labels (regression skipped).

    Every kind but multiclass and regression holds 0/1 targets already (n, L), or (n,) for one.
    """
    blocks = []
    for task in spec.tasks:
        y = table.targets[task.name]
        if task.kind == "multiclass":
            blocks.append(np.eye(task.size, dtype=np.float32)[y])
        elif task.kind != "regression":
            blocks.append(np.asarray(y, dtype=np.float32).reshape(len(y), -1))
    return np.concatenate(blocks, axis=1) if blocks else np.zeros((len(table), 0), np.float32)
