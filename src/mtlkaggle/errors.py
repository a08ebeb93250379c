"""The exceptions and problem records every layer may import (it imports nothing of mtlkaggle)."""

from __future__ import annotations

from dataclasses import dataclass


class UserError(Exception):
    """A problem the user can fix: bad input, missing file, wrong option.

    The CLI prints its message as one line and exits non-zero, without a traceback.
    The message should say what is wrong, where, and how to fix it.
    """


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
