"""Rich progress bars with throughput and ETA, shared by every long-running stage."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from mtlkaggle.console import make_console


class _RateColumn(ProgressColumn):
    """Items per second, with the unit the task names (``img/s``)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        unit = task.fields.get("unit", "it")
        return Text(f"{speed:,.1f} {unit}/s" if speed else f"- {unit}/s", style="progress.data.speed")


def make_progress(console: Console | None = None, transient: bool = False, disable: bool = False) -> Progress:
    """A progress display: description, bar, done/total, rate, elapsed, ETA and a status field.

    Drawn on stderr (stdout stays for results and JSON) and only at a terminal: piped or logged,
    the bar is off while ``progress.console.print`` lines still come through.

    Args:
        console: Where to draw (default: stderr).
        transient: Remove the bar when done.
        disable: Draw nothing (ranks other than 0); the interface stays the same.
    """
    console = console or make_console(stderr=True)
    return Progress(
        TextColumn("{task.description}", style="bold", markup=False),  # plain text: fold and file names
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}", markup=False),
        console=console,
        transient=transient,
        disable=disable or not console.is_terminal,
    )
