"""``mtlkaggle predict``: fold ensemble x test-time augmentation -> submission files.

Each test image is decoded once; every fold's best model sees the plain view and each TTA view
of the batch, and the probabilities (softmax, sigmoid, or regression values in original units)
are averaged over folds and views. Multiclass tasks take the argmax, multi-label tasks the tuned
thresholds of ``thresholds.json``.
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
from mtlkaggle.spec import Spec
from mtlkaggle.submission import write_submissions
from mtlkaggle.thresholds import apply_thresholds, load_thresholds


@dataclass(frozen=True)
class PredictOptions:
    """Which run and folds to use, which views, where to write."""

    run_dir: Path
    out_dir: Path
    folds: list[str] | None = None
    tta: bool = True
    views: list[str] | None = None
    device: str | None = None
    num_workers: int | None = None  # None: default_workers()
    augment_on: str = "auto"  # where test images are decoded and resized: auto, cpu, device


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


def _views(spec: Spec, options: PredictOptions) -> list[str]:
    if not options.tta:
        return ["identity"]
    return ["identity", *(options.views if options.views is not None else spec.predict.tta)]


def _models(
    run_dir: Path, folds: list[str] | None, device: torch.device
) -> tuple[list[MultiTaskNet], Spec, list[str]]:
    available = {f.name: f for f in RunLayout(run_dir).trained_folds()}
    chosen = folds or list(available)
    missing = [f for f in chosen if f not in available]
    if not chosen or missing:
        raise UserError(
            f"{run_dir}: no trained fold {', '.join(missing) if missing else '(none at all)'}; "
            f"trained: {', '.join(sorted(available)) or 'none'}. Run `mtlkaggle train` first"
        )
    loaded = [load_fold_model(available[f], device) for f in chosen]
    specs = {(s.train.backbone, s.train.img_size) for _, s in loaded}
    if len(specs) > 1:
        raise UserError(f"{run_dir}: folds were trained with different backbones/sizes {sorted(specs)}")
    return [m for m, _ in loaded], loaded[0][1], chosen


@torch.no_grad()
def predict_ensemble(spec: Spec, options: PredictOptions) -> Ensemble:
    """Average probabilities over every fold's best model and every view of each test image."""
    device = resolve_device(options.device)
    models, trained, folds = _models(options.run_dir, options.folds, device)
    views = _views(spec, options)
    table = read_split(spec, "test", labelled=False)
    loader, prepare = _test_loader(spec, trained, table, options, device)
    autocast, _ = autocast_for(device, trained.train.amp, trained.train.amp_dtype)
    sums = {t.name: torch.zeros((len(table), t.size), device=device) for t in spec.tasks}
    memory = torch.channels_last if trained.train.channels_last else torch.contiguous_format
    with make_progress() as progress:
        bar = progress.add_task(
            f"predicting {len(folds)} fold(s) x {len(views)} view(s)", total=len(table), unit="img", status=""
        )
        start = 0
        for batch in _checked(loader, prepare):
            images = batch["image"].to(device, non_blocking=True).contiguous(memory_format=memory)
            rows = slice(start, start + images.shape[0])
            for name, total in ensemble_batch(models, views, images, autocast).items():
                sums[name][rows] += total
            start += images.shape[0]
            progress.advance(bar, images.shape[0])
    scale = 1.0 / (len(models) * len(views))
    probs = {}
    for task in spec.tasks:
        p = (sums[task.name] * scale).cpu().numpy()
        probs[task.name] = p[:, 0] if task.kind == "regression" else p
    return Ensemble(table.ids, probs, folds, views)


def ensemble_batch(models: list[MultiTaskNet], views: list[str], images: torch.Tensor, autocast) -> dict:
    """Sum of every model's probabilities over every view of one batch, per task (N, size)."""
    sums: dict[str, torch.Tensor] = {}
    for view in views:
        x = apply_view(images, view)
        for model in models:
            with autocast():
                probs = model.probabilities(model(x))
            for name, p in probs.items():
                p = p.float().reshape(p.shape[0], -1)
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


def _checked(loader: DataLoader, prepare: DevicePipeline | None = None):
    for batch in loader:
        if prepare is not None:
            batch = prepare(batch)
        if batch["bad"]:
            raise UserError(f"{batch['bad'][0]}; every test image needs a prediction: fix or replace it")
        yield batch


def decide_all(spec: Spec, ensemble: Ensemble) -> dict[str, np.ndarray]:
    """Final predictions: argmax, tuned thresholds (with the at-least-one rule), or values."""
    out = {}
    for task in spec.tasks:
        p = ensemble.probs[task.name]
        if task.kind == "multilabel":
            out[task.name] = apply_thresholds(p, ensemble.thresholds.get(task.name, 0.5), task.at_least_one)
        else:
            out[task.name] = decide(task, p)
    return out


def run_predict(spec: Spec, options: PredictOptions) -> tuple[Ensemble, list[Path]]:
    """Predict the test set and write the submission files, raw probabilities and config."""
    ensemble = predict_ensemble(spec, options)
    ensemble.thresholds = load_thresholds(spec, options.run_dir)
    predictions = decide_all(spec, ensemble)
    # ensemble.ids are the test file's ids in order (read once, in predict_ensemble)
    written = write_submissions(spec, ensemble.ids, predictions, ensemble.ids, options.out_dir)
    write_csv_atomic(
        options.out_dir / "probabilities.csv", probability_frame(spec, ensemble.ids, ensemble.probs)
    )
    write_json_atomic(
        options.out_dir / "config.json",
        {
            "spec": spec.model_dump(mode="json"),
            "run": str(options.run_dir),
            "folds": ensemble.folds,
            "views": ensemble.views,
            "thresholds": {k: [round(float(t), 6) for t in v] for k, v in ensemble.thresholds.items()},
            "files": [p.name for p in written],
        },
    )
    return ensemble, written
