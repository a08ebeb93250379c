"""The ``[data]`` section: where the label files and images are, and how to read them."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

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
      space-separated grayscale values (``pixels_shape``): ``csv`` with ``image_source = "pixels"``
      and a ``holdout`` test split.
    - ``celeba``: ``train`` is ``list_attr_celeba.txt``, ``partition`` is ``list_eval_partition.txt``
      (0 train, 1 val, 2 test).

    Images (``image_source``, see :mod:`mtlkaggle.data.sources`): ``files`` (a row's image at
    ``image_pattern``, or ``image_dir`` joined with its ``image_column``; ``test_image_pattern``
    for test rows), ``channels`` (one file per ``channel_names`` entry, stacked), ``pixels`` (in
    the label file: ``pixels_prefix`` columns or the ``pixels_column`` string), ``hdf5`` (encoded
    images in ``hdf5_file`` keyed by id), ``dicom`` (rescaled, one channel per window).

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
    pixels_column: str = Field(
        "pixels", description="pixels: the column of space-separated values (default 'pixels')."
    )
    pixels_prefix: str | None = Field(
        None, description="pixels: one column per pixel named PREFIX0..PREFIXn-1, e.g. 'pixel'."
    )
    pixels_shape: tuple[int, int] | tuple[int, int, int] = Field(
        (48, 48), description="pixels: shape [H, W] or [H, W, C] (values in that order), default [48, 48]."
    )
    holdout: float | None = Field(
        None, gt=0, lt=1, description="Share of rows held out as a labelled test split, e.g. 0.1."
    )
    keep: list[KeepSpec] = Field(default_factory=list, description="Row filters, see [[data.keep]].")
    id_column: str = Field(..., description='Column of unique row ids, e.g. "image_id".')
    id_from_row: bool = Field(
        False, description="A label file without id_column: ids are 1-based row numbers (ImageId)."
    )
    image_column: str | None = Field(
        None, description="Column holding each row's image path or key; default: id_column."
    )
    image_dir: str = Field(".", description='Folder of the images, relative to data_dir (default ".").')
    image_pattern: str | None = Field(
        None,
        description="Image of a train/val row relative to data_dir, {Column} placeholders, "
        "e.g. 'train_images/{id_code}.png'; default: image_dir/{image_column}.",
    )
    test_image_pattern: list[str] = Field(
        default_factory=list,
        description="Templates tried in order for test rows, e.g. ['test/{id}.jpg']; default: image_pattern.",
    )
    image_source: Literal["files", "channels", "pixels", "hdf5", "dicom"] = Field(
        "files", description="Where pixels come from: files (default), channels, pixels, hdf5, dicom."
    )
    channel_names: list[str] = Field(
        default_factory=list,
        description="channels: names put into {channel} of the pattern, e.g. ['red', 'green', 'blue'].",
    )
    hdf5_file: str | None = Field(
        None, description="hdf5: file of encoded images keyed by id, e.g. 'train-image.hdf5'."
    )
    test_hdf5_file: str | None = Field(
        None, description="hdf5: the test rows' file, e.g. 'test-image.hdf5'; default: hdf5_file."
    )
    dicom_windows: list[tuple[float, float]] = Field(
        default_factory=list,
        description="dicom: (center, width) windows, one channel each, e.g. [[40, 80]]; default: min-max.",
    )
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

    @field_validator("test_image_pattern", mode="before")
    @classmethod
    def _one_pattern(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, values: object) -> object:
        if isinstance(values, dict):
            values = dict(values)
            if values.get("image_column") is None and "id_column" in values:
                values["image_column"] = values["id_column"]
            if values.get("format") == "pixels_csv":
                values.setdefault("image_source", "pixels")
        return values

    @model_validator(mode="after")
    def _check_source(self) -> DataSpec:
        source = self.image_source
        patterns = [p for p in (self.image_pattern, *self.test_image_pattern) if p]
        for pattern in patterns:
            rest = re.sub(r"\{[^{}]+\}", "", pattern)
            if "{" in rest or "}" in rest:
                raise ValueError(
                    f"image pattern '{pattern}': placeholders are {{Column}} with a column name inside; "
                    "fix the braces"
                )
        if source == "channels":
            if not self.channel_names:
                raise ValueError("image_source 'channels' needs channel_names, e.g. ['red', 'green', 'blue']")
            if not patterns or any("{channel}" not in p for p in patterns):
                raise ValueError("image_source 'channels' needs image patterns with a {channel} placeholder")
        if source == "hdf5" and not self.hdf5_file:
            raise ValueError("image_source 'hdf5' needs hdf5_file, e.g. 'train-image.hdf5'")
        if source == "pixels" and self.pixels_shape[0] * self.pixels_shape[1] < 1:
            raise ValueError(f"pixels_shape {list(self.pixels_shape)} holds no pixel")
        if source != "pixels" and self.format == "pixels_csv":
            raise ValueError("format 'pixels_csv' reads images from pixels; leave image_source unset")
        for center, width in self.dicom_windows:
            if width <= 0:
                raise ValueError(f"dicom window ({center}, {width}): the width must be > 0")
        return self

    @property
    def channels(self) -> int:
        """Channels each image has as read (before one channel is repeated to three)."""
        if self.image_source == "channels":
            return len(self.channel_names)
        if self.image_source == "pixels":
            return self.pixels_shape[2] if len(self.pixels_shape) == 3 else 1
        if self.image_source == "dicom":
            return max(1, len(self.dicom_windows))
        return 3

    @property
    def in_chans(self) -> int:
        """Channels the model takes: one channel is fed as three equal ones."""
        return 3 if self.channels == 1 else self.channels
