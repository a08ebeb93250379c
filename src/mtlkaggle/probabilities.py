"""Probability tables: one row per id, a column per class or label (``task:k``) or regression value.

The same layout serves the out-of-fold file of each fold (``oof.csv``) and the test predictions
(``probabilities.csv``), so thresholds, reports and ensembles read both the same way.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mtlkaggle.spec import Spec


def probability_frame(spec: Spec, ids: np.ndarray, probs: dict[str, np.ndarray]) -> pd.DataFrame:
    """Id plus one column per class/label probability (``task:k``) or regression value (``task``)."""
    columns: dict[str, Any] = {spec.data.id_column: ids}
    for task in spec.tasks:
        p = probs[task.name]
        if task.kind == "regression":
            columns[task.name] = p
        else:
            for k in range(task.size):
                columns[f"{task.name}:{k}"] = p[:, k]
    return pd.DataFrame(columns)
