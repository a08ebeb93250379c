"""Training commands: ``train`` (folds, seeds, torchrun, ``--jobs``) and ``tune``.

Each spec field that ``train`` overrides is declared once, in :data:`OVERRIDES`: its option, help
text and help panel are built from that row, and so is the override applied to the spec.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from mtlkaggle.cli.options import Comp, DataDir, Place, console, parse_list, user_errors
from mtlkaggle.cli.tables import frame_table, scores_table, thresholds_table
from mtlkaggle.errors import UserError

_PANELS = ("Data", "Model", "Recipe", "Augmentation", "Hardware", "Run")
_DATA, _MODEL, _RECIPE, _AUGMENT, _HARDWARE, _RUN = _PANELS


@dataclass(frozen=True)
class Override:
    """One spec field a ``train`` option overrides (None: keep the spec's value)."""

    section: str  # the spec section: train or augment
    field: str
    type: Any
    help: str
    panel: str
    flags: tuple[str, ...] = ()  # typer's declarations, e.g. ("--amp/--no-amp",)
    param: str = ""  # the option's Python name, when it is not the field's
    min: int | None = None

    @property
    def name(self) -> str:
        """The keyword the option arrives under."""
        return self.param or self.field


OVERRIDES: tuple[Override, ...] = (
    Override("train", "backbone", str, "Any timm model name.", _MODEL),
    Override("train", "img_size", int, "Training and evaluation image side, pixels.", _MODEL),
    Override("train", "weights", str, "Local state dict for the backbone (timm or same-order keys).", _MODEL),
    Override(
        "train", "pretrained", bool, "Start from ImageNet weights.", _MODEL, ("--pretrained/--no-pretrained",)
    ),
    Override("train", "epochs", int, "Epochs per fold.", _RECIPE),
    Override("train", "batch_size", int, "Images per optimizer step (before accumulation).", _RECIPE),
    Override("train", "accumulate", int, "Batches per optimizer step.", _RECIPE),
    Override(
        "train", "lr", float, "Peak learning rate of the heads (backbone: x backbone_lr_mult).", _RECIPE
    ),
    Override("train", "scheduler", str, "cosine (with warmup) or plateau (/10).", _RECIPE),
    Override("train", "weighting", str, "Loss balancing: fixed, uncertainty or learned.", _RECIPE),
    Override(
        "train",
        "early_freeze",
        int,
        "Freeze shared layers + a task's head once its val loss stalls this many epochs.",
        _RECIPE,
    ),
    Override(
        "train", "early_stopping", int, "Stop a fold after this many epochs without improvement.", _RECIPE
    ),
    Override("train", "ema", bool, "Keep and evaluate an EMA of the weights.", _RECIPE, ("--ema/--no-ema",)),
    Override("train", "seed", int, "Seed for init, data order, augmentation and dropout.", _RECIPE),
    Override(
        "augment",
        "mix",
        str,
        "Batch mixing of images and every task's target: mixup, cutmix or none "
        "(default: the spec's \\[augment] mix; mix_prob, mix_alpha, mix_off_epochs there).",
        _AUGMENT,
    ),
    Override(
        "augment",
        "on",
        Place,
        "Decode and augment in CPU workers (albumentations) or batched on the training device "
        "(default: the spec's \\[augment] on, auto = device on CUDA).",
        _AUGMENT,
        param="augment_on",
    ),
    Override(
        "log",
        "trackers",
        str,
        "Also log to experiment trackers: any of tensorboard,mlflow,wandb, or none "
        "(default: the spec's \\[log] trackers). Under torchrun spell it --trackers (torchrun's "
        "parser takes --log for its --log-dir). An MLflow server URI nothing answers at is refused "
        "before training starts.",
        _RUN,
        ("--log", "--trackers"),
        param="log",
    ),
    Override(
        "train", "amp", bool, "Mixed precision on CUDA (bf16, else fp16).", _HARDWARE, ("--amp/--no-amp",)
    ),
    Override("train", "compile", bool, "torch.compile the model.", _HARDWARE, ("--compile/--no-compile",)),
    Override(
        "train",
        "num_workers",
        int,
        "DataLoader worker processes (default: usable CPUs - 1, at most 16).",
        _HARDWARE,
        min=0,
    ),
)


def apply_overrides(spec, given: dict[str, Any]):
    """``spec`` with every option the user gave (not None) written into its section."""
    from mtlkaggle.spec import with_overrides

    for section in dict.fromkeys(o.section for o in OVERRIDES):
        values = {
            o.field: given[o.name].value if isinstance(given[o.name], Enum) else given[o.name]
            for o in OVERRIDES
            if o.section == section
        }
        spec = with_overrides(spec, section, **values)
    return spec


def _with_overrides(fn):
    """Give ``fn`` one option per row of :data:`OVERRIDES`; it receives them as ``overrides``."""
    signature = inspect.signature(fn, eval_str=True)
    own = [p for p in signature.parameters.values() if p.name != "overrides"]
    added = [
        inspect.Parameter(
            o.name,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            default=None,
            annotation=Annotated[
                o.type | None, typer.Option(*o.flags, help=o.help, rich_help_panel=o.panel, min=o.min)
            ],
        )
        for o in OVERRIDES
    ]
    # --help lists the panels in the order their first option appears
    parameters = [own[0], *sorted([*own[1:], *added], key=_panel_rank)]

    @functools.wraps(fn)
    def wrapper(**kwargs):
        given = {o.name: kwargs.pop(o.name) for o in OVERRIDES}
        return fn(**kwargs, overrides=given)

    wrapper.__signature__ = signature.replace(parameters=parameters)
    wrapper.__annotations__ = {p.name: p.annotation for p in parameters} | {"return": None}
    return wrapper


_Fold = Annotated[
    str,
    typer.Option(
        help="Fold number, 'all', 'val' (the spec's fixed train/val split), or 'full' (every labelled "
        "row, no holdout, for the mean best epoch of the run's trained folds).",
        rich_help_panel=_RUN,
    ),
]

_Run = Annotated[
    str,
    typer.Option(
        "--run",
        "--run-name",
        envvar="MTLKAGGLE_RUN",
        help="Run name: checkpoints go to runs/COMP/RUN/foldK/. Under torchrun spell it --run-name "
        "(torchrun's parser takes --run for its own --run-path).",
        rich_help_panel=_RUN,
    ),
]

_Seeds = Annotated[
    str | None,
    typer.Option(
        help="Seed ensemble, e.g. 0,1,2: one run per seed under runs/COMP/RUN/seed{S}/, then their "
        "averaged out-of-fold CV (RUN/ensemble.csv) and thresholds; predict --run RUN averages all.",
        rich_help_panel=_RUN,
    ),
]

_Resume = Annotated[
    bool,
    typer.Option(
        help="Continue interrupted folds from last.pt; finished folds are kept.", rich_help_panel=_RUN
    ),
]

_Overwrite = Annotated[
    bool,
    typer.Option(help="Start again even where a fold already has checkpoints.", rich_help_panel=_RUN),
]

_Jobs = Annotated[
    int,
    typer.Option(
        help="Folds trained at once, one process each (cuda:0..N-1; on CPU the cores are shared out).",
        min=1,
        rich_help_panel=_HARDWARE,
    ),
]

_Device = Annotated[
    str | None,
    typer.Option(help="cuda, cuda:1, cpu (default: cuda when available).", rich_help_panel=_HARDWARE),
]

_SkipBadImages = Annotated[
    bool,
    typer.Option(help="Skip (and count) unreadable images instead of stopping.", rich_help_panel=_DATA),
]

_DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Folder holding the data (overrides the spec's data_dir).",
        rich_help_panel=_DATA,
    ),
]


