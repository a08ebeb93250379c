"""Where each row's image is: the spec's path templates per split, and the source built from them.

A template is a path relative to ``data_dir`` whose ``{Column}`` placeholders are label-file
columns (any column name without braces: spaces and hyphens are fine), e.g.
``"train_images/{id_code}.png"``. Test rows (``test``, ``test_labels``) try ``test_image_pattern``'s
templates in order, the first existing file winning. Without a template, a row's image is
``image_dir`` joined with its ``image_column`` value, verbatim (the original rule).

:func:`suggest` is what ``check`` says about a missing file: which extension or folder holds a
file of the same name or stem.
"""

from __future__ import annotations

import posixpath
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from mtlkaggle.data.sources import (
    ChannelSource,
    DicomSource,
    FileSource,
    Hdf5Source,
    ImageSource,
    PixelSource,
)
from mtlkaggle.errors import Problem
from mtlkaggle.spec import Spec

PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
TEST_SPLITS = ("test", "test_labels")


def placeholders(template: str) -> list[str]:
    """The column names a template refers to, in order."""
    return PLACEHOLDER.findall(template)


def render(template: str, frame: pd.DataFrame, extra: dict[str, str] | None = None) -> list[str]:
    """The template filled in for every row of ``frame`` (``extra`` names fixed placeholders)."""
    parts = PLACEHOLDER.split(template)
    out = pd.Series([""] * len(frame), index=frame.index, dtype=object)
    for k, part in enumerate(parts):
        if k % 2 == 0:
            out = out + part
        elif extra and part in extra:
            out = out + extra[part]
        else:
            out = out + frame[part].astype(str)
    return out.tolist()


def patterns(spec: Spec, split: str) -> list[str] | None:
    """The templates for ``split``'s rows, in the order tried; None: the ``image_dir`` rule."""
    data = spec.data
    if split in TEST_SPLITS and data.test_image_pattern:
        return list(data.test_image_pattern)
    return [data.image_pattern] if data.image_pattern else None


def image_root(spec: Spec, split: str) -> Path:
    """The folder ``split``'s images must stay inside: ``image_dir`` under the default rule, else
    ``data_dir``."""
    if patterns(spec, split) is None and spec.data.image_source not in ("pixels", "hdf5"):
        return (spec.data_path / spec.data.image_dir).resolve()
    return spec.data_path.resolve()


def image_columns(spec: Spec, split: str) -> set[str]:
    """The label-file columns the images of ``split`` are located by."""
    if spec.data.image_source == "pixels":
        return set()
    found = patterns(spec, split)
    if found is None:
        return {spec.data.image_column}
    fixed = {"channel"} if spec.data.image_source == "channels" else set()
    return {name for p in found for name in placeholders(p)} - fixed


def build_source(
    spec: Spec,
    split: str,
    frame: pd.DataFrame,
    pixels: np.ndarray | None,
    file: Path,
    lines: np.ndarray,
    problems: list[Problem],
) -> tuple[list[Path], ImageSource]:
    """Each row's image location (a path per row, for display) and the split's image source.

    Paths that escape the data folder are reported in ``problems`` (they are never opened).
    """
    data, n = spec.data, len(frame)
    ids = frame[data.id_column].to_numpy(dtype=object)
    if data.image_source == "pixels":
        values = pixels if pixels is not None else np.full(n, "", dtype=object)
        column = data.pixels_column if data.pixels_prefix is None else f"{data.pixels_prefix}*"
        return [file] * n, PixelSource(values, data.pixels_shape, file, lines, ids, column)
    if data.image_source == "hdf5":
        container = data.test_hdf5_file if split in TEST_SPLITS and data.test_hdf5_file else data.hdf5_file
        path = (spec.data_path / container).resolve()
        templates = patterns(spec, split) or ["{" + data.image_column + "}"]
        return [path] * n, Hdf5Source(path, _first_key(path, [render(t, frame) for t in templates]))
    channels = data.channel_names if data.image_source == "channels" else [None]
    chosen, tried = _choose(spec, split, frame, channels, file, lines, problems)
    if data.image_source == "channels":
        return [p[0] for p in chosen], ChannelSource(chosen, data.channel_names)
    paths = [p[0] for p in chosen]
    if data.image_source == "dicom":
        return paths, DicomSource(paths, list(data.dicom_windows))
    return paths, FileSource(paths, tried)


