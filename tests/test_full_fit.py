"""``train --fold full``: every labelled row, epochs from cross-validation, no OOF, no best-epoch pick."""

from __future__ import annotations

import json

import pytest
import torch

from mtlkaggle.cli import app
from mtlkaggle.errors import UserError
from mtlkaggle.folds import fold_names, split_fold
from mtlkaggle.paths import RunLayout
from mtlkaggle.train import full_fit_epochs


def test_full_fold_trains_on_every_labelled_row(tiny_spec):
    train, val = split_fold(tiny_spec, "full")
    assert len(train) == 90 and len(val) == 0
    assert fold_names(tiny_spec, "full") == ["full"]
    with pytest.raises(UserError, match="expected 'all', 'val', 'full' or 0..2"):
        fold_names(tiny_spec, "fulll")


def test_full_fold_adds_the_val_file_rows(tiny_spec):
    from mtlkaggle.spec import Spec

    raw = tiny_spec.model_dump()
    raw["data"]["val"] = "test_labels.csv"  # 24 labelled rows as a fixed val file
    train, val = split_fold(Spec.model_validate(raw), "full")
    assert len(train) == 90 + 24 and len(val) == 0
    assert len(set(train.ids)) == 114 and train.targets["attribute"].shape == (114, 15)
    assert train.paths[-1].name == "test_00023.jpg"


def test_without_trained_folds_the_spec_epochs_are_used(tiny_spec, workspace):
    epochs, how = full_fit_epochs(tiny_spec, RunLayout(workspace / "runs/demo/none"))
    assert epochs == tiny_spec.train.epochs and "the spec's epochs" in how


@pytest.mark.slow
def test_full_fit_runs_the_mean_best_epoch_and_keeps_the_last_weights(exported_demo):
    layout = RunLayout(exported_demo.run_dir)
    best = [torch.load(layout.fold(k).best, weights_only=True)["epoch"] + 1 for k in ("0", "1")]
    expected = int(sum(best) / 2 + 0.5)
    assert f"full-data fit: {expected} epoch(s), from the mean best epoch" in exported_demo.full_note
    full = layout.fold("full")
    assert not full.oof.exists()  # nothing was held out
    payload = torch.load(full.best, weights_only=True)
    assert payload["epoch"] + 1 == expected and payload["scores"] == {}  # the last epoch, not a pick
    last = torch.load(full.last, weights_only=True)
    assert all(torch.equal(v, last["model"][k]) for k, v in payload["model"].items())
    config = json.loads(full.config.read_text())
    assert config["train_rows"] == 90 and config["val_rows"] == 0
    assert config["spec"]["train"]["epochs"] == expected and "mean best epoch" in config["epochs_chosen_by"]


@pytest.mark.slow
def test_cli_full_fit_then_predict_with_it_alone(tiny_spec, workspace, runner):
    tiny = ["--backbone", "test_efficientnet", "--no-pretrained", "--img-size", "32", "--num-workers", "0"]
    result = runner.invoke(app, ["train", "demo", "--fold", "full", "--epochs", "1", *tiny])
    assert result.exit_code == 0, result.output
    assert "full-data fit: 1 epoch(s), from --epochs" in result.output
    result = runner.invoke(app, ["predict", "demo", "--folds", "full", "--num-workers", "0"])
    assert result.exit_code == 0, result.output
    assert "1 fold(s) x 1 view(s)" in result.output
    assert len((workspace / "submissions/demo/category.csv").read_text().splitlines()) == 25
    config = json.loads((workspace / "submissions/demo/config.json").read_text())
    assert config["folds"] == ["full"] and config["thresholds"] == {}  # no OOF to tune on: 0.5


@pytest.mark.slow
def test_report_leaves_the_full_fit_out_of_the_scores(exported_demo, tmp_path, monkeypatch):
    from mtlkaggle.report import make_report

    monkeypatch.chdir(exported_demo.root)
    written = make_report(exported_demo.spec, RunLayout(exported_demo.run_dir), tmp_path / "report")
    assert list(written.scores["fold"]) == ["0", "1", "mean"]
