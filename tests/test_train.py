"""The training engine on a tiny timm model at 32 px: real JPEGs, real backprop, CPU."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from mtlkaggle.data import read_split
from mtlkaggle.errors import UserError
from mtlkaggle.folds import read_folds
from mtlkaggle.paths import RunLayout
from mtlkaggle.probabilities import probability_columns
from mtlkaggle.spec import with_train_overrides
from mtlkaggle.train import TrainOptions, build_trainer, train_fold, train_folds


def _weights(path):
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


TOY_SPEC = """
name = "toy"
data_dir = "data/toy"
[data]
train = "train.csv"
id_column = "file_path"
image_column = "file_path"
[[tasks]]
name = "colour"
kind = "multiclass"
column = "colour"
encoding = "name"
classes = ["red", "green", "blue"]
[[tasks]]
name = "bars"
kind = "multilabel"
column = "bars"
classes = ["top", "bottom"]
[train]
backbone = "test_efficientnet"
pretrained = false
img_size = 32
batch_size = 16
num_workers = 0
n_splits = 3
epochs = 8
lr = 0.01
warmup_epochs = 0.5
[augment]
hflip = 0.5
rotate = 0
shift = 0
color_jitter = 0
crop_scale = [0.9, 1.0]
"""


def _write_toy(root, n=72):
    """A learnable toy: the colour class is the image's colour; labels are bars at top/bottom."""
    from PIL import Image

    rng = np.random.default_rng(0)
    rows = []
    (root / "data/toy/img").mkdir(parents=True)
    for i in range(n):
        colour, bars = i % 3, rng.random(2) < 0.5
        pixels = np.full((32, 32, 3), 40, np.uint8)
        pixels[..., colour] = 220
        if bars[0]:
            pixels[:6] = 255
        if bars[1]:
            pixels[-6:] = 0
        Image.fromarray(pixels).save(root / f"data/toy/img/{i}.jpg", quality=95)
        rows.append(
            (f"img/{i}.jpg", ["red", "green", "blue"][colour], " ".join(str(k) for k in np.flatnonzero(bars)))
        )
    pd.DataFrame(rows, columns=["file_path", "colour", "bars"]).to_csv(
        root / "data/toy/train.csv", index=False
    )
    (root / "competition/toy.toml").write_text(TOY_SPEC)


def test_loss_falls_on_a_learnable_toy_and_fold_artefacts(workspace):
    from mtlkaggle.folds import FoldConfig, folds_path, make_folds, write_folds
    from mtlkaggle.spec import load_spec

    _write_toy(workspace)
    spec = load_spec("toy")
    write_folds(make_folds(spec, read_split(spec, "train"), FoldConfig(3)), folds_path(spec))
    result = train_fold(spec, "0", TrainOptions(RunLayout(workspace / "runs/a")))
    folder = workspace / "runs/a/fold0"
    for name in ("best.pt", "last.pt", "config.json", "metrics.csv", "oof.csv"):
        assert (folder / name).is_file(), name
    metrics = pd.read_csv(folder / "metrics.csv")
    assert list(metrics["epoch"]) == list(range(1, 9))
    assert metrics["train/loss"].iloc[-1] < 0.5 * metrics["train/loss"].iloc[0]
    assert metrics["val/colour/accuracy"].max() >= 0.9  # chance is 1/3
    assert metrics["train/colour/accuracy"].iloc[-1] > metrics["train/colour/accuracy"].iloc[0]
    for column in ("val/bars/mean_f1", "val/loss/colour", "weight/bars", "img_per_s", "lr"):
        assert column in metrics.columns
    assert result.best_epoch == int(metrics["score"].idxmax()) + 1
    assert not list(folder.glob(".*.tmp"))  # atomic writes leave no temporaries


def test_oof_covers_each_validation_id_once(tiny_spec, workspace):
    spec = with_train_overrides(tiny_spec, epochs=1)
    summary = train_folds(spec, ["0", "1", "2"], TrainOptions(RunLayout(workspace / "runs/oof")))
    assert list(summary["fold"]) == ["0", "1", "2", "mean"]
    table = read_split(spec, "train")
    assignment = read_folds(spec, table)
    seen = []
    for k in range(3):
        oof = pd.read_csv(workspace / f"runs/oof/fold{k}/oof.csv", dtype={"file_path": str})
        assert set(oof["file_path"]) == set(table.ids[assignment == k])
        probs = oof[probability_columns(spec.task("category"))].to_numpy()
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
        seen += list(oof["file_path"])
    assert sorted(seen) == sorted(table.ids)


class _Stop(Exception):
    pass


TIMINGS = ["img_per_s", "data_wait", "seconds"]  # metrics.csv columns that measure the machine


