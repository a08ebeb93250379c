"""The ``mtlkaggle`` command line: parse, load the spec, call one stage, print a table.

Heavy imports (torch, timm, kaggle) happen inside command bodies so ``--help`` is fast.
"""

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
from rich.table import Table

from mtlkaggle.console import make_console
from mtlkaggle.errors import UserError

app = typer.Typer(
    name="mtlkaggle",
    help="Multi-task image pipeline for Kaggle: folds, multi-head training, TTA ensembles, submissions.\n\n"
    "COMP is a competition name under competition/ (e.g. deepfashion, demo) or a path to a .toml.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
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


def _print_json(obj) -> None:
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
    table = Table(title=f"demo '{escape(spec.name)}' written")
    table.add_column("split")
    table.add_column("file")
    for split, path in written.items():
        table.add_row(escape(split), escape(str(path)))
    console.print(table)


@app.command()
@_user_errors
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
    from mtlkaggle.check import check_dataset
    from mtlkaggle.spec import load_spec

    spec = load_spec(comp, data_dir)
    report = check_dataset(spec, open_images=images)
    if as_json:
        _print_json(_check_json(spec, report))
        if not report.ok:
            raise typer.Exit(1)
        return
    console.print(_summary_table(spec, report))
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


def _check_json(spec, report) -> dict:
    """``check --json``: the splits' rows and label counts, and every problem with its place."""
    splits = {
        split: {
            "file": str(labels.file),
            "rows": len(labels),
            "targets": {
                task.name: _target_counts(task, labels.targets[task.name])
                for task in spec.tasks
                if labels.targets.get(task.name) is not None and len(labels.targets[task.name])
            },
        }
        for split, labels in report.tables.items()
    }
    problems = [
        {"file": p.file, "line": p.line, "column": p.column, "message": p.message, "fatal": p.fatal}
        for p in report.problems
    ]
    return {
        "competition": spec.name,
        "ok": report.ok,
        "images_checked": report.images_checked,
        "splits": splits,
        "problems": problems,
    }


def _summary_table(spec, report) -> Table:
    table = Table(title=f"{escape(spec.name)}: label files")
    table.add_column("split")
    table.add_column("rows", justify="right")
    for task in spec.tasks:
        table.add_column(escape(f"{task.name} ({task.kind})"), overflow="fold")
    for split, labels in report.tables.items():
        cells = []
        for task in spec.tasks:
            y = labels.targets.get(task.name)
            cells.append("-" if y is None or not len(y) else escape(_describe_target(task, y)))
        table.add_row(escape(split), str(len(labels)), *cells)
    return table


def _target_counts(task, y) -> dict[str, float]:
    """Rows per class (multiclass), rows per label (multi-label), or mean/min/max (regression)."""
    import numpy as np

    if task.kind == "regression":
        return {"mean": float(y.mean()), "min": float(y.min()), "max": float(y.max())}
    counts = np.bincount(y, minlength=task.size) if task.kind == "multiclass" else y.sum(axis=0)
    return {n: int(c) for n, c in zip(task.label_names, counts, strict=True)}


def _describe_target(task, y) -> str:
    counts = _target_counts(task, y)
    if task.kind == "regression":
        return f"mean {counts['mean']:.2f}, min {counts['min']:.2f}, max {counts['max']:.2f}"
    return " ".join(f"{n}={c}" for n, c in counts.items())


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
    title = f"{escape(spec.name)}: {config.n_splits} folds -> {escape(str(path))}"
    console.print(_counts_table(counts, title))


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
        table.add_row(escape(str(name)), *(str(int(v)) for v in values), f"{dev:.1%}")
    return table


@app.command()
@_user_errors
def train(
    comp: Comp,
    fold: Annotated[
        str,
        typer.Option(
            help="Fold number, 'all', 'val' (the spec's fixed train/val split), or 'full' (every labelled "
            "row, no holdout, for the mean best epoch of the run's trained folds)."
        ),
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
    num_workers: NumWorkers = None,
    augment_on: AugmentOn = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed for init, data order, augmentation and dropout.")
    ] = None,
    seeds: Annotated[
        str | None,
        typer.Option(
            help="Seed ensemble, e.g. 0,1,2: one run per seed under runs/COMP/RUN/seed{S}/, then their "
            "averaged out-of-fold CV (RUN/ensemble.csv) and thresholds; predict --run RUN averages all."
        ),
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
    mix: Annotated[
        str | None,
        typer.Option(
            help="Batch mixing of images and every task's target: mixup, cutmix or none "
            "(default: the spec's [augment] mix; mix_prob, mix_alpha, mix_off_epochs there)."
        ),
    ] = None,
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
    from mtlkaggle.spec import load_spec, with_augment_overrides, with_train_overrides
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
    spec = with_augment_overrides(spec, mix=mix)
    if augment_on is not None:
        spec = spec.model_copy(update={"augment": spec.augment.model_copy(update={"on": augment_on.value})})
    options = TrainOptions(
        run_dir=RunLayout.of(spec.name, run).dir,
        device=device,
        resume=resume,
        overwrite=overwrite,
        skip_bad_images=skip_bad_images,
    )
    if seeds is not None:
        _train_seeds(spec, fold, seeds, seed, options, jobs, run)
        return
    outcome = run_training(spec, fold, options, jobs, epochs_given=epochs is not None)
    if not outcome.is_main:
        return
    if outcome.note:
        console.print(escape(outcome.note))
    title = f"{escape(spec.name)}: run '{escape(run)}', best epoch of each fold"
    console.print(_scores_table(outcome.summary, title))
    if outcome.thresholds is not None:
        console.print(_thresholds_table(outcome.thresholds, options.run_dir))


def _train_seeds(spec, fold: str, seeds: str, seed: int | None, options, jobs: int, run: str) -> None:
    from mtlkaggle.ensemble import parse_numbers, run_seeds
    from mtlkaggle.paths import RunLayout

    if seed is not None:
        raise UserError("--seed and --seeds: pass one (--seeds trains one run per seed)")
    outcome = run_seeds(spec, fold, parse_numbers(seeds, int, "--seeds"), options, jobs)
    if not outcome.is_main:
        return
    for value, summary in outcome.summaries.items():
        console.print(
            _scores_table(summary, f"{spec.name}: run '{run}/seed{value}', best epoch of each fold")
        )
    if outcome.ensemble is not None:
        where = escape(str(RunLayout(options.run_dir).ensemble))
        console.print(
            _frame_table(outcome.ensemble, f"out-of-fold CV of each seed and of their average -> {where}")
        )


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
    if RunLayout(run_dir).seed_runs():  # a `train --seeds` run: tune on the seeds' averaged OOF
        from mtlkaggle.ensemble import ensemble_oof, resolve_members, write_ensemble

        oof = ensemble_oof(spec, resolve_members(spec.name, [run]))
        write_ensemble(spec, run_dir, oof)
        console.print(_thresholds_table(oof.thresholds, run_dir))
        return
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
            escape(name),
            escape(r.metric),
            f"{r.scores['0.5']:.4f}",
            f"{r.scores['global']:.4f} @ {r.global_threshold:.2f}",
            label,
            " ".join(f"{t:.2f}" for t in r.thresholds),
        )
    return table


@app.command()
@_user_errors
def predict(
    comp: Annotated[
        str | None,
        typer.Argument(help="Competition name or .toml (not needed with --bundle)."),
    ] = None,
    run: Annotated[str, typer.Option(help="Run whose fold checkpoints to ensemble.")] = "main",
    runs: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated runs to ensemble instead of --run (any backbones and sizes); "
            "thresholds are tuned on their averaged out-of-fold probabilities."
        ),
    ] = None,
    run_weights: Annotated[
        str | None, typer.Option(help="One weight per --runs run, e.g. 2,1 (default: equal).")
    ] = None,
    folds: Annotated[
        str | None, typer.Option(help="Comma-separated folds (default: every trained fold).")
    ] = None,
    tta: Annotated[
        bool, typer.Option("--tta/--no-tta", help="Average over the spec's TTA views too.")
    ] = False,
    views: Annotated[
        str | None,
        typer.Option(
            help="TTA views instead of the spec's (needs --tta): hflip,vflip,zoom:1.15,hflip+zoom:0.9"
        ),
    ] = None,
    out_dir: Annotated[Path | None, typer.Option(help="Where to write (default: submissions/COMP).")] = None,
    device: Annotated[str | None, typer.Option(help="cuda, cpu (default: cuda when available).")] = None,
    num_workers: NumWorkers = None,
    augment_on: AugmentOn = None,
    data_dir: DataDir = None,
    bundle: Annotated[
        Path | None, typer.Option(help="An exported bundle folder: predict without competition/ or runs/.")
    ] = None,
    input: Annotated[
        Path | None,
        typer.Option("--input", help="With --bundle: a folder of images (recursive), one image, or a CSV."),
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="With --bundle --input: the CSV to write.")] = Path(
        "predictions.csv"
    ),
    path_column: Annotated[
        str | None, typer.Option(help="With --input FILE.csv: the column of image paths.")
    ] = None,
    competition_files: Annotated[
        bool,
        typer.Option(
            help="With --bundle: write the spec's submission files for the test set found under "
            "--data-dir (a Kaggle code competition's notebook)."
        ),
    ] = False,
) -> None:
    """Predict the test set with the fold ensemble (x TTA) and write the submission files.

    Multiclass tasks take the argmax of the averaged probabilities; multi-label tasks use the
    thresholds tuned on out-of-fold predictions (tuned now if missing). Every file is validated
    against the test file before it is written, atomically, with probabilities.csv and config.json.

    With --bundle DIR (from `mtlkaggle export`): --input PATH writes one CSV row per image
    (class names, indices, task:class probabilities; unreadable images listed), or
    --competition-files writes the submission files, from any folder, offline.
    """
    from mtlkaggle.engine.runtime import resolve_device
    from mtlkaggle.paths import RunLayout, submissions_dir
    from mtlkaggle.predict import PredictOptions, run_predict
    from mtlkaggle.spec import load_spec

    resolve_device(device)
    if bundle is not None:
        from mtlkaggle.bundle import BundlePredictOptions

        if comp is not None:
            raise UserError(f"predict --bundle takes no COMP ('{comp}'): the bundle holds its own spec")
        options = BundlePredictOptions(
            tta=tta,
            views=views.split(",") if views else None,
            folds=folds.split(",") if folds else None,
            device=device,
            num_workers=num_workers,
        )
        _predict_bundle(bundle, options, input, out, path_column, competition_files, data_dir, out_dir)
        return
    if comp is None:
        raise UserError("predict: name a competition (COMP), or pass --bundle DIR")
    if input is not None or competition_files:
        raise UserError("--input and --competition-files need --bundle DIR (from `mtlkaggle export`)")
    spec = load_spec(comp, data_dir)
    members = _ensemble_members(spec.name, run, runs, run_weights)
    options = PredictOptions(
        members=members,
        run_dir=members[0].run_dir if runs else RunLayout.of(spec.name, run).dir,
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
        title=f"{escape(spec.name)}: {len(ensemble.folds)} fold(s) x {len(ensemble.views)} view(s) "
        f"({escape(', '.join(ensemble.views))})"
    )
    table.add_column("file")
    table.add_column("rows", justify="right")
    for path in written:
        table.add_row(escape(str(path)), str(len(ensemble.ids)))
    console.print(table)


