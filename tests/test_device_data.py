"""The device-side data path against the albumentations reference, on real files and real decoders.

Tolerances (stated in data/device.py): the two paths draw different random numbers, so training
augmentation is compared as distributions over 400 draws of one image; evaluation preprocessing is
compared tensor to tensor and differs only by resampling (roi_align's averaged bilinear vs OpenCV's
bilinear): under 1 grey level on average and 6 at most on smooth images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from mtlkaggle.data import LabelTable, load_image
from mtlkaggle.data.device import (
    DevicePipeline,
    EncodedDataset,
    collate_encoded,
    crop_boxes,
    decode_batch,
    resolve_augment_on,
    sample_uniforms,
)
from mtlkaggle.data.loading import ImageDataset, LoaderConfig, build_transforms, collate, make_loader
from mtlkaggle.paths import RunLayout
from mtlkaggle.spec import load_spec

from .conftest import REPO

N_DRAWS = 400


@pytest.fixture
def spec(monkeypatch):
    monkeypatch.chdir(REPO)
    return load_spec("demo")


def _recipe(spec, **augment):
    return spec.model_copy(update={"augment": spec.augment.model_copy(update=augment)})


def _coordinate_image(h: int, w: int) -> np.ndarray:
    """Red encodes x, green encodes y, blue is constant: a crop's pixels say where they came from."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    red, green = 20 + 215 * xx / (w - 1), 20 + 215 * yy / (h - 1)
    return np.stack([red, green, np.full_like(red, 128)], 2).round().astype(np.uint8)


def _table(tmp_path: Path, images: list[np.ndarray], suffix: str = "png") -> LabelTable:
    paths = []
    for i, image in enumerate(images):
        paths.append(tmp_path / f"{i}.{suffix}")
        Image.fromarray(image).save(paths[-1], quality=95)
    ids = np.array([p.name for p in paths], dtype=object)
    return LabelTable("train", tmp_path / "t.csv", ids, paths, {"category": np.arange(len(paths)) % 10})


def _both_paths(spec, table: LabelTable, size: int, train: bool, keys: list[tuple[int, int]]):
    """(CPU path images, device path images) as float (N, 3, S, S) for the same (index, seed) keys."""
    cpu_set = ImageDataset(table, build_transforms(spec, size, train), size)
    cpu = collate([cpu_set[k] for k in keys])["image"].float()
    encoded = collate_encoded([EncodedDataset(table)[k] for k in keys])
    device = DevicePipeline(spec, size, train, "cpu", channels_last=False)(encoded)["image"]
    return cpu, device


def _geometry(images: torch.Tensor, h: int, w: int) -> dict[str, np.ndarray]:
    """Per image: crop area fraction, aspect ratio, horizontal flip, from the coordinate colours."""
    red, green = images[:, 0].numpy(), images[:, 1].numpy()
    edge = 1 - 1 / images.shape[-1]  # the outer pixel centres lie half an output pixel inside the crop
    wfrac = (red[:, :, -1].mean(1) - red[:, :, 0].mean(1)) / 215 * (w - 1) / w / edge
    hfrac = (green[:, -1].mean(1) - green[:, 0].mean(1)) / 215 * (h - 1) / h / edge
    return {
        "scale": np.abs(wfrac * hfrac),
        "log_aspect": np.log(np.abs(wfrac * w) / np.abs(hfrac * h)),
        "hflip": wfrac < 0,
    }


def test_crop_scale_aspect_and_flip_rate_match_albumentations(spec, tmp_path):
    h, w = 60, 80
    recipe = _recipe(spec, crop_scale=(0.3, 1.0), rotate=0, shift=0, color_jitter=0, hflip=0.5)
    table = _table(tmp_path, [_coordinate_image(h, w)], "jpg")
    keys = [(0, s) for s in range(N_DRAWS)]
    cpu, device = (_geometry(x, h, w) for x in _both_paths(recipe, table, 48, True, keys))
    for stats in (cpu, device):  # each path does what the recipe says ...
        assert 0.27 < stats["scale"].min() and stats["scale"].max() < 1.03
        assert abs(stats["log_aspect"]).max() < np.log(1.25) + 0.06
    # ... and the distributions agree (standard errors over 400 draws: ~0.01 for means, 0.025 for rates)
    assert abs(cpu["scale"].mean() - device["scale"].mean()) < 0.04
    assert abs(np.median(cpu["scale"]) - np.median(device["scale"])) < 0.06
    assert abs(cpu["log_aspect"].mean() - device["log_aspect"].mean()) < 0.03
    assert abs(cpu["log_aspect"].std() - device["log_aspect"].std()) < 0.03
    assert abs(cpu["hflip"].mean() - device["hflip"].mean()) < 0.1 and 0.4 < device["hflip"].mean() < 0.6


