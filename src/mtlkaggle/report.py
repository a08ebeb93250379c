"""``mtlkaggle report``: the pictures and tables a person decides from, for one training run.

Writes ``reports/COMP/RUN/``: class distributions, training curves per fold, confusion matrices
and per-label F1 from out-of-fold predictions, predicted-vs-true plots for regression, and
``report.md`` with the per-fold and mean scores of every metric, the test (holdout) scores of the
run's submission files where labels exist, the tuned thresholds per label, time and throughput
per fold, the environment and command of the run, the configuration and the figures.
Matplotlib runs with the Agg backend: no display is needed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mtlkaggle.data import has_split
from mtlkaggle.engine.epoch_log import read_metrics
from mtlkaggle.errors import UserError
from mtlkaggle.figures import (
    plot_confusion,
    plot_curves,
    plot_distributions,
    plot_label_f1,
    plot_regression,
    plot_roc,
)
from mtlkaggle.io import write_text_atomic
from mtlkaggle.metric_formulas import fbeta_from_counts
from mtlkaggle.paths import RunLayout, submissions_dir
from mtlkaggle.readback import numeric_columns, read_json_object, read_table, read_text
from mtlkaggle.spec import Spec
from mtlkaggle.thresholds import apply_thresholds, collect_oof, read_thresholds_file


@dataclass
class Report:
    """What ``make_report`` wrote: the folder, the figures and the score table."""

    folder: Path
    figures: list[Path] = field(default_factory=list)
    scores: pd.DataFrame = field(default_factory=pd.DataFrame)
    test_scores: pd.DataFrame | None = None  # the run's submission files against the test labels


def fold_scores(spec: Spec, run: RunLayout) -> pd.DataFrame:
    """Every metric at each fold's best epoch (from its metrics.csv), plus the mean row."""
    rows = []
    for fold in run.trained_folds():
        if fold.name == "full":  # a full-data fit has no validation scores
            continue
        folder = fold.dir
        metrics = read_metrics(spec, fold.metrics)
        best = metrics.loc[metrics["score"].idxmax()]
        row = {"fold": folder.name.removeprefix("fold"), "best_epoch": int(best["epoch"])}
        for task in spec.tasks:
            for metric in task.resolved_metrics:
                row[f"{task.name}/{metric}"] = float(best[f"val/{task.name}/{metric}"])
        rows.append(row)
    if not rows:
        raise UserError(f"{run.dir}: no trained folds; run `mtlkaggle train {spec.name}` first")
    frame = pd.DataFrame(rows)
    numbered = frame[frame["fold"].str.isdigit()]  # 'val' and 'full' are not cross-validation folds
    if len(numbered) > 1:
        mean = numbered.drop(columns=["fold", "best_epoch"]).mean().to_dict()
        frame = pd.concat(
            [frame, pd.DataFrame([{"fold": "mean", "best_epoch": None, **mean}])], ignore_index=True
        )
    return frame


def read_run_config(spec: Spec, run: RunLayout) -> Spec | None:
    """The spec a run saved in its ``config.json`` (None when it has none).

    Raises:
        UserError: a damaged file or one that is not a valid competition spec.
    """
    from pydantic import ValidationError

    path = run.config
    if not path.exists():
        return None
    fix = f"delete it and train again (`mtlkaggle train {spec.name} --run {run.name}`)"
    try:
        return Spec.model_validate(read_json_object(path, fix, "run config"))
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "(top level)"
        raise UserError(f"{path}: field '{where}': {first['msg']}; {fix}") from None


def read_skipped(run: RunLayout) -> dict[str, list[str]]:
    """Per fold, the images its training skipped (``skipped.txt``, written with --skip-bad-images)."""
    out = {}
    for fold in run.trained_folds():
        path = fold.dir / "skipped.txt"
        if path.is_file():
            fix = "it is only informative: delete it to go on"
            out[fold.name] = [line for line in read_text(path, fix, "skipped list").splitlines() if line]
    return out


def _markdown_table(frame: pd.DataFrame) -> str:
    def cell(v):
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return ""
        return f"{v:.4f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def make_report(spec: Spec, run: RunLayout, out: Path, submission_dir: Path | None = None) -> Report:
    """Write every figure and ``report.md`` for a run into ``out``.

    The recipe shown (and the weighting named in the curves) is the one the run saved in its
    ``config.json``; the data comes from ``spec`` (so ``--data-dir`` still applies). Where the
    competition keeps test labels and ``submission_dir`` (default ``submissions/COMP``) holds
    files predicted from this run, they are scored too.
    """
    seeds = run.seed_runs()
    if seeds:
        from mtlkaggle.ensemble import Member

        return make_ensemble_report(spec, [Member(s, 1.0 / len(seeds)) for s in seeds], out)
    saved = read_run_config(spec, run)
    if saved is not None:
        spec = spec.model_copy(update={"train": saved.train})
    report = Report(out, scores=fold_scores(spec, run))
    submission_dir = submission_dir or submissions_dir(spec.name)
    report.test_scores = _test_scores(spec, run, submission_dir)
    out.mkdir(parents=True, exist_ok=True)
    report.figures.append(plot_distributions(spec, out))
    report.figures += [plot_curves(spec, f.dir, out) for f in run.trained_folds() if f.name != "full"]
    _, targets, probs = collect_oof(spec, run)
    thresholds_path = run.thresholds
    tuned = read_thresholds_file(spec, thresholds_path) if thresholds_path.exists() else {}
    report.figures += _oof_figures(spec, targets, probs, tuned, out)
    label_thresholds = _label_thresholds(spec, tuned, targets, probs)
    text = _markdown(spec, run, report, tuned, label_thresholds, submission_dir, read_skipped(run))
    write_text_atomic(out / "report.md", text)
    return report


