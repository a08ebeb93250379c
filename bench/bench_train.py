"""Benchmark: training throughput of each data path against the bare compute bound, in one run.

bare:          the same model, optimizer, batch size and image size, on a uint8 batch in memory.
defaults:      the real epoch loop with the settings a user gets (workers: usable CPUs - 1; data path
               ``auto``: device on CUDA, cpu elsewhere).
cpu path:      JPEG -> PIL (draft) -> albumentations in DataLoader workers.
device path:   workers read bytes; decode (nvJPEG on CUDA) and augmentation batched on the device.
decoded cache: the cpu path on images decoded and resized once (1.15x the training side) and held
               in memory: the most a decoded-image cache could give the cpu path.

Targets: CPU (efficientnet_lite0, 128 px, batch 32): defaults / bare >= 0.9; one H100 with 16 cores
(224 px, batch 256, --amp): defaults / bare >= 0.85.

Run: python bench/bench_train.py [--img-size 128] [--batch-size 32] [--workers N] [--paths default,cpu,...]
On a GPU: python bench/bench_train.py --img-size 224 --batch-size 256 --amp --source-size 400
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from mtlkaggle.data import load_image, read_split
from mtlkaggle.demo import DemoConfig, make_demo
from mtlkaggle.folds import FoldConfig, folds_path, make_folds, write_folds
from mtlkaggle.paths import RunLayout
from mtlkaggle.progress import make_progress
from mtlkaggle.spec import load_spec, with_train_overrides
from mtlkaggle.train import Trainer, TrainOptions, build_trainer

REPO = Path(__file__).resolve().parents[1]


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--img-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=None, help="default: usable CPUs - 1, at most 16")
    parser.add_argument("--source-size", type=int, default=256, help="side of the JPEGs on disk")
    parser.add_argument("--batches", type=int, default=12, help="timed batches per measurement")
    parser.add_argument("--amp", action="store_true")
    parser.add_argument("--device", default=None)
    parser.add_argument("--paths", default="default,cpu,device,cache", help="which data paths to time")
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


def _full(run: Trainer) -> tuple[float, float]:
    """img/s and data-wait share of one real training epoch (after a warm-up epoch)."""
    with make_progress(transient=True) as progress:
        run.train_epoch(progress)
        _sync(run.device)
        start = time.perf_counter()
        run.state.epoch = 1
        run.train_epoch(progress)
        _sync(run.device)
    return len(run.train_loader) * run.train_loader.batch_size / (time.perf_counter() - start), run.data_wait


def _cache(run: Trainer, size: int) -> None:
    """Swap the training loader for one over images decoded and resized once, held in memory."""
    from PIL import Image

    table = run.train_table
    side = math.ceil(1.15 * size)
    images = []
    for path in table.paths:  # PIL, not OpenCV: workers forked after OpenCV ran here can hang
        image = Image.fromarray(load_image(path, side))
        scale = side / min(image.size)
        image = image.resize((round(image.size[0] * scale), round(image.size[1] * scale)), Image.BILINEAR)
        images.append(np.asarray(image))
    cached = table.subset(np.arange(len(table)))
    cached.images = images
    run.train_loader = run._loader(cached, train=True)


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


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _peak_memory(device: torch.device) -> str:
    if device.type != "cuda":
        return ""
    peak = torch.cuda.max_memory_allocated(device) / 2**30
    torch.cuda.reset_peak_memory_stats(device)
    return f"  peak GPU memory {peak:5.2f} GiB"


PATHS = {  # name -> (augment.on, decoded cache)
    "default": ("auto", False),
    "cpu": ("cpu", False),
    "device": ("device", False),
    "cache": ("cpu", True),
}
LABELS = {
    "default": "pipeline, default settings",
    "cpu": "cpu path (albumentations)",
    "device": "device path (batched)",
    "cache": "cpu path + decoded cache",
}


def _data(args: argparse.Namespace, root: Path):
    """The demo competition with enough JPEGs for the timed batches, and its folds."""
    n_images = args.batches * args.batch_size * 3 // 2  # the training fold gets 2/3 of them
    spec = load_spec(REPO / "competition" / "demo.toml", data_dir=root / "data")
    make_demo(spec, DemoConfig(n_train=min(n_images + 3, 600), n_test=1, image_size=args.source_size))
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
    os.chdir(root)
    write_folds(make_folds(spec, read_split(spec, "train"), FoldConfig(3)), folds_path(spec))
    return spec


def main() -> None:
    args = _parse()
    results: dict[str, tuple[float, float, str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        spec = _data(args, root)
        bare = None
        for name in args.paths.split(","):
            on, cache = PATHS[name]
            run_spec = spec.model_copy(update={"augment": spec.augment.model_copy(update={"on": on})})
            options = TrainOptions(RunLayout(root / "runs"), device=args.device, overwrite=True)
            run = build_trainer(run_spec, "0", options)
            if bare is None:
                bare = _bare(run, args.batches, args.batch_size, args.img_size)
                bare_memory = _peak_memory(run.device)
            if cache:
                _cache(run, args.img_size)
            speed, wait = _full(run)
            results[name] = (speed, wait, _peak_memory(run.device))
            del run
    device = (
        torch.cuda.get_device_name()
        if torch.cuda.is_available() and args.device != "cpu"
        else (f"CPU ({len(os.sched_getaffinity(0))} usable cores)")
    )
    from mtlkaggle.data.loading import default_workers

    workers = default_workers() if args.workers is None else args.workers
    print(
        f"device: {device}; {args.backbone} {args.img_size} px, batch {args.batch_size}, channels_last, "
        f"amp={'on' if args.amp else 'off'}, {workers} workers, JPEGs {args.source_size} px"
    )
    print(f"{'bare bound (uint8 batch in memory)':38s} {bare:8.1f} img/s  1.000x{bare_memory}")
    for name, (speed, wait, memory) in results.items():
        label = LABELS[name]
        print(f"{label:38s} {speed:8.1f} img/s  {speed / bare:.3f}x  data wait {wait:4.0%}{memory}")


if __name__ == "__main__":
    main()
