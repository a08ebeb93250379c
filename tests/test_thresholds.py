"""Threshold tuning against a straightforward search made of sklearn f1_score calls."""

import numpy as np
import pytest
from sklearn.metrics import f1_score

from mtlkaggle.thresholds import apply_thresholds, candidate_grid, tune_global, tune_thresholds


def _data(n=120, labels=5, seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, labels)) < np.linspace(0.1, 0.5, labels)).astype(float)
    # informative but noisy probabilities, with ties at grid values to exercise the boundaries
    probs = np.clip(0.35 * y + rng.random((n, labels)) * 0.65, 0, 1)
    probs[:10] = np.round(probs[:10], 2)
    return y, probs


def _sk(y, pred, metric):
    average = "samples" if metric == "mean_f1" else "macro"
    return round(f1_score(y, pred, average=average, zero_division=0), 12)


def _straightforward(y, probs, metric, grid, passes=5):
    """The obvious search: one sklearn call per candidate, first best wins, same pass order."""
    global_t = grid[int(np.argmax([_sk(y, (probs > t).astype(int), metric) for t in grid]))]
    th = np.full(y.shape[1], global_t)
    for _ in range(passes if metric == "mean_f1" else 1):
        changed = False
        for j in range(y.shape[1]):
            scores = []
            for t in grid:
                trial = th.copy()
                trial[j] = t
                if metric == "macro_f1":
                    scores.append(round(f1_score(y[:, j], probs[:, j] > t, zero_division=0), 12))
                else:
                    scores.append(_sk(y, (probs > trial).astype(int), metric))
            best = grid[int(np.argmax(scores))]
            changed |= best != th[j]
            th[j] = best
        if not changed:
            break
    return global_t, th


@pytest.mark.parametrize("metric", ["mean_f1", "macro_f1"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equals_straightforward_sklearn_search(metric, seed):
    y, probs = _data(seed=seed)
    grid = candidate_grid(99)
    result = tune_thresholds(y, probs, metric, grid)
    global_t, expected = _straightforward(y, probs, metric, grid)
    assert result.global_threshold == pytest.approx(global_t)
    np.testing.assert_allclose(result.thresholds, expected)
    assert result.scores["per_label"] == pytest.approx(_sk(y, (probs > expected).astype(int), metric))
    assert result.scores["per_label"] >= result.scores["global"] - 1e-12
    assert result.scores["0.5"] == pytest.approx(_sk(y, (probs > 0.5).astype(int), metric))


def test_global_threshold_on_rows_without_labels():
    y, probs = _data(seed=3)
    y[:20] = 0
    grid = candidate_grid(49)
    for metric in ("mean_f1", "macro_f1"):
        expected = grid[int(np.argmax([_sk(y, (probs > t).astype(int), metric) for t in grid]))]
        assert tune_global(y, probs, metric, grid) == pytest.approx(expected)


def test_at_least_one_rule_fills_empty_rows_with_top_label():
    probs = np.array([[0.1, 0.3, 0.2], [0.9, 0.1, 0.6]])
    pred = apply_thresholds(probs, 0.5, at_least_one=True)
    assert pred.tolist() == [[0, 1, 0], [1, 0, 1]]
    y = np.array([[0, 1, 0], [1, 0, 0]], dtype=float)
    result = tune_thresholds(y, probs, "mean_f1", at_least_one=True)
    assert "per_label+at_least_one" in result.scores


def test_rejects_untunable_metric():
    y, probs = _data()
    with pytest.raises(ValueError, match="cannot tune"):
        tune_thresholds(y, probs, "roc_auc")  # probabilities go out: nothing to tune


def test_at_least_one_never_lowers_mean_f1():
    # an empty predicted row scores 0 whatever the truth, so filling it can only help (sklearn rule)
    for seed in range(5):
        y, probs = _data(seed=seed)
        y[:15] = 0
        for t in (0.5, 0.7, 0.9):
            plain = _sk(y, apply_thresholds(probs, t).astype(int), "mean_f1")
            filled = _sk(y, apply_thresholds(probs, t, at_least_one=True).astype(int), "mean_f1")
            assert filled >= plain
