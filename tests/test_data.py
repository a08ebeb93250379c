"""Image decoding, transforms and the Dataset: real JPEG/PNG files, real albumentations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mtlkaggle.data import ImageReadError, LabelTable, load_image
from mtlkaggle.data.loading import ImageDataset, build_transforms, collate
from mtlkaggle.data.sources import PixelSource
from mtlkaggle.spec import load_spec

from .conftest import REPO


@pytest.fixture
def spec(monkeypatch):
    monkeypatch.chdir(REPO)
    return load_spec("demo")


@pytest.mark.parametrize(("mode", "suffix"), [("L", "jpg"), ("P", "png"), ("RGBA", "png"), ("RGB", "jpg")])
def test_any_mode_decodes_to_rgb(tmp_path, mode, suffix):
    path = tmp_path / f"x.{suffix}"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8)).convert(
        mode
    ).save(path)
    image = load_image(path)
    assert image.shape == (20, 30, 3) and image.dtype == np.uint8


def test_grayscale_channels_are_equal(tmp_path):
    path = tmp_path / "g.png"
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).save(path)
    image = load_image(path)
    assert (image[..., 0] == image[..., 1]).all() and (image[..., 1] == image[..., 2]).all()


def test_jpeg_draft_decodes_smaller_but_not_below_the_request(tmp_path):
    path = tmp_path / "big.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (400, 600, 3), dtype=np.uint8)).save(path)
    full, draft = load_image(path), load_image(path, draft_size=96)
    assert full.shape == (400, 600, 3)
    assert 96 <= min(draft.shape[:2]) < 400  # libjpeg's DCT scaling: 1/2, 1/4 ...


def test_missing_and_corrupt_images_name_the_file(tmp_path):
    with pytest.raises(ImageReadError, match="nope.jpg: image not found"):
        load_image(tmp_path / "nope.jpg")
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8garbage")
    with pytest.raises(ImageReadError, match="bad.jpg: unreadable image"):
        load_image(tmp_path / "bad.jpg")


def _table(tmp_path: Path, n: int = 4) -> LabelTable:
    paths = []
    for i in range(n):
        path = tmp_path / f"{i}.jpg"
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (50, 70, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    ids = np.array([p.name for p in paths], dtype=object)
    return LabelTable("train", tmp_path / "t.csv", ids, paths, {"category": np.arange(n) % 10})


def test_augmentation_is_fixed_by_the_sample_seed(spec, tmp_path):
    table = _table(tmp_path)
    dataset = ImageDataset(table, build_transforms(spec, 32, train=True), 32)
    a, b, c = dataset[(1, 123)], dataset[(1, 123)], dataset[(1, 124)]
    assert a["image"].shape == (3, 32, 32) and str(a["image"].dtype) == "torch.uint8"
    assert (a["image"] == b["image"]).all() and not (a["image"] == c["image"]).all()
    assert int(a["category"]) == 1 and a["index"] == 1


def test_eval_pad_keeps_the_aspect_ratio(spec, tmp_path):
    table = _table(tmp_path)
    image = ImageDataset(table, build_transforms(spec, 35, train=False), 35)[0]["image"]
    assert image.shape == (3, 35, 35)
    assert (image[:, :5] == 0).all()  # 50x70 -> 25x35: black bands top and bottom


def test_in_memory_grayscale_images_and_skipped_rows(tmp_path, spec):
    table = _table(tmp_path, 2)
    values = np.stack([np.full(36, 7, np.float32), np.full(36, 9, np.float32)])
    table.source = PixelSource(values, (6, 6), table.file, np.array([2, 3]), table.ids, "pixels")
    sample = ImageDataset(table, build_transforms(spec, 6, train=False), 6)[1]
    assert sample["image"].shape == (3, 6, 6) and int(sample["image"].max()) == 9
    batch = collate([sample, {"bad": "x.jpg: unreadable image", "index": 0}])
    assert batch["skipped"] == 1 and batch["bad"] == ["x.jpg: unreadable image"]
    assert batch["image"].shape == (1, 3, 6, 6)


@pytest.mark.parametrize(("mode", "suffix"), [("I;16", "png"), ("I", "tif")])
def test_sixteen_bit_images_are_scaled_not_clipped(tmp_path, mode, suffix):
    values = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    image = Image.fromarray(values if mode == "I;16" else values.astype(np.int32))
    image.save(tmp_path / f"deep.{suffix}")
    assert Image.open(tmp_path / f"deep.{suffix}").mode == mode
    rgb = load_image(tmp_path / f"deep.{suffix}")
    assert rgb.shape == (64, 64, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb[..., 0], np.rint(values / 257).astype(np.uint8))
    assert (rgb == 255).mean() < 0.01  # PIL's own convert("RGB") leaves 99% of these at 255


def test_decompression_bombs_are_refused_by_name(tmp_path):
    """Over the limit: refused before decoding; over twice the limit PIL itself refuses: same error type."""
    Image.new("1", (10_000, 10_000)).save(tmp_path / "big.png")  # 100 Mpx > 89 Mpx, 12 kB on disk
    Image.new("1", (14_000, 14_000)).save(tmp_path / "huge.png")  # > 2x the limit
    for name in ("big.png", "huge.png"):
        with pytest.raises(ImageReadError, match=rf"{name}: refused as a (possible )?decompression bomb"):
            load_image(tmp_path / name)
