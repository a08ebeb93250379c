"""The ``mtlkaggle`` command line: parse, load the spec, call one stage, print a table.

Heavy imports (torch, timm, kaggle) happen inside command bodies so ``--help`` is fast.
"""

from __future__ import annotations

import functools
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mtlkaggle.errors import UserError

app = typer.Typer(
    name="mtlkaggle",
    help="Multi-task image pipeline for Kaggle: folds, multi-head training, TTA ensembles, submissions.\n\n"
    "COMP is a competition name under competition/ (e.g. deepfashion, demo) or a path to a .toml.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

Comp = Annotated[str, typer.Argument(help="Competition name under competition/ or path to a .toml file.")]
DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="Folder holding the data (overrides the spec's data_dir).")
]


class _Place(str, Enum):
    auto = "auto"
    cpu = "cpu"
    device = "device"


AugmentOn = Annotated[
    _Place | None,
    typer.Option(
        help="Decode and augment in CPU workers (albumentations) or batched on the training device "
        "(default: the spec's [augment] on, auto = device on CUDA)."
    ),
]


def _user_errors(fn):
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
    """Rank 0 under torchrun, or a plain process."""
    import os

    return os.environ.get("RANK", "0") == "0"


@app.command()
@_user_errors
def demo(
    comp: Annotated[str, typer.Argument(help="The demo competition to draw.")] = "demo",
    n_train: Annotated[int, typer.Option(help="Training images to draw.", min=10)] = 1600,
    n_test: Annotated[int, typer.Option(help="Test images to draw.", min=1)] = 400,
    image_size: Annotated[int, typer.Option(help="Side of the square JPEGs, in pixels.", min=16)] = 96,
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
    table = Table(title=f"demo '{spec.name}' written")
    table.add_column("split")
    table.add_column("file")
    for split, path in written.items():
        table.add_row(split, str(path))
    console.print(table)


@app.command()
@_user_errors
def check(
    comp: Comp,
    data_dir: DataDir = None,
    images: Annotated[bool, typer.Option(help="Open and fully decode every image.")] = True,
    max_problems: Annotated[int, typer.Option(help="Problems to list before summarizing.")] = 50,
) -> None:
    """Validate a competition's data without changing anything.

    Reads every label file (columns, ids, labels in range, NaN targets, paths that escape the
    data folder) and decodes every image (missing, unreadable, truncated). Prints a summary of
    rows and class counts; lists each bad row and exits 1 when anything is wrong.
    """
    from mtlkaggle.check import check_dataset
    from mtlkaggle.spec import load_spec

    spec = load_spec(comp, data_dir)
    report = check_dataset(spec, open_images=images)
    console.print(_summary_table(spec, report))
    warnings = [p for p in report.problems if not p.fatal]
    problems = [p for p in report.problems if p.fatal]
    for warning in warnings[:max_problems]:
        err_console.print(f"[yellow]![/] {warning}", highlight=False, soft_wrap=True)
    if report.ok:
        skipped = f", {len(warnings)} skipped (listed above)" if warnings else ""
        console.print(f"[green]ok[/]: {report.images_checked} images opened, no problems found{skipped}")
        return
    for problem in problems[:max_problems]:
        err_console.print(f"[red]✗[/] {problem}", highlight=False, soft_wrap=True)
    more = len(problems) - max_problems
    if more > 0:
        err_console.print(f"... and {more} more")
    err_console.print(f"[bold red]{len(problems)} problem(s)[/] in '{spec.name}'; nothing was modified")
    raise typer.Exit(1)


def _summary_table(spec, report) -> Table:
    table = Table(title=f"{spec.name}: label files")
    table.add_column("split")
    table.add_column("rows", justify="right")
    for task in spec.tasks:
        table.add_column(f"{task.name} ({task.kind})", overflow="fold")
    for split, labels in report.tables.items():
        cells = []
        for task in spec.tasks:
            y = labels.targets.get(task.name)
            cells.append("-" if y is None or not len(y) else _describe_target(task, y))
        table.add_row(split, str(len(labels)), *cells)
    return table


def _describe_target(task, y) -> str:
    import numpy as np

    if task.kind == "regression":
        return f"mean {y.mean():.2f}, min {y.min():.2f}, max {y.max():.2f}"
    counts = np.bincount(y, minlength=task.size) if task.kind == "multiclass" else y.sum(axis=0)
    return " ".join(f"{n}={int(c)}" for n, c in zip(task.label_names, counts, strict=True))


@app.command()
@_user_errors
def folds(
    comp: Comp,
    n_splits: Annotated[
        int | None, typer.Option(help="Number of folds (default: the spec's train.n_splits).", min=2)
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for the shuffle.")] = 42,
    group_column: Annotated[
        str | None, typer.Option(help="Column of the train file whose groups must stay in one fold.")
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Split the training rows into stratified folds and write folds/COMP.csv.

    One multiclass task: StratifiedKFold. Multi-label, or several tasks: iterative
    stratification over every class and label at once. Regression targets are binned.
    """
    from mtlkaggle.data import read_split
    from mtlkaggle.folds import FoldConfig, fold_label_counts, folds_path, make_folds, write_folds
    from mtlkaggle.spec import load_spec

    spec = load_spec(comp, data_dir)
    table = read_split(spec, "train")
    config = FoldConfig(n_splits or spec.train.n_splits, seed, group_column)
    frame = make_folds(spec, table, config)
    path = folds_path(spec)
    write_folds(frame, path)
    counts = fold_label_counts(spec, table, frame["fold"].to_numpy())
    console.print(_counts_table(counts, f"{spec.name}: {config.n_splits} folds -> {path}"))


def _counts_table(counts, title: str) -> Table:
    """One row per class/label, one column per fold, and the worst deviation from 1/K."""
    table = Table(title=title)
    table.add_column("task:label")
    for k in counts["fold"]:
        table.add_column(f"fold {k}", justify="right")
    table.add_column("max dev. from 1/K", justify="right")
    n_folds = len(counts)
    for name in counts.columns[1:]:
        values = counts[name].to_numpy()
        total = values.sum()
        dev = abs(values / total - 1 / n_folds).max() if total else 0.0
        table.add_row(name, *(str(int(v)) for v in values), f"{dev:.1%}")
    return table


@app.command()
@_user_errors
def train(
    comp: Comp,
    fold: Annotated[
        str, typer.Option(help="Fold number, 'all', or 'val' (the spec's fixed train/val split).")
    ] = "all",
    run: Annotated[
        str,
        typer.Option(
            "--run",
            "--run-name",
            envvar="MTLKAGGLE_RUN",
            help="Run name: checkpoints go to runs/COMP/RUN/foldK/. Under torchrun spell it --run-name "
            "(torchrun's parser takes --run for its own --run-path).",
        ),
    ] = "main",
    jobs: Annotated[
        int,
        typer.Option(
            help="Folds trained at once, one process each (cuda:0..N-1; on CPU the cores are shared out).",
            min=1,
        ),
    ] = 1,
    epochs: Annotated[int | None, typer.Option(help="Epochs per fold.")] = None,
    backbone: Annotated[str | None, typer.Option(help="Any timm model name.")] = None,
    img_size: Annotated[int | None, typer.Option(help="Training and evaluation image side, pixels.")] = None,
    batch_size: Annotated[
        int | None, typer.Option(help="Images per optimizer step (before accumulation).")
    ] = None,
    accumulate: Annotated[int | None, typer.Option(help="Batches per optimizer step.")] = None,
    lr: Annotated[
        float | None, typer.Option(help="Peak learning rate of the heads (backbone: x backbone_lr_mult).")
    ] = None,
    scheduler: Annotated[str | None, typer.Option(help="cosine (with warmup) or plateau (/10).")] = None,
    weighting: Annotated[
        str | None, typer.Option(help="Loss balancing: fixed, uncertainty or learned.")
    ] = None,
    early_freeze: Annotated[
        int | None,
        typer.Option(help="Freeze shared layers + a task's head once its val loss stalls this many epochs."),
    ] = None,
    early_stopping: Annotated[
        int | None, typer.Option(help="Stop a fold after this many epochs without improvement.")
    ] = None,
    weights: Annotated[
        str | None, typer.Option(help="Local state dict for the backbone (timm or same-order keys).")
    ] = None,
    pretrained: Annotated[
        bool | None, typer.Option("--pretrained/--no-pretrained", help="Start from ImageNet weights.")
    ] = None,
    amp: Annotated[
        bool | None, typer.Option("--amp/--no-amp", help="Mixed precision on CUDA (bf16, else fp16).")
    ] = None,
    ema: Annotated[
        bool | None, typer.Option("--ema/--no-ema", help="Keep and evaluate an EMA of the weights.")
    ] = None,
    compile: Annotated[
        bool | None, typer.Option("--compile/--no-compile", help="torch.compile the model.")
    ] = None,
    num_workers: Annotated[
        int | None, typer.Option(help="DataLoader worker processes (default: usable CPUs - 1, at most 16).")
    ] = None,
    augment_on: AugmentOn = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed for init, data order, augmentation and dropout.")
    ] = None,
    device: Annotated[
        str | None, typer.Option(help="cuda, cuda:1, cpu (default: cuda when available).")
    ] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue interrupted folds from last.pt; finished folds are kept.")
    ] = False,
    overwrite: Annotated[
        bool, typer.Option(help="Start again even where a fold already has checkpoints.")
    ] = False,
    skip_bad_images: Annotated[
        bool, typer.Option(help="Skip (and count) unreadable images instead of stopping.")
    ] = False,
    data_dir: DataDir = None,
) -> None:
    """Fine-tune a shared timm backbone with one head per task, one model per fold.

    Defaults come from the competition file's \\[train] section; options override single fields.
    Each fold writes best.pt, last.pt, metrics.csv, oof.csv and config.json under runs/COMP/RUN/.

    Several GPUs on one model: torchrun --nproc-per-node N -m mtlkaggle train COMP --fold K
    (DDP; --batch-size is the batch of all processes together). Several folds at once: --jobs N.
    """
    from mtlkaggle.engine.runtime import resolve_device
    from mtlkaggle.paths import RunLayout
    from mtlkaggle.spec import load_spec, with_train_overrides
    from mtlkaggle.train import TrainOptions, run_training

    resolve_device(device)  # a bad --device fails before any data or model is loaded

    spec = with_train_overrides(
        load_spec(comp, data_dir),
        epochs=epochs,
        backbone=backbone,
        img_size=img_size,
        batch_size=batch_size,
        accumulate=accumulate,
        lr=lr,
        scheduler=scheduler,
        weighting=weighting,
        early_freeze=early_freeze,
        early_stopping=early_stopping,
        weights=weights,
        pretrained=pretrained,
        amp=amp,
        ema=ema,
        compile=compile,
        num_workers=num_workers,
        seed=seed,
    )
    if augment_on is not None:
        spec = spec.model_copy(update={"augment": spec.augment.model_copy(update={"on": augment_on.value})})
    options = TrainOptions(
        run_dir=RunLayout.of(spec.name, run).dir,
        device=device,
        resume=resume,
        overwrite=overwrite,
        skip_bad_images=skip_bad_images,
    )
    outcome = run_training(spec, fold, options, jobs)
    if not outcome.is_main:
        return
    console.print(_scores_table(outcome.summary, f"{spec.name}: run '{run}', best epoch of each fold"))
    if outcome.thresholds is not None:
        console.print(_thresholds_table(outcome.thresholds, options.run_dir))


@app.command()
@_user_errors
def tune(
    comp: Comp,
    run: Annotated[str, typer.Option(help="Run whose out-of-fold predictions to tune on.")] = "main",
    data_dir: DataDir = None,
) -> None:
    """Tune per-label thresholds of multi-label tasks on out-of-fold probabilities.

    Coordinate ascent for Kaggle's Mean F1 (F1 per row, averaged), exact per-label search for
    macro F1. Writes runs/COMP/RUN/thresholds.json with the OOF score at 0.5, with one global
    threshold and with per-label thresholds. `train --fold all` runs this automatically.
    """
    from mtlkaggle.paths import RunLayout
    from mtlkaggle.spec import load_spec
    from mtlkaggle.thresholds import tune_run

    spec = load_spec(comp, data_dir)
    run_dir = RunLayout.of(spec.name, run).dir
    console.print(_thresholds_table(tune_run(spec, run_dir), run_dir))


def _thresholds_table(results, run_dir: Path) -> Table:
    from mtlkaggle.paths import RunLayout

    table = Table(title=f"out-of-fold scores -> {escape(str(RunLayout(run_dir).thresholds))}")
    for column in ("task", "metric", "at 0.5", "global", "per-label", "thresholds"):
        table.add_column(
            column, justify="right" if column not in ("task", "metric", "thresholds") else "left"
        )
    for name, r in results.items():
        label = f"{r.scores['per_label']:.4f}"
        if "per_label+at_least_one" in r.scores:
            label += f" ({r.scores['per_label+at_least_one']:.4f} with at-least-one)"
        table.add_row(
            name,
            r.metric,
            f"{r.scores['0.5']:.4f}",
            f"{r.scores['global']:.4f} @ {r.global_threshold:.2f}",
            label,
            " ".join(f"{t:.2f}" for t in r.thresholds),
        )
    return table


@app.command()
@_user_errors
def predict(
    comp: Comp,
    run: Annotated[str, typer.Option(help="Run whose fold checkpoints to ensemble.")] = "main",
    folds: Annotated[
        str | None, typer.Option(help="Comma-separated folds (default: every trained fold).")
    ] = None,
    tta: Annotated[
        bool, typer.Option("--tta/--no-tta", help="Average over the spec's TTA views too.")
    ] = False,
    views: Annotated[
        str | None, typer.Option(help="TTA views instead of the spec's: hflip,vflip,zoom:1.15,hflip+zoom:0.9")
    ] = None,
    out_dir: Annotated[Path | None, typer.Option(help="Where to write (default: submissions/COMP).")] = None,
    device: Annotated[str | None, typer.Option(help="cuda, cpu (default: cuda when available).")] = None,
    num_workers: Annotated[
        int | None, typer.Option(help="DataLoader worker processes (default: usable CPUs - 1, at most 16).")
    ] = None,
    augment_on: AugmentOn = None,
    data_dir: DataDir = None,
) -> None:
    """Predict the test set with the fold ensemble (x TTA) and write the submission files.

    Multiclass tasks take the argmax of the averaged probabilities; multi-label tasks use the
    thresholds tuned on out-of-fold predictions (tuned now if missing). Every file is validated
    against the test file before it is written, atomically, with probabilities.csv and config.json.
    """
    from mtlkaggle.engine.runtime import resolve_device
    from mtlkaggle.paths import RunLayout, submissions_dir
    from mtlkaggle.predict import PredictOptions, run_predict
    from mtlkaggle.spec import load_spec

    resolve_device(device)
    spec = load_spec(comp, data_dir)
    options = PredictOptions(
        run_dir=RunLayout.of(spec.name, run).dir,
        out_dir=out_dir or submissions_dir(spec.name),
        folds=folds.split(",") if folds else None,
        tta=tta,
        views=views.split(",") if views else None,
        device=device,
        num_workers=num_workers,
        augment_on=augment_on.value if augment_on else spec.augment.on,
    )
    ensemble, written = run_predict(spec, options)
    table = Table(
        title=f"{spec.name}: {len(ensemble.folds)} fold(s) x {len(ensemble.views)} view(s) "
        f"({', '.join(ensemble.views)})"
    )
    table.add_column("file")
    table.add_column("rows", justify="right")
    for path in written:
        table.add_row(str(path), str(len(ensemble.ids)))
    console.print(table)


@app.command()
@_user_errors
def evaluate(
    comp: Comp,
    submission_dir: Annotated[Path, typer.Argument(help="Folder holding the submission files.")],
    labels: Annotated[Path | None, typer.Option(help="Label file (default: the spec's test_labels).")] = None,
    data_dir: DataDir = None,
) -> None:
    """Score submission files with the spec's metrics against a label file."""
    from mtlkaggle.evaluate import evaluate_submissions
    from mtlkaggle.spec import load_spec

    spec = load_spec(comp, data_dir)
    scores = evaluate_submissions(spec, submission_dir, labels)
    console.print(
        _frame_table(scores, f"{spec.name}: {submission_dir} scored against {labels or 'test labels'}")
    )
    _print_task_means(scores)


@app.command()
@_user_errors
def submit(
    comp: Comp,
    message: Annotated[str, typer.Option(help="Submission description shown on Kaggle.")] = "mtlkaggle",
    submission_dir: Annotated[Path | None, typer.Option(help="Default: submissions/COMP.")] = None,
    dry_run: Annotated[
        bool, typer.Option(help="Validate and show what would be sent; upload nothing.")
    ] = False,
    data_dir: DataDir = None,
) -> None:
    """Validate every submission file, then upload each to its Kaggle competition.

    Uses the official kaggle client: credentials from KAGGLE_USERNAME/KAGGLE_KEY,
    KAGGLE_API_TOKEN or ~/.kaggle/kaggle.json. Exits non-zero with Kaggle's message when an upload
    is refused.
    """
    from mtlkaggle.paths import submissions_dir
    from mtlkaggle.spec import load_spec
    from mtlkaggle.submit import submit_files

    spec = load_spec(comp, data_dir)
    uploads = submit_files(spec, submission_dir or submissions_dir(spec.name), message, dry_run)
    table = Table(title=f"{spec.name}: {'dry run, nothing sent' if dry_run else 'submitted'}")
    for column in ("file", "competition", "ref", "message"):
        table.add_column(column)
    for u in uploads:
        table.add_row(str(u.file), u.competition, u.ref or "-", u.message)
    console.print(table)


@app.command()
@_user_errors
def download(comp: Comp, data_dir: DataDir = None) -> None:
    """Download the competition's data with the kaggle client and unzip it into data_dir.

    Archive members that would land outside data_dir (absolute paths, '..', links) are refused
    before anything is extracted.
    """
    from mtlkaggle.spec import load_spec
    from mtlkaggle.submit import download_competition

    spec = load_spec(comp, data_dir)
    names = download_competition(spec, spec.data_path)
    console.print(f"[green]ok[/]: {len(names)} files extracted into {spec.data_path}")


@app.command()
@_user_errors
def report(
    comp: Comp,
    run: Annotated[str, typer.Option(help="Run to report on.")] = "main",
    out_dir: Annotated[Path | None, typer.Option(help="Default: reports/COMP/RUN.")] = None,
    data_dir: DataDir = None,
) -> None:
    """Write a run's report: figures (class distributions, training curves, confusion matrices,
    per-label F1, regression errors) and report.md with per-fold and mean scores.

    Prints the score table and the folder's path.
    """
    from mtlkaggle.paths import RunLayout, report_dir
    from mtlkaggle.report import make_report
    from mtlkaggle.spec import load_spec

    spec = load_spec(comp, data_dir)
    out = out_dir or report_dir(spec.name, run)
    written = make_report(spec, RunLayout.of(spec.name, run).dir, out)
    console.print(_scores_table(written.scores, f"{spec.name}: run '{run}', best epoch of each fold"))
    console.print(f"report: {out / 'report.md'} ({len(written.figures)} figures)")


def _scores_table(frame, title: str) -> Table:
    """Per-fold scores with one row per metric and one column per fold (names stay readable)."""
    table = Table(title=title)
    table.add_column("metric")
    for fold in frame["fold"]:
        table.add_column(f"fold {fold}" if fold != "mean" else "mean", justify="right")
    for column in frame.columns[1:]:
        cells = [f"{v:.4f}" if isinstance(v, float) else ("" if v is None else str(v)) for v in frame[column]]
        table.add_row(column, *cells)
    return table


def _print_task_means(scores) -> None:
    """With several tasks, the mean of each metric over the tasks that report it."""
    if scores["task"].nunique() < 2:
        return
    means = scores.groupby("metric", sort=False)["score"].agg(["mean", "count"])
    for metric, row in means.iterrows():
        if row["count"] > 1:
            console.print(f"mean {metric} over {int(row['count'])} tasks: {row['mean']:.4f}")


def _frame_table(frame, title: str) -> Table:
    """A pandas frame as a rich table, floats to 4 decimals."""
    table = Table(title=title)
    for column in frame.columns:
        table.add_column(str(column), justify="right")
    for row in frame.itertuples(index=False):
        table.add_row(*(f"{v:.4f}" if isinstance(v, float) else str(v) for v in row))
    return table


def main() -> None:  # pragma: no cover - console-script entry point
    """Entry point for ``python -m mtlkaggle``."""
    app()
