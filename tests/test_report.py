"""The report of a tiny run: every file, valid pictures, numbers equal to the metrics files."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from PIL import Image

from mtlkaggle.cli import app
from mtlkaggle.figures import curves_figure
from mtlkaggle.paths import RunLayout
from mtlkaggle.spec import with_train_overrides
from mtlkaggle.train import TrainOptions, train_folds


@pytest.fixture
def run(tiny_spec, workspace):
    spec = with_train_overrides(tiny_spec, epochs=2, weighting="learned")
    train_folds(spec, ["0", "1", "2"], TrainOptions(RunLayout(workspace / "runs/demo/main")))
    return spec


def _section(text: str, heading: str) -> tuple[list[str], list[list[str]]]:
    """The header and rows of the markdown table under ``## heading``."""
    block = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [
        [c.strip() for c in line.strip("|").split("|")] for line in block.splitlines() if line.startswith("|")
    ]
    return rows[0], rows[2:]


@pytest.mark.slow
def test_report_files_pictures_and_numbers(run, workspace, runner):
    result = runner.invoke(app, ["tune", "demo"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["report", "demo"])
    assert result.exit_code == 0, result.output
    text = (workspace / "reports/demo/main/report.md").read_text()
    assert "No submission files from this run in `submissions/demo`: run `mtlkaggle predict demo" in text
    result = runner.invoke(app, ["predict", "demo", "--num-workers", "0"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["report", "demo"])
    assert result.exit_code == 0, result.output
    out = workspace / "reports/demo/main"
    assert "reports/demo/main/report.md" in result.output.replace("\n", "")
    expected = [
        "class_distribution.png",
        "curves_fold0.png",
        "curves_fold1.png",
        "curves_fold2.png",
        "confusion_category.png",
        "f1_attribute.png",
        "report.md",
    ]
    assert sorted(p.name for p in out.iterdir()) == sorted(expected)
    for name in expected[:-1]:
        with Image.open(out / name) as img:
            img.verify()
        with Image.open(out / name) as img:
            assert img.format == "PNG" and img.width >= 300 and img.height >= 200
        assert (out / name).stat().st_size > 10_000  # a real plot, not an empty canvas
    text = (out / "report.md").read_text()
    for name in expected[:-1]:
        assert f"]({name})" in text
    # each fold's row equals its metrics.csv at the best epoch; the mean row is their mean
    columns, body = _section(text, "Scores at each fold's best epoch (validation)")
    rows = {cells[0]: cells for cells in body}
    per_fold = []
    for k in range(3):
        metrics = pd.read_csv(workspace / f"runs/demo/main/fold{k}/metrics.csv")
        best = metrics.loc[metrics["score"].idxmax()]
        assert rows[str(k)][1] == str(int(best["epoch"]))
        values = [float(best[f"val/{c}"]) for c in columns[2:]]
        assert [float(v) for v in rows[str(k)][2:]] == pytest.approx(values, abs=5e-5)
        per_fold.append(values)
    mean = pd.DataFrame(per_fold).mean().tolist()
    assert [float(v) for v in rows["mean"][2:]] == pytest.approx(mean, abs=5e-5)
    assert '"weighting": "learned"' in text
    _check_new_sections(text, workspace, runner)
    _check_curves(run, workspace)


def _check_new_sections(text, workspace, runner):
    # test scores: the run's submission files against the kept-apart labels, as `evaluate` scores them
    evaluated = json.loads(runner.invoke(app, ["evaluate", "demo", "submissions/demo", "--json"]).stdout)
    columns, body = _section(text, "Test scores")
    assert columns == ["file", "column", "task", "metric", "score"]
    assert [(r[2], r[3]) for r in body] == [(s["task"], s["metric"]) for s in evaluated["scores"]]
    assert [float(r[4]) for r in body] == pytest.approx([s["score"] for s in evaluated["scores"]], abs=5e-5)
    # the tuned threshold of every attribute label, as thresholds.json holds them
    tuned = json.loads((workspace / "runs/demo/main/thresholds.json").read_text())["attribute"]["thresholds"]
    columns, body = _section(text, "Tuned threshold per label")
    assert columns[:3] == ["task", "label", "threshold"] and len(body) == 15
    assert [float(r[2]) for r in body] == pytest.approx(tuned, abs=0.005)
    assert body[0][1] == "red" and body[-1][1] == "hem"
    # seconds per epoch and img/s per fold, from metrics.csv
    columns, body = _section(text, "Time and throughput per fold")
    assert columns == ["fold", "epochs", "s/epoch", "train img/s", "wall s"]
    for k, row in enumerate(body):
        metrics = pd.read_csv(workspace / f"runs/demo/main/fold{k}/metrics.csv")
        assert row[0] == str(k) and row[1] == str(len(metrics))
        assert float(row[2]) == pytest.approx(metrics["seconds"].mean(), abs=5e-5)
        assert float(row[3]) == pytest.approx(metrics["img_per_s"].mean(), abs=5e-5)
    # the environment and the command, from each fold's config.json
    config = json.loads((workspace / "runs/demo/main/fold0/config.json").read_text())
    columns, body = _section(text, "Environment")
    assert columns[:6] == ["fold", "device", "processes", "mtlkaggle", "torch", "timm"]
    assert body[0][1:6] == [config["device"], "1", *config["versions"].values()]
    assert f"```\n{config['command']}\n```" in text.split("## Command\n", 1)[1]


def _check_curves(spec, workspace):
    """Axes are labelled; the task-weights panel shows only when the weights move."""
    metrics = pd.read_csv(workspace / "runs/demo/main/fold0/metrics.csv")  # learned weights: they move
    assert metrics["weight/category"].nunique() > 1
    fig = curves_figure(spec, metrics, "learned")
    assert all(ax.get_ylabel() and ax.get_xlabel() == "epoch" for ax in fig.axes[:4])
    assert [ax.get_ylabel() for ax in fig.axes[4:]] == [
        "metric (accuracy, macro_f1)",
        "metric (mean_f1, macro_f1)",
    ]
    weights = [ax for ax in fig.axes if ax.get_title() == "task weights (learned)"]
    assert len(weights) == 1 and weights[0].get_ylabel() == "loss weight"
    assert [ax.get_ylabel() for ax in fig.axes[:3]] == ["loss", "category loss", "attribute loss"]
    fixed = metrics.assign(**{"weight/category": 1.0, "weight/attribute": 1.0})  # what a fixed run writes
    fig = curves_figure(spec, fixed, "fixed")
    assert [ax.get_title() for ax in fig.axes[:3]] == ["total loss", "category", "attribute"]
    assert len(fig.axes) == 3 + 2 and not any(ax.get_title().startswith("task weights") for ax in fig.axes)


def test_report_without_a_run_is_a_clear_error(tiny_spec, runner):
    result = runner.invoke(app, ["report", "demo", "--run", "nothing"])
    assert result.exit_code == 2 and "no trained folds" in result.output
