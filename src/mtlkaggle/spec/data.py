"""The ``[data]`` section: where the label files and images are, and how to read them."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from mtlkaggle.spec.base import _Strict


class KeepSpec(_Strict):
    """Keep only rows whose numeric ``column`` lies in [min, max] (e.g. CORAL's ages 21-60)."""

    column: str = Field(..., description='Numeric column to filter on, e.g. "age".')
    min: float = Field(float("-inf"), description="Lowest value kept (default: no bound).")
    max: float = Field(float("inf"), description="Highest value kept (default: no bound).")


class LongSpec(_Strict):
    """Labels in long format (one row per image and class), pivoted to one row per image.

    E.g. ``ID,Label`` rows with ``ID = ID_{image}_{class}``: six rows per image become one row with
    the image id and one column per class.
    """

    column: str = Field(..., description='Column holding the composite id, e.g. "ID".')
    template: str = Field(
        ..., description='How that id is made of {image} and {class}, e.g. "ID_{image}_{class}".'
    )
    value_column: str = Field(..., description='Column holding the (image, class) label, e.g. "Label".')
    classes: list[str] = Field(
        default_factory=list, description="The classes in the ids; default: every column the tasks name."
    )

    @model_validator(mode="after")
    def _check(self) -> LongSpec:
        for name in ("{image}", "{class}"):
            if self.template.count(name) != 1:
                raise ValueError(f"template '{self.template}' must hold {name} exactly once")
        return self


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

    format: Literal["csv", "lists", "utkface", "pixels_csv", "celeba"] = Field(
        "csv", description="Layout of the label files: csv, lists, utkface, pixels_csv, celeba (default csv)."
    )
    train: str = Field(..., description="Training label file (or folder), relative to data_dir.")
    val: str | None = Field(None, description="Validation label file, for `--fold val` (default none).")
    test: str | None = Field(None, description="Test file listing the images to predict (default none).")
    test_labels: str | None = Field(
        None, description="Label file for the test split, for local scoring (never trained on)."
    )
    labels: dict[str, str] = Field(default_factory=dict, description="lists: split -> label file.")
    partition: str | None = Field(None, description="celeba: the list_eval_partition.txt file.")
    pixels_column: str = Field("pixels", description="pixels_csv: column of space-separated pixel values.")
    pixels_shape: tuple[int, int] = Field((48, 48), description="pixels_csv: image height and width.")
    holdout: float | None = Field(
        None, gt=0, lt=1, description="Share of rows held out as a labelled test split, e.g. 0.1."
    )
    keep: list[KeepSpec] = Field(default_factory=list, description="Row filters, see [[data.keep]].")
    id_column: str = Field(..., description='Column of unique row ids, e.g. "image_id".')
    image_column: str = Field(..., description='Column naming each row\'s image, e.g. "image_path".')
    image_dir: str = Field(".", description='Folder of the images, relative to data_dir (default ".").')
    sep: str = Field(",", description='Field separator of the CSV files (one character, default ",").')
    kaggle: str | None = Field(None, description="Kaggle competition to download the data from.")
    group_column: str | None = Field(
        None, description='Train column whose groups stay in one fold, e.g. "PatientID" (default none).'
    )
    long: LongSpec | None = Field(
        None, description="Labels in long format, pivoted to one row per image, see [data.long]."
    )
    repeated_test_ids: Literal["error", "first"] = Field(
        "error",
        description="first: a test file's repeated ids give one image each, in order (default error).",
    )