def _panel_rank(parameter: inspect.Parameter) -> int:
    info = getattr(parameter.annotation, "__metadata__", (None,))[0]
    return _PANELS.index(getattr(info, "rich_help_panel", None) or _RUN)


@user_errors
@_with_overrides
def train(
    comp: Comp,
    fold: _Fold = "all",
    run: _Run = "main",
    seeds: _Seeds = None,
    resume: _Resume = False,
    overwrite: _Overwrite = False,
    jobs: _Jobs = 1,
    device: _Device = None,
    skip_bad_images: _SkipBadImages = False,
    data_dir: _DataDir = None,
    overrides: dict[str, Any] | None = None,
) -> None:
    """Fine-tune a shared timm backbone with one head per task, one model per fold.

    Defaults come from the competition file's \\[train] section; options override single fields.
    Each fold writes best.pt, last.pt, metrics.csv, oof.csv and config.json under runs/COMP/RUN/.

    Several GPUs on one model: torchrun --nproc-per-node N -m mtlkaggle train COMP --fold K
    (DDP; --batch-size is the batch of all processes together). Several folds at once: --jobs N.
    """
    from mtlkaggle.engine.runtime import resolve_device
    from mtlkaggle.paths import RunLayout
    from mtlkaggle.spec import load_spec
    from mtlkaggle.train import TrainOptions, run_training

    resolve_device(device)  # a bad --device fails before any data or model is loaded
    spec = apply_overrides(load_spec(comp, data_dir), overrides)
    layout = RunLayout.of(spec.name, run)
    options = TrainOptions(
        run=layout,
        device=device,
        resume=resume,
        overwrite=overwrite,
        skip_bad_images=skip_bad_images,
    )
    if seeds is not None:
        _train_seeds(spec, fold, seeds, overrides["seed"], options, jobs, run)
        return
    outcome = run_training(spec, fold, options, jobs, epochs_given=overrides["epochs"] is not None)
    if not outcome.is_main:
        return
    if outcome.note:
        console.print(escape(outcome.note))
    title = f"{escape(spec.name)}: run '{escape(run)}', best epoch of each fold"
    console.print(scores_table(outcome.summary, title))
    if outcome.thresholds is not None:
        console.print(thresholds_table(outcome.thresholds, layout.thresholds))


