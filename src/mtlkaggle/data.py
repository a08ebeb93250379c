"""Label files, images and the Dataset.

Label files are parsed into a :class:`LabelTable` (ids, image paths and one target array per
task). Parsing collects every :class:`Problem` instead of stopping at the first one, so
``mtlkaggle check`` can list them all; :func:`read_split` raises on the first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mtlkaggle.errors import UserError
from mtlkaggle.spec import Spec, TaskSpec


@dataclass(frozen=True)
class Problem:
    """One bad row or file, located precisely enough to fix it."""

    file: str
    line: int | None
    column: str | None
    message: str
    fatal: bool = True

    def __str__(self) -> str:
        where = self.file + (f":{self.line}" if self.line is not None and self.line > 0 else "")
        col = f" [{self.column}]" if self.column else ""
        return f"{where}{col}: {self.message}"


@dataclass
class LabelTable:
    """The rows of one split: ids, image paths, and decoded targets per task.

    Targets: multiclass -> int64 (n,), multilabel -> float32 (n, L) of 0/1,
    regression -> float32 (n,). ``targets`` is empty for an unlabelled test file.
    """

    split: str
    file: Path
    ids: np.ndarray
    paths: list[Path]
    targets: dict[str, np.ndarray] = field(default_factory=dict)
    images: np.ndarray | None = None  # images held in memory (pixel-string formats)

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
            self.images[index] if self.images is not None else None,
        )


def has_split(spec: Spec, split: str) -> bool:
    """Whether the competition provides ``split`` (train, val, test, test_labels)."""
    from mtlkaggle.formats import has_split as _has

    return _has(spec, split)


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
    from mtlkaggle.formats import read_raw

    labelled = split != "test" if labelled is None else labelled
    return _parse_raw(spec, read_raw(spec, split, labelled), labelled, split)


def parse_label_file(
    spec: Spec, path: Path, labelled: bool = True, split: str = "labels"
) -> tuple[LabelTable, list[Problem]]:
    """Parse a CSV laid out like the spec's label columns (e.g. held-out test labels)."""
    from mtlkaggle.formats import read_csv_file

    if not path.is_file():
        raise UserError(f"{path}: label file not found")
    return _parse_raw(spec, read_csv_file(spec, path), labelled, split)


def _parse_raw(spec: Spec, raw, labelled: bool, split: str) -> tuple[LabelTable, list[Problem]]:
    frame, path = raw.frame, raw.file
    problems: list[Problem] = list(raw.problems)
    name = str(path)
    needed = {spec.data.id_column, spec.data.image_column}
    if labelled:
        for task in spec.tasks:
            needed.update(task.columns or [task.column])
    missing = sorted(c for c in needed if c not in frame.columns)
    if missing:
        line = 1 if spec.data.format in ("csv", "pixels_csv") else None
        problems.append(
            Problem(name, line, None, f"missing column(s) {missing}; found {list(frame.columns)}")
        )
        return LabelTable(split, path, np.array([], dtype=object), []), problems
    ids = frame[spec.data.id_column].to_numpy(dtype=object)
    lines = raw.lines
    _check_ids(ids, spec.data.id_column, name, problems, lines)
    paths = _image_paths(spec, frame[spec.data.image_column], name, problems, lines)
    targets = {}
    if labelled:
        for task in spec.tasks:
            targets[task.name] = _decode_task(task, frame, name, problems, lines)
    return LabelTable(split, path, ids, paths, targets, raw.images), problems


def _check_ids(ids: np.ndarray, column: str, file: str, problems: list[Problem], lines: np.ndarray) -> None:
    seen: dict[str, int] = {}
    for row, value in enumerate(ids):
        line = int(lines[row])
        if value == "":
            problems.append(Problem(file, line, column, "empty id"))
        elif value in seen:
            problems.append(
                Problem(file, line, column, f"duplicate id '{value}' (first on line {seen[value]})")
            )
        else:
            seen[value] = line


def _image_paths(
    spec: Spec, values: pd.Series, file: str, problems: list[Problem], lines: np.ndarray
) -> list[Path]:
    root = (spec.data_path / spec.data.image_dir).resolve()
    paths = []
    for row, value in enumerate(values):
        rel = Path(value)
        resolved = (root / rel).resolve()
        if rel.is_absolute() or not resolved.is_relative_to(root):
            problems.append(
                Problem(
                    file,
                    int(lines[row]),
                    spec.data.image_column,
                    f"image path '{value}' escapes the data folder {root}; use a relative path inside it",
                )
            )
        paths.append(resolved)
    return paths


def _decode_task(
    task: TaskSpec, frame: pd.DataFrame, file: str, problems: list[Problem], lines: np.ndarray
) -> np.ndarray:
    decode = {
        "index": _decode_index,
        "name": _decode_name,
        "sign": _decode_sign,
        "indices": _decode_indices,
        "columns": _decode_columns,
        "value": _decode_value,
    }[task.resolved_encoding]
    return decode(task, frame, file, problems, lines)


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


