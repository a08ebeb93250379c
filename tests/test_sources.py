"""Image location per split and the image sources, against files written by each format's writer."""

from __future__ import annotations

import re
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from mtlkaggle.check import check_dataset
from mtlkaggle.cli import app
from mtlkaggle.data import read_split
from mtlkaggle.data.device import DevicePipeline
from mtlkaggle.data.loading import LoaderConfig, make_loader
from mtlkaggle.data.sources import require
from mtlkaggle.errors import UserError
from mtlkaggle.model import MultiTaskNet, load_pretrained
from mtlkaggle.spec import load_spec, with_train_overrides

from . import sources_fixtures as sx
from .conftest import write_toml


def _spec(root, name: str, data: str, extra: str = ""):
    path = write_toml(root / "competition" / f"{name}.toml", sx.toml(name, data, extra))
    return load_spec(path, data_dir=root / "data" / name)


def _bad_lines(spec, table, on_device: bool) -> list[str]:
    """Every bad-sample message of one pass over ``table`` by 2 DataLoader workers."""
    config = LoaderConfig(16, 4, 2, seed=0, train=False, on_device=on_device)
    pipeline = DevicePipeline(spec, 16, False, "cpu") if on_device else None
    bad, good = [], 0
    for batch in make_loader(spec, table, config):
        batch = pipeline(batch) if pipeline else batch
        bad += batch["bad"]
        good += len(batch["image"]) if "image" in batch else 0
        if "image" in batch:
            assert batch["image"].shape[1:] == (spec.data.in_chans, 16, 16)
    assert good == len(table) - len(bad)
    return bad


def test_patterns_per_split_and_columns_with_spaces(tmp_path):
    root = tmp_path / "data" / "aptos"
    rng = np.random.default_rng(0)
    for folder, ids in (("train_images", ["a1", "a2"]), ("test_images", ["t1"]), ("test_extra", ["t2"])):
        for image_id in ids:
            (root / folder).mkdir(parents=True, exist_ok=True)
            Image.fromarray(sx.rgb(rng)).save(root / folder / f"{image_id}.png")
    pd.DataFrame({"id - code": ["a1", "a2"], "label": [0, 2]}).to_csv(root / "train.csv", index=False)
    pd.DataFrame({"id - code": ["t1", "t2"]}).to_csv(root / "test.csv", index=False)
    data = """train = "train.csv"
test = "test.csv"
id_column = "id - code"
image_pattern = "train_images/{id - code}.png"
test_image_pattern = ["test_images/{id - code}.png", "test_extra/{id - code}.png"]"""
    spec = _spec(tmp_path, "aptos", data)
    assert spec.data.image_column == "id - code"  # defaults to the id column
    train, test = read_split(spec, "train"), read_split(spec, "test")
    assert train.paths == [(root / "train_images" / f"{i}.png").resolve() for i in ("a1", "a2")]
    assert test.paths == [(root / "test_images/t1.png").resolve(), (root / "test_extra/t2.png").resolve()]
    report = check_dataset(spec)
    assert report.ok and report.images_checked == 4, [str(p) for p in report.problems]


