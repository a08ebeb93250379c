"""The ``binary`` task kind end to end through the CLI (check, folds, train, tune, predict --tta,
evaluate, report, export), with a spec-level weighted score, a task written to two files and a
regression task scored by QWK (cut points tuned out of fold)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from mtlkaggle.cli import app
from mtlkaggle.data import read_split
from mtlkaggle.metric_formulas import partial_auc, roc_auc
from mtlkaggle.spec import load_spec

from .conftest import write_toml

SPEC = """
name = "lesions"
data_dir = "data/lesions"
score_weights = { malignant = 0.75, grade = 0.25 }

[data]
format = "csv"
train = "train.csv"
test = "test.csv"
test_labels = "test_labels.csv"
id_column = "isic_id"
image_column = "file"

[[tasks]]
name = "malignant"
kind = "binary"
column = "diagnosis"
positive = "malignant"
classes = ["benign", "malignant"]
metrics = ["roc_auc", "pauc", "log_loss"]
pos_weight = 2.0

[[tasks]]
name = "grade"
kind = "multiclass"
column = "grade"
num_classes = 3
metrics = ["qwk", "macro_recall"]

[[tasks]]
name = "severity"                 # the same grades trained as a regression, scored by QWK
kind = "regression"
column = "grade"
num_classes = 3
metrics = ["qwk", "mae"]

[train]
n_splits = 2

[[submissions]]
file = "submission.csv"
id_column = "isic_id"
columns = { target = "malignant" }