def test_resume_equals_uninterrupted_run(tiny_spec, workspace):
    # EMA, uncertainty weights and warmup make every piece of resumable state matter
    spec = with_train_overrides(tiny_spec, epochs=3, ema=True, weighting="uncertainty")
    train_fold(spec, "1", TrainOptions(RunLayout(workspace / "runs/full")))

    def stop_after_two(run, row):
        if row["epoch"] == 2:
            raise _Stop

    with pytest.raises(_Stop):
        train_fold(spec, "1", TrainOptions(RunLayout(workspace / "runs/cut"), on_epoch_end=stop_after_two))
    assert pd.read_csv(workspace / "runs/cut/fold1/metrics.csv")["epoch"].tolist() == [1, 2]
    with pytest.raises(UserError, match="already holds a run; pass --resume"):
        train_fold(spec, "1", TrainOptions(RunLayout(workspace / "runs/cut")))
    with pytest.raises(UserError, match=r"trained with other settings \(epochs: 3 -> 4\)"):
        train_fold(
            with_train_overrides(spec, epochs=4),
            "1",
            TrainOptions(RunLayout(workspace / "runs/cut"), resume=True),
        )
    train_fold(spec, "1", TrainOptions(RunLayout(workspace / "runs/cut"), resume=True))
    for name in ("last.pt", "best.pt"):
        full, cut = (
            _weights(workspace / f"runs/full/fold1/{name}"),
            _weights(workspace / f"runs/cut/fold1/{name}"),
        )
        assert full.keys() == cut.keys()
        for key in full:
            assert torch.equal(full[key], cut[key]), (name, key)
    full_m = pd.read_csv(workspace / "runs/full/fold1/metrics.csv").drop(columns=TIMINGS)
    cut_m = pd.read_csv(workspace / "runs/cut/fold1/metrics.csv").drop(columns=TIMINGS)
    pd.testing.assert_frame_equal(full_m, cut_m)


def test_same_seed_same_weights_other_seed_differs(tiny_spec, workspace):
    spec = with_train_overrides(tiny_spec, epochs=1)
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        train_fold(
            with_train_overrides(spec, seed=seed), "0", TrainOptions(RunLayout(workspace / f"runs/{name}"))
        )
    a, b, c = (_weights(workspace / f"runs/{n}/fold0/last.pt") for n in "abc")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_early_freeze_restores_best_state_and_freezes_exactly(tiny_spec, workspace):
    spec = with_train_overrides(tiny_spec, early_freeze=1, epochs=3)
    run = build_trainer(spec, "0", TrainOptions(RunLayout(workspace / "runs/ef")))
    assert run.early_freeze({"category": 1.0, "attribute": 1.0}) == []
    best = {k: v.clone() for k, v in run.model.state_dict().items()}
    with torch.no_grad():  # the model moves on after the best epoch
        for p in run.model.parameters():
            p.add_(0.5)
    moved = {k: v.clone() for k, v in run.model.state_dict().items()}
    assert run.early_freeze({"category": 1.2, "attribute": 0.9}) == ["category"]
    state = run.model.state_dict()
    for key in state:
        if key.startswith("heads.attribute."):
            assert torch.equal(state[key], moved[key]), key  # other heads keep their progress
        else:
            assert torch.equal(state[key], best[key]), key  # backbone, neck, own head restored
    frozen = {n for n, p in run.model.named_parameters() if not p.requires_grad}
    expected = {n for n, _ in run.model.named_parameters() if not n.startswith("heads.attribute.")}
    assert frozen == expected
    assert run.criterion.active.tolist() == [0.0, 1.0]
    # a training epoch then changes only the attribute head
    from mtlkaggle.progress import make_progress

    before = {k: v.clone() for k, v in run.model.state_dict().items()}
    with make_progress(transient=True) as progress:
        run.train_epoch(progress)
    after = run.model.state_dict()
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    assert changed and all(k.startswith("heads.attribute.") for k in changed)


def test_every_task_frozen_stops_the_fold(tiny_spec, workspace):
    spec = with_train_overrides(tiny_spec, early_freeze=1, epochs=8, lr=1e-12, backbone_lr_mult=1e-3)
    result = train_fold(spec, "0", TrainOptions(RunLayout(workspace / "runs/stop")))
    metrics = pd.read_csv(workspace / "runs/stop/fold0/metrics.csv")
    assert result.epochs_run < 8
    assert set(metrics["frozen"].iloc[-1].split()) == {"category", "attribute"}


