"""The whole pipeline through the CLI on a small demo, with the default backbone and its ImageNet
weights: a short CPU run must beat a constant predictor clearly (the demo is learnable)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from mtlkaggle.cli import app
from mtlkaggle.data import read_split
from mtlkaggle.metrics import mean_f1
from mtlkaggle.spec import load_spec

from .conftest import REPO


def _best_constant_mean_f1(train: np.ndarray, test: np.ndarray) -> float:
    """Mean F1 on test of the label set a constant predictor would pick greedily on train."""
    chosen = np.zeros(train.shape[1])
    while True:
        base = mean_f1(train, np.tile(chosen, (len(train), 1)))
        gains = []
        for j in np.flatnonzero(chosen == 0):
            trial = chosen.copy()
            trial[j] = 1
            gains.append((mean_f1(train, np.tile(trial, (len(train), 1))) - base, j))
        if not gains or max(gains)[0] <= 0:
            return mean_f1(test, np.tile(chosen, (len(test), 1)))
        chosen[max(gains)[1]] = 1


@pytest.mark.slow
def test_demo_pipeline_beats_constant_predictor(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "competition").mkdir()
    shutil.copy(REPO / "competition/demo.toml", tmp_path / "competition/demo.toml")
    steps = [
        ["demo", "--n-train", "600", "--n-test", "150", "--image-size", "64"],
        ["check", "demo"],
        ["folds", "demo"],
        ["train", "demo", "--fold", "all", "--epochs", "6", "--num-workers", "0"],
        ["predict", "demo", "--tta", "--num-workers", "0"],
        ["submit", "demo", "--dry-run"],
        ["report", "demo"],
    ]
    for args in steps:
        result = runner.invoke(app, args)
        assert result.exit_code == 0, (args, result.output)
    from mtlkaggle.evaluate import evaluate_submissions

    spec = load_spec("demo")
    scores = evaluate_submissions(spec, tmp_path / "submissions/demo", tmp_path / "data/demo/test_labels.csv")
    score = {f"{r.task}/{r.metric}": r.score for r in scores.itertuples()}
    train, test = read_split(spec, "train"), read_split(spec, "test_labels")
    majority = np.bincount(train.targets["category"]).argmax()
    constant_accuracy = float((test.targets["category"] == majority).mean())
    constant_f1 = _best_constant_mean_f1(train.targets["attribute"], test.targets["attribute"])
    print("e2e scores", score, "constant", constant_accuracy, constant_f1)
    assert score["category/accuracy"] > constant_accuracy + 0.3, (score, constant_accuracy)
    assert score["attribute/mean_f1"] > constant_f1 + 0.05, (score, constant_f1)
    assert (tmp_path / "reports/demo/main/report.md").is_file()
