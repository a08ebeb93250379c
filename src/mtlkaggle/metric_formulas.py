"""Metric formulas on numpy arrays, each equal to its reference (scikit-learn's, or a competition's
published formula) and checked against it in the tests.

Undefined cases: an AUC needs both classes, so a column with one class absent has no AUC (NaN); a
mean over columns or classes skips them, and is NaN when none is defined. A division by zero in an
F-score or recall scores 0 (scikit-learn's ``zero_division`` default).
"""

from __future__ import annotations

import numpy as np

LOG_LOSS_EPS = 1e-15  # probabilities are clipped to [eps, 1 - eps] before the log (Kaggle's clip)


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den > 0)


def _ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of ``x``, ties getting their average rank."""
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    first = np.concatenate([[True], sorted_x[1:] != sorted_x[:-1]])
    group = np.cumsum(first) - 1
    starts = np.flatnonzero(first)
    ends = np.concatenate([starts[1:], [len(x)]])
    ranks = np.empty(len(x))
    ranks[order] = ((starts + 1 + ends) / 2.0)[group]
    return ranks


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """Binary ROC AUC (Mann-Whitney, ties count half) = ``sklearn.metrics.roc_auc_score``.

    NaN when ``y`` holds one class only.
    """
    y = np.asarray(y).ravel() > 0
    score = np.asarray(score, dtype=np.float64).ravel()
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    rank_sum = _ranks(score)[y].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def mean_column_auc(y: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC of each column, averaged over the columns where it is defined (NaN if none)."""
    aucs = np.array([roc_auc(y[:, j], scores[:, j]) for j in range(y.shape[1])])
    return float(np.nanmean(aucs)) if np.isfinite(aucs).any() else float("nan")


def ovr_auc(y: np.ndarray, probs: np.ndarray) -> float:
    """One-vs-rest ROC AUC of a multiclass task, macro mean over the classes where it is defined
    (= ``roc_auc_score(y, probs, multi_class="ovr")`` when every class occurs)."""
    one_hot = (np.asarray(y)[:, None] == np.arange(probs.shape[1])[None, :]).astype(np.float64)
    return mean_column_auc(one_hot, probs)