def _predict_bundle(bundle, options, inputs, out, path_column, competition_files, data_dir, out_dir) -> None:
    """``predict --bundle``: images to one CSV, or the competition's submission files."""
    from mtlkaggle.bundle import predict_competition, predict_images

    if (inputs is None) == (not competition_files):
        raise UserError("--bundle needs exactly one of --input PATH or --competition-files")
    if competition_files:
        done = predict_competition(bundle, data_dir, out_dir or Path("submissions"), options)
    else:
        done = predict_images(bundle, inputs, out, options, path_column)
    table = Table(
        title=f"bundle '{escape(done.bundle.spec.name)}': {len(done.bundle.folds)} fold(s) "
        f"({', '.join(done.bundle.folds)}) x {len(done.views)} view(s)"
    )
    table.add_column("file")
    table.add_column("rows", justify="right")
    table.add_column("unreadable", justify="right")
    for path in done.written:
        table.add_row(escape(str(path)), str(done.rows), str(len(done.bad)))
    console.print(table)
    for message in done.bad[:20]:  # the CSV's error column has them all
        err_console.print(f"[yellow]unreadable:[/] {escape(message)}", highlight=False, soft_wrap=True)
    if done.bad:
        err_console.print(
            f"[yellow]{len(done.bad)} of {done.rows} image(s) unreadable[/] (rows kept, 'error' set)"
        )


