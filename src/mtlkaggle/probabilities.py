"""Probability tables: one row per id, a column per class or label (``task:CLASS``) or regression value.

The same layout serves the out-of-fold file of each fold (``oof.csv``) and the test predictions
(``probabilities.csv``), so thresholds, reports and ensembles read both the same way. Columns are
named by the spec's class names (``disease:healthy``); unnamed classes by index (``digit:0``).
Files written before the names were used (``task:0..N`` for named classes) are still read.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mtlkaggle.spec import Spec, TaskSpec


def probability_columns(task: TaskSpec) -> list[str]:
    """The probability columns of a classification task: ``task:CLASS`` for each of its
    ``label_names`` (indices where the spec names none, or where two names repeat)."""
    names = list(task.label_names)
    if len(set(names)) != len(names):
        names = [str(k) for k in range(len(names))]
    return [f"{task.name}:{label}" for label in names]


def legacy_columns(task: TaskSpec) -> list[str]:
    """The index-named columns (``task:0..N``) files of earlier versions hold."""
    return [f"{task.name}:{k}" for k in range(len(task.label_names))]


def probability_frame(spec: Spec, ids: np.ndarray, probs: dict[str, np.ndarray]) -> pd.DataFrame:
    """Id plus one column per class/label probability (``task:CLASS``) or regression value (``task``)."""
    columns: dict[str, Any] = {spec.data.id_column: ids}
    for task in spec.tasks:
        p = probs[task.name]
        if task.kind == "regression":
            columns[task.name] = p
        else:
            p = np.asarray(p).reshape(len(ids), -1)
            for k, column in enumerate(probability_columns(task)):
                columns[column] = p[:, k]
    return pd.DataFrame(columns)


def with_named_columns(spec: Spec, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with any task's old index-named columns renamed ``task:CLASS`` (a file of an
    earlier version); tasks already named, or missing, are left as they are."""
    renames = {}
    for task in spec.tasks:
        if task.kind == "regression":
            continue
        named, old = probability_columns(task), legacy_columns(task)
        if named != old and not set(named) <= set(frame.columns) and set(old) <= set(frame.columns):
            renames.update(zip(old, named, strict=True))
    return frame.rename(columns=renames) if renames else frame


def task_probabilities(frame: pd.DataFrame, task: TaskSpec) -> np.ndarray:
    """A classification task's probabilities (n, classes) from a probability table, whichever
    naming (``task:CLASS`` or the old ``task:k``) it uses.

    Raises:
        KeyError: the frame holds neither naming in full.
    """
    for columns in (probability_columns(task), legacy_columns(task)):
        if set(columns) <= set(frame.columns):
            return frame[columns].to_numpy(dtype=np.float64)
    raise KeyError(probability_columns(task)[0])
