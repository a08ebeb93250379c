"""``mtlkaggle predict``: fold ensemble x test-time augmentation -> submission files.

Each test image is decoded once; every fold's best model sees the plain view and each TTA view
of the batch, and the probabilities (softmax, sigmoid, or regression values in original units)
are averaged over folds and views. Multiclass tasks take the argmax, multi-label tasks the tuned
thresholds of ``thresholds.json``.

Ensembles of runs (``--runs``, or a ``train --seeds`` run, see :mod:`mtlkaggle.ensemble`): each
run's folds share its weight; images are decoded at the largest image size among the runs and
resized on the device for the others; thresholds are tuned on the averaged out-of-fold
probabilities and written beside the submission.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from mtlkaggle.data.device import DevicePipeline, EncodedDataset, collate_encoded, resolve_augment_on
from mtlkaggle.data.labels import LabelTable, read_split
from mtlkaggle.data.loading import (
    ImageDataset,
    build_transforms,
    collate,
    default_workers,
    init_reader,
    init_worker,
)
from mtlkaggle.engine.checkpoint import load_fold_model
from mtlkaggle.engine.runtime import autocast_for, resolve_device
from mtlkaggle.errors import UserError
from mtlkaggle.io import write_csv_atomic, write_json_atomic
from mtlkaggle.metrics import decide
from mtlkaggle.model import MultiTaskNet
from mtlkaggle.paths import RunLayout
from mtlkaggle.probabilities import probability_frame
from mtlkaggle.progress import make_progress
from mtlkaggle.provenance import write_submission_config
from mtlkaggle.spec import PROBABILISTIC, Spec
from mtlkaggle.submission import write_submissions
from mtlkaggle.thresholds import apply_thresholds, load_thresholds, tuned_tasks


@dataclass(frozen=True)
class PredictOptions:
    """Which run and folds to use, which views, where to write."""

    run: RunLayout
    out_dir: Path
    folds: list[str] | None = None
    tta: bool = True
    views: list[str] | None = None
    device: str | None = None
    num_workers: int | None = None  # None: default_workers()
    augment_on: str = "auto"  # where test images are decoded and resized: auto, cpu, device
    members: tuple = ()  # ensemble.Member: runs to average instead of ``run`` alone


@dataclass
class Ensemble:
    """Averaged test probabilities and how they were made."""

    ids: np.ndarray
    probs: dict[str, np.ndarray]
    folds: list[str]
    views: list[str]
    thresholds: dict[str, np.ndarray] = field(default_factory=dict)


def apply_view(images: torch.Tensor, view: str) -> torch.Tensor:
    """One TTA view of a batch (N, C, H, W): identity, hflip, vflip, zoom:S, hflip+zoom:S, crop:F:POS.

    ``zoom:S`` with S > 1 enlarges and crops the centre; S < 1 shrinks and pads with black.
    ``crop:F:POS`` takes a crop of F times each side at a corner (tl, tr, bl, br) or the centre (c)
    and resizes it back to the input size (five-crop TTA is ``crop:0.875:tl`` ... ``crop:0.875:c``).
    """
    if view == "identity":
        return images
    if view.startswith("hflip"):
        images = images.flip(-1)
        view = view.removeprefix("hflip").removeprefix("+") or "identity"
        return apply_view(images, view)
    if view == "vflip":
        return images.flip(-2)
    if view.startswith("zoom:"):
        return _zoom(images, float(view.split(":", 1)[1]))
    if view.startswith("crop:"):
        _, fraction, corner = view.split(":")
        return _crop(images, float(fraction), corner)
    raise ValueError(f"unknown TTA view '{view}'")


def _crop(images: torch.Tensor, fraction: float, corner: str) -> torch.Tensor:
    """A ``fraction``-sized crop at a corner (tl, tr, bl, br) or the centre (c), resized back."""
    h, w = images.shape[-2:]
    ch, cw = max(1, round(h * fraction)), max(1, round(w * fraction))
    top = {"t": 0, "b": h - ch}.get(corner[0], (h - ch) // 2)
    left = {"l": 0, "r": w - cw}.get(corner[-1], (w - cw) // 2)
    crop = images[..., top : top + ch, left : left + cw].float()
    return F.interpolate(crop, size=(h, w), mode="bilinear", align_corners=False)


def _zoom(images: torch.Tensor, scale: float) -> torch.Tensor:
    h, w = images.shape[-2:]
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    resized = F.interpolate(images.float(), size=size, mode="bilinear", align_corners=False)
    if scale >= 1:
        top, left = (size[0] - h) // 2, (size[1] - w) // 2
        return resized[..., top : top + h, left : left + w]
    top, left = (h - size[0]) // 2, (w - size[1]) // 2
    return F.pad(resized, (left, w - size[1] - left, top, h - size[0] - top))


VIEW_CHOICES = (
    "identity, hflip, vflip, zoom:S (S > 0), hflip+zoom:S, crop:F:POS (0 < F <= 1, POS tl/tr/bl/br/c)"
)


def check_options(options: PredictOptions) -> None:
    """Refuse bad options before any model or image is loaded, naming the valid choices.

    ``--views`` without ``--tta`` is an error (not silently ignored, not silently turned on).

    Raises:
        UserError: an unknown or malformed view, views without TTA, or an output folder that is a
            file (list options are checked as they are parsed: ``mtlkaggle.cli.options.parse_list``).
    """
    if options.views is not None and not options.tta:
        raise UserError(f"--views {','.join(options.views)}: views are used only with --tta; add --tta")
    for view in options.views or []:
        if not _valid_view(view):
            raise UserError(f"--views: unknown view '{view}'; valid views: {VIEW_CHOICES}, comma-separated")
    if options.out_dir.exists() and not options.out_dir.is_dir():
        raise UserError(f"--out-dir {options.out_dir}: is a file, not a folder; pass a folder")


def _valid_view(view: str) -> bool:
    import re

    from mtlkaggle.spec import TTA_VIEW

    if view == "identity":
        return True
    if not re.match(TTA_VIEW, view):
        return False
    try:
        if "zoom:" in view:
            return float(view.rsplit(":", 1)[1]) > 0
        if view.startswith("crop:"):
            return 0 < float(view.split(":")[1]) <= 1
    except ValueError:
        return False
    return True


def tta_views(spec: Spec, tta: bool, views: list[str] | None = None) -> list[str]:
    """The plain view, plus with ``tta`` the given views (default: the spec's ``[predict] tta``),
    each once: ``tta = []`` (or ``["identity"]``) leaves the plain view alone."""
    if not tta:
        return ["identity"]
    return list(dict.fromkeys(["identity", *(views if views is not None else spec.predict.tta)]))


def _models(
    run: RunLayout, folds: list[str] | None, device: torch.device
) -> tuple[list[MultiTaskNet], Spec, list[str]]:
    chosen = run.chosen_folds(folds)
    loaded = [load_fold_model(fold, device) for fold in chosen]
    specs = {(s.train.backbone, s.train.img_size) for _, s in loaded}
    if len(specs) > 1:
        raise UserError(f"{run.dir}: folds were trained with different backbones/sizes {sorted(specs)}")
    return [m for m, _ in loaded], loaded[0][1], [f.name for f in chosen]


class _Resized(torch.nn.Module):
    """A member model trained at another image size: the batch is resized for it on the device."""

    def __init__(self, model: MultiTaskNet, size: int):
        super().__init__()
        self.model, self.size = model, size

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        size = (self.size, self.size)
        return self.model(F.interpolate(images.float(), size=size, mode="bilinear", antialias=True))

    def probabilities(self, outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.model.probabilities(outputs)


def _member_models(options: PredictOptions, device: torch.device) -> tuple[list, list[float], Spec, list]:
    """Every member's fold models, each one's weight (summing to 1), the loading spec, their names."""
    from mtlkaggle.ensemble import Member

    members = options.members or (Member(options.run, 1.0),)
    loaded = [(m, *_models(m.run, options.folds, device)) for m in members]
    largest = max((trained for _, _, trained, _ in loaded), key=lambda t: t.train.img_size)
    models, weights, names = [], [], []
    for member, fold_models, trained, folds in loaded:
        size = trained.train.img_size
        models += [m if size == largest.train.img_size else _Resized(m, size) for m in fold_models]
        weights += [member.weight / len(fold_models)] * len(fold_models)
        names += folds if len(members) == 1 else [f"{member.label}/fold{f}" for f in folds]
    return models, weights, largest, names


def predict_ensemble(spec: Spec, options: PredictOptions) -> Ensemble:
    """Average probabilities over every fold's best model and every view of each test image."""
    check_options(options)
    device = resolve_device(options.device)
    models, weights, trained, folds = _member_models(options, device)
    views = tta_views(spec, options.tta, options.views)
    table = read_split(spec, "test", labelled=False)
    loader, prepare = _test_loader(spec, trained, table, options, device)
    probs, _, _ = average_predictions(
        spec, trained, models, weights, views, loader, prepare, len(table), stop_at_bad=True
    )
    return Ensemble(table.ids, probs, folds, views)


@torch.no_grad()
def average_predictions(
    spec: Spec,
    trained: Spec,
    models: list,
    weights: list[float],
    views: list[str],
    loader,
    prepare: DevicePipeline | None,
    n_rows: int,
    stop_at_bad: bool,
) -> tuple[dict[str, np.ndarray], list[str], np.ndarray]:
    """The ensemble x TTA loop of ``predict`` and ``predict --bundle``: every model's probabilities
    (times its weight; the weights sum to 1) averaged over every view of each image.

    ``trained`` is the spec the models were trained with (autocast, memory format); ``loader``
    yields batches with the rows' ``index``.

    Returns:
        Probabilities per task (regression: values in original units; rows of unreadable images
        are NaN), one message per unreadable image, and a mask of the rows that were read.

    Raises:
        UserError: with ``stop_at_bad``, at the first unreadable image.
    """
    device = next(iter(models[0].parameters())).device
    autocast, _ = autocast_for(device, trained.train.amp, trained.train.amp_dtype)
    memory = torch.channels_last if trained.train.channels_last else torch.contiguous_format
    sums = {t.name: torch.zeros((n_rows, t.size), device=device) for t in spec.tasks}
    read = np.zeros(n_rows, dtype=bool)
    bad: list[str] = []
    with make_progress() as progress:
        title = f"predicting {len(models)} fold(s) x {len(views)} view(s)"
        bar = progress.add_task(title, total=n_rows, unit="img", status="")
        for batch in loader:
            batch = prepare(batch) if prepare is not None else batch
            if batch["bad"] and stop_at_bad:
                raise UserError(f"{batch['bad'][0]}; every test image needs a prediction: fix or replace it")
            bad += batch["bad"]
            if "image" in batch:
                images = batch["image"].to(device, non_blocking=True).contiguous(memory_format=memory)
                rows = batch["index"].to(device)
                for name, total in ensemble_batch(models, views, images, autocast, weights).items():
                    sums[name][rows] += total
                read[batch["index"].numpy()] = True
            progress.advance(bar, len(batch.get("index", [])) + batch["skipped"])
    scale = 1.0 / len(views)  # the weights sum to 1
    probs = {}
    for task in spec.tasks:
        values = (sums[task.name] * scale).cpu().numpy()
        values[~read] = np.nan
        probs[task.name] = values[:, 0] if task.kind == "regression" else values
    return probs, bad, read


def ensemble_batch(
    models: list[MultiTaskNet], views: list[str], images: torch.Tensor, autocast, weights=None
) -> dict:
    """Sum of every model's probabilities (times its weight, if given) over every view of one
    batch, per task (N, size)."""
    sums: dict[str, torch.Tensor] = {}
    for view in views:
        x = apply_view(images, view)
        for k, model in enumerate(models):
            with autocast():
                probs = model.probabilities(model(x))
            for name, p in probs.items():
                p = p.float().reshape(p.shape[0], -1) * (weights[k] if weights is not None else 1.0)
                sums[name] = sums[name] + p if name in sums else p
    return sums


def _test_loader(
    spec: Spec, trained: Spec, table: LabelTable, options: PredictOptions, device: torch.device
) -> tuple[DataLoader, DevicePipeline | None]:
    """The test images' loader, and the pipeline that decodes them on the device (or None).

    On the device path workers read bytes only; the evaluation resize of the trained spec runs
    batched on ``device``, and the TTA views are built there from its output.
    """
    size = trained.train.img_size
    workers = default_workers() if options.num_workers is None else options.num_workers
    if resolve_augment_on(options.augment_on, device) == "device":
        dataset, collate_fn, init = EncodedDataset(table), collate_encoded, init_reader
        prepare = DevicePipeline(trained, size, False, device, trained.train.channels_last)
    else:
        dataset = ImageDataset(table, build_transforms(trained, size, train=False), size)
        collate_fn, prepare, init = collate, None, init_worker
    loader = DataLoader(
        dataset,
        batch_size=spec.predict.batch_size,
        num_workers=workers,
        collate_fn=collate_fn,
        pin_memory=device.type == "cuda",
        persistent_workers=False,  # one pass
        prefetch_factor=4 if workers > 0 else None,
        worker_init_fn=init if workers > 0 else None,
    )
    return loader, prepare


def decide_all(spec: Spec, ensemble: Ensemble) -> dict[str, np.ndarray]:
    """Final predictions: argmax, tuned thresholds (with the at-least-one rule), cut points (QWK),
    or values; a binary task scored on probabilities (AUC, pAUC, log loss) gets P(positive) (n,),
    otherwise its 0/1 decision (n,)."""
    out = {}
    for task in spec.tasks:
        p = ensemble.probs[task.name]
        tuned = ensemble.thresholds.get(task.name, 0.5)
        if task.kind == "multilabel":
            out[task.name] = apply_thresholds(p, tuned, task.at_least_one)
        elif task.kind == "binary" and task.resolved_metrics[0] in PROBABILISTIC:
            out[task.name] = p[:, 0]  # scored on probabilities: P(positive) goes out
        elif task.kind == "binary":
            out[task.name] = decide(task, p, tuned)[:, 0].astype(np.int64)
        else:
            out[task.name] = decide(task, p, tuned)
    return out


def _thresholds(spec: Spec, options: PredictOptions) -> dict[str, np.ndarray]:
    """One run's tuned thresholds; an ensemble's, tuned now on its averaged out-of-fold probabilities."""
    if len(options.members) <= 1:
        return load_thresholds(spec, options.members[0].run if options.members else options.run)
    if not tuned_tasks(spec):
        return {}
    from mtlkaggle.ensemble import ensemble_oof

    tuned = ensemble_oof(spec, list(options.members)).thresholds
    write_json_atomic(options.out_dir / "thresholds.json", {k: r.to_json() for k, r in tuned.items()})
    return {name: r.thresholds for name, r in tuned.items()}


def run_predict(spec: Spec, options: PredictOptions) -> tuple[Ensemble, list[Path]]:
    """Predict the test set and write the submission files, raw probabilities and config."""
    from mtlkaggle.ensemble import Member

    check_options(options)
    for member in options.members or (Member(options.run, 1.0),):
        member.run.chosen_folds(options.folds)  # an untrained run says so first
    thresholds = _thresholds(spec, options)  # a damaged file fails before the slow part
    ensemble = predict_ensemble(spec, options)
    ensemble.thresholds = thresholds
    predictions = decide_all(spec, ensemble)
    # ensemble.ids are the test file's ids in order (read once, in predict_ensemble)
    written = write_submissions(
        spec, ensemble.ids, predictions, ensemble.ids, options.out_dir, ensemble.probs
    )
    write_csv_atomic(
        options.out_dir / "probabilities.csv", probability_frame(spec, ensemble.ids, ensemble.probs)
    )
    write_submission_config(
        options.out_dir / "config.json",
        spec,
        run=str(options.run.dir),
        members=[{"run": str(m.run.dir), "weight": m.weight} for m in options.members],
        folds=ensemble.folds,
        views=ensemble.views,
        thresholds={k: [round(float(t), 6) for t in v] for k, v in ensemble.thresholds.items()},
        files=[p.name for p in written],
    )
    return ensemble, written
