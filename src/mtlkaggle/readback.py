"""Reading files back: every damage is one :class:`~mtlkaggle.errors.UserError` line naming the file.

Label files, competition files, submissions and the artefacts the program wrote itself (configs,
thresholds, folds, out-of-fold and metrics tables) all come through here, so a missing, empty,
non-UTF-8 or malformed file reads the same way everywhere: ``FILE[:LINE]: what is wrong; fix``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from mtlkaggle.errors import UserError


def read_text(path: Path, fix: str, what: str = "file") -> str:
    """The text of a UTF-8 file (a BOM is dropped).

    Args:
        path: The file.
        fix: What the user should do when it cannot be read (ends the error line).
        what: What the file is, for the "not found" line.

    Raises:
        UserError: the file is missing, a folder, unreadable, or not UTF-8 (naming the line
            and byte of the first bad byte).
    """
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path}: {what} not found; {fix}") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a folder, expected a {what}; {fix}") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read the {what} ({e.strerror or type(e).__name__}); {fix}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise UserError(
            f"{path}:{line}: not UTF-8 (byte 0x{data[e.start]:02x} at column {column}); "
            f"save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`), or {fix}"
        ) from None


def read_json(path: Path, fix: str, what: str = "JSON file") -> Any:
    """A JSON document, parsed.

    Raises:
        UserError: missing, empty, not UTF-8 or not valid JSON (with line and column).
    """
    text = read_text(path, fix, what)
    if not text.strip():
        raise UserError(f"{path}: empty file ({len(text)} bytes), the write never finished; {fix}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"{path}:{e.lineno}: not valid JSON ({e.msg} at column {e.colno}); {fix}") from None


def read_json_object(path: Path, fix: str, what: str = "JSON file") -> dict[str, Any]:
    """A JSON document that must be an object (``{...}``)."""
    value = read_json(path, fix, what)
    if not isinstance(value, dict):
        raise UserError(f"{path}: expected a JSON object, found a {type(value).__name__}; {fix}")
    return value


def read_table(path: Path, fix: str, columns: list[str], what: str = "CSV file", **read_csv_kwargs: Any):
    """A CSV artefact as a pandas frame, with ``columns`` required and at least one row.

    Raises:
        UserError: missing, empty, not UTF-8, not parseable, without a needed column or rows.
    """
    import pandas as pd

    text = read_text(path, fix, what)
    if not text.strip():
        raise UserError(f"{path}: empty file, the write never finished; {fix}")
    try:
        frame = pd.read_csv(io.StringIO(text), **read_csv_kwargs)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"{path}: not a readable {what} ({first}); {fix}") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise UserError(f"{path}:1: no column(s) {', '.join(repr(c) for c in missing)}; {fix}")
    if frame.empty:
        raise UserError(f"{path}: no rows after the header; {fix}")
    return frame


def numeric_columns(
    frame, path: Path, columns: list[str], fix: str, lo: float | None = None, hi=None, allow_nan: bool = False
):
    """``frame[columns]`` as float64, refusing text, inf, values outside [lo, hi] and (unless
    ``allow_nan``) empty cells and NaN.

    Line numbers count the header as line 1.
    """
    import numpy as np
    import pandas as pd

    values = frame[columns].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    bad = np.isinf(values)
    bad |= np.isnan(values) & (~frame[columns].isna().to_numpy() | (not allow_nan))
    with np.errstate(invalid="ignore"):
        if lo is not None:
            bad |= values < lo
        if hi is not None:
            bad |= values > hi
    if bad.any():
        row, col = (int(x[0]) for x in np.nonzero(bad))
        where = f"{path}:{row + 2} [{columns[col]}]"
        limits = f" in [{lo}, {hi}]" if lo is not None or hi is not None else ""
        raise UserError(f"{where}: {frame[columns[col]].iloc[row]!r} is not a finite number{limits}; {fix}")
    return values
