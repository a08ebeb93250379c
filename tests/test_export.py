"""``mtlkaggle export``: safetensors per fold, bundle.json, the wheel, ONNX checked against torch."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import torch

from mtlkaggle.cli import app
from mtlkaggle.data import read_split
from mtlkaggle.data.loading import ImageDataset, build_transforms
from mtlkaggle.engine.checkpoint import load_fold_model
from mtlkaggle.paths import RunLayout

pytestmark = pytest.mark.slow  # the session fixture trains and exports once (~30 s on 2 cores)


def test_bundle_holds_every_fold_as_safetensors_equal_to_the_checkpoints(exported_demo):
    from safetensors.torch import load_file

    bundle = exported_demo.bundle
    meta = json.loads((bundle / "bundle.json").read_text())
    assert [f["name"] for f in meta["folds"]] == ["0", "1", "full"]
    for fold in meta["folds"]:
        model, _ = load_fold_model(RunLayout(exported_demo.run_dir).fold(fold["name"]))
        saved = load_file(bundle / fold["weights"])
        assert saved.keys() == model.state_dict().keys()
        assert all(torch.equal(saved[k], v) for k, v in model.state_dict().items())
    # safetensors holds tensors only: the file starts with its JSON header, no pickle opcodes
    assert not (bundle / "fold0.safetensors").read_bytes()[:2] == b"\x80\x02"


def test_bundle_json_says_how_to_use_the_models(exported_demo):
    meta = json.loads((exported_demo.bundle / "bundle.json").read_text())
    spec = exported_demo.spec
    tasks = {t["name"]: t for t in meta["tasks"]}
    assert tasks["category"]["classes"] == spec.task("category").label_names
    assert len(tasks["attribute"]["thresholds"]) == 15 and tasks["attribute"]["at_least_one"] is True
    saved = json.loads((exported_demo.run_dir / "thresholds.json").read_text())
    assert meta["thresholds"]["attribute"] == saved["attribute"]["thresholds"]
    assert (meta["backbone"], meta["img_size"]) == ("test_efficientnet", 32)
    assert meta["preprocessing"]["resize"] == "pad" and len(meta["preprocessing"]["mean"]) == 3
    assert meta["tta"] == ["hflip"]
    assert set(meta["versions"]) >= {"mtlkaggle", "torch", "timm", "onnx", "onnxruntime"}
    assert meta["folds"][2]["scores"] == {}  # the full-data fit has no validation


def test_wheel_installs_the_package_with_its_packaged_specs(exported_demo):
    meta = json.loads((exported_demo.bundle / "bundle.json").read_text())
    wheel = exported_demo.bundle / meta["wheel"]
    assert wheel.name.startswith("mtlkaggle-") and wheel.suffix == ".whl"
    names = zipfile.ZipFile(wheel).namelist()
    assert "mtlkaggle/bundle.py" in names and "mtlkaggle/cli/__init__.py" in names
    assert "mtlkaggle/engine/fold.py" in names and "mtlkaggle/data/loading.py" in names
    assert "mtlkaggle/competitions/demo.toml" in names  # setup.py packs competition/*.toml
    assert any(n.endswith("entry_points.txt") for n in names)


def test_onnx_agrees_with_torch_on_real_test_images(exported_demo, monkeypatch):
    import onnxruntime as ort

    monkeypatch.chdir(exported_demo.root)
    spec, bundle = exported_demo.spec, exported_demo.bundle
    assert all(d <= 1e-4 for d in exported_demo.export.onnx_max_diff.values())
    table = read_split(spec, "test", labelled=False)
    dataset = ImageDataset(table, build_transforms(spec, 32, train=False), 32)
    images = torch.stack([dataset[i]["image"] for i in range(7)])  # a batch size never exported
    model, _ = load_fold_model(RunLayout(exported_demo.run_dir).fold("1"))
    with torch.no_grad():
        expected = model.probabilities(model(images))
    session = ort.InferenceSession(str(bundle / "fold1.onnx"), providers=["CPUExecutionProvider"])
    outputs = session.run(None, {"images": images.numpy()})
    got = dict(zip([o.name for o in session.get_outputs()], outputs, strict=True))
    assert set(got) == {"category", "attribute"}
    for name, p in expected.items():
        assert got[name].shape == tuple(p.shape)
        assert np.abs(got[name] - p.numpy()).max() <= 1e-4


def test_cli_export_chosen_folds_without_wheel(exported_demo, tmp_path, monkeypatch, runner):
    monkeypatch.chdir(exported_demo.root)
    out = tmp_path / "b"
    result = runner.invoke(app, ["export", "demo", "--folds", "full", "--no-wheel", "--out", str(out)])
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "bundle.json").read_text())
    assert [f["name"] for f in meta["folds"]] == ["full"] and meta["wheel"] is None
    assert sorted(p.name for p in out.iterdir()) == ["bundle.json", "foldfull.safetensors"]
    result = runner.invoke(app, ["export", "demo", "--folds", "0", "--no-wheel", "--out", str(out)])
    assert result.exit_code == 0, result.output  # a new export replaces the old bundle's folds
    assert sorted(p.name for p in out.iterdir()) == ["bundle.json", "fold0.safetensors"]


def test_export_errors_are_one_line(exported_demo, tmp_path, monkeypatch, runner):
    monkeypatch.chdir(exported_demo.root)
    result = runner.invoke(app, ["export", "demo", "--folds", "7", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "no trained fold 7; trained: 0, 1, full" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "x").exists()
    result = runner.invoke(app, ["export", "demo", "--run", "nothing", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "no trained fold (none at all)" in result.output