def _train_seeds(spec, fold: str, seeds: str, seed: int | None, options, jobs: int, run: str) -> None:
    from mtlkaggle.ensemble import run_seeds

    if seed is not None:
        raise UserError("--seed and --seeds: pass one (--seeds trains one run per seed)")
    outcome = run_seeds(spec, fold, parse_list(seeds, "--seeds", "seed", int), options, jobs)
    if not outcome.is_main:
        return
    for value, summary in outcome.summaries.items():
        title = f"{escape(spec.name)}: run '{escape(run)}/seed{value}', best epoch of each fold"
        console.print(scores_table(summary, title))
    if outcome.ensemble is not None:
        where = escape(str(options.run.ensemble))
        console.print(
            frame_table(outcome.ensemble, f"out-of-fold CV of each seed and of their average -> {where}")
        )


@user_errors
def tune(
    comp: Comp,
    run: Annotated[str, typer.Option(help="Run whose out-of-fold predictions to tune on.")] = "main",
    data_dir: DataDir = None,
) -> None:
    """Tune each task's decision for its primary metric on out-of-fold predictions.

    Per-label thresholds for multi-label F-scores (Mean F1, macro/micro F1, F-beta at the task's
    beta and averaging) and for a binary task scored by F-beta or accuracy; QWK cut points on a
    regression value or expected class. Writes runs/COMP/RUN/thresholds.json with the OOF score at
    0.5 (argmax / rounding) and tuned. `train --fold all` runs this automatically.
    """
    from mtlkaggle.ensemble import tune_run_thresholds
    from mtlkaggle.paths import RunLayout
    from mtlkaggle.spec import load_spec

    spec = load_spec(comp, data_dir)
    layout = RunLayout.of(spec.name, run)
    console.print(thresholds_table(tune_run_thresholds(spec, layout), layout.thresholds))
