"""Every shipped competition, end to end from a small data set in its ORIGINAL format:
check, folds, train (one epoch, tiny model), predict --tta, the submission format, evaluate."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pandas as pd
import pytest

from mtlkaggle.check import check_dataset
from mtlkaggle.cli import app
from mtlkaggle.data import read_split
from mtlkaggle.spec import load_spec

from . import formats_fixtures as fx
from .conftest import REPO, tiny_cli

TINY = tiny_cli()


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copytree(REPO / "competition", tmp_path / "competition")
    return tmp_path


def _pipeline(runner, comp: str, data_dir, fold: str = "all") -> str:
    """Run the user's commands; return evaluate's output."""
    data = ["--data-dir", str(data_dir)]
    for args in (
        ["check", comp, *data],
        ["folds", comp, *data],
        ["train", comp, "--fold", fold, *TINY, *data],
        ["predict", comp, "--tta", "--num-workers", "0", *data],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, (args, result.output)
    result = runner.invoke(app, ["evaluate", comp, f"submissions/{comp}", *data])
    return result


def test_fashion_ai6126(project, runner):
    data = project / "data/ai"
    fx.write_ai6126(data)
    # the fixed train/val split, then k-fold over train
    result = _pipeline(runner, "fashion-ai6126", data, fold="val")
    assert result.exit_code == 2 and "keeps no test labels" in result.output  # AI6126 test is hidden
    spec = load_spec("fashion-ai6126", data_dir=data)
    assert [t.size for t in spec.tasks] == list(fx.AI6126_SIZES)
    names = [n for n, _ in fx.AI6126_NAMES]
    assert [label for t in spec.tasks for label in t.label_names] == names  # list_attr_cloth.txt order
    val = read_split(spec, "val")
    raw = np.loadtxt(data / "split/val_attr.txt", dtype=int)
    np.testing.assert_array_equal(np.stack([val.targets[t.name] for t in spec.tasks], axis=1), raw)
    lines = (project / "submissions/fashion-ai6126/prediction.txt").read_text().splitlines()
    assert len(lines) == 10  # test.txt order, no header
    for line in lines:
        values = [int(v) for v in line.split(" ")]
        assert len(values) == 6 and all(0 <= v < k for v, k in zip(values, fx.AI6126_SIZES, strict=True))
    result = runner.invoke(app, ["train", "fashion-ai6126", "--fold", "all", *TINY, "--data-dir", str(data)])
    assert result.exit_code == 0, result.output
    # scoring works against any labelled file: score the val predictions' format via --labels
    labels = project / "val_labels.csv"
    frame = pd.DataFrame(raw, columns=[t.column for t in spec.tasks])
    frame.insert(0, "image", (data / "split/val.txt").read_text().split())
    frame.to_csv(labels, index=False)
    shutil.copy(data / "split/val.txt", data / "split/test.txt")  # predict the val images
    runner.invoke(app, ["predict", "fashion-ai6126", "--num-workers", "0", "--data-dir", str(data)])
    result = runner.invoke(
        app,
        [
            "evaluate",
            "fashion-ai6126",
            "submissions/fashion-ai6126",
            "--labels",
            str(labels),
            "--data-dir",
            str(data),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "class_accuracy" in result.output and "mean accuracy over 6 tasks" in result.output


def test_utkface_from_file_names(project, runner):
    data = project / "data/utk"
    malformed = fx.write_utkface(data)
    check = runner.invoke(app, ["check", "utkface", "--data-dir", str(data)])
    assert check.exit_code == 0 and "2 skipped" in check.output
    for name in malformed:
        assert name in check.output
    result = _pipeline(runner, "utkface", data)
    assert result.exit_code == 0, result.output
    assert "mae" in result.output and "accuracy" in result.output
    spec = load_spec("utkface", data_dir=data)
    train, test = read_split(spec, "train"), read_split(spec, "test_labels")
    assert len(train) + len(test) == 50 and not set(train.ids) & set(test.ids)
    row = train.ids[0]
    age, gender, race = (int(v) for v in row.split("_")[:3])
    assert (train.targets["age"][0], train.targets["gender"][0], train.targets["ethnicity"][0]) == (
        age,
        gender,
        race,
    )
    sub = pd.read_csv(project / "submissions/utkface/submission.csv", dtype=str)
    assert list(sub.columns) == ["file", "age", "gender", "ethnicity"] and list(sub["file"]) == list(test.ids)
    assert all(len(v.split(".")[1]) == 1 for v in sub["age"])  # float_format .1f
    report = runner.invoke(app, ["report", "utkface", "--data-dir", str(data)])
    assert report.exit_code == 0, report.output
    figures = sorted(p.name for p in (project / "reports/utkface/main").glob("*.png"))
    assert {"regression_age.png", "confusion_gender.png", "confusion_ethnicity.png"} <= set(figures)


def test_utkface_coral_protocol_keeps_ages_21_to_60(project):
    data = project / "data/utk"
    fx.write_utkface(data)
    text = (project / "competition/utkface.toml").read_text()
    text = text.replace("holdout = 0.2", 'holdout = 0.2\nkeep = [{ column = "age", min = 21, max = 60 }]')
    (project / "competition/coral.toml").write_text(text.replace('name = "utkface"', 'name = "coral"'))
    ages = read_split(load_spec("coral", data_dir=data), "train").targets["age"]
    everything = read_split(load_spec("utkface", data_dir=data), "train").targets["age"]
    assert ages.min() >= 21 and ages.max() <= 60
    assert len(ages) == int(((everything >= 21) & (everything <= 60)).sum()) < len(everything)


def test_utkface48_pixels_in_memory(project, runner):
    data = project / "data/utk48"
    fx.write_utkface48(data)
    result = _pipeline(runner, "utkface48", data)
    assert result.exit_code == 0, result.output
    assert list(data.iterdir()) == [data / "age_gender.csv"]  # no image was written to disk
    spec = load_spec("utkface48", data_dir=data)
    train = read_split(spec, "train")
    frame = pd.read_csv(data / "age_gender.csv")
    row = frame.index[frame["img_name"] == train.ids[0]][0]
    expected = np.array(frame.loc[row, "pixels"].split(), dtype=np.uint8).reshape(48, 48)
    image = train.source.read(0)
    assert image.shape == (48, 48, 3)
    np.testing.assert_array_equal(image[..., 0], expected)
    np.testing.assert_array_equal(image[..., 2], expected)
    broken = frame.copy()
    broken.loc[3, "pixels"] = "1 2 3"
    broken.to_csv(data / "age_gender.csv", index=False)
    # a broken row is reported with its line and id, whichever split it falls in
    report = check_dataset(spec)
    messages = [str(p) for p in report.problems]
    assert len(messages) == 1, messages
    assert re.search(
        r"age_gender.csv:5 \[pixels\] \(id '[^']+'\): expected 2304 grayscale values 0-255 separated "
        r"by spaces, found 3$",
        messages[0],
    ), messages


def test_pedestrian_names_and_weighted_f1(project, runner):
    data = project / "data/ped"
    fx.write_pedestrian(data)
    result = _pipeline(runner, "pedestrian", data)
    assert result.exit_code == 2 and "keeps no test labels" in result.output
    sub = pd.read_csv(project / "submissions/pedestrian/submission.csv", dtype=str, keep_default_na=False)
    assert list(sub.columns) == ["image", "gender", "upper_color", "lower_color"]
    assert set(sub["gender"]) <= {"Male", "Female", "N/V"}
    assert set(sub["upper_color"]) <= set(fx.PEDESTRIAN_COLOURS)
    labels = project / "labels.csv"
    pd.read_csv(data / "train.csv").iloc[:12].assign(image=sub["image"]).to_csv(labels, index=False)
    result = runner.invoke(
        app,
        [
            "evaluate",
            "pedestrian",
            "submissions/pedestrian",
            "--labels",
            str(labels),
            "--data-dir",
            str(data),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "weighted_f1" in result.output


def test_celeba_attribute_and_partition_files(project, runner):
    data = project / "data/celeba"
    fx.write_celeba(data)
    result = _pipeline(runner, "celeba", data)
    assert result.exit_code == 0, result.output
    assert "class_accuracy" in result.output
    spec = load_spec("celeba", data_dir=data)
    train, val, test = (read_split(spec, s) for s in ("train", "val", "test_labels"))
    assert (len(train), len(val), len(test)) == (32, 11, 11)
    lines = (data / "list_attr_celeba.txt").read_text().splitlines()
    male = lines[1].split().index("Male")
    first = lines[2].split()
    assert train.ids[0] == first[0] and train.targets["male"][0] == (first[1 + male] == "1")
    sub = pd.read_csv(project / "submissions/celeba/submission.csv", dtype=str)
    assert list(sub.columns) == ["image_id", "Male", "Young"] and list(sub["image_id"]) == list(test.ids)
