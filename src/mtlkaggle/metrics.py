"""Metrics of each task kind, vectorized with numpy and checked against scikit-learn in the tests
(the formulas live in :mod:`mtlkaggle.metric_formulas`).

Conventions: multiclass ``y`` is int (n,), ``pred`` int (n,), probabilities (n, C); multilabel
``y`` and ``pred`` are 0/1 (n, L); binary ``y`` and ``pred`` 0/1 (n, 1) with probabilities (n, 1);
regression floats (n,). A division by zero scores 0 (scikit-learn's default
``zero_division`` behaviour), so a row with no true and no predicted label scores 0 on Mean F1.
"""

from __future__ import annotations

import numpy as np

from mtlkaggle import metric_formulas as f
from mtlkaggle.spec import LOWER_IS_BETTER, PROBABILISTIC, Spec, TaskSpec

UNDEFINED_MONITOR = -1e300  # the monitor of an undefined score (e.g. AUC without positives)


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
    """A multiclass metric on class indices: accuracy, macro_f1, weighted_f1, balanced_accuracy,
    class_accuracy, macro_recall or qwk."""
    if metric == "accuracy":
        return float((y == pred).mean())
    if metric == "class_accuracy":  # AI6126's average class accuracy: unseen classes count 0
        return float(class_recall(y, pred, n_classes).mean())
    if metric == "balanced_accuracy":  # scikit-learn's: the mean over classes present in y
        return float(class_recall(y, pred, n_classes)[np.unique(y)].mean())
    if metric == "macro_recall":
        return f.macro_recall(y, pred)
    if metric == "qwk":
        return f.quadratic_kappa(y, pred)
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


def default_cuts(n_classes: int) -> np.ndarray:
    """Cut points ``0.5, 1.5, ..`` that round a value to the nearest of classes 0..K-1."""
    return np.arange(n_classes - 1) + 0.5


