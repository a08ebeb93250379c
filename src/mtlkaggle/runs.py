"""``mtlkaggle runs``: every run of a competition in one table, best first.

Reads only what ``train``, ``predict``, ``submit`` and ``submissions`` wrote: each run's
``config.json``, each fold's ``metrics.csv`` (best epoch by the monitored ``score``, wall time,
img/s), the local record of submissions (``submissions/COMP/submitted.json``) with Kaggle's scores
where known and, where the competition keeps test labels, the score of the submission files in
``submissions/COMP`` for the run that predicted them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from mtlkaggle.errors import UserError
from mtlkaggle.metrics import monitor_score
from mtlkaggle.paths import RUNS, FoldLayout, RunLayout, submissions_dir
from mtlkaggle.spec import Spec
from mtlkaggle.submit import read_record


@dataclass
class RunSummary:
    """One run: its recipe, cross-validated scores, holdout scores, cost, and Kaggle's verdict."""

    name: str
    backbone: str
    img_size: int
    epochs: int
    folds: list[str]
    cv: dict[str, dict[str, float]] = field(default_factory=dict)  # metric -> {"mean", "std"}
    holdout: dict[str, float] = field(default_factory=dict)  # the 'val' fold's best epoch
    test: dict[str, float] = field(default_factory=dict)  # its files in submissions/COMP vs test labels
    wall_s: float = 0.0
    img_per_s: float | None = None
    date: str = ""
    submission: str | None = None  # the message of the latest submission made from this run
    kaggle: dict[str, str] = field(default_factory=dict)  # file -> public score (or status)
    rank: float | None = None  # the spec's monitor on the CV means (holdout without CV)
    problem: str | None = None  # a damaged file that kept this run's row from being filled in

    def to_json(self) -> dict:
        """A JSON-ready dict."""
        return asdict(self)


@dataclass
class RunsTable:
    """Every run, best first, and what could not be read (each a line for the user)."""

    runs: list[RunSummary]
    warnings: list[str] = field(default_factory=list)


def compare_runs(spec: Spec) -> RunsTable:
    """Every run of ``runs/COMP/`` with at least one finished epoch, sorted by the spec's monitor.

    A run whose files are damaged keeps its row, flagged with the problem; the others are listed
    as usual. A damaged submissions record costs the Kaggle columns only, with a warning.

    Raises:
        UserError: when the competition has no runs yet.
    """
    root = RUNS / spec.name
    layouts = [RunLayout(p) for p in sorted(root.iterdir()) if p.is_dir()] if root.is_dir() else []
    warnings: list[str] = []
    try:
        submitted = read_record(spec.name)
    except UserError as e:
        submitted, warnings = [], [f"{e} (the Kaggle columns are left out)"]
    runs = [r for r in (_summarize_or_flag(spec, layout, submitted) for layout in layouts) if r is not None]
    if not runs:
        raise UserError(f"{root}: no trained runs; run `mtlkaggle train {spec.name}` first")
    _attach_test_scores(spec, runs, root)
    return RunsTable(sorted(runs, key=lambda r: (r.rank is None, -(r.rank or 0.0), r.name)), warnings)


def _summarize_or_flag(spec: Spec, layout: RunLayout, submitted: list[dict]) -> RunSummary | None:
    try:
        return _summarize(spec, layout, submitted)
    except UserError as e:
        folds = [f.name for f in _folds_with_metrics(layout)]
        return RunSummary(layout.name, "?", 0, 0, folds, date=_date(layout), problem=str(e))


def metric_names(spec: Spec) -> list[str]:
    """``task/metric`` of every metric the spec scores, in spec order."""
    return [f"{t.name}/{m}" for t in spec.tasks for m in t.resolved_metrics]