@app.command()
@_user_errors
def export(
    comp: Comp,
    run: Annotated[str, typer.Option(help="Run whose folds to export.")] = "main",
    folds: Annotated[
        str | None, typer.Option(help="Comma-separated folds, e.g. 0,1,2,full (default: every trained fold).")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Bundle folder (default: bundles/COMP/RUN).")] = None,
    onnx: Annotated[
        bool,
        typer.Option("--onnx/--no-onnx", help="Also write model.onnx per fold, checked with onnxruntime."),
    ] = False,
    wheel: Annotated[bool, typer.Option("--wheel/--no-wheel", help="Put the mtlkaggle wheel in.")] = True,
    upload: Annotated[
        str | None, typer.Option(help="Create or version the Kaggle dataset OWNER/SLUG with the bundle.")
    ] = None,
    message: Annotated[str, typer.Option(help="Version notes for --upload.")] = "mtlkaggle export",
    data_dir: DataDir = None,
) -> None:
    """Write a self-contained bundle: safetensors weights per fold, bundle.json, the wheel, ONNX.

    `mtlkaggle predict --bundle DIR` then works anywhere, offline; `--upload OWNER/SLUG` makes the
    bundle a Kaggle dataset for a code competition's notebook (see `mtlkaggle notebook`).
    """
    from mtlkaggle.export import ExportOptions, export_bundle
    from mtlkaggle.paths import RunLayout
    from mtlkaggle.spec import load_spec

    spec = load_spec(comp, data_dir)
    out_dir = out or Path("bundles") / spec.name / run
    options = ExportOptions(
        RunLayout.of(spec.name, run).dir, out_dir, folds.split(",") if folds else None, onnx, wheel
    )
    result = export_bundle(spec, options)
    table = Table(title=f"{spec.name}: bundle of fold(s) {', '.join(result.folds)} -> {escape(str(out_dir))}")
    table.add_column("file")
    table.add_column("bytes", justify="right")
    for path in result.files:
        table.add_row(escape(path.relative_to(out_dir).as_posix()), f"{path.stat().st_size:,}")
    console.print(table)
    for fold, diff in result.onnx_max_diff.items():
        console.print(f"fold {fold}: ONNX vs torch, max abs difference {diff:.2e} (bound 1e-4)")
    if upload:
        from mtlkaggle.kaggle_datasets import upload_bundle

        done = upload_bundle(out_dir, upload, message)
        console.print(f"[green]ok[/]: {escape(done)}")


@app.command()
@_user_errors
def notebook(
    comp: Comp,
    bundle_dataset: Annotated[
        str, typer.Option(help="The Kaggle dataset OWNER/SLUG holding the bundle (`export --upload`).")
    ],
    out: Annotated[Path | None, typer.Option(help="Notebook file (default: COMP-inference.ipynb).")] = None,
    tta: Annotated[bool, typer.Option("--tta/--no-tta", help="Predict with the spec's TTA views.")] = True,
    data_dir: DataDir = None,
) -> None:
    """Write a Kaggle notebook that installs mtlkaggle offline from the bundle dataset and writes
    submission.csv (for code competitions, where the test images exist only inside Kaggle)."""
    from mtlkaggle.notebook import NotebookOptions, write_notebook
    from mtlkaggle.spec import load_spec

    spec = load_spec(comp, data_dir)
    path = write_notebook(
        spec, NotebookOptions(bundle_dataset, out or Path(f"{spec.name}-inference.ipynb"), tta)
    )
    console.print(
        f"[green]ok[/]: {escape(str(path))} (attach the dataset {escape(bundle_dataset)} and the "
        "competition's data, internet off)"
    )


@app.command()
@_user_errors
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


def _ensemble_members(comp: str, run: str, runs: str | None, run_weights: str | None) -> tuple:
    """The runs to average: --runs, or the seeds of a `train --seeds` run (empty: --run alone)."""
    from mtlkaggle.ensemble import parse_numbers, resolve_members
    from mtlkaggle.paths import RunLayout

    if run_weights and not runs:
        raise UserError("--run-weights weighs the runs of --runs; pass --runs A,B too")
    if not runs and not RunLayout.of(comp, run).seed_runs():
        return ()
    weights = parse_numbers(run_weights, float, "--run-weights") if run_weights else None
    return tuple(resolve_members(comp, runs.split(",") if runs else [run], weights))


@app.command()
@_user_errors
def evaluate(
    comp: Comp,
    submission_dir: Annotated[Path, typer.Argument(help="Folder holding the submission files.")],
    labels: Annotated[Path | None, typer.Option(help="Label file (default: the spec's test_labels).")] = None,
    data_dir: DataDir = None,
    as_json: Json = False,
) -> None:
    """Score submission files with the spec's metrics against a label file."""
    from mtlkaggle.evaluate import evaluate_submissions
    from mtlkaggle.spec import load_spec

    spec = load_spec(comp, data_dir)
    scores = evaluate_submissions(spec, submission_dir, labels)
    if as_json:
        _print_json(
            {
                "competition": spec.name,
                "submission_dir": str(submission_dir),
                "labels": str(labels) if labels else "test_labels",
                "scores": scores.to_dict(orient="records"),
                "task_means": {m: {"mean": v, "tasks": n} for m, (v, n) in _task_means(scores).items()},
            }
        )
        return
    title = f"{spec.name}: {submission_dir} scored against {labels or 'test labels'}"
    console.print(_frame_table(scores, escape(title)))
    for metric, (mean, count) in _task_means(scores).items():
        console.print(f"mean {escape(metric)} over {count} tasks: {mean:.4f}")


@app.command()
@_user_errors
def submit(
    comp: Comp,
    message: Annotated[str, typer.Option(help="Submission description shown on Kaggle.")] = "mtlkaggle",
    submission_dir: Annotated[Path | None, typer.Option(help="Default: submissions/COMP.")] = None,
    dry_run: Annotated[
        bool, typer.Option(help="Validate and show what would be sent; upload nothing.")
    ] = False,
    wait: Annotated[
        bool,
        typer.Option("--wait/--no-wait", help="Wait until Kaggle has scored each file; print the scores."),
    ] = False,
    timeout: Annotated[
        float, typer.Option(help="With --wait: give up after this many seconds.", min=0)
    ] = 900,
    poll_interval: Annotated[
        float, typer.Option(help="With --wait: seconds between two looks at the submissions list.", min=0)
    ] = 15,
    data_dir: DataDir = None,
) -> None:
    """Validate every submission file, then upload each to its Kaggle competition.

    Uses the official kaggle client: credentials from KAGGLE_USERNAME/KAGGLE_KEY,
    KAGGLE_API_TOKEN or ~/.kaggle/kaggle.json. Exits non-zero with Kaggle's message when an upload
    is refused. Each upload is recorded in submissions/COMP/submitted.json (with the run that made
    it), which `mtlkaggle runs` shows. With --wait, exits 1 when Kaggle fails to score a file or
    the timeout passes first.
    """
    from mtlkaggle.paths import submissions_dir
    from mtlkaggle.spec import load_spec
    from mtlkaggle.submit import submit_files, wait_for_scores

    spec = load_spec(comp, data_dir)
    uploads = submit_files(spec, submission_dir or submissions_dir(spec.name), message, dry_run)
    table = Table(title=f"{escape(spec.name)}: {'dry run, nothing sent' if dry_run else 'submitted'}")
    for column in ("file", "competition", "ref", "message"):
        table.add_column(column)
    for u in uploads:
        table.add_row(escape(str(u.file)), escape(u.competition), escape(u.ref or "-"), escape(u.message))
    console.print(table)
    if not wait or dry_run:
        return
    err_console.print(f"waiting up to {timeout:g} s for Kaggle to score {len(uploads)} file(s) ...")
    scored = wait_for_scores(spec, uploads, timeout, poll_interval)
    console.print(_submissions_table(scored, f"{escape(spec.name)}: Kaggle's scores"))
    _exit_unless_scored(spec.name, scored, timeout)


def _exit_unless_scored(comp: str, scored, timeout: float) -> None:
    failed = [s for s in scored if s.status == "ERROR"]
    pending = [s for s in scored if s.pending]
    for s in failed:
        err_console.print(
            f"[bold red]error:[/] Kaggle could not score {escape(s.file)} ({escape(s.competition)}): "
            f"{escape(s.error or 'no reason given')}",
            highlight=False,
            soft_wrap=True,
        )
    if pending:
        err_console.print(
            f"[yellow]still pending after {timeout:g} s:[/] {escape(', '.join(s.file for s in pending))}; "
            f"see the scores later with `mtlkaggle submissions {escape(comp)}`",
            highlight=False,
            soft_wrap=True,
        )
    if failed or pending:
        raise typer.Exit(1)


def _submissions_table(items, title: str) -> Table:
    table = Table(title=title)
    for column in ("date", "competition", "file", "message", "status", "public", "private", "ref"):
        table.add_column(column, justify="right" if column in ("public", "private") else "left")
    for s in items:
        status = s.status if s.status != "ERROR" else f"ERROR: {s.error}"
        cells = (
            s.date,
            s.competition,
            s.file,
            s.message,
            status,
            s.public_score or "-",
            s.private_score or "-",
        )
        table.add_row(*(escape(str(c)) for c in cells), escape(s.ref))
    return table


@app.command()
@_user_errors
def submissions(
    comp: Comp,
    limit: Annotated[int, typer.Option(help="Submissions to list per Kaggle competition.", min=1)] = 20,
    data_dir: DataDir = None,
    as_json: Json = False,
) -> None:
    """List the recent submissions to the spec's Kaggle competitions, with their scores.

    Scores of submissions made with `mtlkaggle submit` are copied into
    submissions/COMP/submitted.json, where `mtlkaggle runs` finds them.
    """
    from mtlkaggle.spec import load_spec
    from mtlkaggle.submit import list_submissions

    spec = load_spec(comp, data_dir)
    listed = list_submissions(spec, limit)
    if as_json:
        _print_json({"competition": spec.name, "submissions": [s.to_json() for s in listed]})
        return
    console.print(_submissions_table(listed, f"{escape(spec.name)}: submissions on Kaggle, newest first"))


@app.command()
@_user_errors
def runs(comp: Comp, data_dir: DataDir = None, as_json: Json = False) -> None:
    """Compare every run of a competition in one table, best first by the spec's monitor.

    Per run: backbone, image size, epochs, folds trained, CV score of each metric (mean +- std
    over the numbered folds), the holdout ('val' fold) score, the test score of its files in
    submissions/COMP where test labels exist, wall time, img/s, date, and the latest
    submission's message and Kaggle public score where known.
    """
    from mtlkaggle.runs import compare_runs, metric_names
    from mtlkaggle.spec import load_spec

    spec = load_spec(comp, data_dir)
    found = compare_runs(spec)
    monitor = spec.monitor or "mean of the primary metrics"
    if as_json:
        _print_json({"competition": spec.name, "monitor": monitor, "runs": [r.to_json() for r in found]})
        return
    console.print(_runs_table(found, metric_names(spec), f"{escape(spec.name)}: runs by {escape(monitor)}"))


def _runs_table(found, metrics: list[str], title: str) -> Table:
    table = Table(title=title)
    holdout = any(r.holdout for r in found)
    test = any(r.test for r in found)
    kaggle = any(r.submission is not None for r in found)
    columns = ["run", "backbone", "img", "epochs", "folds", *(f"{m} (CV)" for m in metrics)]
    columns += ["holdout"] if holdout else []
    columns += ["test"] if test else []
    if holdout or test:
        table.caption = (
            "holdout ('val' fold) and test (submissions/COMP vs test labels): the CV columns' metrics"
        )
    columns += ["wall", "img/s", "date"] + (["submission", "Kaggle public"] if kaggle else [])
    for column in columns:
        table.add_column(escape(column), justify="left" if column in ("run", "backbone", "date") else "right")
    for r in found:
        cv = [f"{r.cv[m]['mean']:.4f} ± {r.cv[m]['std']:.4f}" if m in r.cv else "-" for m in metrics]
        cells = [r.name, r.backbone, str(r.img_size), str(r.epochs), ",".join(r.folds), *cv]
        if holdout:
            cells.append(_score_list(r.holdout, metrics))
        if test:
            cells.append(_score_list(r.test, metrics))
        cells += [_duration(r.wall_s), f"{r.img_per_s:.0f}" if r.img_per_s else "-", r.date]
        if kaggle:
            cells += [r.submission or "-", " ".join(f"{f}={v}" for f, v in r.kaggle.items()) or "-"]
        table.add_row(*(escape(c) for c in cells))
    return table


def _score_list(scores: dict[str, float], metrics: list[str]) -> str:
    return " ".join(f"{scores[m]:.4f}" if m in scores else "-" for m in metrics) if scores else "-"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


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
    console.print(f"[green]ok[/]: {len(names)} files extracted into {escape(str(spec.data_path))}")


@app.command()
@_user_errors
def report(
    comp: Comp,
    run: Annotated[str, typer.Option(help="Run to report on.")] = "main",
    runs: Annotated[
        str | None, typer.Option(help="Comma-separated runs: report their ensemble's CV instead.")
    ] = None,
    run_weights: Annotated[str | None, typer.Option(help="One weight per --runs run.")] = None,
    out_dir: Annotated[Path | None, typer.Option(help="Default: reports/COMP/RUN.")] = None,
    submission_dir: Annotated[
        Path | None,
        typer.Option(
            help="Files predicted from this run, scored when test labels exist (default: submissions/COMP)."
        ),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Write a run's report.md and figures into reports/COMP/RUN.

    Figures: class distributions, training curves, confusion matrices, per-label F1, regression
    errors. report.md: per-fold and mean scores, test (holdout) scores of the run's submission
    files when labels exist, tuned thresholds per label, time and img/s per fold, environment,
    command and configuration. Prints the score tables and the folder's path.
    """
    from mtlkaggle.paths import RunLayout, report_dir
    from mtlkaggle.report import make_report
    from mtlkaggle.spec import load_spec

    spec = load_spec(comp, data_dir)
    out = out_dir or report_dir(spec.name, runs.replace(",", "+") if runs else run)
    if runs:
        from mtlkaggle.report import make_ensemble_report

        members = list(_ensemble_members(spec.name, run, runs, run_weights))
        written = make_ensemble_report(spec, members, out)
    else:
        written = make_report(spec, RunLayout.of(spec.name, run).dir, out, submission_dir)
    if "run" in written.scores.columns:  # an ensemble: one row per member and one for the average
        title = f"{escape(spec.name)}: out-of-fold CV of each run and the ensemble"
        console.print(_frame_table(written.scores, title))
    else:
        title = f"{escape(spec.name)}: run '{escape(run)}', best epoch of each fold"
        console.print(_scores_table(written.scores, title))
    if getattr(written, "test_scores", None) is not None:
        console.print(
            _frame_table(written.test_scores, f"{escape(spec.name)}: run '{escape(run)}', test labels")
        )
    console.print(f"report: {escape(str(out / 'report.md'))} ({len(written.figures)} figures)")


def _scores_table(frame, title: str) -> Table:
    """Per-fold scores with one row per metric and one column per fold (names stay readable)."""
    table = Table(title=title)
    table.add_column("metric")
    for fold in frame["fold"]:
        table.add_column(escape(f"fold {fold}") if fold != "mean" else "mean", justify="right")
    for column in frame.columns[1:]:
        cells = [
            f"{v:.4f}" if isinstance(v, float) else escape("" if v is None else str(v)) for v in frame[column]
        ]
        table.add_row(escape(str(column)), *cells)
    return table


def _task_means(scores) -> dict[str, tuple[float, int]]:
    """With several tasks, the mean of each metric over the tasks that report it (and their count)."""
    if scores["task"].nunique() < 2:
        return {}
    means = scores.groupby("metric", sort=False)["score"].agg(["mean", "count"])
    return {
        str(metric): (float(row["mean"]), int(row["count"]))
        for metric, row in means.iterrows()
        if row["count"] > 1
    }


def _frame_table(frame, title: str) -> Table:
    """A pandas frame as a rich table, floats to 4 decimals."""
    table = Table(title=title)
    for column in frame.columns:
        table.add_column(escape(str(column)), justify="right")
    for row in frame.itertuples(index=False):
        table.add_row(*(f"{v:.4f}" if isinstance(v, float) else escape(str(v)) for v in row))
    return table


def main() -> None:  # pragma: no cover - console-script entry point
    """Entry point for ``python -m mtlkaggle``."""
    app()
