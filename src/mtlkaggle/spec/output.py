"""The ``[[submissions]]`` sections: the files Kaggle expects."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mtlkaggle.spec.base import _Strict


class SubmissionSpec(_Strict):
    """One file Kaggle expects: its name, columns, and the competition it is uploaded to."""

    file: str = Field(..., description='File name Kaggle expects, e.g. "submission.csv".')
    columns: dict[str, str] = Field(
        ..., description="Output column name -> task name (in file order, after the id)."
    )
    id_column: str | None = Field(
        None, description='Header of the id column, e.g. "image_id"; unset: no id column (test order).'
    )
    header: bool = Field(True, description="Write a header line (default true).")
    sep: str = Field(",", description='Field separator (default ",").')
    kaggle: str | None = Field(None, description="Kaggle competition slug.")
    label_format: Literal["index", "name"] = Field(
        "index", description="Classes and labels as index (default) or name."
    )
    float_format: str = Field(
        ".4f", description='Format of regression values and probabilities (default ".4f").'
    )