def _summarize(spec: Spec, layout: RunLayout, submitted: list[dict]) -> RunSummary | None:
    histories = {f.name: _read_history(spec, f) for f in _folds_with_metrics(layout)}
    if not histories:
        return None
    train = _train_config(layout)
    names = metric_names(spec)
    best = {k: _best_row(h, names) for k, h in histories.items() if h["score"].notna().any()}
    numbered = [b for k, b in best.items() if k.isdigit()]
    run = RunSummary(
        name=layout.name,
        backbone=str(train.get("backbone", "?")),
        img_size=int(train.get("img_size", 0)),
        epochs=int(train.get("epochs", 0)),
        folds=list(histories),
        wall_s=float(sum(h["seconds"].sum() for h in histories.values() if "seconds" in h)),
        date=_date(layout),
    )
    for name in names:
        values = [b[name] for b in numbered if name in b]
        if values:
            run.cv[name] = {"mean": float(np.mean(values)), "std": float(np.std(values))}
    if "val" in best:
        run.holdout = best["val"]
    rates = [h["img_per_s"].to_numpy() for h in histories.values() if "img_per_s" in h]
    run.img_per_s = float(np.concatenate(rates).mean()) if rates else None
    scores = {k: v["mean"] for k, v in run.cv.items()} or run.holdout
    try:
        run.rank = float(monitor_score(spec, scores))
    except KeyError:  # trained before a metric was added to the spec
        run.rank = None
    _attach_submissions(run, layout, submitted)
    return run


def _folds_with_metrics(layout: RunLayout) -> list[FoldLayout]:
    folds = [FoldLayout(p.parent) for p in layout.dir.glob("fold*/metrics.csv")]
    return sorted(folds, key=lambda f: (not f.name.isdigit(), int(f.name) if f.name.isdigit() else 0, f.name))


def _read_history(spec: Spec, fold: FoldLayout) -> pd.DataFrame:
    """A fold's ``metrics.csv``, checked (a full-data fit's ``score`` is empty: it has no holdout)."""
    from mtlkaggle.readback import numeric_columns, read_table

    again = f"mtlkaggle train {spec.name} --run {fold.dir.parent.name} --fold {fold.name} --overwrite"
    fix = f"train that fold again (`{again}`)"
    frame = read_table(fold.metrics, fix, ["epoch", "score"], "metrics file")
    numeric_columns(frame, fold.metrics, ["epoch"], fix)
    numbers = [c for c in frame.columns if c.startswith(("val/", "train/")) or c in ("score", "seconds")]
    numeric_columns(frame, fold.metrics, numbers, fix, allow_nan=True)
    return frame


def _best_row(history: pd.DataFrame, names: list[str]) -> dict[str, float]:
    row = history.loc[history["score"].idxmax()]
    return {name: float(row[f"val/{name}"]) for name in names if f"val/{name}" in row}


def _train_config(layout: RunLayout) -> dict:
    """The recipe: the run's config.json, else the first fold's (a run still training)."""
    candidates = [layout.config] + [f.config for f in _folds_with_metrics(layout)]
    for path in candidates:
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        saved = saved.get("spec", saved)
        if isinstance(saved.get("train"), dict):
            return saved["train"]
    return {}


def _date(layout: RunLayout) -> str:
    stamps = [p.stat().st_mtime for p in layout.dir.glob("fold*/metrics.csv")]
    return datetime.fromtimestamp(max(stamps)).isoformat(sep=" ", timespec="minutes") if stamps else ""


def _attach_submissions(run: RunSummary, layout: RunLayout, submitted: list[dict]) -> None:
    """The latest submission made from this run: its message and each file's public score."""
    mine = [r for r in submitted if r.get("run") and _same_path(r["run"], layout.dir)]
    if not mine:
        return
    latest = max(r.get("date", "") for r in mine)
    batch = [r for r in mine if r.get("date", "") == latest]
    run.submission = str(batch[0].get("message", ""))
    for record in batch:
        score = record.get("public_score")
        run.kaggle[str(record.get("file"))] = score if score not in (None, "") else str(record.get("status"))