def roc_curve(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, tpr) at every distinct score, from (0, 0); as ``sklearn.metrics.roc_curve``."""
    order = np.argsort(-score, kind="mergesort")
    s, yy = score[order], y[order].astype(np.float64)
    last = np.concatenate([np.flatnonzero(s[1:] != s[:-1]), [len(s) - 1]])
    tps = np.cumsum(yy)[last]
    fps = (last + 1) - tps
    return np.concatenate([[0.0], fps / fps[-1]]), np.concatenate([[0.0], tps / tps[-1]])


def partial_auc(y: np.ndarray, score: np.ndarray, min_tpr: float = 0.8) -> float:
    """ISIC 2024's pAUC: the area of the ROC curve above TPR ``min_tpr``, in [0, 1 - min_tpr].

    The published formula flips labels and scores (``1 - y``, ``1 - p``) and takes the area under
    that ROC curve up to FPR ``1 - min_tpr`` (scikit-learn's ``max_fpr`` area before its McClish
    standardisation, which the formula undoes). NaN when ``y`` holds one class only.
    """
    y = np.asarray(y).ravel() > 0
    score = np.asarray(score, dtype=np.float64).ravel()
    if y.all() or not y.any():
        return float("nan")
    max_fpr = 1.0 - min_tpr
    fpr, tpr = roc_curve(~y, -score)
    if max_fpr >= 1.0:
        return float(np.trapezoid(tpr, fpr))
    stop = int(np.searchsorted(fpr, max_fpr, side="right"))
    x_interp, y_interp = [fpr[stop - 1], fpr[stop]], [tpr[stop - 1], tpr[stop]]
    tpr = np.append(tpr[:stop], np.interp(max_fpr, x_interp, y_interp))
    fpr = np.append(fpr[:stop], max_fpr)
    return float(np.trapezoid(tpr, fpr))


def binary_log_loss(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Mean binary log loss of each column of (n, L) arrays, probabilities clipped."""
    p = np.clip(np.asarray(p, dtype=np.float64), LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
    y = np.asarray(y, dtype=np.float64)
    return -(y * np.log(p) + (1 - y) * np.log(1 - p)).mean(axis=0)


def weighted_log_loss(y: np.ndarray, p: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Multi-label log loss: the weighted mean of the columns' binary log losses (RSNA 2019's
    weighted multi-label log loss; all weights 1 gives the plain column mean)."""
    losses = binary_log_loss(y.reshape(len(y), -1), p.reshape(len(p), -1))
    w = np.ones(len(losses)) if weights is None else np.asarray(weights, dtype=np.float64)
    return float((w * losses).sum() / w.sum())


def multiclass_log_loss(y: np.ndarray, probs: np.ndarray) -> float:
    """Cross-entropy of class indices ``y`` under ``probs`` (n, C) = ``sklearn.metrics.log_loss``
    (with ``labels=range(C)``) for rows that sum to 1; probabilities clipped."""
    p = np.clip(np.asarray(probs, dtype=np.float64), LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
    return float(-np.log(p[np.arange(len(y)), np.asarray(y)]).mean())


def fbeta_from_counts(tp: np.ndarray, n_true: np.ndarray, n_pred: np.ndarray, beta: float) -> np.ndarray:
    """``(1 + b^2) tp / (b^2 n_true + n_pred)``, 0 where the denominator is 0."""
    b2 = beta * beta
    den = b2 * np.asarray(n_true, dtype=np.float64) + np.asarray(n_pred, dtype=np.float64)
    return _safe_div((1 + b2) * np.asarray(tp, dtype=np.float64), den)


def fbeta(y: np.ndarray, pred: np.ndarray, beta: float = 1.0, average: str = "samples") -> float:
    """F-beta of 0/1 (n, L) arrays = ``sklearn.metrics.fbeta_score`` (zero_division 0).

    ``average``: ``samples`` (per row, then mean), ``micro`` (pooled counts), ``macro`` (per
    column, then mean) or ``binary`` (a single column).
    """
    y, pred = np.asarray(y, dtype=np.float64), np.asarray(pred, dtype=np.float64)
    y, pred = y.reshape(len(y), -1), pred.reshape(len(pred), -1)
    tp = y * pred
    if average == "samples":
        return float(fbeta_from_counts(tp.sum(1), y.sum(1), pred.sum(1), beta).mean())
    if average == "micro" or average == "binary":
        return float(fbeta_from_counts(tp.sum(), y.sum(), pred.sum(), beta))
    if average == "macro":
        return float(fbeta_from_counts(tp.sum(0), y.sum(0), pred.sum(0), beta).mean())
    raise ValueError(f"unknown average '{average}'")


def multiclass_fbeta(y: np.ndarray, pred: np.ndarray, n_classes: int, beta: float, average: str) -> float:
    """F-beta of class indices = ``fbeta_score(y, pred, beta=beta, average=average)``: ``macro``
    over the classes present in ``y`` or ``pred``, ``micro`` (= accuracy), or ``weighted``."""
    labels = np.arange(n_classes)
    y_hot = (np.asarray(y)[:, None] == labels).astype(np.float64)
    p_hot = (np.asarray(pred)[:, None] == labels).astype(np.float64)
    per_class = fbeta_from_counts((y_hot * p_hot).sum(0), y_hot.sum(0), p_hot.sum(0), beta)
    if average == "micro":
        return float((np.asarray(y) == np.asarray(pred)).mean())
    if average == "weighted":
        support = y_hot.sum(0)
        return float((per_class * support).sum() / support.sum())
    present = np.union1d(y, pred).astype(int)
    return float(per_class[present].mean())


def macro_recall(y: np.ndarray, pred: np.ndarray) -> float:
    """``sklearn.metrics.recall_score(y, pred, average="macro")``: recall of every class present in
    ``y`` or ``pred``, a predicted class absent from ``y`` counting 0."""
    y, pred = np.asarray(y), np.asarray(pred)
    labels = np.union1d(y, pred)
    hits = np.array([((y == c) & (pred == c)).sum() for c in labels])
    support = np.array([(y == c).sum() for c in labels])
    return float(_safe_div(hits, support).mean())


def quadratic_kappa(y: np.ndarray, pred: np.ndarray) -> float:
    """``sklearn.metrics.cohen_kappa_score(y, pred, weights="quadratic")``.

    Like scikit-learn, the weights use positions in the sorted set of labels that occur in ``y`` or
    ``pred``. NaN when every row holds the same single label (0/0).
    """
    y, pred = np.asarray(y).ravel(), np.asarray(pred).ravel()
    labels = np.union1d(y, pred)
    k = len(labels)
    yi, pi = np.searchsorted(labels, y), np.searchsorted(labels, pred)
    confusion = np.bincount(yi * k + pi, minlength=k * k).reshape(k, k).astype(np.float64)
    expected = np.outer(confusion.sum(1), confusion.sum(0)) / confusion.sum()
    idx = np.arange(k)
    w = (idx[:, None] - idx[None, :]) ** 2.0
    den = (w * expected).sum()
    if den == 0:
        return float("nan")
    return float(1.0 - (w * confusion).sum() / den)
