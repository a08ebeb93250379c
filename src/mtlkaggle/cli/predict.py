"""Inference commands: ``predict`` (a run's folds, several runs, or a bundle) and ``export``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from mtlkaggle.cli.options import (
    AugmentOn,
    Comp,
    DataDir,
    NumWorkers,
    console,
    err_console,
    parse_list,
    user_errors,
)
from mtlkaggle.cli.tables import files_table
from mtlkaggle.errors import UserError

_Runs = Annotated[
    str | None,
    typer.Option(
        help="Comma-separated runs to ensemble instead of --run (any backbones and sizes); "
        "thresholds are tuned on their averaged out-of-fold probabilities."
    ),
]

_RunWeights = Annotated[
    str | None, typer.Option(help="One weight per --runs run, e.g. 2,1 (default: equal).")
]

_Folds = Annotated[str | None, typer.Option(help="Comma-separated folds (default: every trained fold).")]

_Tta = Annotated[
    bool,
    typer.Option(
        "--tta/--no-tta",
        help="Average over the spec's TTA views too (\\[predict] tta; \\[] = the plain view only).",
    ),
]

_Views = Annotated[
    str | None,
    typer.Option(help="TTA views instead of the spec's (needs --tta): hflip,vflip,zoom:1.15,hflip+zoom:0.9"),
]

_Bundle = Annotated[
    Path | None, typer.Option(help="An exported bundle folder: predict without competition/ or runs/.")
]

_Input = Annotated[
    Path | None,
    typer.Option("--input", help="With --bundle: a folder of images (recursive), one image, or a CSV."),
]

_PathColumn = Annotated[str | None, typer.Option(help="With --input FILE.csv: the column of image paths.")]

_CompetitionFiles = Annotated[
    bool,
    typer.Option(
        help="With --bundle: write the spec's submission files for the test set found under "
        "--data-dir (a Kaggle code competition's notebook)."
    ),
]


@user_errors
def predict(
    comp: Annotated[
        str | None,
        typer.Argument(help="Competition name or .toml (not needed with --bundle)."),
    ] = None,
    run: Annotated[str, typer.Option(help="Run whose fold checkpoints to ensemble.")] = "main",
    runs: _Runs = None,
    run_weights: _RunWeights = None,
    folds: _Folds = None,
    tta: _Tta = False,
    views: _Views = None,
    out_dir: Annotated[Path | None, typer.Option(help="Where to write (default: submissions/COMP).")] = None,
    device: Annotated[str | None, typer.Option(help="cuda, cpu (default: cuda when available).")] = None,
    num_workers: NumWorkers = None,
    augment_on: AugmentOn = None,
    data_dir: DataDir = None,
    bundle: _Bundle = None,
    input: _Input = None,
    out: Annotated[Path, typer.Option("--out", help="With --bundle --input: the CSV to write.")] = Path(
        "predictions.csv"
    ),
    path_column: _PathColumn = None,
    competition_files: _CompetitionFiles = False,
) -> None:
    """Predict the test set with the fold ensemble (x TTA) and write the submission files.

    Multiclass tasks take the argmax of the averaged probabilities; multi-label tasks use the
    thresholds tuned on out-of-fold predictions (tuned now if missing); a submission with
    values = "probability" (or a probabilistic primary metric) writes probabilities instead. Every
    file is validated against the test file (and the sample submission, whose row order it takes)
    before it is written, atomically, with probabilities.csv and config.json.

    With --bundle DIR (from `mtlkaggle export`): --input PATH writes one CSV row per image
    (class names, indices, task:class probabilities; unreadable images listed), or
    --competition-files writes the submission files, from any folder, offline.
    """
    from mtlkaggle.engine.runtime import resolve_device
    from mtlkaggle.ensemble import members_for
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
            views=parse_list(views, "--views", "view"),
            folds=parse_list(folds, "--folds", "fold"),
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
    weights = parse_list(run_weights, "--run-weights", "weight", float, unique=False)
    members = members_for(spec.name, run, parse_list(runs, "--runs", "run"), weights)
    options = PredictOptions(
        members=tuple(members),
        run=members[0].run if runs else RunLayout.of(spec.name, run),
        out_dir=out_dir or submissions_dir(spec.name),
        folds=parse_list(folds, "--folds", "fold"),
        tta=tta,
        views=parse_list(views, "--views", "view"),
        device=device,
        num_workers=num_workers,
        augment_on=augment_on.value if augment_on else spec.augment.on,
    )
    ensemble, written = run_predict(spec, options)
    _print_written(spec, ensemble, written)


def _print_written(spec, ensemble, written) -> None:
    """The files ``predict`` wrote, with their data rows (a long file: one per image and cell)."""
    from mtlkaggle.submission import file_rows

    title = (
        f"{escape(spec.name)}: {len(ensemble.folds)} fold(s) x {len(ensemble.views)} view(s) "
        f"({escape(', '.join(ensemble.views))})"
    )
    rows = [file_rows(spec, sub, len(ensemble.ids)) for sub in spec.submissions]
    console.print(files_table(title, list(zip(written, rows, strict=True))))


def _predict_bundle(bundle, options, inputs, out, path_column, competition_files, data_dir, out_dir) -> None:
    """``predict --bundle``: images to one CSV, or the competition's submission files."""
    from mtlkaggle.bundle import predict_competition, predict_images
    from mtlkaggle.paths import SUBMISSIONS

    if (inputs is None) == (not competition_files):
        raise UserError("--bundle needs exactly one of --input PATH or --competition-files")
    if competition_files:
        done = predict_competition(bundle, data_dir, out_dir or SUBMISSIONS, options)
    else:
        done = predict_images(bundle, inputs, out, options, path_column)
    title = (
        f"bundle '{escape(done.bundle.spec.name)}': {len(done.bundle.folds)} fold(s) "
        f"({escape(', '.join(done.bundle.folds))}) x {len(done.views)} view(s)"
    )
    rows = [(path, done.rows, len(done.bad)) for path in done.written]
    console.print(files_table(title, rows, ("file", "rows", "unreadable")))
    for message in done.bad[:20]:  # the CSV's error column has them all
        err_console.print(f"[yellow]unreadable:[/] {escape(message)}", highlight=False, soft_wrap=True)
    if done.bad:
        err_console.print(
            f"[yellow]{len(done.bad)} of {done.rows} image(s) unreadable[/] (rows kept, 'error' set)"
        )


