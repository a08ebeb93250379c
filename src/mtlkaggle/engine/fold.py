"""One fold, from its folder to its result: check and prepare ``runs/COMP/RUN/fold{K}/``, refuse a
resume under another recipe, build the :class:`~mtlkaggle.engine.trainer.Trainer` and fit it.

Both ways of training several folds import this module: one after another
(:func:`mtlkaggle.train.train_folds`) and side by side (:mod:`mtlkaggle.parallel`).
"""

from __future__ import annotations

from mtlkaggle.engine import distributed as dist
from mtlkaggle.engine.runtime import Runtime, make_runtime
from mtlkaggle.engine.trainer import FoldResult, Trainer, TrainOptions
from mtlkaggle.errors import UserError
from mtlkaggle.folds import split_fold
from mtlkaggle.paths import FoldLayout
from mtlkaggle.progress import make_progress
from mtlkaggle.provenance import write_fold_config
from mtlkaggle.spec import AugmentSpec, Spec
from mtlkaggle.trackers import open_fold_trackers

# Fields that may change between an interrupted run and its resumption.
RESUMABLE_CHANGES = {"num_workers", "compile"}


def build_trainer(spec: Spec, fold: str, options: TrainOptions, runtime: Runtime | None = None) -> Trainer:
    """A fold's Trainer with its folder checked and prepared (resumed from ``last.pt`` if asked).

    Raises:
        UserError: an existing run that is neither resumed nor overwritten, or a resume under
            other settings.
    """
    runtime = runtime or make_runtime(options.device)
    files = options.run.fold(fold)
    resume = _check_folder(spec, files, options)
    dist.barrier(runtime)  # every rank has looked before rank 0 changes anything
    trainer = Trainer(spec, fold, split_fold(spec, fold), runtime, files, options)
    if resume:
        trainer.checkpoints.resume(trainer)
    elif runtime.is_main:
        _start_folder(trainer)
    dist.barrier(runtime)
    # only the writing process logs; a resumed fold first sends the epochs its trackers missed
    trainer.trackers = open_fold_trackers(spec, options.run, files, runtime.is_main)
    trainer.trackers.catch_up(trainer.state.history)
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
    write_fold_config(
        files.config,
        trainer.spec,
        fold=trainer.fold,
        weights=trainer.weights_origin,
        device=str(trainer.device),
        world_size=trainer.runtime.world_size,
        train_rows=len(trainer.train_table),
        val_rows=len(trainer.val_table),
    )


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
    saved = saved | _augment_fields(saved_spec.get("augment") or {})
    current = spec.train.model_dump(mode="json") | _augment_fields(spec.augment.model_dump(mode="json"))
    changed = sorted(k for k in current if k not in RESUMABLE_CHANGES and saved.get(k) != current[k])
    if changed:
        details = ", ".join(f"{k}: {saved.get(k)} -> {current[k]}" for k in changed)
        raise UserError(
            f"{files.dir} was trained with other settings ({details}); resume with the same options, "
            "or pass --overwrite to start again"
        )


def _augment_fields(augment: dict) -> dict:
    """The [augment] section as ``augment.FIELD`` keys, defaults filled in for runs saved before a
    field existed (augmentation, its data path and batch mixing are part of the recipe a resume
    must keep)."""
    full = AugmentSpec().model_dump(mode="json") | augment
    return {f"augment.{k}": v for k, v in full.items()}
