"""Training past one process: real torchrun processes over gloo on the CPU, and ``--jobs``.

Every test here starts real processes (torchrun's launcher, DDP over gloo, spawned fold jobs), so
they are marked slow; CI runs them.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from mtlkaggle.cli import app
from mtlkaggle.data import read_split
from mtlkaggle.folds import read_folds
from mtlkaggle.metrics import score_all
from mtlkaggle.paths import RunLayout
from mtlkaggle.probabilities import probability_columns

pytestmark = pytest.mark.slow

TORCHRUN = str(Path(sys.executable).parent / "torchrun")
TINY = ["--backbone", "test_efficientnet", "--img-size", "32", "--no-pretrained", "--num-workers", "0"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(args: list[str], cwd: Path, nproc: int = 2, timeout: int = 240) -> subprocess.CompletedProcess:
    command = [TORCHRUN, "--standalone", "--nproc-per-node", str(nproc), *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def _check_oof(spec, fold_dir: Path, fold: int) -> pd.DataFrame:
    """The fold's OOF file holds each validation id once, and its scores are the logged ones."""
    table = read_split(spec, "train")
    val_ids = table.ids[read_folds(spec, table) == fold]
    oof = pd.read_csv(fold_dir / "oof.csv", dtype={"file_path": str}, keep_default_na=False)
    assert sorted(oof["file_path"]) == sorted(val_ids)  # each id exactly once, none padded in
    metrics = pd.read_csv(fold_dir / "metrics.csv")
    best = metrics.loc[metrics["score"].idxmax()]
    rows = table.subset(np.array([list(table.ids).index(i) for i in oof["file_path"]]))
    probs = {
        "category": oof[probability_columns(spec.task("category"))].to_numpy(),
        "attribute": oof[probability_columns(spec.task("attribute"))].to_numpy(),
    }
    for name, value in score_all(spec, rows.targets, probs).items():
        assert best[f"val/{name}"] == pytest.approx(value, abs=1e-6), name
    return metrics