def _attach_test_scores(spec: Spec, runs: list[RunSummary], root: Path) -> None:
    """Score ``submissions/COMP`` against the test labels, for the run that predicted it."""
    from mtlkaggle.data import has_split
    from mtlkaggle.evaluate import evaluate_submissions

    folder = submissions_dir(spec.name)
    if not has_split(spec, "test_labels") or not (folder / "config.json").is_file():
        return
    try:
        made_from = json.loads((folder / "config.json").read_text(encoding="utf-8"))["run"]
        scores = evaluate_submissions(spec, folder)
    except (ValueError, KeyError, TypeError, UserError):
        return  # no run named, or files stale against the labels: `evaluate` says why
    for run in runs:
        if _same_path(str(made_from), root / run.name):
            run.test = {f"{r.task}/{r.metric}": float(r.score) for r in scores.itertuples()}


def _same_path(a: str, b: Path) -> bool:
    return Path(a).resolve() == b.resolve()


@dataclass
class MlflowRun:
    """One mtlkaggle run as MLflow holds it (a parent run and its fold children)."""

    name: str
    run_id: str
    status: str
    start: str
    folds: int
    metrics: dict[str, float] = field(default_factory=dict)  # cv/..., oof/..., test/..., lb/...

    def to_json(self) -> dict:
        """A JSON-ready dict."""
        return asdict(self)


def mlflow_runs(spec: Spec, local: list[RunSummary]) -> list[MlflowRun]:
    """The competition's MLflow runs, newest first, after sending each local run's CV, test and
    Kaggle (LB) scores to its MLflow parent run (only values MLflow does not hold yet).

    Raises:
        UserError: mlflow not installed, or no experiment of this competition in the store.
    """
    from mtlkaggle.trackers import check_trackers, experiment_name, mlflow_uri, read_ids

    check_trackers(
        spec.model_copy(update={"log": spec.log.model_copy(update={"trackers": ["mlflow"]})}),
        "--mlflow",
        "leave out --mlflow",
    )
    from mlflow.tracking import MlflowClient

    uri, name = mlflow_uri(spec), experiment_name(spec)
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        raise UserError(
            f"{uri}: no MLflow experiment '{name}'; train with `--log mlflow` first "
            "(or set [log] mlflow_uri / MLFLOW_TRACKING_URI to where it was logged)"
        )
    for run in local:
        saved = read_ids(RunLayout.of(spec.name, run.name).trackers).get("mlflow", {})
        if saved.get("run_id") and saved.get("uri") == uri:
            _send_scores(client, saved["run_id"], run)
    found = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"])
    children: dict[str, int] = {}
    for r in found:
        parent = r.data.tags.get("mlflow.parentRunId")
        if parent:
            children[parent] = children.get(parent, 0) + 1
    return [
        MlflowRun(
            name=r.data.tags.get("mlflow.runName", r.info.run_id),
            run_id=r.info.run_id,
            status=r.info.status,
            start=datetime.fromtimestamp(r.info.start_time / 1000).isoformat(sep=" ", timespec="minutes"),
            folds=children.get(r.info.run_id, 0),
            metrics=dict(sorted(r.data.metrics.items())),
        )
        for r in found
        if "mlflow.parentRunId" not in r.data.tags
    ]


def _send_scores(client, run_id: str, run: RunSummary) -> None:
    """CV means, test scores and Kaggle public scores of a local run, as metrics of its parent run."""
    values = {f"cv/{k}": v["mean"] for k, v in run.cv.items()}
    values |= {f"test/{k}": v for k, v in run.test.items()}
    for file, score in run.kaggle.items():
        try:
            values[f"lb/{Path(file).stem}"] = float(score)
        except (TypeError, ValueError):  # still pending, or an error status
            continue
    from mtlkaggle.trackers import numeric

    held = client.get_run(run_id).data.metrics
    for key, value in numeric(values).items():
        if held.get(key) != value:
            client.log_metric(run_id, key, float(value))
