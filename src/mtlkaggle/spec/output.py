"""The ``[[submissions]]`` sections: the files Kaggle expects."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mtlkaggle.spec.base import _Strict


class SubmissionSpec(_Strict):
    """One file Kaggle expects: its name, columns, and the competition it is uploaded to."""

    file: str
    columns: dict[str, str] = Field(
        ..., description="Output column name -> task name (in file order, after the id)."
    )
    id_column: str | None = None
    header: bool = True
    sep: str = ","
    kaggle: str | None = Field(None, description="Kaggle competition slug.")
    label_format: Literal["index", "name"] = "index"
    float_format: str = ".4f"
