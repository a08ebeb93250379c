"""The ``[data]`` section: where the label files and images are, and how to read them."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mtlkaggle.spec.base import _Strict


class KeepSpec(_Strict):
    """Keep only rows whose numeric ``column`` lies in [min, max] (e.g. CORAL's ages 21-60)."""

    column: str
    min: float = float("-inf")
    max: float = float("inf")


class DataSpec(_Strict):
    """Where the label files and images are, and how to read them.

    Formats (each read from the competition's original files, see ``formats.py``):

    - ``csv``: ``train``/``val``/``test``/``test_labels`` are CSV files with a header.
    - ``lists``: ``train``/``val``/``test`` list one image path a line; ``labels`` maps a split to a
      file of whitespace-separated integers a line, one per task in spec order (AI6126).
    - ``utkface``: ``train`` is a folder of ``AGE_GENDER_RACE_DATETIME.jpg.chip.jpg`` files.
    - ``pixels_csv``: ``train`` is a CSV whose ``pixels_column`` holds each image as
      space-separated grayscale values (``pixels_shape``), read into memory.
    - ``celeba``: ``train`` is ``list_attr_celeba.txt``, ``partition`` is ``list_eval_partition.txt``
      (0 train, 1 val, 2 test).

    ``holdout`` carves a deterministic labelled test split (by a hash of the id) out of a format
    that has none; its labels then serve ``test_labels``.
    """

    format: Literal["csv", "lists", "utkface", "pixels_csv", "celeba"] = "csv"
    train: str
    val: str | None = None
    test: str | None = None
    test_labels: str | None = Field(
        None, description="Label file for the test split, for local scoring (never trained on)."
    )
    labels: dict[str, str] = Field(default_factory=dict, description="lists: split -> label file.")
    partition: str | None = None
    pixels_column: str = "pixels"
    pixels_shape: tuple[int, int] = (48, 48)
    holdout: float | None = Field(None, gt=0, lt=1)
    keep: list[KeepSpec] = Field(default_factory=list)
    id_column: str
    image_column: str
    image_dir: str = "."
    sep: str = ","
    kaggle: str | None = Field(None, description="Kaggle competition to download the data from.")