def test_torchrun_two_processes_write_one_set_and_predict_works(tiny_spec, workspace, runner):
    # the command, with --run-name: torchrun's parser takes --run for its --run-path
    result = _torchrun(
        ["-m", "mtlkaggle", "train", "demo", "--fold", "0", "--epochs", "2", "--run-name", "ddp", *TINY],
        workspace,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    fold_dir = workspace / "runs/demo/ddp/fold0"
    assert sorted(p.name for p in fold_dir.iterdir()) == [
        "best.pt",
        "config.json",
        "last.pt",
        "metrics.csv",
        "oof.csv",
    ]
    run_files = sorted(p.name for p in (workspace / "runs/demo/ddp").iterdir())
    assert run_files == ["config.json", "fold0", "summary.csv"]
    assert json.loads((fold_dir / "config.json").read_text())["world_size"] == 2
    assert (result.stdout + result.stderr).count("fold 0 epoch 2:") == 1  # rank 0 alone prints
    metrics = _check_oof(tiny_spec, fold_dir, 0)
    assert list(metrics["epoch"]) == [1, 2]
    predicted = runner.invoke(app, ["predict", "demo", "--run", "ddp", "--num-workers", "0"])
    assert predicted.exit_code == 0, predicted.output
    assert len(pd.read_csv(workspace / "submissions/demo/category.csv")) == 24


def test_torchrun_on_a_locked_run_stops_every_rank_with_the_same_line(tiny_spec, workspace):
    """Another live process holds the run: every rank stops before any collective, exit code 2,
    one error line, and no rank waits at a barrier or dumps a traceback."""
    lock = workspace / "runs/demo/busy/.lock"
    lock.parent.mkdir(parents=True)
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": "2026-12-02 10:00:00"}
    lock.write_text(json.dumps(holder), encoding="utf-8")
    args = ["-m", "mtlkaggle", "train", "demo", "--fold", "0", "--epochs", "1", "--run-name", "busy", *TINY]
    result = _torchrun(args, workspace, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert output.count(f"is in use by pid {os.getpid()}") == 1, output[-3000:]
    # torchrun's summary: the ranks exited 2 (one may be stopped by torchrun once the other has left)
    codes = [line.split(":", 1)[1].split()[0] for line in output.splitlines() if "exitcode  :" in line]
    assert "2" in codes and set(codes) <= {"2", "-15"}, output[-3000:]
    ours = [line for line in output.splitlines() if line.strip().startswith('File "') and "mtlkaggle" in line]
    assert "barrier" not in output and not ours, output[-3000:]
    assert json.loads(lock.read_text(encoding="utf-8")) == holder  # the holder's lock is untouched


def test_torchrun_resume_equals_uninterrupted(tiny_spec, workspace):
    args = ["-m", "mtlkaggle", "train", "demo", "--fold", "1", "--epochs", "3", *TINY]
    args += ["--weighting", "learned"]
    full = _torchrun([*args, "--run-name", "full"], workspace)
    assert full.returncode == 0, full.stderr[-3000:]
    # interrupt a second run after its first epoch: kill torchrun and its workers
    command = [TORCHRUN, "--standalone", "--nproc-per-node", "2", *args, "--run-name", "cut"]
    process = subprocess.Popen(
        command, cwd=workspace, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    metrics = workspace / "runs/demo/cut/fold1/metrics.csv"
    deadline = time.time() + 180
    while not (metrics.exists() and len(pd.read_csv(metrics)) >= 1) and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert len(pd.read_csv(metrics)) < 3  # it really was cut short
    resumed = _torchrun([*args, "--run-name", "cut", "--resume"], workspace)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    for name in ("last.pt", "best.pt"):
        a = _weights(workspace / f"runs/demo/full/fold1/{name}")
        b = _weights(workspace / f"runs/demo/cut/fold1/{name}")
        assert all(torch.equal(a[k], b[k]) for k in a), name
    drop = ["img_per_s", "seconds", "data_wait"]
    pd.testing.assert_frame_equal(
        pd.read_csv(workspace / "runs/demo/full/fold1/metrics.csv").drop(columns=drop),
        pd.read_csv(metrics).drop(columns=drop),
    )


_RANK_SCRIPT = """
import json, sys
from pathlib import Path
import torch
from mtlkaggle.paths import RunLayout
from mtlkaggle.progress import make_progress
from mtlkaggle.spec import load_spec, with_train_overrides
from mtlkaggle.train import TrainOptions, build_trainer

overrides = json.loads(sys.argv[1])
spec = with_train_overrides(load_spec("demo"), **overrides)
trainer = build_trainer(spec, "0", TrainOptions(RunLayout(Path("runs/demo/ranks"))))
rank = trainer.runtime.rank
with make_progress(disable=True) as progress:
    trainer.train_epoch(progress)
    trainer.validate(progress)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    frozen = trainer.early_freeze({"category": 1.0, "attribute": 1.0})
    frozen += trainer.early_freeze({"category": 2.0, "attribute": 0.5})
    restored = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.state.epoch = 1
    trainer.train_epoch(progress)
    trainer.validate(progress)
torch.save(
    {"state": trainer.step_module.state_dict(), "restored": restored, "before": before, "frozen": frozen,
     "trainable": sorted(n for n, p in trainer.model.named_parameters() if p.requires_grad),
     "weights": trainer.criterion.weighting.weights()},
    f"rank{rank}.pt",
)
"""


def test_early_freeze_and_learned_weights_agree_on_every_rank(tiny_spec, workspace):
    (workspace / "ranks.py").write_text(_RANK_SCRIPT)
    overrides = {**_tiny_overrides(), "weighting": "learned"}
    result = _torchrun(["ranks.py", json.dumps(overrides)], workspace)
    assert result.returncode == 0, result.stderr[-3000:]
    r0, r1 = (torch.load(workspace / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert r0["frozen"] == r1["frozen"] == ["category"]
    assert r0["trainable"] == r1["trainable"]
    assert all(n.startswith("heads.attribute.") for n in r0["trainable"]) and r0["trainable"]
    for key in r0["state"]:  # model, learned loss weights and BatchNorm statistics: the same everywhere
        assert torch.equal(r0["state"][key], r1["state"][key]), key
    assert torch.equal(r0["weights"], r1["weights"]) and not torch.allclose(r0["weights"], torch.tensor(0.5))
    # after the freeze only the attribute head (and the loss weights) moved
    final = {k[len("model.") :]: v for k, v in r0["state"].items() if k.startswith("model.")}
    moved = {k for k in final if not torch.equal(final[k], r0["restored"][k])}
    assert moved and all(k.startswith("heads.attribute.") for k in moved)


def _tiny_overrides() -> dict:
    return {
        "backbone": "test_efficientnet",
        "pretrained": False,
        "img_size": 32,
        "batch_size": 16,
        "num_workers": 0,
        "early_freeze": 1,
        "lr": 0.01,
    }


def test_two_nodes_on_one_machine(tiny_spec, workspace):
    port = _free_port()
    common = ["--nnodes", "2", "--nproc-per-node", "1", "--rdzv-backend", "c10d"]
    common += ["--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "mtlkaggle-test"]
    train = ["-m", "mtlkaggle", "train", "demo", "--fold", "2", "--epochs", "1", "--run-name", "nodes", *TINY]
    nodes = [
        subprocess.Popen(
            [TORCHRUN, *common, "--node-rank", str(rank), *train],
            cwd=workspace,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in (0, 1)
    ]
    outputs = [node.communicate(timeout=240) for node in nodes]
    assert [n.returncode for n in nodes] == [0, 0], outputs[0][1][-2000:] + outputs[1][1][-2000:]
    fold_dir = workspace / "runs/demo/nodes/fold2"
    assert json.loads((fold_dir / "config.json").read_text())["world_size"] == 2
    _check_oof(tiny_spec, fold_dir, 2)


def test_jobs_two_matches_jobs_one_fold_by_fold(tiny_spec, workspace, runner):
    # each --jobs process gets cores/N threads; with the same thread count in the sequential run
    # the results are bit-identical (with 2 threads against 1 they differ by float noise: README)
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, threads // 2))
    try:
        for jobs in (1, 2):
            args = ["train", "demo", "--fold", "all", "--epochs", "2", "--run", f"j{jobs}"]
            result = runner.invoke(app, [*args, "--jobs", str(jobs), *TINY])
            assert result.exit_code == 0, result.output
    finally:
        torch.set_num_threads(threads)
    for fold in ("0", "1", "2"):
        one, two = (RunLayout(workspace / f"runs/demo/j{j}").fold(fold) for j in (1, 2))
        timing = ["img_per_s", "seconds", "data_wait"]
        m1, m2 = (pd.read_csv(f.metrics).drop(columns=timing) for f in (one, two))
        pd.testing.assert_frame_equal(m1, m2)
        a, b = _weights(one.last), _weights(two.last)
        assert all(torch.equal(a[k], b[k]) for k in a), fold
    summary = pd.read_csv(workspace / "runs/demo/j2/summary.csv")
    assert list(summary["fold"].astype(str)) == ["0", "1", "2", "mean"]


def test_a_failing_fold_is_named_and_the_others_kept(tiny_spec, workspace, runner):
    # fold 1 already holds a run (neither --resume nor --overwrite): it fails, 0 and 2 train
    taken = workspace / "runs/demo/main/fold1/last.pt"
    taken.parent.mkdir(parents=True)
    taken.write_bytes(b"an earlier run")
    result = runner.invoke(app, ["train", "demo", "--fold", "all", "--epochs", "1", "--jobs", "2", *TINY])
    assert result.exit_code == 2
    assert "1 fold(s) failed (fold 1:" in result.output and "finished folds kept: 0, 2" in result.output
    summary = pd.read_csv(workspace / "runs/demo/main/summary.csv", dtype={"fold": str})
    assert list(summary["fold"]) == ["0", "2", "mean"]
    assert taken.read_bytes() == b"an earlier run"
