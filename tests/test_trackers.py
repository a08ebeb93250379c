"""Experiment trackers with the real libraries: TensorBoard event files read back with
tensorboard's EventAccumulator, an MLflow sqlite store queried with MlflowClient, and W&B's
offline run files (``run-ID.wandb``) read record by record with wandb's own protobuf messages."""

from __future__ import annotations

import json
import math
import struct
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mtlkaggle.cli import app
from mtlkaggle.errors import UserError
from mtlkaggle.paths import RunLayout
from mtlkaggle.spec import LogSpec, Spec, with_overrides
from mtlkaggle.threshold_search import ThresholdResult
from mtlkaggle.trackers import check_trackers, mlflow_uri, numeric, run_end_values, wandb_mode
from mtlkaggle.train import TrainOptions, train_folds

TINY = ["--backbone", "test_efficientnet", "--img-size", "32", "--no-pretrained", "--num-workers", "0"]


def local_store() -> str:
    """The default MLflow store of the working directory (an absolute sqlite URI)."""
    return f"sqlite:///{Path('mlruns/mlflow.db').resolve().as_posix()}"


class Stop(Exception):
    """Raised from the per-epoch hook to cut a fold short."""


@pytest.fixture
def offline(monkeypatch):
    """Trackers stay on this machine: W&B offline, MLflow in the default local store."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


# ------------------------------------------------------------------ readers of what the trackers wrote


def tensorboard_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar tag of the event files in ``folder``: [(step, value), ...]."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def wandb_records(path: Path) -> list:
    """The records of a W&B offline ``.wandb`` file (a LevelDB-style log of 32 KiB blocks, each
    record split into chunks with a 7-byte header), parsed with wandb's protobuf ``Record``."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, block, pos, found, chunks = path.read_bytes(), 32768, 7, [], b""
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunks += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL or LAST
            record = pb.Record()
            record.ParseFromString(chunks)
            found.append(record)
            chunks = b""
    return found


def wandb_runs(run_dir: Path) -> list[dict]:
    """Each offline W&B run under ``run_dir/wandb``: id, group, job type and history rows."""
    runs = []
    for path in sorted(run_dir.glob("wandb/offline-run-*/run-*.wandb")):
        records = wandb_records(path)
        header = next(r.run for r in records if r.WhichOneof("record_type") == "run")
        history = [
            {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in r.history.item}
            for r in records
            if r.WhichOneof("record_type") == "history"
        ]
        runs.append(
            {"id": header.run_id, "group": header.run_group, "job": header.job_type, "history": history}
        )
    return runs


def mlflow_runs(experiment: str = "demo") -> tuple[object, list]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=local_store())
    found = client.get_experiment_by_name(experiment)
    assert found is not None
    return client, client.search_runs([found.experiment_id])


def numeric_columns(metrics: pd.DataFrame) -> list[str]:
    return [c for c in metrics.columns if metrics[c].dtype.kind in "if" and metrics[c].notna().all()]


# ------------------------------------------------------------------ fast


def test_log_option_takes_a_comma_list_and_refuses_an_unknown_tracker(tiny_spec):
    assert LogSpec(trackers="TensorBoard, mlflow,mlflow").trackers == ["tensorboard", "mlflow"]
    assert with_overrides(tiny_spec, "log", trackers="none").log.trackers == []
    with pytest.raises(UserError, match=r"^--log: "):
        with_overrides(tiny_spec, "log", trackers="tensorboard,neptune")


def test_a_missing_package_is_one_line_naming_the_pip_install(tiny_spec, monkeypatch):
    spec = with_overrides(tiny_spec, "log", trackers="wandb")
    monkeypatch.setitem(sys.modules, "wandb", None)  # Python's own way to make an import fail
    with pytest.raises(UserError, match=r"pip install 'mtlkaggle\[wandb\]'") as raised:
        check_trackers(spec)
    assert "\n" not in str(raised.value)


def test_stores_and_modes_default_to_this_machine(tiny_spec, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert mlflow_uri(tiny_spec) == local_store()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///elsewhere.db")
    assert mlflow_uri(tiny_spec) == "sqlite:///elsewhere.db"
    assert mlflow_uri(with_overrides(tiny_spec, "log", mlflow_uri="http://h:5000")) == "http://h:5000"
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(Path("no-such-netrc")))
    assert wandb_mode() == "offline"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert wandb_mode() == "disabled"
    assert numeric({"epoch": 2, "lr": 0.1, "val/x": math.nan, "frozen": "a", "odd:key": 1.0}) == {
        "epoch": 2.0,
        "lr": 0.1,
        "odd_key": 1.0,
    }