def _oof_figures(spec: Spec, targets: dict, probs: dict, tuned: dict, out: Path) -> list[Path]:
    figures = []
    for task in spec.tasks:
        y, p = targets[task.name], probs[task.name]
        if task.kind == "multiclass":
            figures.append(plot_confusion(task, y, p, out))
        elif task.kind == "multilabel":
            th = np.array(tuned[task.name]["thresholds"]) if task.name in tuned else 0.5
            figures.append(plot_label_f1(task, y, p, th, out))
        elif task.kind == "binary":
            figures.append(plot_roc(task, y, p, out))
        else:
            figures.append(plot_regression(task, y, p, out))
    return figures


def make_ensemble_report(spec: Spec, members: list, out: Path) -> Report:
    """The report of an ensemble (a ``train --seeds`` run, or ``report --runs``): the pooled
    out-of-fold CV of each member and of the weighted average, each member's per-fold scores and
    curves, and the figures of the averaged out-of-fold probabilities."""
    from mtlkaggle.ensemble import ensemble_oof

    oof = ensemble_oof(spec, members)
    report = Report(out, scores=oof.table)
    out.mkdir(parents=True, exist_ok=True)
    report.figures.append(plot_distributions(spec, out))
    parts = [f"# {spec.name}: ensemble of {len(members)} run(s)", "", spec.description, ""]
    parts += ["## Out-of-fold CV: each member and the ensemble (pooled over folds)", ""]
    parts += [_markdown_table(oof.table), ""]
    for member in members:
        layout = member.run
        per_fold = _markdown_table(fold_scores(spec, layout))
        parts += [f"## `{member.label}`: each fold's best epoch", "", per_fold, ""]
        for fold in layout.trained_folds():
            name = f"{member.label.replace('/', '_')}_{fold.dir.name}"
            report.figures.append(plot_curves(spec, fold.dir, out, name))
    tuned = {name: r.to_json() for name, r in oof.thresholds.items()}
    report.figures += _oof_figures(spec, oof.targets, oof.probs, tuned, out)
    parts += ["## Figures", ""] + [f"![{fig.stem}]({fig.name})" for fig in report.figures]
    write_text_atomic(out / "report.md", "\n".join(parts) + "\n")
    return report


def _test_scores(spec: Spec, run: RunLayout, submission_dir: Path) -> pd.DataFrame | None:
    """The spec's metrics on the test labels, for submission files predicted from this run."""
    from mtlkaggle.evaluate import evaluate_submissions

    config = submission_dir / "config.json"
    if not has_split(spec, "test_labels") or not config.is_file():
        return None
    try:
        made_from = Path(json.loads(config.read_text(encoding="utf-8"))["run"])
    except (ValueError, KeyError, TypeError):
        return None
    if made_from.resolve() != run.dir.resolve():
        return None
    return evaluate_submissions(spec, submission_dir)


def _per_label(task, y: np.ndarray, pred: np.ndarray) -> tuple[str, np.ndarray]:
    """Each label's OOF score for the table: accuracy (a binary task tuned for it), else F-beta at
    the task's beta when it is tuned for ``fbeta`` (F1 otherwise)."""
    if task.resolved_metrics[0] == "accuracy" and task.kind == "binary":
        return "accuracy", (y == pred).mean(axis=0)
    beta = task.beta if task.resolved_metrics[0] == "fbeta" else 1.0
    name = "F1" if beta == 1.0 else f"F{beta:g}"
    return name, fbeta_from_counts((y * pred).sum(0), y.sum(0), pred.sum(0), beta)


def _label_thresholds(spec: Spec, tuned: dict, targets: dict, probs: dict) -> pd.DataFrame | None:
    """One row per label of each task with tuned thresholds: its threshold and its OOF score (F1,
    F-beta or accuracy) at 0.5 and tuned."""
    rows = []
    for task in spec.tasks:
        if task.kind not in ("multilabel", "binary") or task.name not in tuned:
            continue
        thresholds = np.array(tuned[task.name]["thresholds"])
        y, p = targets[task.name], probs[task.name]
        name, at_half = _per_label(task, y, apply_thresholds(p, 0.5))
        _, at_tuned = _per_label(task, y, apply_thresholds(p, thresholds))
        for j, label in enumerate(task.label_names):
            rows.append(
                {
                    "task": task.name,
                    "label": label,
                    "threshold": f"{thresholds[j]:.2f}",
                    f"OOF {name} at 0.5": float(at_half[j]),
                    f"OOF {name} tuned": float(at_tuned[j]),
                }
            )
    return pd.DataFrame(rows) if rows else None


