"""Benchmark: training throughput, full pipeline vs the bare compute bound, in one run.

full: JPEGs on disk -> decode (PIL, draft mode) -> albumentations -> DataLoader workers ->
      forward/backward/optimizer step, through the real ``train.py`` epoch loop.
bare: the same model, optimizer, batch size and image size, on a uint8 batch already in memory.

Target (CPU, efficientnet_lite0, 128 px, batch 32, channels_last): full / bare >= 0.9.
On a GPU: python bench/bench_train.py --img-size 224 --batch-size 256 --workers 14 --amp

Run: python bench/bench_train.py [--img-size 128] [--batch-size 32] [--workers 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from mtlkaggle.data import read_split
from mtlkaggle.demo import DemoConfig, make_demo
from mtlkaggle.folds import FoldConfig, folds_path, make_folds, write_folds
from mtlkaggle.progress import make_progress
from mtlkaggle.spec import load_spec, with_train_overrides
from mtlkaggle.train import Trainer, TrainOptions, build_trainer

REPO = Path(__file__).resolve().parents[1]


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--img-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--source-size", type=int, default=256, help="side of the JPEGs on disk")
    parser.add_argument("--batches", type=int, default=12, help="timed batches per measurement")
    parser.add_argument("--amp", action="store_true")
    parser.add_argument("--device", default=None)
    return parser.parse_args()


def _bare(run: Trainer, batches: int, batch_size: int, img_size: int) -> float:
    """img/s of forward/backward/step on one in-memory batch (the compute bound)."""
    batch = {
        "image": torch.randint(0, 256, (batch_size, 3, img_size, img_size), dtype=torch.uint8),
        "category": torch.randint(0, 10, (batch_size,)),
        "attribute": (torch.rand(batch_size, 15) < 0.3).float(),
    }
    run.model.train()

    def step(i: int) -> None:
        run.train_batch(batch, i + 1)

    for i in range(3):
        step(i)
    _sync(run.device)
    start = time.perf_counter()
    for i in range(batches):
        step(i)
    _sync(run.device)
    return batches * batch_size / (time.perf_counter() - start)


def _full(run: Trainer) -> float:
    """img/s of one real training epoch (after a warm-up epoch for workers and caches)."""
    with make_progress(transient=True) as progress:
        run.train_epoch(progress)
        _sync(run.device)
        start = time.perf_counter()
        run.state.epoch = 1
        run.train_epoch(progress)
        _sync(run.device)
    return len(run.train_loader) * run.train_loader.batch_size / (time.perf_counter() - start)


def _replicate(spec, n: int) -> None:
    """Copy the drawn JPEGs under new names until the train file has ``n`` rows (drawing is slow)."""
    import shutil

    import pandas as pd

    path = spec.data_path / spec.data.train
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    rows = [frame]
    for i in range(len(frame), n):
        row = frame.iloc[[i % len(frame)]].copy()
        new = f"images/copy_{i:06d}.jpg"
        shutil.copy(spec.data_path / row.iloc[0]["file_path"], spec.data_path / new)
        row["file_path"] = new
        rows.append(row)
    pd.concat(rows).to_csv(path, index=False)


def _loader_only(run: Trainer) -> float:
    """img/s of the DataLoader alone (decode + augment + collate), no model: the data bound."""
    loader = run.train_loader
    loader.sampler.set_epoch(5)
    start = time.perf_counter()
    n = sum(len(batch["index"]) for batch in loader)
    return n / (time.perf_counter() - start)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    args = _parse()
    n_images = args.batches * args.batch_size * 3 // 2  # the training fold gets 2/3 of them
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        spec = load_spec(REPO / "competition" / "demo.toml", data_dir=root / "data")
        unique = min(n_images + 3, 600)
        make_demo(spec, DemoConfig(n_train=unique, n_test=1, image_size=args.source_size))
        _replicate(spec, n_images + 3)
        spec = with_train_overrides(
            spec,
            backbone=args.backbone,
            img_size=args.img_size,
            batch_size=args.batch_size,
            num_workers=args.workers,
            amp=args.amp,
            n_splits=3,
            epochs=2,
        )
        import os

        os.chdir(root)
        write_folds(make_folds(spec, read_split(spec, "train"), FoldConfig(3)), folds_path(spec))
        run = build_trainer(spec, "0", TrainOptions(root / "runs", device=args.device))
        full = _full(run)
        bare = _bare(run, args.batches, args.batch_size, args.img_size)
        full_again = _full(run)
        data_bound = _loader_only(run)
    device = torch.cuda.get_device_name() if run.device.type == "cuda" else f"CPU ({os.cpu_count()} cores)"
    print(
        f"device: {device}; {args.backbone} {args.img_size} px, batch {args.batch_size}, channels_last, "
        f"amp={'on' if run.scaler or (args.amp and run.device.type == 'cuda') else 'off'}, "
        f"{args.workers} workers, JPEGs {args.source_size} px"
    )
    best_full = max(full, full_again)
    print(f"bare bound (tensors in memory): {bare:8.1f} img/s")
    print(f"full pipeline (JPEG on disk):   {best_full:8.1f} img/s  (runs: {full:.1f}, {full_again:.1f})")
    print(f"data loader alone (no model):   {data_bound:8.1f} img/s")
    print(f"ratio full / bare: {best_full / bare:.3f} (target >= 0.9)")


if __name__ == "__main__":
    main()
