"""Fold ensemble x TTA: exact averaging, real flips, submissions end to end."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from mtlkaggle.cli import app
from mtlkaggle.data import read_split
from mtlkaggle.data.loading import ImageDataset, build_transforms
from mtlkaggle.engine.checkpoint import load_fold_model
from mtlkaggle.paths import FoldLayout, RunLayout
from mtlkaggle.predict import PredictOptions, apply_view, predict_ensemble, run_predict, tta_views
from mtlkaggle.spec import PredictSpec, with_train_overrides
from mtlkaggle.train import TrainOptions, train_folds


def test_hflip_view_really_flips_and_zoom_one_is_identity():
    images = torch.zeros(1, 3, 4, 6)
    images[..., 0, 0] = 255  # top-left corner
    flipped = apply_view(images, "hflip")
    assert flipped[0, 0, 0, 5] == 255 and flipped[0, 0, 0, 0] == 0
    assert apply_view(images, "vflip")[0, 0, 3, 0] == 255
    assert torch.equal(apply_view(images, "zoom:1.0"), images)
    assert apply_view(images, "zoom:2.0").shape == images.shape
    assert apply_view(images, "hflip+zoom:0.5").shape == images.shape
    corner = apply_view(images, "crop:0.5:tl")  # the top-left quarter, blown up to full size
    assert corner.shape == images.shape and corner[0, 0, 0, 0] == 255
    assert apply_view(images, "crop:0.5:br")[0, 0].max() == 0  # the bright pixel is not in it


def test_spec_accepts_crop_views_and_rejects_unknown_ones(workspace):
    from mtlkaggle.spec import PredictSpec

    assert PredictSpec(tta=["hflip", "crop:0.875:tl", "crop:0.875:c"]).tta[1] == "crop:0.875:tl"
    with pytest.raises(ValueError, match="unknown view .rotate:90.; valid views: identity, hflip, vflip"):
        PredictSpec(tta=["rotate:90"])


@pytest.fixture
def trained(tiny_spec, workspace):
    spec = with_train_overrides(tiny_spec, epochs=1)
    train_folds(spec, ["0", "1"], TrainOptions(RunLayout(workspace / "runs/demo/main")))
    return spec


def test_ensemble_is_the_exact_mean_over_folds_and_views(trained, workspace):
    spec = trained
    views = ["hflip", "vflip"]
    # on the CPU in fp32, so the hand computation below is the same arithmetic
    options = PredictOptions(
        RunLayout(workspace / "runs/demo/main"), workspace / "sub", views=views, num_workers=0, device="cpu"
    )
    ensemble = predict_ensemble(spec, options)
    assert ensemble.folds == ["0", "1"] and ensemble.views == ["identity", *views]
    # the same average, computed by hand, image by image
    table = read_split(spec, "test", labelled=False)
    dataset = ImageDataset(table, build_transforms(spec, 32, train=False), 32)
    x = torch.stack([dataset[i]["image"] for i in range(len(table))]).float()
    x = x.contiguous(memory_format=torch.channels_last)
    expected = {"category": 0, "attribute": 0}
    with torch.no_grad():
        for fold in ("0", "1"):
            model, _ = load_fold_model(FoldLayout(workspace / f"runs/demo/main/fold{fold}"))
            for view in (x, x.flip(-1), x.flip(-2)):
                probs = model.probabilities(model(view))
                for name in expected:
                    expected[name] = expected[name] + probs[name].numpy() / 6
    for name in expected:
        np.testing.assert_allclose(ensemble.probs[name], expected[name], rtol=1e-5, atol=1e-6)
    # and the views matter: hflip changes the output of a trained model
    plain = predict_ensemble(
        spec, PredictOptions(options.run, options.out_dir, tta=False, num_workers=0, device="cpu")
    )
    assert not np.allclose(plain.probs["attribute"], ensemble.probs["attribute"])


def test_predict_writes_submissions_in_test_order_with_thresholds(trained, workspace, runner):
    result = runner.invoke(app, ["predict", "demo", "--tta", "--num-workers", "0"])
    assert result.exit_code == 0, result.output
    out = workspace / "submissions/demo"
    test = pd.read_csv(workspace / "data/demo/test.csv", dtype=str)
    category = pd.read_csv(out / "category.csv", dtype=str, keep_default_na=False)
    assert list(category.columns) == ["file_path", "category_label"]
    assert list(category["file_path"]) == list(test["file_path"])
    assert (workspace / "runs/demo/main/thresholds.json").is_file()  # tuned on the OOF when missing
    probs = pd.read_csv(out / "probabilities.csv")
    import json

    thresholds = np.array(
        json.loads((workspace / "runs/demo/main/thresholds.json").read_text())["attribute"]["thresholds"]
    )
    names = list(trained.task("attribute").classes)  # the spec names them: columns say so
    assert [c for c in probs.columns if c.startswith("attribute:")] == [f"attribute:{n}" for n in names]
    assert names[0] == "red"
    p = probs[[f"attribute:{n}" for n in names]].to_numpy()
    attribute = pd.read_csv(out / "attribute.csv", dtype=str, keep_default_na=False)
    for row, value in zip(p, attribute["attribute_label"], strict=True):
        assert value == " ".join(str(k) for k in np.flatnonzero(row > thresholds))
    evaluated = runner.invoke(app, ["evaluate", "demo", str(out)])
    assert evaluated.exit_code == 0, evaluated.output
    assert "mean_f1" in evaluated.output and "accuracy" in evaluated.output


def test_an_empty_tta_list_leaves_the_plain_view_alone(trained, workspace, runner):
    toml = workspace / "competition/demo.toml"
    text = toml.read_text()
    assert "[predict]" not in text
    toml.write_text(text + "\n[predict]\ntta = []\n")
    result = runner.invoke(app, ["predict", "demo", "--tta", "--num-workers", "0", "--out-dir", "sub"])
    assert result.exit_code == 0, result.output
    import json

    assert json.loads((workspace / "sub/config.json").read_text())["views"] == ["identity"]
    spec = trained.model_copy(update={"predict": PredictSpec(tta=["identity"])})
    assert tta_views(spec, True) == ["identity"]  # 'identity' alone: the same single view
    assert tta_views(spec, True, ["hflip"]) == ["identity", "hflip"]  # --views still adds views


def test_evaluate_scores_match_direct_computation(trained, workspace):
    from mtlkaggle.evaluate import evaluate_submissions
    from mtlkaggle.metrics import mean_f1

    run_predict(
        trained, PredictOptions(RunLayout(workspace / "runs/demo/main"), workspace / "sub", num_workers=0)
    )
    scores = evaluate_submissions(trained, workspace / "sub", workspace / "data/demo/test_labels.csv")
    truth = read_split(trained, "test_labels")
    sub = pd.read_csv(workspace / "sub/attribute.csv", dtype=str, keep_default_na=False)
    pred = np.zeros((len(sub), 15))
    for i, value in enumerate(sub["attribute_label"]):
        pred[i, [int(k) for k in value.split()]] = 1
    got = scores.query("task == 'attribute' and metric == 'mean_f1'")["score"].item()
    assert got == pytest.approx(mean_f1(truth.targets["attribute"], pred))


def test_predict_without_training_is_a_clear_error(tiny_spec, runner):
    result = runner.invoke(app, ["predict", "demo"])
    assert result.exit_code == 2 and "no trained fold" in result.output and "mtlkaggle train" in result.output
