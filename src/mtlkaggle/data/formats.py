"""Readers for the original file layouts of the competitions mtlkaggle serves.

Each reader turns one split of a layout into a :class:`RawSplit`: a frame of strings with the id,
image and label columns the spec names (so ``data.py`` validates every format the same way), the
line of the original file each row came from, the pixel values where the label file holds the
images (``image_source = "pixels"``, decoded per sample by :mod:`mtlkaggle.data.sources`), and any
problem found in the layout itself. Label files may be CSV or Parquet (``.parquet``).
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mtlkaggle.errors import Problem, UserError
from mtlkaggle.readback import read_text
from mtlkaggle.spec import Spec

UTKFACE_NAME = re.compile(r"^(\d{1,3})_([01])_([0-4])_\d+\.jpg(\.chip\.jpg)?$")
CELEBA_PARTITIONS = {"train": "0", "val": "1", "test": "2", "test_labels": "2"}
_FIX_DATA = "check that data_dir / --data-dir names the right folder"


@dataclass
class RawSplit:
    """One split as read from its original files, before labels are decoded."""

    frame: pd.DataFrame
    file: Path
    lines: np.ndarray
    pixels: np.ndarray | None = None  # (N, P) numbers or (N,) strings: the images in the label file
    problems: list = field(default_factory=list)


def has_split(spec: Spec, split: str) -> bool:
    """Whether the competition's layout provides ``split``."""
    data = spec.data
    if data.format in ("utkface", "pixels_csv"):
        return split == "train" or (data.holdout is not None and split in ("test", "test_labels"))
    if data.format == "celeba":
        return split in CELEBA_PARTITIONS
    if data.format == "lists" and split == "test_labels":
        return "test" in data.labels
    return getattr(data, split) is not None


def read_raw(spec: Spec, split: str, labelled: bool) -> RawSplit:
    """Read one split in the spec's format, then apply the spec's ``keep`` filters."""
    if not has_split(spec, split):
        raise UserError(f"competition '{spec.name}' has no '{split}' split (data.{split})")
    reader = {
        "csv": _read_csv,
        "lists": _read_lists,
        "utkface": _read_utkface,
        "pixels_csv": _read_csv,
        "celeba": _read_celeba,
    }[spec.data.format]
    raw = reader(spec, split, labelled)
    if spec.data.id_from_row and spec.data.id_column not in raw.frame.columns:
        ids = pd.DataFrame({spec.data.id_column: [str(k + 1) for k in range(len(raw.frame))]})
        raw.frame = pd.concat([ids, raw.frame], axis=1)
    if raw.frame.empty and not any(p.fatal for p in raw.problems):
        raw.problems.append(
            Problem(str(raw.file), None, None, "no data rows (an empty or header-only file); add the rows")
        )
    if spec.data.holdout is not None and spec.data.format in ("utkface", "pixels_csv"):
        raw = take_rows(
            raw, _in_holdout(raw.frame[spec.data.id_column], spec.data.holdout) == (split != "train")
        )
    return _keep(spec, raw)


def _existing(path: Path, what: str) -> Path:
    if not path.exists():
        raise UserError(
            f"{path}: {what} not found; set data_dir or --data-dir to the folder that holds it "
            "(for the demo: `mtlkaggle demo`)"
        )
    return path


def _read_csv(spec: Spec, split: str, labelled: bool) -> RawSplit:
    name = spec.data.train if spec.data.format == "pixels_csv" else getattr(spec.data, split)
    path = _existing(spec.data_path / name, "label file")
    if path.suffix.lower() == ".parquet":
        raw = read_parquet_file(spec, path)
    elif spec.data.image_source == "pixels" and spec.data.pixels_prefix:
        raw = _read_wide_csv(spec, path)
    else:
        raw = read_csv_file(spec, path)
    return _take_pixels(spec, raw) if spec.data.image_source == "pixels" else raw


