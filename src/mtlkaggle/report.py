"""``mtlkaggle report``: the pictures and tables a person decides from, for one training run.

Writes ``reports/COMP/RUN/``: class distributions, training curves per fold, confusion matrices
and per-label F1 from out-of-fold predictions, predicted-vs-true plots for regression, and
``report.md`` with the per-fold and mean scores of every metric, the configuration and the
figures. Matplotlib runs with the Agg backend: no display is needed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mtlkaggle.data import has_split, read_split
from mtlkaggle.errors import UserError
from mtlkaggle.io import atomic_path, write_text_atomic
from mtlkaggle.metrics import per_label_f1
from mtlkaggle.paths import RunLayout
from mtlkaggle.spec import Spec
from mtlkaggle.thresholds import apply_thresholds, collect_oof


@dataclass
class Report:
    """What ``make_report`` wrote: the folder, the figures and the score table."""

    folder: Path
    figures: list[Path] = field(default_factory=list)
    scores: pd.DataFrame = field(default_factory=pd.DataFrame)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    _plt().close(fig)
    return path


def fold_scores(spec: Spec, run_dir: Path) -> pd.DataFrame:
    """Every metric at each fold's best epoch (from its metrics.csv), plus the mean row."""
    rows = []
    for fold in RunLayout(run_dir).trained_folds():
        folder = fold.dir
        metrics = pd.read_csv(fold.metrics)
        best = metrics.loc[metrics["score"].idxmax()]
        row = {"fold": folder.name.removeprefix("fold"), "best_epoch": int(best["epoch"])}
        for task in spec.tasks:
            for metric in task.resolved_metrics:
                row[f"{task.name}/{metric}"] = float(best[f"val/{task.name}/{metric}"])
        rows.append(row)
    if not rows:
        raise UserError(f"{run_dir}: no trained folds; run `mtlkaggle train {spec.name}` first")
    frame = pd.DataFrame(rows)
    if len(rows) > 1:
        mean = frame.drop(columns=["fold", "best_epoch"]).mean().to_dict()
        frame = pd.concat(
            [frame, pd.DataFrame([{"fold": "mean", "best_epoch": None, **mean}])], ignore_index=True
        )
    return frame


def plot_distributions(spec: Spec, out: Path) -> Path:
    """Bar charts of class counts / label frequencies per task, train vs test where known."""
    plt = _plt()
    splits = {"train": read_split(spec, "train")}
    if has_split(spec, "test_labels"):
        splits["test"] = read_split(spec, "test_labels")
    fig, axes = plt.subplots(len(spec.tasks), 1, figsize=(9, 3.2 * len(spec.tasks)), squeeze=False)
    for ax, task in zip(axes[:, 0], spec.tasks, strict=True):
        if task.kind == "regression":
            for name, table in splits.items():
                ax.hist(table.targets[task.name], bins=30, alpha=0.6, density=True, label=name)
            ax.set_xlabel(task.name)
        else:
            x = np.arange(task.size)
            width = 0.8 / len(splits)
            for i, (name, table) in enumerate(splits.items()):
                y = table.targets[task.name]
                share = (
                    np.bincount(y, minlength=task.size) / len(y) if task.kind == "multiclass" else y.mean(0)
                )
                ax.bar(x + i * width, share, width, label=f"{name} ({len(y)})")
            ax.set_xticks(x + width * (len(splits) - 1) / 2, task.label_names, rotation=45, ha="right")
            ax.set_ylabel("share of rows" if task.kind == "multiclass" else "label frequency")
        ax.set_title(f"{task.name} ({task.kind})")
        ax.legend()
    fig.tight_layout()
    return _save(fig, out / "class_distribution.png")


