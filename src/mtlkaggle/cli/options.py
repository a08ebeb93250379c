"""What every command shares: the consoles, common option types, ``--json`` output, list options
and the guard that turns a :class:`~mtlkaggle.errors.UserError` into one line and exit code 2."""

from __future__ import annotations

import functools
import json
import math
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from mtlkaggle.console import make_console
from mtlkaggle.errors import UserError

# Piped or logged, tables keep every column (see mtlkaggle.console); progress bars go to stderr.
console = make_console()
err_console = make_console(stderr=True)

Comp = Annotated[str, typer.Argument(help="Competition name under competition/ or path to a .toml file.")]
DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="Folder holding the data (overrides the spec's data_dir).")
]
NumWorkers = Annotated[
    int | None,
    typer.Option(help="DataLoader worker processes (default: usable CPUs - 1, at most 16).", min=0),
]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON object (for scripts) instead of tables.")]


class Place(str, Enum):
    """Where images are decoded and augmented."""

    auto = "auto"
    cpu = "cpu"
    device = "device"


AugmentOn = Annotated[
    Place | None,
    typer.Option(
        help="Decode and augment in CPU workers (albumentations) or batched on the training device "
        "(default: the spec's \\[augment] on, auto = device on CUDA)."
    ),
]


def print_json(obj) -> None:
    """One JSON object on stdout, not through rich (no markup, no wrapping); NaN becomes null."""

    def clean(value):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {str(k): clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        return value

    typer.echo(json.dumps(clean(obj), indent=2, default=str))


def parse_list(
    text: str | None, option: str, noun: str, cast: type = str, unique: bool = True
) -> list | None:
    """A comma-separated option (``--folds 0,1,full``, ``--seeds 0,1,2``) as a list; None stays None.

    The one check every list option goes through: no empty item, each item of type ``cast``, and
    (``unique``) no value named twice (``--folds 0,0`` would weigh fold 0 double).

    Raises:
        UserError: naming the option and the offending value.
    """
    if text is None:
        return None
    parts = [part.strip() for part in text.split(",")]
    if not any(parts):
        raise UserError(f"{option}: give at least one {noun}, e.g. {option} 0,1,2")
    if not all(parts):
        raise UserError(f"{option} {text}: an empty {noun} name; list each {noun} once, e.g. {option} 0,1,2")
    try:
        values = [cast(part) for part in parts]
    except ValueError:
        raise UserError(f"{option} {text!r}: expected comma-separated {cast.__name__}s, e.g. 0,1,2") from None
    repeated = [v for k, v in enumerate(values) if v in values[:k]]
    if unique and repeated:
        raise UserError(f"{option} {text}: {noun} {repeated[0]} named twice; list each {noun} once")
    return values


def user_errors(fn):
    """Turn a UserError into one red line on stderr and exit code 2 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as e:
            if _is_main_process():  # under torchrun every rank fails alike; one line is enough
                err_console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
            sys.exit(2)

    return wrapper


def _is_main_process() -> bool:
    """Rank 0 under torchrun, or a plain process (engine.runtime's reading of RANK)."""
    from mtlkaggle.engine.runtime import env_rank

    try:
        return env_rank()[0] == 0
    except UserError:  # a RANK that is not a number: say it once, from any process
        return True