def read_parquet_file(spec: Spec, path: Path) -> RawSplit:
    """A Parquet label file: columns as strings (whole floats as integers); rows numbered from 1."""
    from mtlkaggle.data.sources import require

    require("pyarrow", f"{path} (a Parquet label file)")
    try:
        frame = pd.read_parquet(path)
    except (OSError, ValueError) as e:
        raise UserError(
            f"{path}: not a readable Parquet file ({str(e).splitlines()[0]}); {_FIX_DATA}"
        ) from None
    pixel = _pixel_names(spec, frame.columns)
    for column in frame.columns:
        if column not in pixel:
            frame[column] = _as_text(frame[column])
    return RawSplit(frame, path, np.arange(len(frame)) + 1)


def _as_text(values: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(values):
        return values.astype(int).astype(str)
    if pd.api.types.is_float_dtype(values):
        whole = values.notna().all() and bool((values == values.round()).all())
        return (
            values.astype("int64").astype(str)
            if whole
            else values.map(lambda v: "" if pd.isna(v) else repr(v))
        )
    return values.map(lambda v: "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))


def _pixel_names(spec: Spec, columns) -> set[str]:
    prefix = spec.data.pixels_prefix
    if spec.data.image_source != "pixels" or not prefix:
        return set()
    return {c for c in columns if str(c).startswith(prefix) and str(c)[len(prefix) :].isdigit()}


def _read_wide_csv(spec: Spec, path: Path) -> RawSplit:
    """A CSV with one column per pixel, read by pandas (other columns as text; line = row + 2)."""
    try:
        header = pd.read_csv(path, sep=spec.data.sep, nrows=0).columns
        text = {c: str for c in header if c not in _pixel_names(spec, header)}
        frame = pd.read_csv(path, sep=spec.data.sep, dtype=text, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot parse as CSV ({str(e).splitlines()[0]}); {_FIX_DATA}") from None
    return RawSplit(frame, path, np.arange(len(frame)) + 2)


def _take_pixels(spec: Spec, raw: RawSplit) -> RawSplit:
    """Move the pixel column(s) out of the frame into ``raw.pixels`` (checked when each row is read)."""
    data, frame = spec.data, raw.frame
    if data.pixels_prefix is None:
        if data.pixels_column not in frame.columns:
            raw.problems.append(
                Problem(str(raw.file), 1, None, f"missing pixel column '{data.pixels_column}'")
            )
            return raw
        raw.pixels = frame[data.pixels_column].to_numpy(dtype=object)
        raw.frame = frame.drop(columns=[data.pixels_column])
        return raw
    size = int(np.prod(data.pixels_shape))
    names = [f"{data.pixels_prefix}{k}" for k in range(size)]
    missing = [c for c in names if c not in frame.columns]
    if missing:
        raw.problems.append(
            Problem(
                str(raw.file),
                1,
                None,
                f"pixels_shape {list(data.pixels_shape)} needs columns {names[0]}..{names[-1]}; "
                f"{len(missing)} missing (first: {missing[0]})",
            )
        )
        return raw
    block = frame[names].apply(lambda c: pd.to_numeric(c, errors="coerce"))
    raw.pixels = block.to_numpy(dtype=np.float32)
    raw.frame = frame.drop(columns=list(_pixel_names(spec, frame.columns)))
    return raw


def read_csv_file(spec: Spec, path: Path) -> RawSplit:
    """A CSV label file with a header (line numbers count the header as line 1).

    Rows with more or fewer fields than the header are reported with their line (quoted fields
    may span lines: a row's line is the one it starts on); blank lines are skipped.
    """
    text = read_text(path, _FIX_DATA, "label file")
    if not text.strip():
        raise UserError(f"{path}: the file is empty; it needs a header line")
    sep = spec.data.sep
    if len(sep) != 1:
        raise UserError(f"{path}: data.sep must be one character, not {sep!r}; fix the competition file")
    fast = _read_plain_csv(text, sep)
    if fast is not None:
        header, frame, lines = fast
        _check_header(path, header)
        return RawSplit(frame, path, lines)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep)
    try:
        header = next(reader)
        rows, lines, problems = [], [], []
        start = reader.line_num + 1
        for row in reader:
            if row:
                if len(row) == len(header):
                    rows.append(row)
                    lines.append(start)
                else:
                    problems.append(_short_row(path, start, header, row))
            start = reader.line_num + 1
    except csv.Error as e:
        raise UserError(f"{path}:{reader.line_num}: cannot parse as CSV ({e}); {_FIX_DATA}") from None
    _check_header(path, header)
    return RawSplit(
        pd.DataFrame(rows, columns=header, dtype=str), path, np.array(lines, int), problems=problems
    )


def _check_header(path: Path, header: list[str]) -> None:
    if len(set(header)) != len(header):
        twice = sorted({c for c in header if header.count(c) > 1})
        raise UserError(f"{path}:1: column(s) {twice} appear twice in the header; rename them")


def _read_plain_csv(text: str, sep: str) -> tuple[list[str], pd.DataFrame, np.ndarray] | None:
    """The header, rows and line numbers of a CSV without quotes or carriage returns, every
    non-blank line holding the header's number of fields, read by pandas' C parser: the same
    table as the csv module gives, several times faster. None: anything else (read row by row)."""
    if '"' in text or "\r" in text:
        return None
    split = text.split("\n")
    header = split[0].split(sep)
    body = split[1:]
    blank = np.fromiter((not line.strip() for line in body), bool, len(body))
    if np.fromiter((not line for line in body), bool, len(body)).sum() != blank.sum():
        return None  # a line of spaces is a row to the csv module
    counts = np.fromiter((line.count(sep) for line in body), int, len(body))
    if np.any(counts[~blank] != len(header) - 1) or len(set(header)) != len(header):
        return None
    frame = pd.read_csv(
        io.StringIO(text),
        sep=sep,
        dtype=str,
        keep_default_na=False,
        na_filter=False,
        quoting=csv.QUOTE_NONE,
        skip_blank_lines=True,
        engine="c",
    )
    if list(frame.columns) != header or len(frame) != int((~blank).sum()):
        return None
    return header, frame, np.flatnonzero(~blank) + 2


def _short_row(path: Path, line: int, header: list[str], row: list[str]) -> Problem:
    what = "missing" if len(row) < len(header) else "extra"
    return Problem(
        str(path),
        line,
        None,
        f"expected {len(header)} fields ({', '.join(header)}), found {len(row)}: {what} value(s); "
        "quote fields that contain the separator",
    )


def _read_lists(spec: Spec, split: str, labelled: bool) -> RawSplit:
    """AI6126: an image list per split, and a file of integers (one per task) per labelled split."""
    name = "test" if split == "test_labels" else split
    list_path = _existing(spec.data_path / getattr(spec.data, name), "image list")
    images = [line.strip() for line in read_text(list_path, _FIX_DATA, "image list").splitlines()]
    keep = [i for i, line in enumerate(images) if line]
    frame = pd.DataFrame({spec.data.image_column: [images[i] for i in keep]})
    frame[spec.data.id_column] = frame[spec.data.image_column]
    raw = RawSplit(frame, list_path, np.array(keep, dtype=int) + 1)
    if not labelled:
        return raw
    if name not in spec.data.labels:
        raise UserError(f"competition '{spec.name}' has no label file for '{name}' (data.labels.{name})")
    label_path = _existing(spec.data_path / spec.data.labels[name], "label file")
    rows = [line.split() for line in read_text(label_path, _FIX_DATA, "label file").splitlines()]
    if len(rows) != len(images):
        raw.problems.append(
            Problem(
                str(label_path),
                None,
                None,
                f"{len(rows)} label lines for {len(images)} images in {list_path.name}",
            )
        )
        return raw
    columns = [t.column for t in spec.tasks]
    short = [i for i in keep if len(rows[i]) != len(columns)]
    for row_index in short:
        raw.problems.append(
            Problem(
                str(label_path),
                row_index + 1,
                None,
                f"expected {len(columns)} values (one per task: {', '.join(columns)}), "
                f"found {len(rows[row_index])}",
            )
        )
    if short:  # the short rows are reported once, not again as empty labels
        raw = take_rows(raw, ~np.isin(np.array(keep, dtype=int), short))
        keep = [i for i in keep if i not in set(short)]
        frame = raw.frame
    for j, column in enumerate(columns):
        frame[column] = [rows[i][j] for i in keep]
    raw.file = label_path
    return raw


def _read_utkface(spec: Spec, split: str, labelled: bool) -> RawSplit:
    """UTKFace: labels live in the file names; malformed names are reported and skipped."""
    folder = _existing(spec.data_path / spec.data.train, "image folder")
    rows, problems = [], []
    for path in sorted(folder.iterdir()):
        if not path.is_file():
            continue
        match = UTKFACE_NAME.match(path.name)
        if not match:
            problems.append(
                Problem(
                    str(folder),
                    None,
                    None,
                    f"{path.name}: not AGE_GENDER_RACE_DATETIME.jpg.chip.jpg; skipped",
                    fatal=False,
                )
            )
            continue
        rel = (path.relative_to(spec.data_path / spec.data.image_dir)).as_posix()
        rows.append((path.name, rel, *match.group(1, 2, 3)))
    columns = [spec.data.id_column, spec.data.image_column, "age", "gender", "race"]
    frame = pd.DataFrame(rows, columns=columns).loc[:, lambda f: ~f.columns.duplicated()]
    return RawSplit(frame, folder, np.full(len(frame), -1), problems=problems)


def _read_celeba(spec: Spec, split: str, labelled: bool) -> RawSplit:
    """CelebA: list_attr_celeba.txt (count, 40 names, then name and 40 values of 1/-1) + partition."""
    attr_path = _existing(spec.data_path / spec.data.train, "attribute file")
    lines = read_text(attr_path, _FIX_DATA, "attribute file").splitlines()
    if len(lines) < 2:
        raise UserError(f"{attr_path}: expected a count line and a line of attribute names")
    names = lines[1].split()
    problems, rows, line_numbers = [], [], []
    for number, line in enumerate(lines[2:], start=3):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != len(names) + 1:
            problems.append(
                Problem(
                    str(attr_path),
                    number,
                    None,
                    f"expected a file name and {len(names)} values, found {len(parts)} fields",
                )
            )
            continue
        rows.append(parts)
        line_numbers.append(number)
    if lines[0].strip().isdigit() and int(lines[0]) != len(rows) + len(problems):
        problems.append(
            Problem(str(attr_path), 1, None, f"says {lines[0].strip()} images, lists {len(rows)}")
        )
    frame = pd.DataFrame(rows, columns=[spec.data.id_column, *names])
    if spec.data.image_column != spec.data.id_column:
        frame[spec.data.image_column] = frame[spec.data.id_column]
    partition = _celeba_partition(spec)
    chosen = frame[spec.data.id_column].map(partition).fillna("?").to_numpy() == CELEBA_PARTITIONS[split]
    raw = RawSplit(frame, attr_path, np.array(line_numbers), problems=problems)
    return take_rows(raw, chosen)


def _celeba_partition(spec: Spec) -> dict[str, str]:
    if not spec.data.partition:
        raise UserError(f"competition '{spec.name}': the celeba format needs data.partition")
    path = _existing(spec.data_path / spec.data.partition, "partition file")
    pairs = (
        line.split() for line in read_text(path, _FIX_DATA, "partition file").splitlines() if line.strip()
    )
    return {p[0]: p[1] for p in pairs if len(p) == 2}


def _in_holdout(ids: pd.Series, fraction: float) -> np.ndarray:
    """A stable pseudo-random share of ids (by MD5), the same on every machine and run."""
    buckets = [int(hashlib.md5(str(i).encode()).hexdigest()[:8], 16) % 10_000 for i in ids]
    return np.array(buckets) < fraction * 10_000


def take_rows(raw: RawSplit, mask: np.ndarray) -> RawSplit:
    """The rows of ``raw`` where ``mask`` is true (frame, lines and pixels alike), in order."""
    index = np.flatnonzero(mask)
    return RawSplit(
        raw.frame.iloc[index].reset_index(drop=True),
        raw.file,
        raw.lines[index],
        raw.pixels[index] if raw.pixels is not None else None,
        raw.problems,
    )


def _keep(spec: Spec, raw: RawSplit) -> RawSplit:
    for rule in spec.data.keep:
        if rule.column not in raw.frame.columns:
            continue  # a missing column is reported by the decoders
        values = pd.to_numeric(raw.frame[rule.column], errors="coerce")
        raw = take_rows(
            raw, values.isna().to_numpy() | ((values >= rule.min) & (values <= rule.max)).to_numpy()
        )
    return raw