def test_runs_mlflow_sends_a_runs_scores_to_its_parent_and_lists_it(workspace, runner, offline):
    from mlflow.tracking import MlflowClient

    fold = workspace / "runs/demo/x/fold0"
    fold.mkdir(parents=True)
    (fold / "metrics.csv").write_text("epoch,score,val/category/accuracy,seconds\n1,0.5,0.625,1.0\n")
    missing = runner.invoke(app, ["runs", "demo", "--mlflow"])
    assert missing.exit_code == 2
    assert "no MLflow experiment 'demo'" in missing.output and "--log mlflow" in missing.output
    client = MlflowClient(tracking_uri=local_store())
    parent = client.create_run(client.create_experiment("demo"), tags={"mlflow.runName": "x"}).info.run_id
    ids = {"mlflow": {"run_id": parent, "uri": local_store()}}
    (workspace / "runs/demo/x/trackers.json").write_text(json.dumps(ids))
    listed = runner.invoke(app, ["runs", "demo", "--mlflow", "--json"])
    assert listed.exit_code == 0, listed.output
    (tracked,) = json.loads(listed.stdout)["mlflow"]
    assert (tracked["name"], tracked["run_id"], tracked["folds"]) == ("x", parent, 0)
    assert client.get_run(parent).data.metrics == {"cv/category/accuracy": 0.625}
    assert tracked["metrics"] == {"cv/category/accuracy": 0.625}


# ------------------------------------------------------------------ slow: real training


def test_run_end_names_thresholds_per_label_and_kappa_cut_points_per_cut():
    spec = Spec.model_validate(
        {
            "name": "t",
            "data_dir": ".",
            "data": {"train": "train.csv", "id_column": "id"},
            "tasks": [
                {"name": "tags", "kind": "multilabel", "column": "tags", "classes": ["a", "b"]},
                {"name": "grade", "kind": "regression", "column": "g", "num_classes": 3, "metrics": ["qwk"]},
            ],
        }
    )
    summary = pd.DataFrame([{"fold": "0", "tags/mean_f1": 0.5}, {"fold": "mean", "tags/mean_f1": 0.625}])
    tuned = {
        "tags": ThresholdResult("mean_f1", np.array([0.3, 0.6]), 0.4, {"0.5": 0.5, "tuned": 0.7}),
        "grade": ThresholdResult("qwk", np.array([0.6, 1.4]), math.nan, {"tuned": 0.8}),
    }
    values = run_end_values(spec, summary, tuned)
    assert values == {
        "cv/tags/mean_f1": 0.625,
        "oof/tags/0.5": 0.5,
        "oof/tags/tuned": 0.7,
        "threshold/tags/a": 0.3,
        "threshold/tags/b": 0.6,
        "threshold/tags/global": 0.4,
        "oof/grade/tuned": 0.8,
        "cut/grade/0": 0.6,
        "cut/grade/1": 1.4,
    }


