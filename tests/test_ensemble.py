"""Seed and run ensembles on the tiny demo: train --seeds, predict --runs, the ensemble's CV."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mtlkaggle.cli import app
from mtlkaggle.data import read_split
from mtlkaggle.ensemble import ensemble_oof, resolve_members
from mtlkaggle.errors import UserError
from mtlkaggle.metrics import score_all
from mtlkaggle.probabilities import probability_columns

TINY = ["--backbone", "test_efficientnet", "--no-pretrained", "--num-workers", "0", "--epochs", "1"]


def _fake_trained(root, *runs):
    for run in runs:
        (root / "runs/demo" / run).mkdir(parents=True, exist_ok=True)
        (root / "runs/demo" / run / "best.pt").touch()


def test_members_expand_seeds_and_share_the_run_weight(workspace):
    _fake_trained(workspace, "a/seed0/fold0", "a/seed1/fold0", "a/seed10/fold0", "b/fold0", "b/fold1")
    members = resolve_members("demo", ["a", "b"], [2.0, 1.0])
    assert [m.label for m in members] == ["a/seed0", "a/seed1", "a/seed10", "b"]
    assert [m.weight for m in members] == pytest.approx([2 / 9, 2 / 9, 2 / 9, 1 / 3])
    with pytest.raises(UserError, match=r"--run-weights has 1 value\(s\) for 2 run\(s\)"):
        resolve_members("demo", ["a", "b"], [1.0])
    with pytest.raises(UserError, match=r"runs/demo/c: no trained folds and no seed runs; train it first"):
        resolve_members("demo", ["a", "c"])
    with pytest.raises(UserError, match="must be >= 0"):
        resolve_members("demo", ["a", "b"], [1.0, -1.0])


def test_seeds_into_a_plain_run_and_bad_options_are_clear_errors(tiny_spec, workspace, runner):
    _fake_trained(workspace, "plain/fold0")
    result = runner.invoke(app, ["train", "demo", "--run", "plain", "--seeds", "0,1", *TINY])
    assert result.exit_code == 2 and "holds folds trained without --seeds" in result.output
    result = runner.invoke(app, ["train", "demo", "--seeds", "0,x", *TINY])
    assert result.exit_code == 2 and "--seeds '0,x': expected comma-separated ints" in result.output
    result = runner.invoke(app, ["train", "demo", "--seeds", "0,1", "--seed", "3", *TINY])
    assert result.exit_code == 2 and "--seed and --seeds: pass one" in result.output
    result = runner.invoke(app, ["predict", "demo", "--run-weights", "1,2"])
    assert result.exit_code == 2 and "--run-weights weighs the runs of --runs" in result.output


def _oof(workspace, run: str) -> pd.DataFrame:
    files = sorted((workspace / "runs/demo" / run).glob("fold*/oof.csv"))
    frame = pd.concat([pd.read_csv(f, dtype={"file_path": str}) for f in files])
    return frame.set_index("file_path").sort_index()


@pytest.mark.slow
def test_seed_ensemble_trains_scores_predicts_and_reports(tiny_spec, workspace, runner):
    spec = tiny_spec
    result = runner.invoke(
        app, ["train", "demo", "--run", "ens", "--seeds", "0,1", "--img-size", "32", *TINY]
    )
    assert result.exit_code == 0, result.output
    run = workspace / "runs/demo/ens"
    for seed in (0, 1):
        assert sorted(p.parent.name for p in run.glob(f"seed{seed}/fold*/best.pt")) == [
            "fold0",
            "fold1",
            "fold2",
        ]
        assert (
            json.loads((run / f"seed{seed}/fold0/config.json").read_text())["spec"]["train"]["seed"] == seed
        )
    # the ensemble's CV is the score of the seeds' averaged out-of-fold probabilities, by hand
    a, b = _oof(workspace, "ens/seed0"), _oof(workspace, "ens/seed1")
    assert list(a.index) == list(b.index) and not np.allclose(a.to_numpy(), b.to_numpy())
    mean = (a + b) / 2
    table = read_split(spec, "train")
    order = pd.Series(np.arange(len(table)), index=table.ids)[mean.index].to_numpy()
    targets = {name: y[order] for name, y in table.targets.items()}
    probs = {
        "category": mean[probability_columns(spec.task("category"))].to_numpy(),
        "attribute": mean[probability_columns(spec.task("attribute"))].to_numpy(),
    }
    thresholds = json.loads((run / "thresholds.json").read_text())["attribute"]["thresholds"]
    expected = score_all(spec, targets, probs, {"attribute": np.array(thresholds)})
    summary = pd.read_csv(run / "ensemble.csv")
    assert list(summary["run"]) == ["ens/seed0", "ens/seed1", "ensemble"]
    row = summary.set_index("run").loc["ensemble"]
    for key, value in expected.items():
        assert row[key] == pytest.approx(value, abs=1e-9), key
    assert "out-of-fold CV of each seed and of their average" in result.output

    # predict --run ens averages every fold of both seeds: the mean of each seed's own prediction
    outputs = {}
    for name, args in {
        "s0": ["--run", "ens/seed0"],
        "s1": ["--run", "ens/seed1"],
        "ens": ["--run", "ens"],
        "weighted": ["--runs", "ens/seed0,ens/seed1", "--run-weights", "3,1"],
    }.items():
        out = workspace / "sub" / name
        result = runner.invoke(
            app, ["predict", "demo", *args, "--out-dir", str(out), "--device", "cpu", "--num-workers", "0"]
        )
        assert result.exit_code == 0, result.output
        outputs[name] = pd.read_csv(out / "probabilities.csv").set_index("file_path")
    np.testing.assert_allclose(outputs["ens"], (outputs["s0"] + outputs["s1"]) / 2, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        outputs["weighted"], 0.75 * outputs["s0"] + 0.25 * outputs["s1"], rtol=1e-5, atol=1e-6
    )
    config = json.loads((workspace / "sub/ens/config.json").read_text())
    assert [m["weight"] for m in config["members"]] == pytest.approx([0.5, 0.5])
    assert config["thresholds"]["attribute"] == pytest.approx(thresholds)  # tuned on the averaged OOF

    # tune --run ens re-tunes on the averaged OOF: the same thresholds
    (run / "thresholds.json").unlink()
    assert runner.invoke(app, ["tune", "demo", "--run", "ens"]).exit_code == 0
    assert json.loads((run / "thresholds.json").read_text())["attribute"]["thresholds"] == thresholds

    # report --run ens shows each seed's CV and the ensemble's
    result = runner.invoke(app, ["report", "demo", "--run", "ens"])
    assert result.exit_code == 0, result.output
    assert "out-of-fold CV of each run and the ensemble" in result.output
    markdown = (workspace / "reports/demo/ens/report.md").read_text()
    assert "| ensemble |" in markdown and "curves_ens_seed1_fold2.png" in markdown


@pytest.mark.slow
def test_backbone_ensemble_of_runs_at_other_image_sizes(tiny_spec, workspace, runner):
    for run, size in (("small", "32"), ("large", "40")):
        args = ["train", "demo", "--run", run, "--fold", "0", "--img-size", size, *TINY]
        assert runner.invoke(app, args).exit_code == 0
    members = resolve_members("demo", ["small", "large"])
    oof = ensemble_oof(tiny_spec, members)
    assert list(oof.table["run"]) == ["small", "large", "ensemble"]
    assert len(oof.ids) == int(oof.table["rows"].iloc[0]) > 0
    out = workspace / "sub/both"
    result = runner.invoke(
        app, ["predict", "demo", "--runs", "small,large", "--out-dir", str(out), "--num-workers", "0"]
    )
    assert result.exit_code == 0, result.output
    probs = pd.read_csv(out / "probabilities.csv")
    category = probs[probability_columns(tiny_spec.task("category"))]
    np.testing.assert_allclose(category.sum(axis=1), 1.0, rtol=1e-5)
    assert (out / "thresholds.json").is_file()
    assert [m.label for m in members] == ["small", "large"]
    assert json.loads((out / "config.json").read_text())["folds"] == ["small/fold0", "large/fold0"]