def _angles(images: torch.Tensor) -> np.ndarray:
    """Each image's rotation in degrees, from the direction of the red (x) gradient in its centre."""
    red = images[:, 0, 12:-12, 12:-12].numpy()
    gx, gy = np.gradient(red, axis=2).mean((1, 2)), np.gradient(red, axis=1).mean((1, 2))
    return np.degrees(np.arctan2(gy, gx))


def test_rotation_distribution_matches_albumentations(spec, tmp_path):
    recipe = _recipe(spec, crop_scale=(1.0, 1.0), rotate=20, shift=0, color_jitter=0, hflip=0)
    table = _table(tmp_path, [_coordinate_image(64, 64)], "jpg")
    keys = [(0, s) for s in range(N_DRAWS)]
    cpu, device = (_angles(x) for x in _both_paths(recipe, table, 48, True, keys))
    for angles in (cpu, device):
        assert abs(angles).max() < 21.5
        assert 0.2 < (abs(angles) < 0.5).mean() < 0.4  # Affine's p=0.7
    # |angle| is 0.7 x uniform(0, 20): mean 7; its standard error over 400 draws is ~0.4
    assert abs(abs(cpu).mean() - abs(device).mean()) < 1.5


def test_colour_jitter_statistics_match_albumentations(spec, tmp_path):
    recipe = _recipe(spec, crop_scale=(1.0, 1.0), rotate=0, shift=0, color_jitter=0.3, hflip=0)
    yy, xx = np.mgrid[0:48, 0:48]
    image = np.stack([90 + xx, 120 + yy, 60 + (xx + yy) // 2], 2).astype(np.uint8)  # a muted orange
    table = _table(tmp_path, [image], "jpg")
    keys = [(0, s) for s in range(N_DRAWS)]
    cpu, device = _both_paths(recipe, table, 48, True, keys)
    for name, stat in {
        "brightness": lambda x: x.mean((1, 2, 3)),
        "contrast": lambda x: x.mean(1).flatten(1).std(1),
        "saturation": lambda x: (x.amax(1) - x.amin(1)).mean((1, 2)),
        "red share": lambda x: x[:, 0].mean((1, 2)) / x.mean((1, 2, 3)),
    }.items():
        a, b = stat(cpu).numpy(), stat(device).numpy()
        # means within 5% and spreads within 25% of the reference
        assert abs(a.mean() - b.mean()) < 0.05 * abs(a.mean()), name
        assert abs(a.std() - b.std()) < 0.25 * a.std(), name


@pytest.mark.parametrize("eval_resize", ["squash", "pad"])
def test_eval_preprocessing_gives_the_same_tensors(spec, tmp_path, eval_resize):
    recipe = _recipe(spec, eval_resize=eval_resize)
    images = [_coordinate_image(h, w) for h, w in ((40, 56), (64, 48), (50, 50), (33, 70))]
    table = _table(tmp_path, images)
    cpu, device = _both_paths(recipe, table, 32, False, [(i, 0) for i in range(len(images))])
    difference = (cpu - device).abs()
    assert device.shape == cpu.shape == (4, 3, 32, 32)
    assert difference.mean() < 1.0 and difference.max() <= 6


def test_odd_files_fall_back_and_bad_ones_are_listed(tmp_path):
    base = _coordinate_image(30, 40)
    Image.fromarray(base).convert("CMYK").save(tmp_path / "cmyk.jpg")
    Image.fromarray(base).save(tmp_path / "progressive.jpg", progressive=True, quality=95)
    Image.fromarray(base).convert("L").save(tmp_path / "gray.jpg")
    Image.fromarray(base).convert("RGBA").save(tmp_path / "alpha.png")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8garbage")
    names = ["cmyk.jpg", "progressive.jpg", "gray.jpg", "alpha.png", "broken.jpg"]
    paths = [tmp_path / n for n in names]
    data = [torch.frombuffer(bytearray(p.read_bytes()), dtype=torch.uint8) for p in paths]
    images, bad = decode_batch(data, [str(p) for p in paths], torch.device("cpu"))
    assert list(bad) == [4] and "broken.jpg: unreadable image" in bad[4]
    for path, image in zip(paths[:4], images[:4], strict=True):
        reference = torch.from_numpy(load_image(path).transpose(2, 0, 1).copy()).float()
        assert image.shape == (3, 30, 40) and image.dtype == torch.uint8
        assert (image.float() - reference).abs().mean() < 3, path.name


def test_unreadable_rows_leave_the_batch_with_their_targets(spec, tmp_path):
    table = _table(tmp_path, [_coordinate_image(20, 20)] * 3, suffix="jpg")
    table.paths[1].write_bytes(b"not an image")
    table.paths[2].unlink()
    batch = collate_encoded([EncodedDataset(table)[(i, i)] for i in range(3)])
    assert batch["skipped"] == 1 and "2.jpg: image not found" in batch["bad"][0]
    out = DevicePipeline(spec, 16, True, "cpu")(batch)
    assert out["image"].shape == (1, 3, 16, 16) and out["index"].tolist() == [0]
    assert out["category"].tolist() == [0] and out["skipped"] == 2 and "1.jpg" in out["bad"][1]


def test_augmentation_depends_on_the_seed_only(spec, tmp_path):
    table = _table(tmp_path, [_coordinate_image(40, 50)] * 4, suffix="jpg")
    pipeline = DevicePipeline(spec, 24, True, "cpu")
    first = pipeline(collate_encoded([EncodedDataset(table)[(i, 100 + i)] for i in range(4)]))["image"]
    # the same samples in another batch order and batch split: the same images
    reordered = [(i, 100 + i) for i in (3, 1)]
    again = pipeline(collate_encoded([EncodedDataset(table)[k] for k in reordered]))["image"]
    assert torch.equal(again[0], first[3]) and torch.equal(again[1], first[1])
    other = pipeline(collate_encoded([EncodedDataset(table)[(0, 7)]]))["image"]
    assert not torch.equal(other[0], first[0])


def test_loader_on_device_gives_bytes_and_worker_count_does_not_matter(spec, tmp_path):
    table = _table(tmp_path, [_coordinate_image(30, 30)] * 6, suffix="jpg")
    pipeline = DevicePipeline(spec, 16, True, "cpu")
    runs = []
    for workers in (0, 2):
        config = LoaderConfig(16, 3, workers, seed=5, train=True, on_device=True)
        runs.append(torch.cat([pipeline(b)["image"] for b in make_loader(spec, table, config)]))
    assert runs[0].shape == (6, 3, 16, 16) and torch.equal(runs[0], runs[1])


def test_random_parameters_are_uniform_and_crops_fit():
    u = sample_uniforms(np.arange(20000), 22)
    assert abs(u.mean() - 0.5) < 0.01 and abs(u.std() - 12**-0.5) < 0.01 and u.min() >= 0 and u.max() < 1
    assert abs(np.corrcoef(u[:, 0], u[:, 1])[0, 1]) < 0.03
    h, w = np.full(20000, 30.0), np.full(20000, 200.0)  # too wide for the ratio range: some fallbacks
    boxes = crop_boxes(u, h, w, (0.5, 1.0))
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= w).all() and (boxes[:, 3] <= h).all()


def test_auto_means_device_on_cuda_only():
    assert resolve_augment_on("auto", "cpu") == "cpu"
    assert resolve_augment_on("auto", "cuda") == "device"
    assert resolve_augment_on("device", "cpu") == "device"


@pytest.mark.slow
def test_train_and_predict_on_the_device_path_from_the_cli(tiny_spec, workspace, runner):
    from mtlkaggle.cli import app

    common = ["--backbone", "test_efficientnet", "--img-size", "32", "--no-pretrained", "--num-workers", "0"]
    result = runner.invoke(
        app, ["train", "demo", "--fold", "0", "--epochs", "1", *common, "--augment-on", "device"]
    )
    assert result.exit_code == 0, result.output
    metrics = pd.read_csv(workspace / "runs/demo/main/fold0/metrics.csv")
    assert metrics["img_per_s"].iloc[0] > 0 and 0 <= metrics["data_wait"].iloc[0] <= 1
    result = runner.invoke(app, ["predict", "demo", "--tta", "--num-workers", "0", "--augment-on", "device"])
    assert result.exit_code == 0, result.output
    probs = pd.read_csv(workspace / "submissions/demo/probabilities.csv")
    assert len(probs) == 24 and probs.drop(columns=probs.columns[0]).notna().all().all()
    cpu_args = ["--num-workers", "0", "--augment-on", "cpu", "--out-dir", "cpu-sub"]
    result = runner.invoke(app, ["predict", "demo", "--tta", *cpu_args])
    assert result.exit_code == 0, result.output
    reference = pd.read_csv(workspace / "cpu-sub/probabilities.csv")
    numbers = probs.columns[1:]
    # the same model on both paths' eval tensors (resampling differs only): nearly the same outputs
    assert (probs[numbers] - reference[numbers]).abs().to_numpy().max() < 0.05


class _SlowTransform:
    """The real albumentations pipeline, plus 100 ms a sample: a loader the model must wait on."""

    def __init__(self, transform):
        self.transform = transform

    def __call__(self, **kwargs):
        import time

        time.sleep(0.1)
        return self.transform(**kwargs)


@pytest.mark.slow
def test_a_run_that_waits_on_data_says_so_once_with_the_option(tiny_spec, workspace):
    import io

    from rich.console import Console

    from mtlkaggle.progress import make_progress
    from mtlkaggle.spec import with_train_overrides
    from mtlkaggle.train import TrainOptions, build_trainer

    spec = with_train_overrides(tiny_spec, epochs=2)
    trainer = build_trainer(spec, "0", TrainOptions(RunLayout(workspace / "runs/slow"), device="cpu"))
    dataset = trainer.train_loader.dataset
    dataset.transform = _SlowTransform(dataset.transform)
    out = io.StringIO()
    with make_progress(Console(file=out, width=200)) as progress:
        trainer.fit(progress)
    text = out.getvalue()
    assert text.count("waited on data") == 1, text
    assert "--num-workers" in text or "--augment-on device" in text
    metrics = pd.read_csv(workspace / "runs/slow/fold0/metrics.csv")
    assert (metrics["data_wait"] > 0.3).all() and (metrics["img_per_s"] > 0).all()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_decode_and_augmentation_match_the_cpu_run_of_the_same_code(spec, tmp_path):
    # nvJPEG and libjpeg-turbo round their inverse DCTs differently: a few grey levels at most
    table = _table(tmp_path, [_coordinate_image(40 + 8 * i, 56) for i in range(5)], suffix="jpg")
    batch = [EncodedDataset(table)[(i, 10 + i)] for i in range(5)]
    for train in (True, False):
        on_cpu = DevicePipeline(spec, 32, train, "cpu")(collate_encoded(batch))["image"]
        on_gpu = DevicePipeline(spec, 32, train, "cuda")(collate_encoded(batch))["image"]
        assert on_gpu.device.type == "cuda"
        assert (on_gpu.cpu() - on_cpu).abs().mean() < 2


def test_worker_default_is_the_usable_cpus_minus_one_and_an_explicit_count_wins(spec, tmp_path):
    import os

    from mtlkaggle.data.loading import default_workers

    assert default_workers() == max(0, min(16, len(os.sched_getaffinity(0)) - 1))
    table = _table(tmp_path, [_coordinate_image(20, 20)] * 2, suffix="jpg")
    auto = make_loader(spec, table, LoaderConfig(16, 2, None, seed=0, train=False))
    explicit = make_loader(spec, table, LoaderConfig(16, 2, 3, seed=0, train=False))
    assert auto.num_workers == default_workers() and explicit.num_workers == 3
    assert spec.train.num_workers is None  # the spec's default is "auto" too
