"""Label files in long format (one row per image and class), pivoted to one row per image.

``[data.long]`` names the column of composite ids, the template they follow (``{image}`` and
``{class}``) and the column of values. Rows whose id does not follow the template, duplicated
(image, class) rows and missing pairs are each reported in one line, not one line per row.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from mtlkaggle.data.formats import RawSplit, take_rows
from mtlkaggle.errors import Problem
from mtlkaggle.spec import Spec

__all__ = ["long_classes", "pivot_long", "split_ids", "template_pattern", "unique_ids"]


def long_classes(spec: Spec) -> list[str]:
    """The classes of ``[data.long]``: as listed, or every column the tasks name (in task order)."""
    if spec.data.long is None:
        return []
    if spec.data.long.classes:
        return list(spec.data.long.classes)
    named = [c for task in spec.tasks for c in (task.columns or [task.column])]
    return list(dict.fromkeys(c for c in named if c))


def template_pattern(template: str, classes: list[str]) -> re.Pattern:
    """A regex with groups ``image`` and ``cls`` that matches a whole id made by ``template``."""
    alternatives = "|".join(re.escape(c) for c in sorted(classes, key=len, reverse=True))
    parts = re.split(r"(\{image\}|\{class\})", template)
    pattern = "".join(
        "(?P<image>.+?)" if p == "{image}" else f"(?P<cls>{alternatives})" if p == "{class}" else re.escape(p)
        for p in parts
    )
    return re.compile(rf"^{pattern}$", re.DOTALL)


def split_ids(ids: pd.Series, template: str, classes: list[str]) -> pd.DataFrame:
    """Columns ``image`` and ``cls`` of each id made by ``template`` (NaN where it does not follow).

    The same answer as matching :func:`template_pattern` row by row (the longest class that fits
    wins, the image is never empty), computed with vectorised string operations, each class on the
    ids no longer class has taken.
    """
    if not (hasattr(np, "strings") and hasattr(np.strings, "slice")) or not classes:  # numpy < 2.3
        return ids.str.extract(template_pattern(template, classes))[["image", "cls"]]
    values = ids.to_numpy(dtype=object)
    if pd.api.types.infer_dtype(values, skipna=False) in ("string", "empty"):
        is_text = np.ones(len(values), dtype=bool)
    else:  # numbers or missing cells never follow the template
        is_text = np.fromiter((isinstance(v, str) for v in values), bool, len(values))
        values = np.where(is_text, values, "")
    text = values.astype(np.dtypes.StringDType())
    lengths = np.strings.str_len(text)
    image = np.full(len(values), np.nan, dtype=object)
    cls = np.full(len(values), np.nan, dtype=object)
    first, *_, last = re.split(r"\{image\}|\{class\}", template)  # the same for every class
    free = is_text & np.strings.startswith(text, first) & np.strings.endswith(text, last)
    for c in sorted(classes, key=len, reverse=True):
        head, tail = (_literal(template, c, k) for k in (0, 1))
        rows = np.flatnonzero(free & (lengths > len(head) + len(tail)))  # shrinks class by class
        sub = text[rows]
        rows = rows[np.strings.startswith(sub, head) & np.strings.endswith(sub, tail)]
        if not len(rows):
            continue
        image[rows] = np.strings.slice(text[rows], len(head), -len(tail) if tail else None).astype(object)
        cls[rows] = c
        free[rows] = False
    return pd.DataFrame({"image": image, "cls": cls}, index=ids.index)


def _literal(template: str, cls: str, side: int) -> str:
    """The fixed text before (``side`` 0) or after (1) ``{image}`` once ``{class}`` is ``cls``."""
    return template.split("{image}")[side].replace("{class}", cls)


def _first(lines: np.ndarray, ids: pd.Series, mask: np.ndarray) -> str:
    row = int(np.flatnonzero(mask)[0])
    return f"line {int(lines[row])}: '{ids.iloc[row]}'"


def pivot_long(spec: Spec, raw: RawSplit, labelled: bool) -> RawSplit:
    """One row per image: the id (``data.id_column``, and ``data.image_column``) and one column per
    class with its value; other columns keep the image's first row. Rows keep the order in which
    images first appear.
    """
    long, data = spec.data.long, spec.data
    frame, file = raw.frame, str(raw.file)
    needed = [long.column] + ([long.value_column] if labelled else [])
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        message = f"missing column(s) {missing} named by [data.long]; found {list(frame.columns)}"
        return RawSplit(
            pd.DataFrame(),
            raw.file,
            np.zeros(0, int),
            problems=[*raw.problems, Problem(file, 1, None, message)],
        )
    classes = long_classes(spec)
    problems = list(raw.problems)
    parts = split_ids(frame[long.column], long.template, classes)
    unmatched = parts["image"].isna().to_numpy()
    if unmatched.any():
        problems.append(
            Problem(
                file,
                None,
                long.column,
                f"{int(unmatched.sum())} id(s) do not follow '{long.template}' with a class of {classes} "
                f"(first {_first(raw.lines, frame[long.column], unmatched)}); fix data.long",
            )
        )
    keep = ~unmatched
    values = (
        frame[long.value_column] if long.value_column in frame.columns else pd.Series("", index=frame.index)
    )
    rows = pd.DataFrame(
        {"image": parts["image"], "cls": parts["cls"], "value": values, "row": np.arange(len(frame))}
    )[keep]
    rows = _drop_duplicates(rows, frame[long.column], raw.lines, long.column, file, problems)
    images = pd.unique(rows["image"])
    wide = rows.pivot(index="image", columns="cls", values="value").reindex(index=images, columns=classes)
    absent = wide.isna().to_numpy()
    if absent.any():
        r, c = np.argwhere(absent)[0]
        example = f"'{images[r]}' has no '{classes[c]}' row"
        what = f"{int(absent.sum())} (image, class) pair(s) missing (e.g. {example})"
        fix = "; add them" if labelled else "; ignored for an unlabelled split"
        problems.append(Problem(file, None, long.column, what + fix, fatal=labelled))
    first_rows = rows.drop_duplicates("image")["row"].to_numpy()
    complete = ~absent.any(axis=1) if labelled else np.ones(len(images), dtype=bool)
    out = frame.drop(columns=[c for c in (long.column, long.value_column) if c in frame.columns])
    out = out.iloc[first_rows].reset_index(drop=True)
    out = out.drop(columns=[c for c in classes if c in out.columns])
    out[data.id_column] = images
    if data.image_column:  # the image is named by the {image} part too
        out[data.image_column] = images
    for c in classes:
        out[c] = wide[c].fillna("").to_numpy()
    return RawSplit(
        out[complete].reset_index(drop=True), raw.file, raw.lines[first_rows][complete], problems=problems
    )


def _drop_duplicates(
    rows: pd.DataFrame, ids: pd.Series, lines: np.ndarray, column: str, file: str, problems: list[Problem]
) -> pd.DataFrame:
    """The first row of each (image, class); one line about the others (fatal if values differ)."""
    twice = rows.duplicated(["image", "cls"], keep="first").to_numpy()
    if not twice.any():
        return rows
    where = _first(lines[rows["row"].to_numpy()], ids.iloc[rows["row"].to_numpy()], twice)
    what = f"{int(twice.sum())} duplicated (image, class) row(s) (first {where})"
    conflicts = rows.groupby(["image", "cls"], sort=False)["value"].nunique() > 1
    if conflicts.any():
        image, cls = conflicts[conflicts].index[0]
        problems.append(
            Problem(file, None, column, f"{what}, values differ (e.g. '{image}' {cls}); keep one")
        )
    else:
        problems.append(Problem(file, None, column, f"{what}, same values; the first is kept", fatal=False))
    return rows[~twice]


def unique_ids(spec: Spec, raw: RawSplit) -> RawSplit:
    """Keep each id's first row (a test list with one row per image and component)."""
    column = spec.data.id_column
    if column not in raw.frame.columns:
        return raw
    return take_rows(raw, ~raw.frame[column].duplicated().to_numpy())