def plot_curves(spec: Spec, folder: Path, out: Path, name: str | None = None) -> Path:
    """Total and per-task loss (train, val), each task's metrics, and the task weights per epoch."""
    plt = _plt()
    m = pd.read_csv(folder / "metrics.csv")
    panels = 2 + len(spec.tasks)
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 3.4), squeeze=False)
    ax = axes[0, 0]
    ax.plot(m["epoch"], m["train/loss"], "o-", label="train")
    ax.plot(m["epoch"], m["val/loss"], "s-", label="val")
    ax.set_title("total loss")
    for task, ax in zip(spec.tasks, axes[0, 1:-1], strict=True):
        ax.plot(m["epoch"], m[f"train/loss/{task.name}"], "o--", label="train loss")
        ax.plot(m["epoch"], m[f"val/loss/{task.name}"], "s--", label="val loss")
        twin = ax.twinx()
        for metric, colour in zip(
            task.resolved_metrics, ("tab:green", "tab:red", "tab:purple", "tab:brown"), strict=False
        ):
            twin.plot(m["epoch"], m[f"val/{task.name}/{metric}"], "^-", label=f"val {metric}", color=colour)
            if f"train/{task.name}/{metric}" in m.columns:
                twin.plot(
                    m["epoch"], m[f"train/{task.name}/{metric}"], "v:", label=f"train {metric}", color=colour
                )
        twin.set_ylabel(", ".join(task.resolved_metrics))
        twin.legend(fontsize=7, loc="center right")
        ax.set_title(task.name)
    ax = axes[0, -1]
    for task in spec.tasks:
        ax.plot(m["epoch"], m[f"weight/{task.name}"], "o-", label=task.name)
    ax.set_title(f"task weights ({spec.train.weighting})")
    for ax in axes[0]:
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
    fig.suptitle(f"{spec.name} {name or folder.name}")
    fig.tight_layout()
    return _save(fig, out / f"curves_{name or folder.name}.png")


def plot_confusion(task, y: np.ndarray, probs: np.ndarray, out: Path) -> Path:
    """Row-normalized confusion matrix from OOF predictions, per-class accuracy on the axis."""
    plt = _plt()
    pred = probs.argmax(axis=1)
    counts = np.zeros((task.size, task.size))
    np.add.at(counts, (y, pred), 1)
    norm = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * task.size, 0.8 + 0.6 * task.size))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(task.size):
        for j in range(task.size):
            ax.text(
                j,
                i,
                f"{norm[i, j]:.2f}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if norm[i, j] > 0.5 else "black",
            )
    names = [f"{n} ({norm[i, i]:.0%})" for i, n in enumerate(task.label_names)]
    ax.set_yticks(range(task.size), names)
    ax.set_xticks(range(task.size), task.label_names, rotation=45, ha="right")
    ax.set_ylabel("true (per-class accuracy)")
    ax.set_xlabel("predicted")
    ax.set_title(f"{task.name}: OOF accuracy {float((pred == y).mean()):.3f}")
    return _save(fig, out / f"confusion_{task.name}.png")


def plot_label_f1(task, y: np.ndarray, probs: np.ndarray, thresholds, out: Path) -> Path:
    """Per-label F1 on OOF predictions, at 0.5 and at the tuned thresholds."""
    plt = _plt()
    at_half = per_label_f1(y, apply_thresholds(probs, 0.5))
    tuned = per_label_f1(y, apply_thresholds(probs, thresholds))
    x = np.arange(task.size)
    fig, ax = plt.subplots(figsize=(max(6, 0.5 * task.size + 2), 3.6))
    ax.bar(x - 0.2, at_half, 0.4, label="threshold 0.5")
    ax.bar(x + 0.2, tuned, 0.4, label="tuned thresholds")
    ax.set_xticks(x, task.label_names, rotation=45, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("F1 (out of fold)")
    ax.set_title(f"{task.name}: per-label F1")
    ax.legend()
    return _save(fig, out / f"f1_{task.name}.png")


def plot_regression(task, y: np.ndarray, pred: np.ndarray, out: Path) -> Path:
    """Predicted vs true scatter and the error histogram (original units)."""
    plt = _plt()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.8))
    left.scatter(y, pred, s=6, alpha=0.5)
    lo, hi = float(min(y.min(), pred.min())), float(max(y.max(), pred.max()))
    left.plot([lo, hi], [lo, hi], "k--", linewidth=1)
    left.set_xlabel(f"true {task.name}")
    left.set_ylabel(f"predicted {task.name}")
    right.hist(pred - y, bins=40)
    right.set_xlabel("error (predicted - true)")
    fig.suptitle(f"{task.name}: OOF MAE {float(np.abs(pred - y).mean()):.3f}")
    fig.tight_layout()
    return _save(fig, out / f"regression_{task.name}.png")


