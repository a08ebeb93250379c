"""Decisions tuned for the metric: F-beta thresholds at any beta and averaging against a
straightforward sklearn search, F2 beating F1 thresholds on a hand-made case, accuracy thresholds
for a binary task, and QWK cut points."""

import warnings

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score, fbeta_score

from mtlkaggle.cut_points import kappa_with_labels, tune_cuts
from mtlkaggle.metrics import decide, default_cuts, to_classes
from mtlkaggle.spec import TaskSpec
from mtlkaggle.thresholds import candidate_grid, tune_task, tune_thresholds


def _data(n=90, labels=4, seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, labels)) < np.linspace(0.15, 0.5, labels)).astype(float)
    probs = np.clip(0.3 * y + rng.random((n, labels)) * 0.7, 0, 1)
    probs[:10] = np.round(probs[:10], 1)  # ties on grid values
    y[:5] = 0
    return y, probs


def _sk(y, pred, beta, average):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return round(fbeta_score(y, pred.astype(int), beta=beta, average=average, zero_division=0), 12)


def _straightforward(y, probs, beta, average, grid, passes=5):
    """One sklearn call per candidate, first best wins, the same pass order."""
    global_t = grid[int(np.argmax([_sk(y, probs > t, beta, average) for t in grid]))]
    th = np.full(y.shape[1], global_t)
    for _ in range(1 if average == "macro" else passes):
        changed = False
        for j in range(y.shape[1]):
            scores = []
            for t in grid:
                trial = th.copy()
                trial[j] = t
                if average == "macro":
                    scores.append(_sk(y[:, j], probs[:, j] > t, beta, "binary"))
                else:
                    scores.append(_sk(y, probs > trial, beta, average))
            best = grid[int(np.argmax(scores))]
            changed |= best != th[j]
            th[j] = best
        if not changed:
            break
    return th


@pytest.mark.parametrize("average", ["samples", "micro", "macro"])
@pytest.mark.parametrize("beta", [0.5, 2.0])
def test_fbeta_thresholds_equal_straightforward_search(average, beta):
    y, probs = _data(seed=int(beta * 10))
    grid = candidate_grid(19)
    result = tune_thresholds(y, probs, "fbeta", grid, beta=beta, average=average)
    expected = _straightforward(y, probs, beta, average, grid)
    np.testing.assert_allclose(result.thresholds, expected)
    assert result.scores["per_label"] == pytest.approx(_sk(y, probs > expected, beta, average))
    assert result.scores["0.5"] == pytest.approx(_sk(y, probs > 0.5, beta, average))


def test_f2_thresholds_beat_f1_thresholds_where_they_must():
    # 5 positives at 0.9, 5 at 0.3; 12 negatives at 0.3, 8 at 0.1. Above 0.3: tp 5, predicted 5
    # (F1 10/15 = 0.667, F2 25/45 = 0.556); below: tp 10, predicted 22 (F1 20/32 = 0.625,
    # F2 50/62 = 0.806). F1 picks the high threshold, F2 the low one.
    p = np.array([0.9] * 5 + [0.3] * 5 + [0.3] * 12 + [0.1] * 8)[:, None]
    y = np.array([1] * 10 + [0] * 20, dtype=float)[:, None]
    f1 = tune_thresholds(y, p, "fbeta", beta=1.0, average="binary")
    f2 = tune_thresholds(y, p, "fbeta", beta=2.0, average="binary")
    assert f1.thresholds[0] >= 0.3 > f2.thresholds[0]
    f2_of = {
        name: fbeta_score(y[:, 0], (p[:, 0] > r.thresholds[0]), beta=2.0)
        for name, r in [("f1", f1), ("f2", f2)]
    }
    assert f2_of["f1"] == pytest.approx(25 / 45)
    assert f2_of["f2"] == pytest.approx(50 / 62)
    assert f2.scores["per_label"] == pytest.approx(50 / 62)


def test_binary_task_tunes_for_accuracy():
    y = np.array([0, 0, 0, 1, 1, 0, 1, 1], dtype=float)[:, None]
    p = np.array([0.1, 0.2, 0.55, 0.6, 0.7, 0.65, 0.8, 0.9])[:, None]
    task = TaskSpec(name="t", kind="binary", column="c", metrics=["accuracy"])
    result = tune_task(task, y, p, candidate_grid(99))
    # 7 of 8 right with a cut in [0.55, 0.6) (the negative at 0.65 wrong) or in [0.65, 0.7) (the
    # positive at 0.6 wrong); ties go to the lowest threshold
    assert result.scores["tuned"] == pytest.approx(7 / 8)
    assert 0.55 <= result.thresholds[0] < 0.6
    assert result.scores["0.5"] == pytest.approx(6 / 8)


