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

import contextlib
from dataclasses import dataclass

import pandas as pd

from mtlkaggle.engine import distributed as dist
from mtlkaggle.engine.fold import build_trainer, train_fold
from mtlkaggle.engine.runtime import make_runtime
from mtlkaggle.engine.trainer import FoldResult, Trainer, TrainOptions
from mtlkaggle.errors import UserError
from mtlkaggle.io import run_lock, write_csv_atomic
from mtlkaggle.paths import RunLayout
from mtlkaggle.provenance import note_in_config, write_run_config
from mtlkaggle.spec import Spec
from mtlkaggle.trackers import check_trackers, log_run_end, mlflow_parent

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


def train_folds(spec: Spec, folds: list[str], options: TrainOptions, jobs: int = 1) -> pd.DataFrame:
    """Train several folds, one after another or ``jobs`` at a time, under the run's lock.

    Returns (and writes ``summary.csv``) one row per fold plus the mean.

    Raises:
        UserError: another process holds the run, or a fold failed (the others' results are kept
            and the message names the failed folds).
    """
    runtime = make_runtime(options.device)
    layout = options.run
    with _lock_for_every_rank(layout, runtime):
        mlflow_parent(spec, layout, runtime.is_main)  # before the folds: --jobs processes share it
        if jobs > 1:
            from mtlkaggle.parallel import train_parallel

            results, failures = train_parallel(spec, folds, options, jobs)
        else:
            results, failures = [train_fold(spec, fold, options) for fold in folds], {}
        summary = summarize(results)
        if runtime.is_main and results:
            write_csv_atomic(layout.summary, summary)
            write_run_config(layout.config, spec)
    if failures:
        detail = "; ".join(f"fold {k}: {v}" for k, v in sorted(failures.items()))
        kept = ", ".join(r.fold for r in results) or "none"
        raise UserError(f"{len(failures)} fold(s) failed ({detail}); finished folds kept: {kept}")
    return summary


@contextlib.contextmanager
def _lock_for_every_rank(layout: RunLayout, runtime):
    """Rank 0 takes the run's lock; every rank learns the outcome before any other collective, so
    under torchrun all ranks stop with the same error when another process holds the run."""
    with contextlib.ExitStack() as held:
        refused = None
        if runtime.is_main:
            try:
                held.enter_context(run_lock(layout.lock))
            except UserError as e:
                refused = str(e)
        refused = dist.broadcast_object(refused, runtime)
        if refused:
            raise UserError(refused)
        yield


def summarize(results: list[FoldResult]) -> pd.DataFrame:
    """One row per fold (best epoch, monitored score, every metric) plus the mean row."""
    rows = [{"fold": r.fold, "best_epoch": r.best_epoch, "score": r.best_score, **r.scores} for r in results]
    summary = pd.DataFrame(rows)
    if len(results) > 1:
        mean = summary.drop(columns=["fold", "best_epoch"]).mean().to_dict()
        summary = pd.concat([summary, pd.DataFrame([{"fold": "mean", "best_epoch": "", **mean}])])
    return summary


@dataclass
class TrainOutcome:
    """What ``mtlkaggle train`` prints: the per-fold summary and, after every fold, the thresholds."""

    summary: pd.DataFrame
    thresholds: dict | None
    is_main: bool
    note: str = ""  # e.g. how a full-data fit chose its epochs


def full_fit_epochs(spec: Spec, run: RunLayout) -> tuple[int, str]:
    """Epochs for ``--fold full``, and how they were chosen.

    The mean best epoch (1-based) of the run's trained cross-validation folds, rounded half up;
    the spec's ``train.epochs`` when the run has no trained fold yet.
    """
    from mtlkaggle.engine.checkpoint import read_best

    folds = [f for f in run.trained_folds() if f.name != "full"]
    if not folds:
        return spec.train.epochs, f"the spec's epochs ({spec.train.epochs}): no trained fold in {run.dir}"
    best = [read_best(f).epoch + 1 for f in folds]
    epochs = max(1, int(sum(best) / len(best) + 0.5))
    shown = ", ".join(f"fold {f.name}: {b}" for f, b in zip(folds, best, strict=True))
    return epochs, f"the mean best epoch of the trained folds, rounded ({shown})"


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
        epochs, how = (spec.train.epochs, "--epochs") if epochs_given else full_fit_epochs(spec, options.run)
        spec = spec.model_copy(update={"train": spec.train.model_copy(update={"epochs": epochs})})
        note = f"full-data fit: {epochs} epoch(s), from {how}"
    from mtlkaggle.engine.runtime import env_rank
    from mtlkaggle.folds import fold_names

    rank, _, world = env_rank()
    check_trackers(spec)
    if jobs > 1 and world > 1:
        raise UserError(
            "--jobs runs folds side by side; under torchrun every process trains one fold: use --jobs 1"
        )
    try:
        summary = train_folds(spec, fold_names(spec, fold), options, jobs)
    finally:
        dist.close()
    if note and rank == 0:
        note_in_config(options.run.fold("full").config, "epochs_chosen_by", note)
    thresholds = None
    if rank == 0 and fold in ("all", "val") and any(t.kind == "multilabel" for t in spec.tasks):
        from mtlkaggle.thresholds import tune_run

        thresholds = tune_run(spec, options.run)
    log_run_end(spec, options.run, summary, thresholds, rank == 0)
    return TrainOutcome(summary, thresholds, rank == 0, note)
