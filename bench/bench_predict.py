"""Benchmark: prediction against the bare forward pass of the same models, in one run.

bare:     each fold model's forward on an in-memory batch (one view); the bound for k views is k x it.
TTA:      ``predict.ensemble_batch`` with k views on an in-memory batch (view transforms, forward,
          softmax/sigmoid, sums). Target: TTA time <= 1.1 x k x bare time.
pipeline: the predict loop from JPEGs on disk (loader, decode, resize, 2 views, every fold), with
          default settings, and on each data path (cpu: PIL + albumentations in workers; device:
          workers read bytes, decode and resize batched on the device). Target on one H100:
          >= 0.85 x the bound of 2 views.

Run: python bench/bench_predict.py [--img-size 128] [--batch-size 64] [--folds 2] [--device cuda]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from mtlkaggle.engine.runtime import autocast_for, resolve_device
from mtlkaggle.model import MultiTaskNet
from mtlkaggle.paths import RunLayout
from mtlkaggle.predict import PredictOptions, _checked, _test_loader, ensemble_batch
from mtlkaggle.spec import load_spec, with_train_overrides

REPO = Path(__file__).resolve().parents[1]


def _time(fn, repeats: int, device: torch.device) -> float:
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--img-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--folds", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default=None)
    parser.add_argument("--images", type=int, default=256, help="test JPEGs for the pipeline runs")
    parser.add_argument("--source-size", type=int, default=256, help="side of the JPEGs on disk")
    parser.add_argument("--workers", type=int, default=None, help="default: usable CPUs - 1, at most 16")
    args = parser.parse_args()
    device = resolve_device(args.device)
    spec = with_train_overrides(load_spec(REPO / "competition/deepfashion.toml"), img_size=args.img_size)
    models = [MultiTaskNet(spec, spec.train).to(device).eval() for _ in range(args.folds)]
    models = [m.to(memory_format=torch.channels_last) for m in models]
    autocast, _ = autocast_for(device, True)
    images = torch.randint(0, 256, (args.batch_size, 3, args.img_size, args.img_size), dtype=torch.uint8)
    images = images.to(device).contiguous(memory_format=torch.channels_last)

    @torch.no_grad()
    def bare():
        for model in models:
            with autocast():
                model(images)

    bare_s = _time(bare, args.repeats, device)
    print(f"device {device}, {args.folds} x efficientnet_lite0, {args.img_size} px, batch {args.batch_size}")
    print(f"bare forward (1 view):  {bare_s * 1000:8.1f} ms")
    for views in (["identity", "hflip"], ["identity", "hflip", "vflip", "zoom:1.15"]):
        k = len(views)
        with torch.no_grad():
            tta_s = _time(lambda v=views: ensemble_batch(models, v, images, autocast), args.repeats, device)
        ratio = tta_s / (k * bare_s)
        name = ",".join(views)
        print(f"TTA {k} views ({name}): {tta_s * 1000:8.1f} ms = {ratio:.3f} x k x bare (target <= 1.1)")
    bound = args.batch_size / (2 * bare_s)  # img/s of 2 views at the bare forward speed
    print(f"{'bound, 2 views (2 x bare forward)':36s} {bound:8.1f} img/s  1.000x")
    with tempfile.TemporaryDirectory() as tmp:
        table = _test_images(Path(tmp), args)
        options = PredictOptions(
            RunLayout(Path(tmp)), Path(tmp), device=str(device), num_workers=args.workers
        )
        paths = (("pipeline, default settings", "auto"), ("cpu path", "cpu"), ("device path", "device"))
        predict = spec.predict.model_copy(update={"batch_size": args.batch_size})
        batched = spec.model_copy(update={"predict": predict})
        for label, on in paths:
            speed = _pipeline(batched, table, models, replace(options, augment_on=on), autocast, device)
            print(f"{label:36s} {speed:8.1f} img/s  {speed / bound:.3f}x{_peak(device)}")


def _test_images(root: Path, args):
    from mtlkaggle.data import read_split
    from mtlkaggle.demo import DemoConfig, make_demo

    demo = load_spec(REPO / "competition/demo.toml", data_dir=root / "data")
    make_demo(demo, DemoConfig(n_train=10, n_test=args.images, image_size=args.source_size))
    os.chdir(root)
    return read_split(demo, "test", labelled=False)


@torch.no_grad()
def _pipeline(spec, table, models, options: PredictOptions, autocast, device: torch.device) -> float:
    """img/s of the predict loop over the test JPEGs with 2 views (a warm-up pass first)."""
    loader, prepare = _test_loader(spec, spec, table, options, device)
    for _ in range(2):  # the first pass warms up
        start = time.perf_counter()
        for batch in _checked(loader, prepare):
            ensemble_batch(models, ["identity", "hflip"], batch["image"].to(device), autocast)
        if device.type == "cuda":
            torch.cuda.synchronize()
    return len(table) / (time.perf_counter() - start)


def _peak(device: torch.device) -> str:
    if device.type != "cuda":
        return ""
    peak = torch.cuda.max_memory_allocated(device) / 2**30
    torch.cuda.reset_peak_memory_stats(device)
    return f"  peak GPU memory {peak:5.2f} GiB"


if __name__ == "__main__":
    main()