def _decode_name(
    task: TaskSpec, frame: pd.DataFrame, file: str, problems: list[Problem], lines
) -> np.ndarray:
    lookup = {c: i for i, c in enumerate(task.classes or [])}
    out = np.zeros(len(frame), dtype=np.int64)
    for row, value in enumerate(frame[task.column]):
        if value not in lookup:
            problems.append(
                Problem(
                    file,
                    int(lines[row]),
                    task.column,
                    f"unknown class '{value}'; expected one of {list(lookup)}",
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
    n = task.size
    out = np.zeros((len(frame), n), dtype=np.float32)
    for row, value in enumerate(frame[task.column]):
        for token in value.split(task.label_sep if task.label_sep.strip() else None):
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


def _decode_columns(
    task: TaskSpec, frame: pd.DataFrame, file: str, problems: list[Problem], lines
) -> np.ndarray:
    out = np.zeros((len(frame), len(task.columns)), dtype=np.float32)
    for j, column in enumerate(task.columns):
        for row, value in enumerate(frame[column]):
            if value in ("1", "1.0"):
                out[row, j] = 1.0
            elif value not in ("0", "0.0", "-1"):
                problems.append(Problem(file, int(lines[row]), column, f"'{value}' is not 0/1"))
    return out


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


def task_matrix(spec: Spec, table: LabelTable) -> np.ndarray:
    """All targets as one 0/1 matrix: one-hot classes, multi-hot labels (regression skipped)."""
    blocks = []
    for task in spec.tasks:
        y = table.targets[task.name]
        if task.kind == "multiclass":
            blocks.append(np.eye(task.size, dtype=np.float32)[y])
        elif task.kind == "multilabel":
            blocks.append(y)
    return np.concatenate(blocks, axis=1) if blocks else np.zeros((len(table), 0), np.float32)


# ---------------------------------------------------------------- images


class ImageReadError(Exception):
    """An image that is missing, unreadable or truncated."""


def load_image(path: Path, draft_size: int | None = None) -> np.ndarray:
    """Decode an image as an RGB uint8 array (H, W, 3).

    Grayscale, palette and RGBA images are converted to RGB. For JPEGs, ``draft_size`` lets
    libjpeg decode at a reduced scale (1/2, 1/4, 1/8) that is still at least that many pixels on
    the shorter side: several times faster than decoding full size and resizing.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            if draft_size and img.format == "JPEG":
                w, h = img.size
                scale = draft_size / min(w, h)
                img.draft("RGB", (math.ceil(w * scale), math.ceil(h * scale)))
            rgb = img.convert("RGB")
            return np.asarray(rgb)
    except FileNotFoundError:
        raise ImageReadError(f"{path}: image not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ImageReadError(f"{path}: unreadable image ({e})") from None


def verify_image(path: Path) -> str | None:
    """Fully decode an image; return what is wrong with it, or None when it is fine."""
    try:
        arr = load_image(path)
    except ImageReadError as e:
        return str(e).split(": ", 1)[1]
    if arr.size == 0:
        return "empty image"
    return None


def build_transforms(spec: Spec, img_size: int, train: bool) -> Any:
    """The albumentations pipeline for training or evaluation (uint8 in, uint8 out).

    Normalization happens on the device (see ``model.MultiTaskNet.normalize``) so that workers
    hand over compact uint8 tensors.
    """
    import albumentations as A
    import cv2

    aug = spec.augment
    size = (img_size, img_size)
    if not train:
        if aug.eval_resize == "squash":
            return A.Compose([A.Resize(*size)])
        return A.Compose(
            [
                A.LongestMaxSize(max_size=img_size),
                A.PadIfNeeded(img_size, img_size, border_mode=cv2.BORDER_CONSTANT, fill=0),
            ]
        )
    steps = [A.RandomResizedCrop(size=size, scale=aug.crop_scale, ratio=(0.8, 1.25))]
    if aug.rotate or aug.shift:
        steps.append(
            A.Affine(
                rotate=(-aug.rotate, aug.rotate),
                translate_percent=(-aug.shift, aug.shift),
                border_mode=cv2.BORDER_REFLECT_101,
                p=0.7,
            )
        )
    if aug.hflip:
        steps.append(A.HorizontalFlip(p=aug.hflip))
    if aug.vflip:
        steps.append(A.VerticalFlip(p=aug.vflip))
    if aug.color_jitter:
        c = aug.color_jitter
        steps.append(A.ColorJitter(brightness=c, contrast=c, saturation=c, hue=c / 4, p=0.8))
    return A.Compose(steps)


class ImageDataset:
    """Images of a :class:`LabelTable`, transformed, as uint8 CHW tensors plus targets.

    Augmentation randomness comes from the seed each key carries (see ``train.SeededSampler``),
    so a sample's augmentation depends on (run seed, epoch, index) only: not on worker count,
    batch order or whether the run was resumed.

    With ``skip_bad=True`` an unreadable image yields ``None`` (dropped and counted by
    :func:`collate`); otherwise it raises :class:`ImageReadError` naming the file.
    """

    def __init__(self, table: LabelTable, transform: Any, img_size: int, skip_bad: bool = False):
        self.table = table
        self.transform = transform
        self.draft_size = img_size
        self.skip_bad = skip_bad

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any] | None:
        """One sample; ``key`` is an index, or ``(index, seed)`` to fix its augmentation."""
        import torch

        i, seed = key if isinstance(key, tuple) else (key, None)
        if seed is not None and hasattr(self.transform, "set_random_seed"):
            self.transform.set_random_seed(seed)
        if self.table.images is not None:
            image = self.table.images[i]
            image = np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image
        else:
            try:
                image = load_image(self.table.paths[i], self.draft_size)
            except ImageReadError:
                if self.skip_bad:
                    return None
                raise
        image = self.transform(image=image)["image"]
        sample = {
            "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
            "index": i,
        }
        for name, y in self.table.targets.items():
            sample[name] = torch.as_tensor(y[i])
        return sample


def collate(samples: list[dict[str, Any] | None]) -> dict[str, Any]:
    """Stack samples into a batch, dropping (and counting) unreadable ones."""
    from torch.utils.data import default_collate

    good = [s for s in samples if s is not None]
    batch = default_collate(good) if good else {}
    batch["skipped"] = len(samples) - len(good)
    return batch