def test_check_names_the_path_tried_and_what_would_find_it(tmp_path):
    root = tmp_path / "data" / "cassava"
    rng = np.random.default_rng(1)
    (root / "train_images").mkdir(parents=True)
    (root / "test_images").mkdir(parents=True)
    Image.fromarray(sx.rgb(rng)).save(root / "train_images" / "a.jpg")  # the spec says .png
    Image.fromarray(sx.rgb(rng)).save(root / "test_images" / "t.png")  # the spec says test/
    pd.DataFrame({"image_id": ["a"], "label": [1]}).to_csv(root / "train.csv", index=False)
    pd.DataFrame({"image_id": ["t"]}).to_csv(root / "test.csv", index=False)
    data = """train = "train.csv"
test = "test.csv"
id_column = "image_id"
image_pattern = "train_images/{image_id}.png"
test_image_pattern = ["test/{image_id}.png", "test2/{image_id}.png"]"""
    problems = [str(p) for p in check_dataset(_spec(tmp_path, "cassava", data)).problems]
    assert len(problems) == 2, problems
    train_png, test_png = (root / "train_images/a.png").resolve(), (root / "test/t.png").resolve()
    assert problems[0] == (
        f"{root / 'train.csv'}:2: {train_png}: image not found; 'a.jpg' exists there: the extension "
        "should be .jpg (set data.image_pattern)"
    )
    also = (root / "test2/t.png").resolve()
    assert problems[1] == (
        f"{root / 'test.csv'}:2: {test_png}: image not found (also tried {also}); "
        "'t.png' exists in folder 'test_images': point data.image_pattern (data.test_image_pattern for "
        "test rows) there"
    )


def test_a_pattern_naming_a_missing_column_says_the_pattern_named_it(tmp_path):
    root = tmp_path / "data" / "rsna"
    root.mkdir(parents=True)
    pd.DataFrame({"image_id": ["a"], "label": [1]}).to_csv(root / "train.csv", index=False)
    pd.DataFrame({"image_id": ["t"]}).to_csv(root / "test.csv", index=False)
    data = """train = "train.csv"
test = "test.csv"
id_column = "image_id"
image_pattern = "train_images/{image}.png"
test_image_pattern = ["test_images/{image_id}.png"]"""
    problems = [str(p) for p in check_dataset(_spec(tmp_path, "rsna", data)).problems]
    assert problems[0] == (
        f"{root / 'train.csv'}:1: missing column(s) ['image'] ('image' named by the image pattern "
        "'train_images/{image}.png'); found ['image_id', 'label']; fix the spec or the file"
    )


@pytest.mark.parametrize("parquet", [False, True])
def test_pixel_columns_digit_recognizer(tmp_path, parquet):
    frames = sx.write_digits(tmp_path / "data" / "digits", parquet=parquet)
    frames["train"].loc[4, "pixel7"] = 300  # one bad sample
    writer = "to_parquet" if parquet else "to_csv"
    getattr(frames["train"], writer)(tmp_path / f"data/digits/train.{frames['suffix']}", index=False)
    spec = _spec(tmp_path, "digits", sx.DIGITS.format(suffix=frames["suffix"]), sx.NO_JITTER)
    train, test = read_split(spec, "train"), read_split(spec, "test", labelled=False)
    assert list(test.ids) == ["1", "2", "3", "4", "5"]  # Kaggle's ImageId: the 1-based row number
    assert list(train.targets["label"]) == list(np.arange(12) % 3)
    expected = frames["test"].iloc[2].to_numpy().reshape(28, 28)
    image = test.source.read(2)
    assert image.shape == (28, 28, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image[..., 1], expected)
    where = (
        f"{tmp_path / 'data/digits/train.csv'}:6"
        if not parquet
        else f"{tmp_path / 'data/digits/train.parquet'}:5"
    )
    line = f"{where} [pixel*] (id '5'): expected 784 grayscale values 0-255, found 0..300"
    for on_device in (False, True):
        assert _bad_lines(spec, train, on_device) == [line]
    problems = [str(p) for p in check_dataset(spec).problems]
    assert problems == [line]


def test_pixel_columns_missing_name_the_columns(tmp_path):
    root = tmp_path / "data" / "digits"
    sx.write_digits(root)
    frame = pd.read_csv(root / "train.csv").drop(columns=["pixel783"])
    frame.to_csv(root / "train.csv", index=False)
    spec = _spec(tmp_path, "digits", sx.DIGITS.format(suffix="csv"), sx.NO_JITTER)
    with pytest.raises(
        UserError, match=r"train.csv:1: pixels_shape \[28, 28\] needs columns pixel0..pixel783; "
    ):
        read_split(spec, "train")