@user_errors
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
    upload_model: Annotated[
        str | None,
        typer.Option(
            help="Or put the bundle on Kaggle Models: OWNER/MODEL/FRAMEWORK/VARIATION (e.g. "
            "alice/demo-bundle/pyTorch/main), created or versioned."
        ),
    ] = None,
    message: Annotated[
        str, typer.Option(help="Version notes for --upload / --upload-model.")
    ] = "mtlkaggle export",
    data_dir: DataDir = None,
) -> None:
    """Write a self-contained bundle: safetensors weights per fold, bundle.json, the wheel, ONNX.

    `mtlkaggle predict --bundle DIR` then works anywhere, offline; `--upload OWNER/SLUG` makes the
    bundle a Kaggle dataset for a code competition's notebook (see `mtlkaggle notebook`).
    """
    if upload_model:  # a bad reference fails before the export's minutes (and torch's import)
        from mtlkaggle.kaggle_datasets import check_model_ref

        check_model_ref(upload_model)
    from mtlkaggle.export import ExportOptions, export_bundle
    from mtlkaggle.paths import RunLayout, bundle_dir
    from mtlkaggle.spec import load_spec

    spec = load_spec(comp, data_dir)
    out_dir = out or bundle_dir(spec.name, run)
    chosen = parse_list(folds, "--folds", "fold")
    options = ExportOptions(RunLayout.of(spec.name, run), out_dir, chosen, onnx, wheel)
    result = export_bundle(spec, options)
    title = (
        f"{escape(spec.name)}: bundle of fold(s) {escape(', '.join(result.folds))} -> {escape(str(out_dir))}"
    )
    rows = [(path.relative_to(out_dir).as_posix(), f"{path.stat().st_size:,}") for path in result.files]
    console.print(files_table(title, rows, ("file", "bytes")))
    for fold, diff in result.onnx_max_diff.items():
        console.print(f"fold {escape(fold)}: ONNX vs torch, max abs difference {diff:.2e} (bound 1e-4)")
    if upload:
        from mtlkaggle.kaggle_datasets import upload_bundle

        done = upload_bundle(out_dir, upload, message)
        console.print(f"[green]ok[/]: {escape(done)}")
    if upload_model:
        from mtlkaggle.kaggle_datasets import upload_bundle_model

        done, source = upload_bundle_model(out_dir, upload_model, message)
        console.print(f"[green]ok[/]: {escape(done)}; attach it with `--bundle-model {escape(source)}`")
