"""The ``spec`` command: the competition file's reference, and a competition with its defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from mtlkaggle.cli.options import DataDir, console, print_json, user_errors


@user_errors
def spec(
    comp: Annotated[
        str | None, typer.Argument(help="A competition to print with every default filled in (JSON).")
    ] = None,
    reference: Annotated[
        bool, typer.Option("--reference", help="Print every field of the competition file as markdown.")
    ] = False,
    readme: Annotated[
        Path | None,
        typer.Option(help="With --reference: rewrite this file's generated reference block instead."),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Document the competition file: `--reference` prints every field (type, default, one line),
    generated from the spec's models; `--reference --readme README.md` updates the README's copy.
    With COMP, print that competition as loaded, defaults included."""
    from mtlkaggle.errors import UserError

    if reference:
        from mtlkaggle.spec.reference import spec_reference, update_readme

        if readme is None:
            typer.echo(spec_reference(), nl=False)  # markdown, not rich markup: printed verbatim
            return
        changed = update_readme(readme)
        state = "updated" if changed else "already up to date"
        console.print(f"[green]ok[/]: {escape(str(readme))} {state}")
        return
    if comp is None:
        raise UserError("pass COMP to print a competition, or --reference for the field reference")
    from mtlkaggle.spec import load_spec

    print_json(load_spec(comp, data_dir).model_dump(mode="json"))
