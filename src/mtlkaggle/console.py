"""The rich consoles every command prints through: for people at a terminal, for scripts in a pipe.

At a terminal, output fits the window. Piped to a file, ``cat`` or a CI log, a console has no
width to fit, and rich's default of 80 columns would cut file names and drop table columns into
ellipses; there the console is as wide as the content (up to :data:`PIPE_WIDTH` columns).
"""

from __future__ import annotations

from rich.console import Console, ConsoleDimensions

PIPE_WIDTH = 1000


class _PipeFriendlyConsole(Console):
    """A Console that is :data:`PIPE_WIDTH` columns wide when it does not write to a terminal."""

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        if self._width is None and not self.is_terminal:
            return ConsoleDimensions(PIPE_WIDTH, size.height)
        return size

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size


def make_console(stderr: bool = False) -> Console:
    """A console on stdout (or stderr) that keeps every table column when output is not a terminal.

    The stream is looked up at each print, so a console made at import time follows later
    redirections of ``sys.stdout``/``sys.stderr`` (as Typer's test runner does).
    """
    return _PipeFriendlyConsole(stderr=stderr)
