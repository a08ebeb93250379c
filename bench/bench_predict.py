"""Benchmark: cost of test-time augmentation against the bare forward pass of the same models.

bare: each fold model's forward on an in-memory batch (one view).
TTA:  ``predict.ensemble_batch`` with k views (view transforms, forward, softmax/sigmoid, sums).
Target: TTA time <= 1.1 x k x bare time.

Run: python bench/bench_predict.py [--img-size 128] [--batch-size 64] [--folds 2] [--device cuda]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from mtlkaggle.engine.runtime import autocast_for, resolve_device
from mtlkaggle.model import MultiTaskNet
from mtlkaggle.predict import ensemble_batch
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


if __name__ == "__main__":
    main()