def _markdown_table(frame: pd.DataFrame) -> str:
    def cell(v):
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return ""
        return f"{v:.4f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def make_report(spec: Spec, run_dir: Path, out: Path) -> Report:
    """Write every figure and ``report.md`` for a run into ``out``.

    The recipe shown (and the weighting named in the curves) is the one the run saved in its
    ``config.json``; the data comes from ``spec`` (so ``--data-dir`` still applies).
    """
    seeds = RunLayout(run_dir).seed_runs()
    if seeds:
        from mtlkaggle.ensemble import Member

        return make_ensemble_report(spec, [Member(s.dir, 1.0 / len(seeds)) for s in seeds], out)
    config = RunLayout(run_dir).config
    if config.is_file():
        saved = Spec.model_validate(json.loads(config.read_text(encoding="utf-8")))
        spec = spec.model_copy(update={"train": saved.train})
    report = Report(out, scores=fold_scores(spec, run_dir))
    out.mkdir(parents=True, exist_ok=True)
    report.figures.append(plot_distributions(spec, out))
    report.figures += [
        plot_curves(spec, folder, out) for folder in (f.dir for f in RunLayout(run_dir).trained_folds())
    ]
    _, targets, probs = collect_oof(spec, run_dir)
    thresholds_path = RunLayout(run_dir).thresholds
    tuned = json.loads(thresholds_path.read_text()) if thresholds_path.is_file() else {}
    report.figures += _oof_figures(spec, targets, probs, tuned, out)
    write_text_atomic(out / "report.md", _markdown(spec, run_dir, report, tuned))
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
        layout = RunLayout(member.run_dir)
        per_fold = _markdown_table(fold_scores(spec, layout.dir))
        parts += [f"## `{member.label}`: each fold's best epoch", "", per_fold, ""]
        for fold in layout.trained_folds():
            name = f"{member.label.replace('/', '_')}_{fold.dir.name}"
            report.figures.append(plot_curves(spec, fold.dir, out, name))
    tuned = {name: r.to_json() for name, r in oof.thresholds.items()}
    report.figures += _oof_figures(spec, oof.targets, oof.probs, tuned, out)
    parts += ["## Figures", ""] + [f"![{fig.stem}]({fig.name})" for fig in report.figures]
    write_text_atomic(out / "report.md", "\n".join(parts) + "\n")
    return report


def _markdown(spec: Spec, run_dir: Path, report: Report, tuned: dict) -> str:
    parts = [
        f"# {spec.name}: run `{run_dir.name}`",
        "",
        spec.description,
        "",
        "## Scores at each fold's best epoch (validation)",
        "",
        _markdown_table(report.scores),
    ]
    if tuned:
        rows = [{"task": name, "metric": t["metric"], **t["scores"]} for name, t in tuned.items()]
        parts += ["", "## Out-of-fold thresholds", "", _markdown_table(pd.DataFrame(rows))]
    parts += ["", "## Configuration", "", "```json", json.dumps(spec.train.model_dump(), indent=2), "```"]
    parts += ["", "## Figures", ""]
    parts += [f"![{fig.stem}]({fig.name})" for fig in report.figures]
    return "\n".join(parts) + "\n"
