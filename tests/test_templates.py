"""The nine Kaggle templates: each reads its competition's files exactly as `kaggle competitions
download` + unzip lays them out (fixtures in tests/kaggle_layouts.py, written from the published
descriptions) and writes the file the competition reads, checked against its sample submission."""

from __future__ import annotations

import io
import math
import re
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from mtlkaggle.cli import app
from mtlkaggle.data import read_split
from mtlkaggle.spec import load_spec

from . import kaggle_layouts as kl
from . import test_submit
from .conftest import REPO, tiny_cli

SLUGS = list(kl.LAYOUTS)
kaggle_server, kaggle = test_submit.kaggle_server, test_submit.kaggle  # the local Kaggle API fixtures

TINY = tiny_cli()

# What each written column must hold: ("label", allowed) | ("labels", allowed, sep) | ("probability",)
_LABEL_COLUMNS = {
    "digit-recognizer": {"Label": ("label",)},
    "cassava-leaf-disease-classification": {"label": ("label",)},
    "aptos2019-blindness-detection": {"diagnosis": ("label",)},
    "plant-pathology-2021-fgvc8": {"labels": ("labels", " ")},
    "imet-2020-fgvc7": {"attribute_ids": ("labels", " ")},
}


def test_every_template_is_listed_and_names_its_slug(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["init", "--list"])
    assert result.exit_code == 0, result.output
    listed = result.output.split()
    for slug in SLUGS:
        assert slug in listed
        text = (REPO / "competition" / f"{slug}.toml").read_text()
        assert f'name = "{slug}"' in text and f'data_dir = "data/{slug}"' in text
        assert text.count(f'kaggle = "{slug}"') >= 1


def test_no_competition_is_named_in_src():
    sources = {p: p.read_text() for p in (REPO / "src").rglob("*.py")}
    for slug in SLUGS:
        named = [str(p.relative_to(REPO)) for p, text in sources.items() if slug in text]
        assert not named, f"{slug} named in {named}"


@pytest.mark.parametrize("slug", SLUGS)
def test_template_validates_and_init_installs_it(slug, runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = load_spec(slug)
    assert spec.name == slug and spec.data_dir == f"data/{slug}" and spec.data.kaggle == slug
    result = runner.invoke(app, ["init", slug])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "competition" / f"{slug}.toml").read_bytes() == (
        REPO / "competition" / f"{slug}.toml"
    ).read_bytes()
    assert load_spec(slug).model_dump() == spec.model_dump()  # the installed copy, found first


def _invoke(runner, args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, (args, result.output)
    return result.output


def _assert_cells(slug: str, spec, frame: pd.DataFrame, written: kl.Written) -> None:
    """Every value cell is of the kind the competition reads."""
    kinds = _LABEL_COLUMNS.get(slug, {})
    for column in frame.columns[1:]:
        cells = frame[column].tolist()
        kind = kinds.get(column, ("probability",))
        if kind[0] == "probability":
            values = [float(c) for c in cells]
            assert all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in values), (column, cells)
            assert all(re.fullmatch(r"[01]?\.\d+|[01]", c) for c in cells), (column, cells)  # not 1e-05
        elif kind[0] == "label":
            assert set(cells) <= set(written.classes[column]), (column, cells)
        else:
            for cell in cells:
                tokens = cell.split(kind[1]) if cell else []
                assert all(t in written.classes[column] for t in tokens), (column, cell)
                assert len(set(tokens)) == len(tokens), (column, cell)


@pytest.mark.slow
@pytest.mark.parametrize("slug", SLUGS)
def test_template_end_to_end_writes_what_the_competition_reads(slug, runner, tmp_path, monkeypatch):
    """Published layout -> init, check, folds, train (fold 0), predict --tta, submit --dry-run."""
    monkeypatch.chdir(tmp_path)
    written = kl.LAYOUTS[slug](tmp_path / "downloads" / slug)
    data = ["--data-dir", str(written.data_dir)]
    _invoke(runner, ["init", slug])
    _invoke(runner, ["check", slug, *data])
    _invoke(runner, ["folds", slug, "--n-splits", "2", *data])
    spec = load_spec(slug, data_dir=written.data_dir)
    if spec.data.group_column:  # a patient's images never straddle two folds
        folds = pd.read_csv(tmp_path / "folds" / f"{slug}.csv", dtype=str)
        train = pd.read_csv(written.data_dir / spec.data.train, dtype=str)
        fold_of = dict(zip(folds.iloc[:, 0], folds["fold"], strict=True))
        per_group = train.groupby(spec.data.group_column)[spec.data.id_column].apply(
            lambda ids: {fold_of[i] for i in ids}
        )
        assert all(len(f) == 1 for f in per_group), per_group
    _invoke(runner, ["train", slug, "--fold", "0", *TINY, *data])
    _invoke(runner, ["predict", slug, "--tta", "--num-workers", "0", *data])
    sub = spec.submissions[0]
    out = tmp_path / "submissions" / slug / sub.file
    frame = pd.read_csv(out, dtype=str, keep_default_na=False)
    if sub.sample:
        sample = pd.read_csv(written.sample_submission, dtype=str, keep_default_na=False)
        assert out.read_text().splitlines()[0] == written.sample_submission.read_text().splitlines()[0]
        assert list(frame.columns) == list(sample.columns)
        assert frame.iloc[:, 0].tolist() == sample.iloc[:, 0].tolist() == written.test_ids
    else:  # image level only (HPA): ids in the sample's order, one probability per class
        assert frame.iloc[:, 0].tolist() == written.test_ids
        assert list(frame.columns[1:]) == spec.tasks[0].label_names
    _assert_cells(slug, spec, frame, written)
    assert "\r" not in out.read_text() and out.read_text().endswith("\n")
    _invoke(runner, ["submit", slug, "--dry-run", *data])
    _assert_broken_copies_refused(slug, runner, out, frame, data)