def _first_key(file: Path, candidates: list[list[str]]) -> list[str]:
    """Per row, the first candidate key the HDF5 file holds (else the first candidate)."""
    if len(candidates) == 1 or not file.is_file():
        return candidates[0]
    import h5py

    try:
        with h5py.File(file, "r") as f:  # closed again: each process opens its own handle
            return [next((k for k in keys if k in f), keys[0]) for keys in zip(*candidates, strict=True)]
    except OSError:
        return candidates[0]  # reported, with the file, when an image is read


def _choose(
    spec: Spec,
    split: str,
    frame: pd.DataFrame,
    channels: list[str | None],
    file: Path,
    lines: np.ndarray,
    problems: list[Problem],
) -> tuple[list[tuple[Path, ...]], list[tuple[Path, ...]] | None]:
    """Per row, the channel files of the first template whose first file exists (else the first)."""
    found = patterns(spec, split)
    root = image_root(spec, split)
    if found is None:
        values = frame[spec.data.image_column].tolist()
        candidates = [[(root, values)]]
        column = spec.data.image_column
    else:
        candidates = [
            [(root, render(t, frame, {"channel": c} if c else None)) for c in channels] for t in found
        ]
        column = None
    per_template = [[_resolve(root, rel, file, lines, column, problems) for _, rel in t] for t in candidates]
    if len(per_template) == 1:  # one template: nothing to try, no file system access
        return list(zip(*per_template[0], strict=True)), None
    chosen, tried = [], []
    for row in range(len(frame)):
        options = [tuple(channel[row] for channel in template) for template in per_template]
        tried.append(tuple(o[0] for o in options))
        chosen.append(next((o for o in options if o[0].exists()), options[0]))
    return chosen, tried


def _resolve(
    root: Path, values: list[str], file: Path, lines: np.ndarray, column: str | None, problems: list[Problem]
) -> list[Path]:
    """``root`` joined with each relative path, ``..`` folded in by string, without touching the
    file system (``root`` is resolved already); a path that ends up outside ``root`` is reported."""
    base = str(root)
    rels = pd.Series(values, dtype=object).astype(str)
    joined = (base.rstrip("/") + "/" + rels).to_numpy(dtype=object)
    absolute = rels.str.startswith("/").to_numpy()
    dotted = np.flatnonzero(rels.str.contains("..", regex=False).to_numpy() | absolute)
    outside = []
    for row in dotted:  # only these can leave root: fold them with normpath, compare by prefix
        folded = posixpath.normpath(rels.iloc[row] if absolute[row] else joined[row])
        joined[row] = folded
        if absolute[row] or not (folded == base or folded.startswith(base.rstrip("/") + "/")):
            outside.append(row)
    for row in outside:
        problems.append(
            Problem(
                str(file),
                int(lines[row]),
                column,
                f"image path '{values[row]}' escapes the data folder {root}; use a relative path inside it",
            )
        )
    return list(map(Path, joined))


class FileIndex:
    """Every file under a folder by name and by stem, built once, for :func:`suggest`."""

    def __init__(self, root: Path, limit: int = 500_000):
        self.root = root
        self.by_name: dict[str, list[Path]] = defaultdict(list)
        self.by_stem: dict[str, list[Path]] = defaultdict(list)
        for k, path in enumerate(p for p in root.rglob("*") if p.is_file()):
            if k >= limit:
                break
            self.by_name[path.name].append(path)
            self.by_stem[_stem(path.name)].append(path)


def _stem(name: str) -> str:
    return name.split(".", 1)[0] if not name.startswith(".") else name


def suggest(path: Path, index: FileIndex) -> str | None:
    """For a missing ``path``: which extension or folder would find a file of that name or stem."""
    same_folder = [p for p in index.by_stem.get(_stem(path.name), []) if p.parent == path.parent]
    if same_folder:
        other = same_folder[0]
        ext = other.name[len(_stem(other.name)) :] or "no extension"
        return f"'{other.name}' exists there: the extension should be {ext} (set data.image_pattern)"
    elsewhere = index.by_name.get(path.name) or index.by_stem.get(_stem(path.name))
    if elsewhere:
        other = elsewhere[0]
        try:
            where = other.parent.relative_to(index.root).as_posix() or "."
        except ValueError:  # pragma: no cover - the index holds files under root only
            where = str(other.parent)
        return (
            f"'{other.name}' exists in folder '{where}': point data.image_pattern "
            "(data.test_image_pattern for test rows) there"
        )
    return None