def test_early_stopping_when_the_score_stalls(tiny_spec, workspace):
    spec = with_train_overrides(tiny_spec, early_stopping=2, epochs=8, lr=1e-12, backbone_lr_mult=1e-3)
    result = train_fold(spec, "0", TrainOptions(RunLayout(workspace / "runs/es")))
    metrics = pd.read_csv(workspace / "runs/es/fold0/metrics.csv")
    best = int(metrics["score"].idxmax()) + 1
    assert result.epochs_run == len(metrics) < 8
    assert result.epochs_run == best + 2  # two epochs without improvement after the best


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tiny_spec, workspace):
    spec = with_train_overrides(tiny_spec, epochs=3)
    folder = workspace / "runs/nan/fold0"

    def poison(run, row):
        if row["epoch"] == 1:
            poison.saved = (folder / "last.pt").read_bytes()
            with torch.no_grad():
                run.model.heads["category"][-1].weight.fill_(float("nan"))

    with pytest.raises(UserError, match=r"fold 0 epoch 2 batch 1: loss is not finite.*last good checkpoint"):
        train_fold(spec, "0", TrainOptions(RunLayout(workspace / "runs/nan"), on_epoch_end=poison))
    assert (folder / "last.pt").read_bytes() == poison.saved
    weights = _weights(folder / "last.pt")
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())


def test_unreadable_image_named_or_skipped(tiny_spec, workspace):
    spec = with_train_overrides(tiny_spec, epochs=1)
    table = read_split(spec, "train")
    bad = table.paths[int(np.flatnonzero(read_folds(spec, table) != 0)[0])]
    bad.write_bytes(b"not an image")
    with pytest.raises(UserError, match=f"{bad.name}: unreadable image.*--skip-bad-images"):
        train_fold(spec, "0", TrainOptions(RunLayout(workspace / "runs/bad")))
    train_fold(
        spec, "0", TrainOptions(RunLayout(workspace / "runs/bad"), skip_bad_images=True, overwrite=True)
    )
    metrics = pd.read_csv(workspace / "runs/bad/fold0/metrics.csv")
    assert metrics["skipped_images"].iloc[-1] == 1


@pytest.mark.parametrize("weighting", ["uncertainty", "learned"])
def test_learned_weights_are_logged_and_move(tiny_spec, workspace, weighting):
    spec = with_train_overrides(tiny_spec, epochs=2, weighting=weighting, lr=1e-2)
    train_fold(spec, "0", TrainOptions(RunLayout(workspace / f"runs/{weighting}")))
    metrics = pd.read_csv(workspace / f"runs/{weighting}/fold0/metrics.csv")
    w = metrics[["weight/category", "weight/attribute"]].to_numpy()
    assert not np.allclose(w, 1.0)
    if weighting == "learned":
        np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=1e-6)


def test_holdout_val_split_and_accumulation(tiny_spec, workspace):
    # the spec's fixed train/val split: use the test labels as a val file
    raw = tiny_spec.model_dump()
    raw["data"]["val"] = "test_labels.csv"
    from mtlkaggle.spec import Spec

    spec = with_train_overrides(Spec.model_validate(raw), epochs=1, accumulate=2, scheduler="plateau")
    result = train_fold(spec, "val", TrainOptions(RunLayout(workspace / "runs/holdout")))
    oof = pd.read_csv(workspace / "runs/holdout/foldval/oof.csv")
    assert len(oof) == 24 and result.epochs_run == 1


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_amp_on_cuda(tiny_spec, workspace):
    spec = with_train_overrides(tiny_spec, epochs=2, amp=True, batch_size=32)
    run = build_trainer(spec, "0", TrainOptions(RunLayout(workspace / "runs/gpu"), device="cuda"))
    with run.autocast():
        out = run.model(torch.randint(0, 255, (2, 3, 32, 32), dtype=torch.uint8, device="cuda"))
    expected = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    assert out["category"].dtype == expected
    result = train_fold(spec, "0", TrainOptions(RunLayout(workspace / "runs/gpu2"), device="cuda"))
    assert np.isfinite(result.best_score)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fp16_gradscaler_state_survives_resume(tiny_spec, workspace):
    spec = with_train_overrides(tiny_spec, epochs=2, amp=True, amp_dtype="fp16")

    def stop(run, row):
        assert run.scaler is not None  # fp16 needs loss scaling
        stop.scale = run.scaler.get_scale()
        raise _Stop

    with pytest.raises(_Stop):
        train_fold(
            spec, "0", TrainOptions(RunLayout(workspace / "runs/fp16"), device="cuda", on_epoch_end=stop)
        )
    run = build_trainer(
        spec, "0", TrainOptions(RunLayout(workspace / "runs/fp16"), device="cuda", resume=True)
    )
    assert run.scaler.get_scale() == stop.scale
    result = train_fold(
        spec, "0", TrainOptions(RunLayout(workspace / "runs/fp16"), device="cuda", resume=True)
    )
    assert result.epochs_run == 2 and np.isfinite(result.best_score)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_compiled_model_trains_and_predicts(tiny_spec, workspace):
    from mtlkaggle.predict import PredictOptions, run_predict

    spec = with_train_overrides(tiny_spec, epochs=1, compile=True)
    result = train_fold(spec, "0", TrainOptions(RunLayout(workspace / "runs/demo/main"), device="cuda"))
    assert np.isfinite(result.best_score)
    _, written = run_predict(
        spec,
        PredictOptions(
            RunLayout(workspace / "runs/demo/main"), workspace / "sub", device="cuda", num_workers=0
        ),
    )
    assert all(p.is_file() for p in written)


