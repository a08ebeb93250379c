"""The report of a tiny run: every file, valid pictures, numbers equal to the metrics files."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from PIL import Image

from mtlkaggle.cli import app
from mtlkaggle.spec import with_train_overrides
from mtlkaggle.train import TrainOptions, train_folds


@pytest.fixture
def run(tiny_spec, workspace):
    spec = with_train_overrides(tiny_spec, epochs=2, weighting="learned")
    train_folds(spec, ["0", "1", "2"], TrainOptions(workspace / "runs/demo/main"))
    return spec


def test_report_files_pictures_and_numbers(run, workspace, runner):
    result = runner.invoke(app, ["tune", "demo"])
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
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells and re.fullmatch(r"[0-9]+|mean", cells[0]):
            rows[cells[0]] = cells
    header = next(line for line in text.splitlines() if line.startswith("| fold"))
    columns = [c.strip() for c in header.strip("|").split("|")]
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


def test_report_without_a_run_is_a_clear_error(tiny_spec, runner):
    result = runner.invoke(app, ["report", "demo", "--run", "nothing"])
    assert result.exit_code == 2 and "no trained folds" in result.output
