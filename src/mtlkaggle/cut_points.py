"""Cut points for quadratic weighted kappa: an ordinal value (a regression output, or a multiclass
task's expected class ``sum_k k p_k``) becomes class ``k`` when it exceeds ``k`` of the ``K - 1``
cuts. Tuned on out-of-fold predictions (the common APTOS 2019 recipe), never on the test set.

Coordinate ascent, exact per coordinate: moving cut ``j`` only moves the rows between its
neighbours from class ``j + 1`` to class ``j``; each move changes the observed and the expected
weighted disagreement linearly, so one sort and two cumulative sums score every position of the
cut. Positions are midpoints between consecutive distinct values; ties go to the lower cut.
"""

from __future__ import annotations

import numpy as np

_DECIMALS = 12


def _classes(values: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    return np.searchsorted(cuts, values, side="left")


def _kappa_parts(y: np.ndarray, pred: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    idx = np.arange(k)
    w = (idx[:, None] - idx[None, :]) ** 2.0
    confusion = np.bincount(y * k + pred, minlength=k * k).reshape(k, k).astype(np.float64)
    return w, confusion, confusion.sum(axis=1)


def kappa_with_labels(y: np.ndarray, pred: np.ndarray, k: int) -> float:
    """Quadratic weighted kappa with the labels fixed to 0..k-1 (sklearn's with ``labels=range(k)``)."""
    w, confusion, rows = _kappa_parts(y, pred, k)
    expected = np.outer(rows, confusion.sum(axis=0)) / len(y)
    den = (w * expected).sum()
    return float(1.0 - (w * confusion).sum() / den) if den > 0 else float("nan")


def _sweep(y: np.ndarray, values: np.ndarray, cuts: np.ndarray, j: int, k: int) -> float:
    """The best position of cut ``j`` with the others fixed (the current one on a tie)."""
    lo = cuts[j - 1] if j > 0 else -np.inf
    hi = cuts[j + 1] if j + 1 < len(cuts) else np.inf
    window = (values > lo) & (values <= hi)
    order = np.argsort(values[window], kind="stable")
    v, yw = values[window][order], y[window][order]
    if not len(v):
        return float(cuts[j])
    base = _classes(values, cuts)
    base[window] = j + 1  # m = 0: every window row above the cut
    w, confusion, rows = _kappa_parts(y, base, k)
    n = len(y)
    numerator = (w * confusion).sum() + np.concatenate([[0.0], np.cumsum(w[yw, j] - w[yw, j + 1])])
    cols = confusion.sum(axis=0)
    step = (rows @ w[:, j] - rows @ w[:, j + 1]) / n
    denominator = rows @ w @ cols / n + step * np.arange(len(v) + 1)
    kappa = 1.0 - np.divide(numerator, denominator, out=np.ones_like(numerator), where=denominator > 0)
    positions = np.concatenate([[lo if np.isfinite(lo) else v[0] - 1.0], (v[:-1] + v[1:]) / 2, [v[-1]]])
    distinct = np.concatenate([[True], v[1:] != v[:-1], [True]])  # m splits between distinct values
    kappa = np.where(distinct, kappa, -np.inf)
    current = kappa_with_labels(y, _classes(values, cuts), k)
    best = int(np.argmax(np.round(kappa, _DECIMALS)))
    if np.round(kappa[best], _DECIMALS) <= np.round(current, _DECIMALS):
        return float(cuts[j])
    return float(min(max(positions[best], lo), hi))


def tune_cuts(y: np.ndarray, values: np.ndarray, n_classes: int, max_passes: int = 10) -> np.ndarray:
    """``n_classes - 1`` increasing cut points that maximize quadratic weighted kappa of
    ``classes(values)`` against ``y`` (0..n_classes-1), from ``0.5, 1.5, ..`` by coordinate ascent
    until a pass changes nothing (at most ``max_passes``); never scores below the start."""
    y = np.asarray(y).astype(np.int64).ravel()
    values = np.asarray(values, dtype=np.float64).ravel()
    cuts = np.arange(n_classes - 1) + 0.5
    for _ in range(max_passes):
        changed = False
        for j in range(len(cuts)):
            t = _sweep(y, values, cuts, j, n_classes)
            if t != cuts[j]:
                cuts[j], changed = t, True
        if not changed:
            break
    return cuts