@pytest.mark.slow
def test_every_tracker_holds_every_epoch_of_every_fold(tiny_spec, workspace, runner, offline):
    args = ["train", "demo", "--fold", "all", "--epochs", "2", "--jobs", "2", *TINY]
    result = runner.invoke(app, [*args, "--log", "tensorboard,mlflow,wandb"])
    assert result.exit_code == 0, result.output
    run_dir = workspace / "runs/demo/main"
    folds = ["0", "1", "2"]
    client, found = mlflow_runs()
    parents = [r for r in found if "mlflow.parentRunId" not in r.data.tags]
    assert [p.data.tags["mlflow.runName"] for p in parents] == ["main"]
    parent = parents[0]
    children = {r.data.tags["mlflow.runName"]: r for r in found if r not in parents}
    assert sorted(children) == [f"fold{k}" for k in folds]
    summary = pd.read_csv(run_dir / "summary.csv", dtype={"fold": str})
    mean = summary[summary["fold"] == "mean"].iloc[0]
    assert parent.data.metrics["cv/score"] == pytest.approx(mean["score"])
    assert any(k.startswith("oof/attribute/") for k in parent.data.metrics)  # tuned thresholds
    tuned = json.loads((run_dir / "thresholds.json").read_text())["attribute"]
    assert parent.data.metrics["threshold/attribute/red"] == pytest.approx(tuned["thresholds"][0])
    assert parent.data.metrics["threshold/attribute/global"] == pytest.approx(tuned["global_threshold"])
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {"summary.csv", "thresholds.json"}
    wandb = wandb_runs(run_dir)
    for fold in folds:
        metrics = pd.read_csv(run_dir / f"fold{fold}/metrics.csv")
        columns = numeric_columns(metrics)
        assert {"lr", "train/loss", "val/loss", "score", "img_per_s", "data_wait"} <= set(columns)
        assert any(c.startswith("weight/") for c in columns)
        scalars = tensorboard_scalars(run_dir / f"fold{fold}")
        child = children[f"fold{fold}"]
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.data.params["train.backbone"] == "test_efficientnet"
        assert child.data.params["command"] == " ".join(sys.argv)  # the command that trained it
        assert "metrics.csv" in {a.path for a in client.list_artifacts(child.info.run_id)}
        (fold_run,) = [r for r in wandb if r["job"] == f"fold{fold}"]
        assert fold_run["group"] == "main"
        for column in columns:
            expected = list(zip(metrics["epoch"], metrics[column], strict=True))
            assert scalars[column] == [(s, pytest.approx(v, rel=1e-5)) for s, v in expected], column
            history = client.get_metric_history(child.info.run_id, column)
            assert [(m.step, m.value) for m in history] == [(s, pytest.approx(v)) for s, v in expected]
            logged = [(row["_step"], row[column]) for row in fold_run["history"]]
            assert logged == [(s, pytest.approx(v)) for s, v in expected], column
    (cv_run,) = [r for r in wandb if r["job"] == "cv"]
    assert cv_run["history"][0]["cv/score"] == pytest.approx(mean["score"])
    # `runs --mlflow`: the MLflow runs beside the local table, with the Kaggle score sent along
    record = {"run": "runs/demo/main", "date": "2026-12-01T10:00:00+00:00", "message": "first"}
    record |= {"file": "category.csv", "status": "COMPLETE", "public_score": "0.8125"}
    (workspace / "submissions/demo").mkdir(parents=True, exist_ok=True)
    (workspace / "submissions/demo/submitted.json").write_text(json.dumps([record]))
    listed = runner.invoke(app, ["runs", "demo", "--mlflow", "--json"])
    assert listed.exit_code == 0, listed.output
    (tracked,) = json.loads(listed.stdout)["mlflow"]
    assert (tracked["name"], tracked["run_id"], tracked["folds"]) == ("main", parent.info.run_id, 3)
    assert tracked["metrics"]["lb/category"] == 0.8125
    assert client.get_run(parent.info.run_id).data.metrics["lb/category"] == 0.8125
    shown = runner.invoke(app, ["runs", "demo", "--mlflow"])
    assert "MLflow runs of experiment 'demo'" in shown.output and "lb/category" in shown.output
    # `report`: the figures go to the trackers the run was trained with
    reported = runner.invoke(app, ["report", "demo"])
    assert reported.exit_code == 0, reported.output
    figures = sorted(p.stem for p in (workspace / "reports/demo/main").glob("*.png"))
    assert figures
    logged = {a.path for a in client.list_artifacts(parent.info.run_id, "figures")}
    assert logged == {f"figures/{f}.png" for f in figures}
    assert "report.md" in {a.path for a in client.list_artifacts(parent.info.run_id)}
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir), size_guidance={"images": 0})
    events.Reload()
    assert sorted(events.Tags()["images"]) == figures
    pieces = [r for r in wandb_runs(run_dir) if r["job"] == "cv"]  # resumed: one folder per start
    assert {r["id"] for r in pieces} == {cv_run["id"]}
    images = {row.get(f"{f}/_type") for r in pieces for row in r["history"] for f in figures}
    assert all(any(f"{f}/_type" in row for r in pieces for row in r["history"]) for f in figures)
    assert images - {None} == {"image-file"}