def test_resume_is_exact_with_worker_processes(tiny_spec, workspace):
    # workers start (and draw their base seed) on the first epoch after a resume, not before:
    # they must not shift the dropout RNG, so the resumed run still equals the uninterrupted one
    spec = with_train_overrides(tiny_spec, epochs=2, num_workers=2)
    train_fold(spec, "2", TrainOptions(RunLayout(workspace / "runs/full")))

    def stop_after_one(run, row):
        raise _Stop

    with pytest.raises(_Stop):
        train_fold(spec, "2", TrainOptions(RunLayout(workspace / "runs/cut"), on_epoch_end=stop_after_one))
    train_fold(spec, "2", TrainOptions(RunLayout(workspace / "runs/cut"), resume=True))
    full = _weights(workspace / "runs/full/fold2/last.pt")
    cut = _weights(workspace / "runs/cut/fold2/last.pt")
    assert all(torch.equal(full[k], cut[k]) for k in full)


def test_a_second_process_on_the_same_run_stops_at_once(tiny_spec, workspace, runner):
    import json
    import subprocess
    import sys

    from mtlkaggle.cli import app
    from mtlkaggle.io import run_lock

    args = ["train", "demo", "--fold", "0", "--epochs", "1", "--backbone", "test_efficientnet"]
    args += ["--img-size", "32", "--no-pretrained", "--num-workers", "0"]
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock = workspace / "runs/demo/main/.lock"
        lock.parent.mkdir(parents=True)
        import socket

        lock.write_text(json.dumps({"pid": holder.pid, "host": socket.gethostname(), "started": "10:00"}))
        result = runner.invoke(app, args)
        assert result.exit_code == 2
        assert f"runs/demo/main is in use by pid {holder.pid}" in result.output
        assert "since 10:00" in result.output
        assert not (workspace / "runs/demo/main/fold0").exists()  # nothing was touched
    finally:
        holder.kill()
        holder.wait()
    # the holder is gone: its lock is stale, taken over with a warning, and released afterwards
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "taking over a stale lock" in result.output
    assert not lock.exists()
    with run_lock(lock):  # held, then released even when the block fails
        assert json.loads(lock.read_text())["pid"] == __import__("os").getpid()
    assert not lock.exists()


def test_the_folds_file_decides_how_many_folds_train(tiny_spec, workspace, runner):
    from mtlkaggle.cli import app

    assert runner.invoke(app, ["folds", "demo", "--n-splits", "2"]).exit_code == 0
    args = ["train", "demo", "--fold", "all", "--epochs", "1", "--backbone", "test_efficientnet"]
    result = runner.invoke(app, [*args, "--img-size", "32", "--no-pretrained", "--num-workers", "0"])
    assert result.exit_code == 0, result.output
    trained = sorted(p.name for p in (workspace / "runs/demo/main").glob("fold*"))
    assert trained == ["fold0", "fold1"]
    # ids added to the label file since the folds were made: named
    train_csv = workspace / "data/demo/train.csv"
    frame = pd.read_csv(train_csv, dtype=str, keep_default_na=False)
    extra = frame.iloc[[0]].assign(file_path="images/new_0001.jpg")
    pd.concat([frame, extra]).to_csv(train_csv, index=False)
    source = workspace / "data/demo" / frame.iloc[0]["file_path"]
    (workspace / "data/demo/images/new_0001.jpg").write_bytes(source.read_bytes())
    result = runner.invoke(app, [*args, "--img-size", "32", "--no-pretrained", "--overwrite"])
    assert result.exit_code == 2
    assert "1 training ids have no fold ('images/new_0001.jpg')" in result.output


def test_resume_under_another_augmentation_path_is_refused(tiny_spec, workspace):
    spec = with_train_overrides(tiny_spec, epochs=1)
    train_fold(spec, "0", TrainOptions(RunLayout(workspace / "runs/aug")))
    other = spec.model_copy(update={"augment": spec.augment.model_copy(update={"on": "device"})})
    with pytest.raises(UserError, match=r"other settings \(augment.on: auto -> device\)"):
        train_fold(other, "0", TrainOptions(RunLayout(workspace / "runs/aug"), resume=True))