def test_kappa_with_labels_equals_sklearn():
    rng = np.random.default_rng(3)
    y, pred = rng.integers(0, 5, 200), rng.integers(0, 5, 200)
    assert kappa_with_labels(y, pred, 5) == pytest.approx(
        cohen_kappa_score(y, pred, weights="quadratic", labels=range(5))
    )


def _ordinal(seed=0, n=400, k=5):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    values = 0.6 * y + 0.8 + rng.normal(0, 0.6, n)  # squeezed and shifted: rounding is poor
    return y, values


@pytest.mark.parametrize("seed", [0, 1])
def test_qwk_cut_points_are_a_coordinate_optimum(seed):
    y, values = _ordinal(seed)
    cuts = tune_cuts(y, values, 5)
    assert np.all(np.diff(cuts) >= 0)
    tuned = cohen_kappa_score(y, to_classes(values, cuts), weights="quadratic")
    rounded = cohen_kappa_score(y, to_classes(values, default_cuts(5)), weights="quadratic")
    assert tuned > rounded + 0.05
    # no single cut can move to any other value between its neighbours and do better
    for j in range(len(cuts)):
        lo = cuts[j - 1] if j else values.min() - 1
        hi = cuts[j + 1] if j + 1 < len(cuts) else values.max() + 1
        for t in np.linspace(lo, hi, 60):
            trial = cuts.copy()
            trial[j] = t
            assert (
                kappa_with_labels(y, to_classes(values, trial), 5)
                <= kappa_with_labels(y, to_classes(values, cuts), 5) + 1e-12
            )


def test_regression_task_scored_by_qwk_decides_classes_from_tuned_cuts():
    y, values = _ordinal(2)
    task = TaskSpec(name="grade", kind="regression", column="g", num_classes=5, metrics=["qwk", "mae"])
    result = tune_task(task, y.astype(float), values, candidate_grid())
    assert result.scores["tuned"] > result.scores["default"]
    assert decide(task, values).tolist() == np.clip(np.round(values + 1e-9), 0, 4).astype(int).tolist()
    classes = decide(task, values, result.thresholds)
    assert result.scores["tuned"] == pytest.approx(cohen_kappa_score(y, classes, weights="quadratic"))


def test_multiclass_qwk_cuts_on_expected_class_never_score_below_argmax():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 4, 300)
    logits = rng.normal(0, 1, (300, 4)) + 1.5 * np.eye(4)[y]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    task = TaskSpec(name="dr", kind="multiclass", column="d", num_classes=4, metrics=["qwk"])
    result = tune_task(task, y, probs, candidate_grid())
    argmax = cohen_kappa_score(y, probs.argmax(1), weights="quadratic")
    assert result.scores["default"] == pytest.approx(argmax)
    assert result.scores["tuned"] >= argmax
    chosen = decide(task, probs, result.thresholds)
    assert cohen_kappa_score(y, chosen, weights="quadratic") == pytest.approx(result.scores["tuned"])


@pytest.mark.parametrize(("average", "at_least"), [("samples", 0.02), ("micro", 0.1), ("macro", 0.1)])
def test_multilabel_f2_thresholds_beat_f1_thresholds_on_f2(average, at_least):
    # rare labels, weak signal: F2 wants recall, so F1's thresholds (tuned for the wrong beta) lose
    rng = np.random.default_rng(7)
    y = (rng.random((400, 6)) < 0.2).astype(float)
    p = np.clip(0.25 * y + 0.75 * rng.random((400, 6)), 0, 1)
    f1 = tune_thresholds(y, p, "fbeta", beta=1.0, average=average)
    f2 = tune_thresholds(y, p, "fbeta", beta=2.0, average=average)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wrong = fbeta_score(y, p > f1.thresholds, beta=2.0, average=average, zero_division=0)
        right = fbeta_score(y, p > f2.thresholds, beta=2.0, average=average, zero_division=0)
    assert right == pytest.approx(f2.scores["per_label"])
    assert right > wrong + at_least
