"""Data commands: draw the demo, install a template, download, check the data, split folds."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from mtlkaggle.cli.options import Comp, DataDir, Json, console, err_console, print_json, user_errors
from mtlkaggle.cli.tables import check_summary_table, fold_counts_table, titled


@user_errors
def demo(
    comp: Annotated[str, typer.Argument(help="The demo competition to draw.")] = "demo",
    n_train: Annotated[int, typer.Option(help="Training images to draw.", min=10)] = 1200,
    n_test: Annotated[int, typer.Option(help="Test images to draw.", min=1)] = 400,
    image_size: Annotated[int, typer.Option(help="Side of the square JPEGs, in pixels.", min=16)] = 64,
    seed: Annotated[int, typer.Option(help="Seed: the same seed draws the same data set.")] = 0,
    data_dir: DataDir = None,
) -> None:
    """Draw the built-in demo competition (garment shapes in the DeepFashion file format).

    Writes images, train.csv, test.csv (no labels) and test_labels.csv (kept apart for local
    scoring) under the demo spec's data_dir.
    """
    from mtlkaggle.demo import DemoConfig, make_demo
    from mtlkaggle.spec import load_spec

    spec = load_spec(comp, data_dir)
    written = make_demo(spec, DemoConfig(n_train, n_test, image_size, seed))
    table = titled(f"demo '{escape(spec.name)}' written")
    table.add_column("split")
    table.add_column("file")
    for split, path in written.items():
        table.add_row(escape(split), escape(str(path)))
    console.print(table)


@user_errors
def check(
    comp: Comp,
    data_dir: DataDir = None,
    images: Annotated[bool, typer.Option(help="Open and fully decode every image.")] = True,
    max_problems: Annotated[int, typer.Option(help="Problems to list before summarizing.")] = 50,
    as_json: Json = False,
) -> None:
    """Validate a competition's data without changing anything.

    Reads every label file (columns, ids, labels in range, NaN targets, paths that escape the
    data folder) and decodes every image (missing, unreadable, truncated). Prints a summary of
    rows and class counts; lists each bad row and exits 1 when anything is wrong.
    """
    from mtlkaggle.check import check_dataset, report_json
    from mtlkaggle.spec import load_spec

    spec = load_spec(comp, data_dir)
    report = check_dataset(spec, open_images=images)
    if as_json:
        print_json(report_json(spec, report))
        if not report.ok:
            raise typer.Exit(1)
        return
    console.print(check_summary_table(spec, report, _describe_target))
    warnings = [p for p in report.problems if not p.fatal]
    problems = [p for p in report.problems if p.fatal]
    for warning in warnings[:max_problems]:
        err_console.print(f"[yellow]![/] {escape(str(warning))}", highlight=False, soft_wrap=True)
    if report.ok:
        skipped = f", {len(warnings)} skipped (listed above)" if warnings else ""
        console.print(f"[green]ok[/]: {report.images_checked} images opened, no problems found{skipped}")
        return
    for problem in problems[:max_problems]:
        err_console.print(f"[red]✗[/] {escape(str(problem))}", highlight=False, soft_wrap=True)
    more = len(problems) - max_problems
    if more > 0:
        err_console.print(f"... and {more} more")
    err_console.print(
        f"[bold red]{len(problems)} problem(s)[/] in '{escape(spec.name)}'; nothing was modified"
    )
    raise typer.Exit(1)


def _describe_target(task, y) -> str:
    from mtlkaggle.check import target_counts

    counts = target_counts(task, y)
    if task.kind == "regression":
        return f"mean {counts['mean']:.2f}, min {counts['min']:.2f}, max {counts['max']:.2f}"
    return " ".join(f"{n}={c}" for n, c in counts.items())


@user_errors
def folds(
    comp: Comp,
    n_splits: Annotated[
        int | None, typer.Option(help="Number of folds (default: the spec's train.n_splits).", min=2)
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for the shuffle.")] = 42,
    group_column: Annotated[
        str | None,
        typer.Option(
            help="Column of the train file whose groups stay in one fold (default: data.group_column)."
        ),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Split the training rows into stratified folds and write folds/COMP.csv.

    One task with a single target column (multiclass, binary, one label, binned regression):
    StratifiedKFold (StratifiedGroupKFold when grouped). Multi-label, or several tasks: iterative
    stratification over every class and label at once. Groups (data.group_column or
    --group-column) never span two folds; the folds file records the group column.
    """
    from mtlkaggle.data import read_split
    from mtlkaggle.folds import FoldConfig, fold_label_counts, folds_path, make_folds, write_folds
    from mtlkaggle.spec import load_spec

    spec = load_spec(comp, data_dir)
    table = read_split(spec, "train")
    config = FoldConfig(n_splits or spec.train.n_splits, seed, group_column or spec.data.group_column)
    frame = make_folds(spec, table, config)
    path = folds_path(spec)
    write_folds(frame, path)
    counts = fold_label_counts(spec, table, frame["fold"].to_numpy())
    grouped = f" grouped by '{config.group_column}'" if config.group_column else ""
    title = f"{escape(spec.name)}: {config.n_splits} folds{escape(grouped)} -> {escape(str(path))}"
    console.print(fold_counts_table(counts, title))


@user_errors
def init(
    template: Annotated[
        str, typer.Argument(help="A packaged template (see `mtlkaggle init --list`).")
    ] = "demo",
    name: Annotated[
        str | None, typer.Argument(help="The new competition's name (default: TEMPLATE).")
    ] = None,
    list_: Annotated[bool, typer.Option("--list", help="List the packaged templates and exit.")] = False,
    force: Annotated[bool, typer.Option(help="Replace an existing competition/NAME.toml.")] = False,
) -> None:
    """Copy a packaged competition template into ./competition/NAME.toml for you to edit."""
    from mtlkaggle.spec import copy_template, packaged_specs

    if list_:
        for path in packaged_specs():
            console.print(path.stem)
        return
    path = copy_template(template, name, force)
    console.print(f"[green]ok[/]: {escape(str(path))} (from the packaged template '{escape(template)}')")


@user_errors
def download(comp: Comp, data_dir: DataDir = None) -> None:
    """Download the competition's data with the kaggle client and unzip it into data_dir.

    Archive members that would land outside data_dir (absolute paths, '..', links) are refused
    before anything is extracted.
    """
    from mtlkaggle.spec import load_spec
    from mtlkaggle.submit import download_competition

    spec = load_spec(comp, data_dir)
    names = download_competition(spec, spec.data_path)
    console.print(f"[green]ok[/]: {len(names)} files extracted into {escape(str(spec.data_path))}")
