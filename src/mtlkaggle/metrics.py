"""Metrics, vectorized with numpy and checked against scikit-learn in the tests.

Conventions: multiclass ``y`` is int (n,), ``pred`` int (n,); multilabel ``y`` and ``pred`` are
0/1 (n, L); regression floats (n,). A division by zero scores 0 (scikit-learn's default
``zero_division`` behaviour), so a row with no true and no predicted label scores 0 on Mean F1.
"""

from __future__ import annotations

import numpy as np

from mtlkaggle.spec import Spec, TaskSpec

LOWER_IS_BETTER = {"mae", "rmse"}


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros_like(num, dtype=np.float64), where=den > 0)


def mean_f1(y: np.ndarray, pred: np.ndarray) -> float:
    """Kaggle's Mean F1: F1 of each row's label set, averaged over rows (sklearn 'samples')."""
    y, pred = np.asarray(y, dtype=np.float64), np.asarray(pred, dtype=np.float64)
    tp = (y * pred).sum(axis=1)
    return float(_safe_div(2.0 * tp, y.sum(axis=1) + pred.sum(axis=1)).mean())


def per_label_f1(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """F1 of each label column (or class, for one-hot input)."""
    y, pred = np.asarray(y, dtype=np.float64), np.asarray(pred, dtype=np.float64)
    tp = (y * pred).sum(axis=0)
    return _safe_div(2.0 * tp, y.sum(axis=0) + pred.sum(axis=0))


def _one_hot(labels: np.ndarray, n: int) -> np.ndarray:
    return np.eye(n, dtype=np.float64)[labels]


def class_recall(y: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Recall of each class; a class with no samples scores 0."""
    true = np.bincount(y, minlength=n_classes).astype(np.float64)
    hits = np.bincount(y[y == pred], minlength=n_classes).astype(np.float64)
    return _safe_div(hits, true)


def score_multiclass(y: np.ndarray, pred: np.ndarray, n_classes: int, metric: str) -> float:
    """A multiclass metric: accuracy, macro_f1, weighted_f1, balanced_accuracy or class_accuracy."""
    if metric == "accuracy":
        return float((y == pred).mean())
    if metric == "class_accuracy":  # AI6126's average class accuracy: unseen classes count 0
        return float(class_recall(y, pred, n_classes).mean())
    if metric == "balanced_accuracy":  # scikit-learn's: the mean over classes present in y
        return float(class_recall(y, pred, n_classes)[np.unique(y)].mean())
    f1 = per_label_f1(_one_hot(y, n_classes), _one_hot(pred, n_classes))
    if metric == "macro_f1":
        present = np.union1d(y, pred)  # sklearn averages over labels present in y or pred
        return float(f1[present].mean())
    if metric == "weighted_f1":
        support = np.bincount(y, minlength=n_classes)
        return float((f1 * support).sum() / support.sum())
    raise KeyError(metric)


def score_multilabel(y: np.ndarray, pred: np.ndarray, metric: str) -> float:
    """A multilabel metric: mean_f1 (samples), macro_f1, micro_f1 or accuracy (per label)."""
    if metric == "mean_f1":
        return mean_f1(y, pred)
    if metric == "macro_f1":
        return float(per_label_f1(y, pred).mean())
    if metric == "micro_f1":
        tp = float((y * pred).sum())
        den = float(y.sum() + pred.sum())
        return 2 * tp / den if den else 0.0
    if metric == "accuracy":
        return float((y == pred).mean())
    raise KeyError(metric)


def score_regression(y: np.ndarray, pred: np.ndarray, metric: str) -> float:
    """A regression metric in the target's units: mae or rmse."""
    if metric == "mae":
        return float(np.abs(y - pred).mean())
    if metric == "rmse":
        return float(np.sqrt(((y - pred) ** 2).mean()))
    raise KeyError(metric)


def decide(task: TaskSpec, output: np.ndarray, thresholds: np.ndarray | float = 0.5) -> np.ndarray:
    """Turn a task's probabilities (or values) into predictions: argmax, thresholds, identity."""
    if task.kind == "multiclass":
        return output.argmax(axis=1)
    if task.kind == "multilabel":
        return (output > thresholds).astype(np.float32)
    return output


def score_task(task: TaskSpec, y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Every metric the spec names for ``task``, from decided predictions."""
    scores = {}
    for metric in task.resolved_metrics:
        if task.kind == "multiclass":
            scores[metric] = score_multiclass(y, pred, task.size, metric)
        elif task.kind == "multilabel":
            scores[metric] = score_multilabel(y, pred, metric)
        else:
            scores[metric] = score_regression(y, pred, metric)
    return scores


def score_all(
    spec: Spec,
    targets: dict[str, np.ndarray],
    outputs: dict[str, np.ndarray],
    thresholds: dict[str, np.ndarray] | None = None,
) -> dict[str, float]:
    """Scores keyed ``task/metric`` for every task, from probabilities (or regression values)."""
    thresholds = thresholds or {}
    scores = {}
    for task in spec.tasks:
        pred = decide(task, outputs[task.name], thresholds.get(task.name, 0.5))
        for metric, value in score_task(task, targets[task.name], pred).items():
            scores[f"{task.name}/{metric}"] = value
    return scores


def monitor_score(spec: Spec, scores: dict[str, float]) -> float:
    """The number that picks the best epoch (higher is better).

    The spec's ``monitor`` when set (negated for lower-is-better metrics); otherwise the mean of
    the classification tasks' primary metrics, or minus the first regression task's primary.
    """
    if spec.monitor:
        value = scores[spec.monitor]
        return -value if spec.monitor.split("/")[1] in LOWER_IS_BETTER else value
    primaries = [f"{t.name}/{t.resolved_metrics[0]}" for t in spec.tasks if t.kind != "regression"]
    if primaries:
        return float(np.mean([scores[k] for k in primaries]))
    first = spec.tasks[0]
    return -scores[f"{first.name}/{first.resolved_metrics[0]}"]
