"""Probability tables: columns named by class, and files of earlier versions still read."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mtlkaggle.probabilities import probability_frame, task_probabilities, with_named_columns
from mtlkaggle.spec import Spec

IDS = np.array(["a", "b"], dtype=object)
DISEASE = {"name": "disease", "kind": "multiclass", "column": "d", "classes": ["healthy", "rust", "scab"]}
AGE = {"name": "age", "kind": "regression", "column": "age"}
DIGIT = {"name": "digit", "kind": "multiclass", "column": "x", "num_classes": 2}
P = np.array([[0.1, 0.2, 0.7], [0.6, 0.3, 0.1]])


def _spec() -> Spec:
    data = {"train": "train.csv", "id_column": "id", "image_column": "id"}
    return Spec.model_validate({"name": "t", "data_dir": ".", "data": data, "tasks": [DISEASE, AGE, DIGIT]})


def test_probability_table_names_columns_by_class():
    frame = probability_frame(
        _spec(), IDS, {"disease": P, "age": np.array([3.0, 4.0]), "digit": np.array([[0.5, 0.5]] * 2)}
    )
    assert list(frame.columns) == [
        "id",
        "disease:healthy",
        "disease:rust",
        "disease:scab",
        "age",
        "digit:0",
        "digit:1",
    ]


def test_a_table_of_an_earlier_version_with_index_names_is_still_read():
    spec = _spec()
    old = pd.DataFrame(
        {"id": IDS, "disease:0": P[:, 0], "disease:1": P[:, 1], "disease:2": P[:, 2], "age": [3.0, 4.0]}
    )
    np.testing.assert_array_equal(task_probabilities(old, spec.task("disease")), P)
    renamed = with_named_columns(spec, old)
    assert list(renamed.columns) == ["id", "disease:healthy", "disease:rust", "disease:scab", "age"]
    np.testing.assert_array_equal(task_probabilities(renamed, spec.task("disease")), P)
    with pytest.raises(KeyError):
        task_probabilities(old.drop(columns="disease:2"), spec.task("disease"))