@pytest.mark.slow
def test_a_resumed_fold_continues_its_tracker_runs_without_a_repeated_step(tiny_spec, workspace, offline):
    spec = with_overrides(
        with_overrides(tiny_spec, "train", epochs=3), "log", trackers="tensorboard,mlflow,wandb"
    )

    def stop_after_two(trainer, row):
        if row["epoch"] == 2:
            raise Stop

    options = TrainOptions(RunLayout(workspace / "runs/demo/cut"), on_epoch_end=stop_after_two)
    with pytest.raises(Stop):
        train_folds(spec, ["0"], options)
    fold_dir = workspace / "runs/demo/cut/fold0"
    before = json.loads((fold_dir / "trackers.json").read_text())
    assert before["step"] == 2
    train_folds(spec, ["0"], replace(options, resume=True, on_epoch_end=None))
    after = json.loads((fold_dir / "trackers.json").read_text())
    assert after["step"] == 3
    assert after["mlflow"]["run_id"] == before["mlflow"]["run_id"]
    assert after["wandb"]["id"] == before["wandb"]["id"]
    metrics = pd.read_csv(fold_dir / "metrics.csv")
    assert list(metrics["epoch"]) == [1, 2, 3]
    assert [s for s, _ in tensorboard_scalars(fold_dir)["val/loss"]] == [1, 2, 3]
    client, found = mlflow_runs()
    children = [r for r in found if r.data.tags.get("mlflow.runName") == "fold0"]
    assert len(children) == 1
    history = client.get_metric_history(children[0].info.run_id, "val/loss")
    assert [(m.step, m.value) for m in history] == [
        (e, pytest.approx(v)) for e, v in zip(metrics["epoch"], metrics["val/loss"], strict=True)
    ]
    pieces = [r for r in wandb_runs(workspace / "runs/demo/cut") if r["job"] == "fold0"]
    assert {r["id"] for r in pieces} == {before["wandb"]["id"]}  # the same W&B run, resumed
    assert sorted(row["_step"] for r in pieces for row in r["history"]) == [1, 2, 3]


@pytest.mark.slow
def test_a_tracker_failing_mid_run_warns_once_and_training_goes_on(tiny_spec, workspace, offline, capsys):
    spec = with_overrides(with_overrides(tiny_spec, "train", epochs=3), "log", trackers="mlflow,tensorboard")
    fold_dir = workspace / "runs/demo/lost/fold0"

    def lose_the_run(trainer, row):  # the server forgets the run after the first epoch
        if row["epoch"] == 1:
            from mlflow.tracking import MlflowClient

            ids = json.loads((fold_dir / "trackers.json").read_text())
            MlflowClient(tracking_uri=local_store()).delete_run(ids["mlflow"]["run_id"])

    train_folds(spec, ["0"], TrainOptions(RunLayout(workspace / "runs/demo/lost"), on_epoch_end=lose_the_run))
    err = capsys.readouterr().err
    assert err.count("mlflow stopped logging") == 1, err
    assert list(pd.read_csv(fold_dir / "metrics.csv")["epoch"]) == [1, 2, 3]
    assert [s for s, _ in tensorboard_scalars(fold_dir)["val/loss"]] == [1, 2, 3]  # the others go on


def _closed_port() -> int:
    """A local port nothing listens on: bound by a real socket, then closed."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_mlflow_server_stops_train_before_it_starts(tiny_spec, workspace, runner, monkeypatch):
    uri = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # nothing listens there
    with pytest.raises(UserError, match=rf"^--log mlflow: no MLflow server answers at {uri} \(") as raised:
        check_trackers(with_overrides(tiny_spec, "log", trackers="mlflow"))
    assert "\n" not in str(raised.value) and "mlflow server" in str(raised.value)
    result = runner.invoke(app, ["train", "demo", "--fold", "0", "--epochs", "1", "--log", "mlflow", *TINY])
    assert result.exit_code == 2, result.output
    assert "no MLflow server answers" in result.output and "Traceback" not in result.output
    assert not (workspace / "runs/demo/main").exists()  # nothing written
    from mtlkaggle.runs import mlflow_runs

    refused = rf"^--mlflow: no MLflow server answers at {uri} .*leave out --mlflow$"
    with pytest.raises(UserError, match=refused):
        mlflow_runs(tiny_spec, [])  # `runs --mlflow`


@pytest.mark.slow
def test_torchrun_logs_once(tiny_spec, workspace, offline):
    from tests.test_distributed import TORCHRUN

    args = ["-m", "mtlkaggle", "train", "demo", "--fold", "0", "--epochs", "2", "--run-name", "ddp", *TINY]
    command = [TORCHRUN, "--standalone", "--nproc-per-node", "2", *args, "--trackers", "tensorboard,mlflow"]
    result = subprocess.run(command, cwd=workspace, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    fold_dir = workspace / "runs/demo/ddp/fold0"
    assert len(list(fold_dir.glob("events.out.tfevents.*"))) == 1
    assert [s for s, _ in tensorboard_scalars(fold_dir)["val/loss"]] == [1, 2]
    client, found = mlflow_runs()
    children = [r for r in found if r.data.tags.get("mlflow.runName") == "fold0"]
    assert len(children) == 1
    assert [m.step for m in client.get_metric_history(children[0].info.run_id, "val/loss")] == [1, 2]
    assert len([r for r in found if "mlflow.parentRunId" not in r.data.tags]) == 1