def _assert_broken_copies_refused(slug: str, runner, out: Path, frame: pd.DataFrame, data: list[str]) -> None:
    """Files Kaggle would refuse or score as garbage are refused before anything is sent, each in
    one line; a bad cell is named by its row id and column."""
    good = out.read_text()
    lines = good.splitlines(keepends=True)
    column = frame.columns[-1]
    first_id, first_cell = frame.iloc[0, 0], frame.iloc[0, -1]
    probability = _is_probability(first_cell)
    cells = frame.iloc[0].tolist()

    def row(last: str) -> str:
        return ",".join([*cells[:-1], last]) + "\n"

    broken = {
        "a test id missing": "".join(lines[:-1]),
        "a wrong header": lines[0].rsplit(",", 1)[0] + ",wrong_header\n" + "".join(lines[1:]),
        "a NaN": lines[0] + row("nan") + "".join(lines[2:]),
        "a label where a probability is due" if probability else "a probability where a label is due": (
            lines[0] + row("abc" if probability else "0.5") + "".join(lines[2:])
        ),
    }
    for what, text in broken.items():
        out.write_text(text)
        result = runner.invoke(app, ["submit", slug, "--dry-run", *data])
        message = result.output.strip()
        assert result.exit_code == 2 and "Traceback" not in message, (what, message)
        assert len(message.splitlines()) == 1, (what, message)
        if what == "a wrong header":
            assert ":1: header should be" in message and "wrong_header" in message, message
        elif what == "a test id missing":
            assert "1 id(s)" in message and "missing" in message, message
        else:
            assert f"row '{first_id}'" in message and f"column '{column}'" in message, (what, message)
    out.write_text(good)


def _is_probability(cell: str) -> bool:
    try:
        return "." in cell and 0.0 <= float(cell) <= 1.0
    except ValueError:
        return False


def test_fixtures_follow_the_published_layouts(tmp_path):
    """A few facts of the published layouts the templates depend on, held against the writers."""
    root = tmp_path / "data"
    digits = kl.write_digit_recognizer(root / "d")
    header = (digits.data_dir / "train.csv").read_text().splitlines()[0].split(",")
    assert header[:2] == ["label", "pixel0"] and header[-1] == "pixel783" and len(header) == 785
    assert (digits.data_dir / "sample_submission.csv").read_text().startswith("ImageId,Label\n1,0\n")
    rsna = kl.write_rsna(root / "r")
    train = pd.read_csv(rsna.data_dir / "stage_2_train.csv")
    assert len(train) == 6 * 19 and train["ID"].str.fullmatch(r"ID_[0-9a-f]{9}_[a-z]+").all()
    assert train["ID"].duplicated().sum() == 6  # one image's rows repeated, as in the published file
    images = {Path(p).stem for p in (rsna.data_dir / "stage_2_train").glob("ID_*.dcm")}
    assert images == {i.rsplit("_", 1)[0] for i in train["ID"]}
    ranzcr = kl.write_ranzcr(root / "c")
    columns = pd.read_csv(ranzcr.data_dir / "train.csv", nrows=0).columns.tolist()
    assert columns == ["StudyInstanceUID", *kl.RANZCR_COLUMNS, "PatientID"]


def _zip_folder(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(folder).as_posix())
    return buffer.getvalue()


@pytest.mark.parametrize("slug", SLUGS)
def test_init_download_check_as_a_new_user(slug, kaggle, runner, tmp_path, monkeypatch):
    """`init SLUG`, `download SLUG` (the real kaggle client; a local server playing Kaggle serves the
    competition's zip), `check SLUG`: no --data-dir, nothing converted by hand."""
    written = kl.LAYOUTS[slug](tmp_path / "published")
    kaggle.zip_bytes = _zip_folder(written.data_dir)
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    _invoke(runner, ["init", slug])
    _invoke(runner, ["download", slug])
    assert any(c.endswith("DownloadDataFiles") for c in kaggle.calls)
    assert (project / "data" / slug / written.sample_submission.name).is_file()
    assert "no problems found" in _invoke(runner, ["check", slug])


def _multi_hot(cells: list[list], classes: list) -> np.ndarray:
    out = np.zeros((len(cells), len(classes)), dtype=np.float32)
    for row, labels in enumerate(cells):
        for label in labels:
            out[row, classes.index(label)] = 1
    return out


