"""The report's figures: class distributions, training curves per fold, confusion matrices,
per-label F1 at the tuned thresholds, binary ROC curves, regression errors. Each is written
atomically as a PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mtlkaggle.data import has_split, read_split
from mtlkaggle.engine.epoch_log import read_metrics
from mtlkaggle.io import atomic_path
from mtlkaggle.metric_formulas import partial_auc, roc_auc, roc_curve
from mtlkaggle.metrics import per_label_f1
from mtlkaggle.spec import Spec
from mtlkaggle.thresholds import apply_thresholds


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
    """One fold's training curves (see :func:`curves_figure`) as ``curves_{NAME or fold folder}.png``."""
    label = name or folder.name
    fig = curves_figure(spec, read_metrics(spec, folder / "metrics.csv"), f"{spec.name} {label}")
    return _save(fig, out / f"curves_{label}.png")


def _weights_change(spec: Spec, m: pd.DataFrame) -> bool:
    columns = [f"weight/{t.name}" for t in spec.tasks if f"weight/{t.name}" in m.columns]
    return any(float(np.ptp(m[c].to_numpy())) > 1e-9 for c in columns)


def curves_figure(spec: Spec, m: pd.DataFrame, title: str):
    """Total and per-task loss (train, val) and each task's metrics per epoch, axes labelled.

    The task-weights panel is drawn only when the weights change during training (uncertainty or
    learned weighting); fixed weights would be a flat line.
    """
    plt = _plt()
    weights = _weights_change(spec, m)
    panels = 1 + len(spec.tasks) + int(weights)
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 3.4), squeeze=False)
    ax = axes[0, 0]
    ax.plot(m["epoch"], m["train/loss"], "o-", label="train (weighted total)")
    ax.plot(m["epoch"], m["val/loss"], "s-", label="val (sum over tasks)")
    ax.set_title("total loss")
    ax.set_ylabel("loss")
    for task, ax in zip(spec.tasks, axes[0, 1 : 1 + len(spec.tasks)], strict=True):
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
        twin.set_ylabel(f"metric ({', '.join(task.resolved_metrics)})")
        twin.legend(fontsize=7, loc="center right")
        ax.set_title(task.name)
        ax.set_ylabel(f"{task.name} loss")
    if weights:
        ax = axes[0, -1]
        for task in spec.tasks:
            ax.plot(m["epoch"], m[f"weight/{task.name}"], "o-", label=task.name)
        ax.set_title(f"task weights ({spec.train.weighting})")
        ax.set_ylabel("loss weight")
    from matplotlib.ticker import MaxNLocator

    for ax in axes[0]:
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


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


def plot_roc(task, y: np.ndarray, probs: np.ndarray, out: Path) -> Path:
    """A binary task's out-of-fold ROC curve, with its AUC (and pAUC when the task is scored by it)."""
    plt = _plt()
    y, p = np.asarray(y).ravel() > 0, np.asarray(probs, dtype=np.float64).ravel()
    fig, ax = plt.subplots(figsize=(4.2, 4.0))
    title = f"{task.name}: OOF ROC"
    if y.any() and not y.all():
        fpr, tpr = roc_curve(y, p)
        ax.plot(fpr, tpr)
        title += f", AUC {roc_auc(y, p):.3f}"
        if "pauc" in task.resolved_metrics:
            ax.axhline(task.min_tpr, color="grey", linestyle=":", linewidth=1)
            title += f", pAUC {partial_auc(y, p, task.min_tpr):.3f}"
    ax.plot([0, 1], [0, 1], "k--", linewidth=1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title)
    return _save(fig, out / f"roc_{task.name}.png")


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