def test_hdf5_bytes_keyed_by_id(tmp_path):
    images = sx.write_isic(tmp_path / "data" / "isic")
    file = tmp_path / "data/isic/train-image.hdf5"
    import h5py

    with h5py.File(file, "a") as f:
        del f["ISIC_0000003"]
        f.create_dataset("ISIC_0000003", data=np.array(b"\xff\xd8 not a jpeg"))  # one bad sample
    spec = _spec(tmp_path, "isic", sx.ISIC)
    train, test = read_split(spec, "train"), read_split(spec, "test", labelled=False)
    np.testing.assert_array_equal(test.source.read(1), images["ISIC_0001001"])
    np.testing.assert_array_equal(train.source.read(0), images["ISIC_0000000"])
    line = f"{file.resolve()}[ISIC_0000003]: unreadable image"
    for on_device in (False, True):
        bad = _bad_lines(spec, train, on_device)
        assert len(bad) == 1 and bad[0].startswith(line) and "\n" not in bad[0], bad
        assert "BytesIO" not in bad[0] and " at 0x" not in bad[0], bad  # same line on every run
    problems = [str(p) for p in check_dataset(spec).problems]
    assert len(problems) == 1 and problems[0].startswith(
        f"{tmp_path / 'data/isic/train-metadata.csv'}:5: {line}"
    )


def test_channel_files_stacked_into_four_channels(tmp_path):
    stacks = sx.write_hpa(tmp_path / "data" / "hpa")
    broken = tmp_path / "data/hpa/train/tr-0002-abcd_yellow.png"
    broken.write_bytes(broken.read_bytes()[:40])  # truncated
    green = tmp_path / "data/hpa/test/te-0002-abcd_green.png"  # a 16-bit file, as HPA ships some
    Image.fromarray(stacks["te-0002-abcd"][..., 1].astype(np.uint16) * 257).save(green)
    assert Image.open(green).mode == "I;16"
    spec = _spec(tmp_path, "hpa", sx.HPA, sx.NO_JITTER)
    assert spec.data.in_chans == 4
    train, test = read_split(spec, "train"), read_split(spec, "test", labelled=False)
    np.testing.assert_array_equal(test.source.read(2), stacks["te-0002-abcd"])
    for on_device in (False, True):
        bad = _bad_lines(spec, train, on_device)
        assert len(bad) == 1 and bad[0].startswith(f"{broken}: unreadable image"), bad
    with pytest.raises(UserError, match="color_jitter needs RGB images, and data gives 4 channels"):
        _spec(tmp_path, "hpa", sx.HPA)


def test_dicom_rescaled_and_windowed(tmp_path):
    stored = sx.write_rsna(tmp_path / "data" / "rsna")
    image_id = "ID_tr0000004"
    values = stored[image_id].copy()
    values[0, :4] = [1064, 1024, 1104, 0]  # HU 40, 0, 80, -1024
    sx.write_dicom(tmp_path / f"data/rsna/stage_2_train/{image_id}.dcm", values)
    bad = tmp_path / "data/rsna/stage_2_train/ID_tr0000002.dcm"
    bad.write_bytes(b"not a dicom file at all")
    spec = _spec(tmp_path, "rsna", sx.RSNA, sx.NO_JITTER)
    train = read_split(spec, "train")
    image = train.source.read(4)
    assert image.shape == (16, 16, 3)
    assert list(image[0, :4, 0]) == [128, 0, 255, 0]  # brain window 40/80: HU 0..80 -> 0..255
    hu = values.astype(np.float64) - 1024
    for c, (center, width) in enumerate(spec.data.dicom_windows):
        np.testing.assert_array_equal(image[..., c], sx.window(hu, center, width))
    for on_device in (False, True):
        lines = _bad_lines(spec, train, on_device)
        assert len(lines) == 1 and lines[0].startswith(f"{bad}: unreadable DICOM"), lines