def _png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def _expected_train(slug: str, data: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """From the published files alone (pandas, PIL, h5py, pydicom): the train ids, the one task's
    targets, and the first train image as the competition's own tools read it (H, W[, C])."""
    if slug == "rsna-intracranial-hemorrhage-detection":
        import pydicom

        long = pd.read_csv(data / "stage_2_train.csv").drop_duplicates("ID")  # as its users do
        image = long["ID"].str.rsplit("_", n=1).str[0]
        wide = long.assign(image=image, sub=long["ID"].str.rsplit("_", n=1).str[1])
        wide = wide.pivot(index="image", columns="sub", values="Label").loc[pd.unique(image)]
        ds = pydicom.dcmread(data / "stage_2_train" / f"{image[0]}.dcm")
        hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        brain = np.clip((hu - 0.0) / 80.0 * 255.0, 0, 255)  # window 40/80: 0..80 HU -> 0..255
        ids = [i.removeprefix("ID_") for i in wide.index]
        return ids, wide[kl.RSNA_SUBTYPES].to_numpy(np.float32), brain
    frames = {
        "digit-recognizer": "train.csv",
        "isic-2024-challenge": "train-metadata.csv",
    }
    train = pd.read_csv(data / frames.get(slug, "train.csv"), dtype=str, keep_default_na=False)
    if slug == "digit-recognizer":
        pixels = train.filter(like="pixel").to_numpy(np.uint8)[0].reshape(28, 28)
        return [str(i) for i in range(1, len(train) + 1)], train["label"].astype(int).to_numpy(), pixels
    if slug == "isic-2024-challenge":
        import h5py

        with h5py.File(data / "train-image.hdf5") as f:
            first = np.asarray(Image.open(io.BytesIO(f[train["isic_id"][0]][()])))
        return list(train["isic_id"]), train[["target"]].astype(np.float32).to_numpy(), first
    layouts = {  # id column, how the targets are written, where the first image is
        "cassava-leaf-disease-classification": (
            "image_id",
            lambda t: t["label"].astype(int),
            "train_images/{}",
        ),
        "aptos2019-blindness-detection": (
            "id_code",
            lambda t: t["diagnosis"].astype(np.float32),
            "train_images/{}.png",
        ),
        "plant-pathology-2021-fgvc8": (
            "image",
            lambda t: _multi_hot([c.split(" ") for c in t["labels"]], kl.PLANT_CLASSES),
            "train_images/{}",
        ),
        "ranzcr-clip-catheter-line-classification": (
            "StudyInstanceUID",
            lambda t: t[kl.RANZCR_COLUMNS].astype(np.float32),
            "train/{}.jpg",
        ),
        "imet-2020-fgvc7": (
            "id",
            lambda t: _multi_hot(
                [[int(a) for a in c.split()] for c in t["attribute_ids"]], list(range(kl.IMET_CLASSES))
            ),
            "train/{}.png",
        ),
        "hpa-single-cell-image-classification": (
            "ID",
            lambda t: _multi_hot([[int(a) for a in c.split("|")] for c in t["Label"]], list(range(19))),
            "train/{}_{{}}.png",
        ),
    }
    column, decode, image = layouts[slug]
    targets = np.asarray(decode(train))
    first = image.format(train[column][0])
    if "{}" in first:  # one grey file per stain, stacked in the order the spec names them
        pixels = np.stack([_png(data / first.format(c)) for c in kl.HPA_COLOURS], axis=-1)
    else:
        pixels = _png(data / first)
    return list(train[column]), targets, pixels


@pytest.mark.parametrize("slug", SLUGS)
def test_template_reads_the_published_files(slug, tmp_path):
    """Ids, targets and the first image of the train split, and the test ids in order, as read by the
    template, against what pandas/PIL/h5py/pydicom read from the published files directly."""
    written = kl.LAYOUTS[slug](tmp_path / slug)
    spec = load_spec(slug, data_dir=written.data_dir)
    train = read_split(spec, "train")
    ids, targets, first = _expected_train(slug, written.data_dir)
    assert list(train.ids) == ids
    np.testing.assert_array_equal(
        np.asarray(train.targets[spec.tasks[0].name]).reshape(targets.shape), targets
    )
    image = train.source.read(0)
    if slug.startswith("rsna"):  # three CT windows, one channel each: the first is the brain window
        assert image.shape == (*first.shape, 3)
        image = image[..., 0]
    elif first.ndim == 2:  # one channel: fed as three equal ones
        assert image.shape == (*first.shape, 3) and (image == image[..., :1]).all()
        image = image[..., 0]
    tolerance = 1 if slug.startswith("rsna") else 0  # windowing rounds to a grey level
    np.testing.assert_allclose(image.astype(float), first.astype(float), atol=tolerance)
    test = read_split(spec, "test")
    expected_test = written.test_ids
    if slug.startswith("rsna"):  # the sample lists six rows an image; the test split one row each
        images = dict.fromkeys(r.rsplit("_", 1)[0] for r in written.test_ids)
        expected_test = [i.removeprefix("ID_") for i in images]
    assert list(test.ids) == expected_test