def _timings(spec: Spec, run: RunLayout) -> pd.DataFrame:
    """Per fold: epochs run, mean seconds and img/s per epoch, and the fold's wall time."""
    rows = []
    for fold in run.trained_folds():
        fix = f"train that fold again (`mtlkaggle train {spec.name} --fold {fold.name} --overwrite`)"
        m = read_table(fold.metrics, fix, ["epoch", "seconds", "img_per_s"], "metrics file")
        numeric_columns(m, fold.metrics, ["seconds", "img_per_s"], fix)
        rows.append(
            {
                "fold": fold.name,
                "epochs": len(m),
                "s/epoch": float(m["seconds"].mean()),
                "train img/s": float(m["img_per_s"].mean()),
                "wall s": float(m["seconds"].sum()),
            }
        )
    return pd.DataFrame(rows)


def _environment(run: RunLayout) -> tuple[pd.DataFrame, list[str]]:
    """Per fold: device, processes and versions from its config.json; the distinct commands."""
    rows, commands = [], []
    for fold in run.trained_folds():
        try:
            config = json.loads(fold.config.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        versions = config.get("versions", {})
        rows.append(
            {
                "fold": fold.name,
                "device": config.get("device", "?"),
                "processes": config.get("world_size", 1),
                **{name: versions.get(name, "?") for name in ("mtlkaggle", "torch", "timm")},
                "weights": config.get("weights", "?"),
            }
        )
        command = _readable_command(str(config.get("command", "")))
        if command and command not in commands:
            commands.append(command)
    return pd.DataFrame(rows), commands


def _readable_command(command: str) -> str:
    """``.../mtlkaggle/__main__.py train ...`` (argv under ``python -m``) as ``mtlkaggle train ...``."""
    program, _, rest = command.partition(" ")
    if program.endswith(("mtlkaggle/__main__.py", "/mtlkaggle")) or program == "mtlkaggle":
        return f"mtlkaggle {rest}".strip()
    return command


def _markdown(
    spec: Spec,
    run: RunLayout,
    report: Report,
    tuned: dict,
    label_thresholds: pd.DataFrame | None,
    submission_dir: Path,
    skipped: dict[str, list[str]],
) -> str:
    parts = [
        f"# {spec.name}: run `{run.name}`",
        "",
        spec.description,
        "",
        "## Scores at each fold's best epoch (validation)",
        "",
        _markdown_table(report.scores),
    ]
    parts += ["", "## Test scores", "", _test_section(spec, run, report, submission_dir)]
    if tuned:
        parts += ["", "## Out-of-fold decisions: the metric at 0.5 vs tuned", "", _decisions_table(tuned)]
    if label_thresholds is not None:
        parts += ["", "## Tuned threshold per label", "", _markdown_table(label_thresholds)]
    parts += ["", "## Time and throughput per fold", "", _markdown_table(_timings(spec, run))]
    environment, commands = _environment(run)
    if len(environment):
        parts += ["", "## Environment", "", _markdown_table(environment)]
    if commands:
        parts += ["", "## Command", "", "```", *commands, "```"]
    if skipped:
        total = sum(len(v) for v in skipped.values())
        parts += ["", f"## Skipped images ({total}, unreadable, left out of training)", ""]
        parts += [f"- fold {fold}: {line}" for fold, lines in skipped.items() for line in lines]
    parts += ["", "## Configuration", "", "```json", json.dumps(spec.train.model_dump(), indent=2), "```"]
    parts += ["", "## Figures", ""]
    parts += [f"![{fig.stem}]({fig.name})" for fig in report.figures]
    return "\n".join(parts) + "\n"


def decision_rows(tuned: dict) -> pd.DataFrame:
    """One row per tuned task: its OOF metric with the untuned decision (threshold 0.5, or argmax
    / rounding for cut points) and with the tuned one, then the other saved scores."""
    rows = []
    for name, entry in tuned.items():
        scores = dict(entry["scores"])
        untuned = scores.pop("0.5", scores.pop("default", float("nan")))
        tuned_score = scores.pop("tuned", scores.get("per_label", float("nan")))
        rows.append(
            {
                "task": name,
                "metric": entry["metric"],
                "OOF at 0.5": untuned,
                "OOF tuned": tuned_score,
                **scores,
            }
        )
    return pd.DataFrame(rows)


def _decisions_table(tuned: dict) -> str:
    return _markdown_table(decision_rows(tuned))


def _test_section(spec: Spec, run: RunLayout, report: Report, submission_dir: Path) -> str:
    if report.test_scores is not None:
        return (
            f"The submission files in `{submission_dir}` (predicted from this run) scored against the "
            f"test labels:\n\n{_markdown_table(report.test_scores)}"
        )
    if not has_split(spec, "test_labels"):
        return "The competition keeps no test labels: Kaggle scores the test (`mtlkaggle submissions`)."
    return (
        f"No submission files from this run in `{submission_dir}`: run `mtlkaggle predict {spec.name} "
        f"--run {run.name}`, then report again to score them against the test labels."
    )