def test_four_channel_model_adapts_the_pretrained_stem(tmp_path):
    sx.write_hpa(tmp_path / "data" / "hpa")
    spec = with_train_overrides(_spec(tmp_path, "hpa", sx.HPA, sx.NO_JITTER), backbone="efficientnet_lite0")
    model = MultiTaskNet(spec, spec.train)
    assert model.mean.shape == (1, 4, 1, 1)
    assert torch.allclose(model.mean.flatten()[[0, 3]], torch.tensor([0.485, 0.485]) * 255)
    load_pretrained(model.backbone, "efficientnet_lite0", None)
    rgb = MultiTaskNet(_spec(tmp_path, "plain", 'train = "x.csv"\nid_column = "id"'), spec.train)
    load_pretrained(rgb.backbone, "efficientnet_lite0", None)
    stem4, stem3 = model.backbone.conv_stem.weight, rgb.backbone.conv_stem.weight
    assert stem4.shape[1] == 4 and torch.allclose(stem4[:, :3], stem3 * 3 / 4)
    assert torch.allclose(stem4[:, 3], stem3[:, 0] * 3 / 4)
    out = model(torch.zeros((2, 4, 32, 32), dtype=torch.uint8))
    assert out["label"].shape == (2, 3)


def test_a_missing_package_is_one_line_naming_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pydicom", None)  # what an environment without it imports
    with pytest.raises(
        UserError, match=re.escape("run: pip install pydicom (or: pip install 'mtlkaggle[dicom]')")
    ):
        require("pydicom", "x.dcm")


TINY = ["--backbone", "test_efficientnet", "--no-pretrained", "--img-size", "32", "--epochs", "1"]
TINY += ["--batch-size", "4", "--num-workers", "2"]