[[submissions]]
file = "both.csv"
id_column = "isic_id"
columns = { target = "malignant", grade = "grade" }
"""

TINY = ["--backbone", "test_efficientnet", "--no-pretrained", "--img-size", "32", "--epochs", "1"]
TINY += ["--batch-size", "8", "--num-workers", "0"]


def _write_data(root, n_train=40, n_test=16, seed=0):
    rng = np.random.default_rng(seed)
    folder = root / "data/lesions"
    (folder / "img").mkdir(parents=True)
    rows = []
    for i in range(n_train + n_test):
        malignant, grade = bool(i % 3 == 0), i % 3
        image = np.full((32, 32, 3), 40 + 60 * grade, dtype=np.uint8)
        image[8:24, 8:24, 0] = 230 if malignant else 20  # a red square marks the positives
        image = np.clip(image + rng.integers(0, 20, image.shape), 0, 255).astype(np.uint8)
        Image.fromarray(image).save(folder / f"img/{i}.png")
        rows.append(
            {
                "isic_id": f"ISIC_{i:05d}",
                "file": f"img/{i}.png",
                "diagnosis": "malignant" if malignant else "benign",
                "grade": grade,
            }
        )
    frame = pd.DataFrame(rows)
    frame[:n_train].to_csv(folder / "train.csv", index=False)
    frame[n_train:][["isic_id", "file"]].to_csv(folder / "test.csv", index=False)
    frame[n_train:].to_csv(folder / "test_labels.csv", index=False)
    return frame


@pytest.mark.slow
def test_binary_task_through_the_cli(workspace, runner):
    write_toml(workspace / "competition/lesions.toml", SPEC)
    frame = _write_data(workspace)
    spec = load_spec("lesions")
    train = read_split(spec, "train")
    truth = (frame[:40]["diagnosis"] == "malignant").to_numpy(dtype=np.float32)[:, None]
    np.testing.assert_array_equal(train.targets["malignant"], truth)  # (n, 1) 0/1
    for args in (
        ["check", "lesions"],
        ["folds", "lesions"],
        ["train", "lesions", "--fold", "all", *TINY],
        ["predict", "lesions", "--tta", "--num-workers", "0"],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, (args, result.output)
    sub = pd.read_csv(workspace / "submissions/lesions/submission.csv")
    assert list(sub.columns) == ["isic_id", "target"] and len(sub) == 16
    assert sub["target"].between(0, 1).all() and sub["target"].nunique() > 2  # probabilities, not labels
    both = pd.read_csv(workspace / "submissions/lesions/both.csv")
    assert set(both["grade"]) <= {0, 1, 2}
    np.testing.assert_allclose(both["target"], sub["target"])

    result = runner.invoke(app, ["evaluate", "lesions", "submissions/lesions", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    keys = [(s["task"], s["metric"]) for s in report["scores"]]
    expected = [("malignant", m) for m in ("roc_auc", "pauc", "log_loss")]
    expected += [("grade", "qwk"), ("grade", "macro_recall")]  # severity is in no file
    assert keys == expected  # the task written to two files is scored once
    scores = {k: s["score"] for k, s in zip(keys, report["scores"], strict=True)}
    y = (frame[40:]["diagnosis"] == "malignant").to_numpy()
    assert scores["malignant", "roc_auc"] == pytest.approx(roc_auc(y, sub["target"].to_numpy()))
    assert scores["malignant", "pauc"] == pytest.approx(partial_auc(y, sub["target"].to_numpy(), 0.8))
    weighted = 0.75 * scores["malignant", "roc_auc"] + 0.25 * scores["grade", "qwk"]
    assert report["spec_score"]["score"] == pytest.approx(weighted)
    table = runner.invoke(app, ["evaluate", "lesions", "submissions/lesions"])
    assert f"{weighted:.4f}" in table.output and "0.75 x malignant/roc_auc" in table.output

    oof_keys = pd.read_csv(workspace / "runs/lesions/main/fold0/metrics.csv").columns
    assert {"val/malignant/roc_auc", "val/malignant/pauc", "val/grade/qwk", "val/spec_score"} <= set(oof_keys)
    thresholds = json.loads((workspace / "runs/lesions/main/thresholds.json").read_text())
    assert set(thresholds) == {"grade", "severity"}  # AUC needs no threshold; QWK gets cut points
    assert thresholds["grade"]["metric"] == "qwk" and len(thresholds["grade"]["thresholds"]) in (0, 2)
    cuts = thresholds["severity"]["thresholds"]
    assert len(cuts) == 2 and cuts[0] <= cuts[1]
    assert thresholds["severity"]["scores"]["tuned"] >= thresholds["severity"]["scores"]["default"]

    result = runner.invoke(app, ["tune", "lesions"])
    assert result.exit_code == 0 and "qwk" in result.output and "cut points" in result.output, result.output

    result = runner.invoke(app, ["report", "lesions"])
    assert result.exit_code == 0, result.output
    text = (workspace / "reports/lesions/main/report.md").read_text()
    assert "OOF at 0.5" in text and "OOF tuned" in text and "roc_malignant.png" in text

    result = runner.invoke(app, ["export", "lesions", "--folds", "0", "--no-wheel", "--out", "bundle"])
    assert result.exit_code == 0, result.output
    meta = json.loads((workspace / "bundle/bundle.json").read_text())
    entry = next(t for t in meta["tasks"] if t["name"] == "malignant")
    assert (entry["kind"], entry["classes"], entry["positive"]) == ("binary", ["malignant"], "malignant")
    args = [
        "predict",
        "--bundle",
        "bundle",
        "--input",
        "data/lesions/img",
        "--out",
        "rows.csv",
        "--num-workers",
        "0",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = pd.read_csv(workspace / "rows.csv", keep_default_na=False)
    assert len(rows) == 56 and rows["malignant:malignant"].between(0, 1).all()
    assert set(rows["malignant_index"].astype(str)) <= {"0", "1"}

    # a seed ensemble: the averaged out-of-fold P(positive) scored and predicted
    result = runner.invoke(app, ["train", "lesions", "--run", "ens", "--seeds", "0,1", *TINY])
    assert result.exit_code == 0, result.output
    summary = pd.read_csv(workspace / "runs/lesions/ens/ensemble.csv").set_index("run")
    assert list(summary.index) == ["ens/seed0", "ens/seed1", "ensemble"]
    assert summary["malignant/roc_auc"].between(0, 1).all() and "spec_score" in summary.columns
    args = ["predict", "lesions", "--run", "ens", "--out-dir", "sub_ens", "--tta", "--num-workers", "0"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert pd.read_csv(workspace / "sub_ens/submission.csv")["target"].between(0, 1).all()