def to_classes(values: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    """Class of each value: the number of cut points it exceeds (0..len(cuts))."""
    cuts = np.asarray(cuts, dtype=np.float64)
    return np.searchsorted(cuts, np.asarray(values, dtype=np.float64), side="left")


def expected_class(probs: np.ndarray) -> np.ndarray:
    """``sum_k k * p_k`` per row: a multiclass output as one ordinal value."""
    return probs @ np.arange(probs.shape[1], dtype=np.float64)


def uses_cuts(task: TaskSpec) -> bool:
    """Whether the task's decision is a class from cut points (primary metric ``qwk``)."""
    return task.resolved_metrics[0] == "qwk"


def _n_ordinal(task: TaskSpec) -> int:
    return int(task.num_classes or 0) if task.kind == "regression" else int(task.size or 0)


def decide(task: TaskSpec, output: np.ndarray, thresholds: np.ndarray | float = 0.5) -> np.ndarray:
    """Turn a task's probabilities (or values) into predictions: argmax, thresholds, identity.

    A task whose primary metric is ``qwk`` gets classes from cut points: ``thresholds`` (K-1 tuned
    cuts) on the regression value or the expected class; without tuned cuts, a regression value is
    rounded to the nearest class and a multiclass output takes its argmax.
    """
    tuned = uses_cuts(task) and np.ndim(thresholds) == 1 and len(thresholds) == _n_ordinal(task) - 1 > 0
    if task.kind == "multiclass":
        if tuned:
            return to_classes(expected_class(output), thresholds)
        return output.argmax(axis=1)
    if task.kind in ("multilabel", "binary"):
        return (output > thresholds).astype(np.float32)
    if uses_cuts(task):
        return to_classes(output, thresholds if tuned else default_cuts(_n_ordinal(task)))
    return output


def _probabilistic(task: TaskSpec, metric: str, y: np.ndarray, probs: np.ndarray) -> float:
    if task.kind == "multiclass":
        if probs.ndim == 1:  # class indices (a submission of labels): hard probabilities
            probs = _one_hot(probs.astype(int), task.size)
        return f.ovr_auc(y, probs) if metric == "roc_auc" else f.multiclass_log_loss(y, probs)
    y2, p2 = y.reshape(len(y), -1), probs.reshape(len(probs), -1)
    if metric == "roc_auc":
        return f.mean_column_auc(y2, p2)
    if metric == "pauc":
        return f.partial_auc(y2[:, 0], p2[:, 0], task.min_tpr)
    weights = np.array([task.label_weights.get(name, 1.0) for name in task.label_names])
    return f.weighted_log_loss(y2, p2, weights)


def score_metric(
    task: TaskSpec, metric: str, y: np.ndarray, pred: np.ndarray, probs: np.ndarray | None = None
) -> float:
    """One metric of ``task`` from decided predictions; probabilistic metrics (AUC, pAUC, log loss)
    and regression errors use ``probs`` (probabilities or raw values) when given. Binary and
    multi-label predictions that are probabilities, not 0/1, are decided at 0.5 for the others;
    multiclass probabilities (n, C) in place of class indices (a file of them) by their argmax."""
    if metric in PROBABILISTIC:
        return _probabilistic(task, metric, y, pred if probs is None else probs)
    if task.kind == "multiclass" and np.ndim(pred) == 2:  # probabilities (a file of them): argmax
        pred = np.where(np.isnan(pred), -np.inf, pred).argmax(axis=1)
    if task.kind in ("binary", "multilabel") and not np.isin(pred, (0, 1)).all():
        pred = (np.asarray(pred) > 0.5).astype(np.float32)  # probabilities (a file of them): at 0.5
    if metric == "fbeta":
        if task.kind == "multiclass":
            return f.multiclass_fbeta(y, pred, task.size, task.beta, task.resolved_average)
        return f.fbeta(y, pred, task.beta, task.resolved_average)
    if task.kind == "regression":
        if metric == "qwk":
            classes = to_classes(pred, default_cuts(_n_ordinal(task)))
            return f.quadratic_kappa(to_classes(y, default_cuts(_n_ordinal(task))), classes)
        return score_regression(y, pred if probs is None else probs, metric)
    if task.kind == "multiclass":
        return score_multiclass(y, pred, task.size, metric)
    if task.kind == "binary":  # accuracy
        return float((y.reshape(-1) == pred.reshape(-1)).mean())
    return score_multilabel(y, pred, metric)


def score_task(
    task: TaskSpec, y: np.ndarray, pred: np.ndarray, probs: np.ndarray | None = None
) -> dict[str, float]:
    """Every metric the spec names for ``task``, from decided predictions (and probabilities)."""
    return {metric: score_metric(task, metric, y, pred, probs) for metric in task.resolved_metrics}


def score_all(
    spec: Spec,
    targets: dict[str, np.ndarray],
    outputs: dict[str, np.ndarray],
    thresholds: dict[str, np.ndarray] | None = None,
) -> dict[str, float]:
    """Scores keyed ``task/metric`` for every task, from probabilities (or regression values);
    plus ``spec_score`` (:func:`spec_score`) when the spec sets ``score_weights``."""
    thresholds = thresholds or {}
    scores = {}
    for task in spec.tasks:
        output = outputs[task.name]
        pred = decide(task, output, thresholds.get(task.name, 0.5))
        for metric, value in score_task(task, targets[task.name], pred, output).items():
            scores[f"{task.name}/{metric}"] = value
    if spec.score_weights is not None:
        scores["spec_score"] = spec_score(spec, scores)
    return scores


def spec_score(spec: Spec, scores: dict[str, float]) -> float:
    """The competition's one number: the ``score_weights``-weighted mean of the tasks' primary
    metrics (equal weights over every task when unset); NaN when a weighted primary is undefined."""
    weights = spec.score_weights or {t.name: 1.0 for t in spec.tasks}
    keys = {t: f"{t}/{spec.task(t).resolved_metrics[0]}" for t, w in weights.items() if w > 0}
    total = sum(weights[t] for t in keys)
    return float(sum(weights[t] * scores[k] for t, k in keys.items()) / total)


def _signed(metric_key: str, value: float) -> float:
    return -value if metric_key.split("/")[-1] in LOWER_IS_BETTER else value


def monitor_score(spec: Spec, scores: dict[str, float]) -> float:
    """The number that picks the best epoch (higher is better).

    The spec's ``monitor`` when set; else the spec score when ``score_weights`` is set; else the
    mean of the classification tasks' primary metrics, or the first regression task's primary.
    Lower-is-better metrics (log_loss, mae, rmse) are negated. Undefined scores (NaN, e.g. an AUC
    on rows of one class) are skipped; with none left the monitor is ``UNDEFINED_MONITOR``.
    """
    if spec.monitor:
        values = [_signed(spec.monitor, scores[spec.monitor])]
    elif spec.score_weights is not None:
        primary = spec.task(next(t for t, w in spec.score_weights.items() if w > 0)).resolved_metrics[0]
        values = [_signed(primary, spec_score(spec, scores))]
    else:
        tasks = [t for t in spec.tasks if t.kind != "regression"] or spec.tasks[:1]
        keys = [f"{t.name}/{t.resolved_metrics[0]}" for t in tasks]
        values = [_signed(k, scores[k]) for k in keys]
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else UNDEFINED_MONITOR