@pytest.mark.slow
@pytest.mark.parametrize("source", ["pixels", "parquet", "hdf5", "channels", "dicom"])
def test_check_train_predict_per_source(tmp_path, monkeypatch, runner, source):
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "data"
    if source in ("pixels", "parquet"):
        suffix = sx.write_digits(root / "digits", parquet=source == "parquet")["suffix"]
        name, data, n_test = "digits", sx.DIGITS.format(suffix=suffix), 5
    else:
        write, name, data = {
            "hdf5": (sx.write_isic, "isic", sx.ISIC),
            "channels": (sx.write_hpa, "hpa", sx.HPA),
        }.get(source, (sx.write_rsna, "rsna", sx.RSNA))
        n_test = len([k for k in write(root / name) if "te" in k[:7] or k.startswith("ISIC_0001")])
    write_toml(tmp_path / "competition" / f"{name}.toml", sx.toml(name, data, sx.NO_JITTER))
    for args in (
        ["check", name],
        ["folds", name, "--n-splits", "3"],
        ["train", name, "--fold", "all", *TINY],
        ["predict", name, "--num-workers", "2"],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, (args, result.output)
    sub = pd.read_csv(tmp_path / f"submissions/{name}/submission.csv", dtype=str)
    assert len(sub) == n_test and set(sub["label"]) <= {"0", "1", "2"}
    if source in ("channels", "dicom"):  # the bundle reads the same source offline
        for args in (
            [
                "export",
                name,
                "--out",
                "bundle",
                "--onnx" if source == "channels" else "--no-onnx",
                "--no-wheel",
            ],
            [
                "predict",
                "--bundle",
                "bundle",
                "--competition-files",
                "--out-dir",
                "offline",
                "--data-dir",
                str(root / name),
            ],
        ):
            result = runner.invoke(app, args)
            assert result.exit_code == 0, (args, result.output)
        offline = pd.read_csv(tmp_path / "offline/submission.csv", dtype=str)
        pd.testing.assert_frame_equal(offline, sub)
        result = runner.invoke(
            app, ["predict", "--bundle", "bundle", "--input", str(root / name), "--out", "x.csv"]
        )
        assert result.exit_code == 2 and f"image_source '{source}'; use --competition-files" in result.output


def test_hdf5_pixel_arrays_and_test_keys_tried_in_order(tmp_path):
    import h5py

    root = tmp_path / "data" / "arrays"
    root.mkdir(parents=True)
    rng = np.random.default_rng(3)
    images = {key: sx.rgb(rng, 12) for key in ("a", "b", "img_c")}
    with h5py.File(root / "images.h5", "w") as f:
        for key, image in images.items():
            f.create_dataset(key, data=image)  # raw uint8 (H, W, 3), no encoding
    pd.DataFrame({"id": ["a", "b"], "label": [0, 1]}).to_csv(root / "train.csv", index=False)
    pd.DataFrame({"id": ["a", "c"]}).to_csv(root / "test.csv", index=False)
    data = """train = "train.csv"
test = "test.csv"
id_column = "id"
image_source = "hdf5"
hdf5_file = "images.h5"
test_image_pattern = ["{id}", "img_{id}"]"""
    spec = _spec(tmp_path, "arrays", data)
    test = read_split(spec, "test", labelled=False)
    np.testing.assert_array_equal(test.source.read(0), images["a"])
    np.testing.assert_array_equal(test.source.read(1), images["img_c"])
    assert test.source.name(1) == f"{(root / 'images.h5').resolve()}[img_c]"


@pytest.mark.parametrize("pattern", ["train/{}.png", "train/{id.png", "train/id}.png"])
def test_a_pattern_with_broken_braces_is_refused_in_one_line(tmp_path, pattern):
    data = f'train = "train.csv"\nid_column = "id"\nimage_pattern = "{pattern}"'
    with pytest.raises(UserError, match=re.escape(f"image pattern '{pattern}': placeholders are {{Column}}")):
        _spec(tmp_path, "braces", data)


def test_four_channel_training_batches_on_both_paths(tmp_path):
    stacks = sx.write_hpa(tmp_path / "data" / "hpa")
    spec = _spec(tmp_path, "hpa", sx.HPA, sx.NO_JITTER + "rotate = 10\nshift = 0.1\nvflip = 0.5\n")
    train = read_split(spec, "train")
    for on_device in (False, True):
        config = LoaderConfig(16, 4, 2, seed=0, train=True, on_device=on_device)
        pipeline = DevicePipeline(spec, 16, True, "cpu") if on_device else None
        batches = [pipeline(b) if pipeline else b for b in make_loader(spec, train, config)]
        assert [tuple(b["image"].shape) for b in batches] == [(4, 4, 16, 16), (4, 4, 16, 16)]
        assert all(not b["bad"] for b in batches)
        # the yellow plane is augmented with the others, not dropped or zeroed
        assert all(float(b["image"][:, 3].float().std()) > 10 for b in batches)
    assert len(stacks) == 12


def test_check_hints_at_the_missing_channel_file_and_lists_a_missing_container_once(tmp_path):
    sx.write_hpa(tmp_path / "data" / "hpa")
    yellow = tmp_path / "data/hpa/train/tr-0001-abcd_yellow.png"
    Image.open(yellow).save(yellow.with_suffix(".jpg"))
    yellow.unlink()
    problems = [str(p) for p in check_dataset(_spec(tmp_path, "hpa", sx.HPA, sx.NO_JITTER)).problems]
    assert problems == [
        f"{tmp_path / 'data/hpa/train.csv'}:3: {yellow}: image not found; 'tr-0001-abcd_yellow.jpg' exists "
        "there: the extension should be .jpg (set data.image_pattern)"
    ]
    sx.write_isic(tmp_path / "data" / "isic")
    (tmp_path / "data/isic/test-image.hdf5").unlink()
    problems = [str(p) for p in check_dataset(_spec(tmp_path, "isic", sx.ISIC)).problems]
    container = tmp_path / "data/isic/test-image.hdf5"
    assert problems == [f"{tmp_path / 'data/isic/test-metadata.csv'}:2: {container}: HDF5 file not found"]
