"""``mtlkaggle runs``: every run in one table, numbers equal to the metrics files, best first."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mtlkaggle.cli import app
from mtlkaggle.paths import RunLayout
from mtlkaggle.spec import with_train_overrides
from mtlkaggle.train import TrainOptions, train_folds

from .test_output import write_random_submission

METRICS = ["category/accuracy", "category/macro_f1", "attribute/mean_f1", "attribute/macro_f1"]


@pytest.fixture
def two_runs(tiny_spec, workspace):
    train_folds(
        with_train_overrides(tiny_spec, epochs=1),
        ["0", "1"],
        TrainOptions(RunLayout(workspace / "runs/demo/a")),
    )
    wide = with_train_overrides(tiny_spec, epochs=2, img_size=40)
    train_folds(wide, ["0", "1"], TrainOptions(RunLayout(workspace / "runs/demo/b")))
    return tiny_spec


def _expected(workspace, run: str) -> dict:
    """CV mean/std of each metric at each fold's best epoch, wall time and img/s, from metrics.csv."""
    frames = [pd.read_csv(workspace / f"runs/demo/{run}/fold{k}/metrics.csv") for k in range(2)]
    best = [f.loc[f["score"].idxmax()] for f in frames]
    cv = {m: (np.mean([b[f"val/{m}"] for b in best]), np.std([b[f"val/{m}"] for b in best])) for m in METRICS}
    primary = (cv["category/accuracy"][0] + cv["attribute/mean_f1"][0]) / 2  # the demo's default monitor
    wall = sum(f["seconds"].sum() for f in frames)
    rate = pd.concat(frames)["img_per_s"].mean()
    return {"cv": cv, "rank": primary, "wall": wall, "rate": rate}


@pytest.mark.slow
def test_runs_table_json_and_kaggle_scores_after_two_runs(two_runs, workspace, runner):
    expected = {run: _expected(workspace, run) for run in ("a", "b")}
    order = sorted(expected, key=lambda r: -expected[r]["rank"])
    result = runner.invoke(app, ["runs", "demo", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [r["name"] for r in report["runs"]] == order  # best first by the spec's monitor
    for run in report["runs"]:
        want = expected[run["name"]]
        assert run["backbone"] == "test_efficientnet" and run["folds"] == ["0", "1"]
        assert (run["img_size"], run["epochs"]) == ((32, 1) if run["name"] == "a" else (40, 2))
        for metric in METRICS:
            assert run["cv"][metric]["mean"] == pytest.approx(want["cv"][metric][0])
            assert run["cv"][metric]["std"] == pytest.approx(want["cv"][metric][1])
        assert run["rank"] == pytest.approx(want["rank"])
        assert run["wall_s"] == pytest.approx(want["wall"]) and run["img_per_s"] == pytest.approx(
            want["rate"]
        )
        assert run["holdout"] == {} and run["submission"] is None
    table = runner.invoke(app, ["runs", "demo"])
    assert table.exit_code == 0, table.output
    rows = [line for line in table.output.splitlines() if "test_efficientnet" in line]
    assert [row.split("│")[1].strip() for row in rows] == order
    cv = expected["a"]["cv"]["attribute/macro_f1"]
    assert f"{cv[0]:.4f} ± {cv[1]:.4f}" in table.output and "attribute/macro_f1 (CV)" in table.output

    # the latest submission made from a run, and Kaggle's scores as `submit --wait` recorded them
    record = [
        {
            "ref": "1",
            "file": "category.csv",
            "message": "old",
            "run": "runs/demo/a",
            "date": "2026-11-22T09:00:00",
            "status": "COMPLETE",
            "public_score": "0.5",
        },
        {
            "ref": "2",
            "file": "category.csv",
            "message": "a x hflip",
            "run": "runs/demo/a",
            "date": "2026-11-23T09:00:00",
            "status": "COMPLETE",
            "public_score": "0.91250",
        },
        {
            "ref": "3",
            "file": "attribute.csv",
            "message": "a x hflip",
            "run": "runs/demo/a",
            "date": "2026-11-23T09:00:00",
            "status": "PENDING",
            "public_score": None,
        },
    ]
    (workspace / "submissions/demo").mkdir(parents=True)
    (workspace / "submissions/demo/submitted.json").write_text(json.dumps(record))
    report = json.loads(runner.invoke(app, ["runs", "demo", "--json"]).stdout)
    runs = {r["name"]: r for r in report["runs"]}
    assert runs["a"]["submission"] == "a x hflip"
    assert runs["a"]["kaggle"] == {"category.csv": "0.91250", "attribute.csv": "PENDING"}
    assert runs["b"]["submission"] is None
    table = runner.invoke(app, ["runs", "demo"]).output
    assert "category.csv=0.91250 attribute.csv=PENDING" in table

    # files in submissions/demo predicted from run b: its test score against the kept-apart labels
    write_random_submission(workspace)
    (workspace / "submissions/demo/config.json").write_text(json.dumps({"run": "runs/demo/b"}))
    evaluated = json.loads(runner.invoke(app, ["evaluate", "demo", "submissions/demo", "--json"]).stdout)
    runs = {r["name"]: r for r in json.loads(runner.invoke(app, ["runs", "demo", "--json"]).stdout)["runs"]}
    assert runs["b"]["test"] == {f"{s['task']}/{s['metric']}": s["score"] for s in evaluated["scores"]}
    assert runs["a"]["test"] == {}
    table = runner.invoke(app, ["runs", "demo"]).output
    assert " ".join(f"{runs['b']['test'][m]:.4f}" for m in METRICS) in table


def test_runs_without_runs_is_a_clear_error(workspace, runner):
    result = runner.invoke(app, ["runs", "demo"])
    assert (
        result.exit_code == 2
        and "runs/demo: no trained runs; run `mtlkaggle train demo` first" in result.output
    )
