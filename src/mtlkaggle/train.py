"""``mtlkaggle train``: the stage. Spec + fold -> :class:`~mtlkaggle.engine.trainer.Trainer` -> artefacts.

A fold's folder (``runs/COMP/RUN/fold{K}/``) holds ``config.json`` (the resolved spec and how the
fold was started), ``best.pt`` (the best epoch's weights), ``last.pt`` (everything needed to
resume), ``metrics.csv`` (one row per epoch) and ``oof.csv`` (the best epoch's validation
probabilities, keyed by id). The run's folder adds ``summary.csv`` and ``config.json``.

Three ways to run: folds one after another in this process; under ``torchrun`` (every process
trains the same fold, DDP; rank 0 writes); or ``--jobs N`` folds at once, one process each
(:mod:`mtlkaggle.parallel`).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass

import pandas as pd

from mtlkaggle.engine import distributed as dist
from mtlkaggle.engine.runtime import Runtime, make_runtime
from mtlkaggle.engine.trainer import FoldResult, Trainer, TrainOptions
from mtlkaggle.errors import UserError
from mtlkaggle.folds import split_fold
from mtlkaggle.io import run_lock, write_csv_atomic, write_json_atomic
from mtlkaggle.paths import FoldLayout, RunLayout
from mtlkaggle.progress import make_progress
from mtlkaggle.spec import Spec

__all__ = [
    "FoldResult",
    "TrainOptions",
    "TrainOutcome",
    "Trainer",
    "build_trainer",
    "full_fit_epochs",
    "run_training",
    "summarize",
    "train_fold",
    "train_folds",
]

# Fields that may change between an interrupted run and its resumption.
_RESUMABLE_CHANGES = {"num_workers", "compile"}


def build_trainer(spec: Spec, fold: str, options: TrainOptions, runtime: Runtime | None = None) -> Trainer:
    """A fold's Trainer with its folder checked and prepared (resumed from ``last.pt`` if asked).

    Raises:
        UserError: an existing run that is neither resumed nor overwritten, or a resume under
            other settings.
    """
    runtime = runtime or make_runtime(options.device)
    files = RunLayout(options.run_dir).fold(fold)
    resume = _check_folder(spec, files, options)
    dist.barrier(runtime)  # every rank has looked before rank 0 changes anything
    trainer = Trainer(spec, fold, split_fold(spec, fold), runtime, files, options)
    if resume:
        trainer.resume()
    elif runtime.is_main:
        _start_folder(trainer)
    dist.barrier(runtime)
    return trainer


def train_fold(spec: Spec, fold: str, options: TrainOptions, progress=None) -> FoldResult:
    """Train one fold to the end (or resume it), keeping the best and last checkpoints.

    Args:
        spec: The competition, with the recipe in ``spec.train``.
        fold: A fold number as a string, or ``val`` for the spec's fixed train/val split.
        options: Where to write, which device, resume/overwrite.
        progress: A progress display to draw on (default: a new one, on rank 0 only).

    Raises:
        UserError: bad data, a non-finite loss (the last good checkpoint is kept), or an existing
            run that is neither resumed nor overwritten.
    """
    trainer = build_trainer(spec, fold, options)
    if progress is not None:
        return trainer.fit(progress)
    with make_progress(disable=not trainer.runtime.is_main) as own:
        return trainer.fit(own)


def train_folds(spec: Spec, folds: list[str], options: TrainOptions, jobs: int = 1) -> pd.DataFrame:
    """Train several folds, one after another or ``jobs`` at a time, under the run's lock.

    Returns (and writes ``summary.csv``) one row per fold plus the mean.

    Raises:
        UserError: another process holds the run, or a fold failed (the others' results are kept
            and the message names the failed folds).
    """
    runtime = make_runtime(options.device)
    layout = RunLayout(options.run_dir)
    with run_lock(layout.lock, hold=runtime.is_main):
        if jobs > 1:
            from mtlkaggle.parallel import train_parallel

            results, failures = train_parallel(spec, folds, options, jobs)
        else:
            results, failures = [train_fold(spec, fold, options) for fold in folds], {}
        summary = summarize(results)
        if runtime.is_main and results:
            write_csv_atomic(layout.summary, summary)
            write_json_atomic(layout.config, spec.model_dump(mode="json"))
    if failures:
        detail = "; ".join(f"fold {k}: {v}" for k, v in sorted(failures.items()))
        kept = ", ".join(r.fold for r in results) or "none"
        raise UserError(f"{len(failures)} fold(s) failed ({detail}); finished folds kept: {kept}")
    return summary


def summarize(results: list[FoldResult]) -> pd.DataFrame:
    """One row per fold (best epoch, monitored score, every metric) plus the mean row."""
    rows = [{"fold": r.fold, "best_epoch": r.best_epoch, "score": r.best_score, **r.scores} for r in results]
    summary = pd.DataFrame(rows)
    if len(results) > 1:
        mean = summary.drop(columns=["fold", "best_epoch"]).mean().to_dict()
        summary = pd.concat([summary, pd.DataFrame([{"fold": "mean", "best_epoch": "", **mean}])])
    return summary


def _check_folder(spec: Spec, files: FoldLayout, options: TrainOptions) -> bool:
    """Whether to resume; refuses to overwrite or to resume under another recipe."""
    if files.last.exists() and options.resume:
        _check_same_recipe(spec, files)
        return True
    if files.last.exists() and not options.overwrite:
        raise UserError(
            f"{files.dir} already holds a run; pass --resume to continue it or --overwrite to start again"
        )
    return False


def _start_folder(trainer: Trainer) -> None:
    files = trainer.files
    files.dir.mkdir(parents=True, exist_ok=True)
    for path in files.outputs:
        path.unlink(missing_ok=True)
    config = {
        "spec": trainer.spec.model_dump(mode="json"),
        "fold": trainer.fold,
        "weights": trainer.weights_origin,
        "device": str(trainer.device),
        "world_size": trainer.runtime.world_size,
        "command": " ".join(sys.argv),
        "versions": _versions(),
        "train_rows": len(trainer.train_table),
        "val_rows": len(trainer.val_table),
    }
    write_json_atomic(files.config, config)


def _check_same_recipe(spec: Spec, files: FoldLayout) -> None:
    """Refuse to resume under a different recipe: the result would match neither run."""
    if not files.config.is_file():
        return
    from mtlkaggle.readback import read_json_object

    config = read_json_object(files.config, "start the fold again with --overwrite", "fold config")
    saved_spec = config.get("spec") if isinstance(config.get("spec"), dict) else {}
    saved = saved_spec.get("train")
    if not isinstance(saved, dict):
        raise UserError(f"{files.config}: no spec.train section; start the fold again with --overwrite")
    saved = saved | _mix_fields(saved_spec.get("augment") or {})
    current = spec.train.model_dump(mode="json") | _mix_fields(spec.augment.model_dump(mode="json"))
    changed = sorted(k for k in current if k not in _RESUMABLE_CHANGES and saved.get(k) != current[k])
    if changed:
        details = ", ".join(f"{k}: {saved.get(k)} -> {current[k]}" for k in changed)
        raise UserError(
            f"{files.dir} was trained with other settings ({details}); resume with the same options, "
            "or pass --overwrite to start again"
        )


def _mix_fields(augment: dict) -> dict:
    """The [augment] section as ``augment.FIELD`` keys, defaults filled in for runs saved before a
    field existed (augmentation, its data path and batch mixing are part of the recipe a resume
    must keep)."""
    from mtlkaggle.spec import AugmentSpec

    full = AugmentSpec().model_dump(mode="json") | augment
    return {f"augment.{k}": v for k, v in full.items()}


def _versions() -> dict[str, str]:
    import timm
    import torch

    import mtlkaggle

    return {"mtlkaggle": mtlkaggle.__version__, "torch": torch.__version__, "timm": timm.__version__}


@dataclass
class TrainOutcome:
    """What ``mtlkaggle train`` prints: the per-fold summary and, after every fold, the thresholds."""

    summary: pd.DataFrame
    thresholds: dict | None
    is_main: bool
    note: str = ""  # e.g. how a full-data fit chose its epochs


def full_fit_epochs(spec: Spec, run_dir) -> tuple[int, str]:
    """Epochs for ``--fold full``, and how they were chosen.

    The mean best epoch (1-based) of the run's trained cross-validation folds, rounded half up;
    the spec's ``train.epochs`` when the run has no trained fold yet.
    """
    from mtlkaggle.engine.checkpoint import load_checkpoint

    folds = [f for f in RunLayout(run_dir).trained_folds() if f.name != "full"]
    if not folds:
        return spec.train.epochs, f"the spec's epochs ({spec.train.epochs}): no trained fold in {run_dir}"
    fix = "train that fold again, or pass --epochs"
    best = [int(load_checkpoint(f.best, ("epoch",), fix)["epoch"]) + 1 for f in folds]
    epochs = max(1, int(sum(best) / len(best) + 0.5))
    shown = ", ".join(f"fold {f.name}: {b}" for f, b in zip(folds, best, strict=True))
    return epochs, f"the mean best epoch of the trained folds, rounded ({shown})"


def _note_in_config(path, key: str, value: str) -> None:
    if path.is_file():
        config = json.loads(path.read_text(encoding="utf-8"))
        write_json_atomic(path, {**config, key: value})


def run_training(
    spec: Spec, fold: str, options: TrainOptions, jobs: int = 1, epochs_given: bool = False
) -> TrainOutcome:
    """The ``train`` stage: expand ``--fold``, train, and tune thresholds once every fold is done.

    ``--fold full`` trains on every labelled row for :func:`full_fit_epochs` epochs (unless
    ``epochs_given``: the user's ``--epochs``), with no best-epoch selection and no OOF file.

    Raises:
        UserError: see :func:`train_folds`; ``--jobs`` under torchrun.
    """
    note = ""
    if fold == "full":
        epochs, how = (
            (spec.train.epochs, "--epochs") if epochs_given else full_fit_epochs(spec, options.run_dir)
        )
        spec = spec.model_copy(update={"train": spec.train.model_copy(update={"epochs": epochs})})
        note = f"full-data fit: {epochs} epoch(s), from {how}"
    from mtlkaggle.engine.runtime import env_rank
    from mtlkaggle.folds import fold_names

    rank, _, world = env_rank()
    if jobs > 1 and world > 1:
        raise UserError(
            "--jobs runs folds side by side; under torchrun every process trains one fold: use --jobs 1"
        )
    try:
        summary = train_folds(spec, fold_names(spec, fold), options, jobs)
    finally:
        dist.close()
    if note and rank == 0:
        _note_in_config(RunLayout(options.run_dir).fold("full").config, "epochs_chosen_by", note)
    thresholds = None
    if rank == 0 and fold in ("all", "val") and any(t.kind == "multilabel" for t in spec.tasks):
        from mtlkaggle.thresholds import tune_run

        thresholds = tune_run(spec, options.run_dir)
    return TrainOutcome(summary, thresholds, rank == 0, note)
