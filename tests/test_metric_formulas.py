"""Each metric formula against its reference: scikit-learn, a competition's published formula, or a
hand-computed case; random inputs plus the edge cases (one class absent, all scores equal, weights)."""

import warnings

import numpy as np
import pytest
from sklearn.metrics import (
    cohen_kappa_score,
    fbeta_score,
    log_loss,
    recall_score,
    roc_auc_score,
)

from mtlkaggle.metric_formulas import (
    fbeta,
    macro_recall,
    mean_column_auc,
    multiclass_fbeta,
    multiclass_log_loss,
    ovr_auc,
    partial_auc,
    quadratic_kappa,
    roc_auc,
    weighted_log_loss,
)


@pytest.fixture
def rng():
    return np.random.default_rng(21)


def _isic_pauc(y, p, min_tpr=0.8):
    """ISIC 2024's published metric: flip labels and scores, sklearn max_fpr AUC, undo McClish."""
    v_gt, v_pred = np.abs(np.asarray(y) - 1), 1.0 - np.asarray(p)
    max_fpr = abs(1 - min_tpr)
    scaled = roc_auc_score(v_gt, v_pred, max_fpr=max_fpr)
    return 0.5 * max_fpr**2 + (max_fpr - 0.5 * max_fpr**2) / (1.0 - 0.5) * (scaled - 0.5)


def _binary_case(rng):
    n = int(rng.integers(4, 300))
    y = (rng.random(n) < rng.uniform(0.05, 0.9)).astype(int)
    y[:2] = [0, 1]  # both classes present
    score = np.round(rng.random(n), int(rng.integers(1, 4)))  # rounding makes ties
    return y, score


def test_roc_auc_equals_sklearn_with_ties(rng):
    for _ in range(40):
        y, score = _binary_case(rng)
        assert roc_auc(y, score) == pytest.approx(roc_auc_score(y, score), abs=1e-12)


def test_roc_auc_edge_cases():
    assert roc_auc([0, 1, 0, 1], [0.3, 0.3, 0.3, 0.3]) == 0.5  # all equal scores
    assert roc_auc([0, 0, 1], [0.9, 0.8, 0.1]) == 0.0
    assert np.isnan(roc_auc([1, 1, 1], [0.2, 0.5, 0.9]))  # one class absent: undefined


def test_mean_column_and_ovr_auc_equal_sklearn(rng):
    y = (rng.random((200, 5)) < 0.3).astype(int)
    p = np.clip(y * 0.3 + rng.random((200, 5)), 0, 1)
    assert mean_column_auc(y, p) == pytest.approx(roc_auc_score(y, p, average="macro"), abs=1e-12)
    y[:, 2] = 0  # a label that never occurs is skipped, not scored 0 or 0.5
    expected = np.mean([roc_auc_score(y[:, j], p[:, j]) for j in (0, 1, 3, 4)])
    assert mean_column_auc(y, p) == pytest.approx(expected, abs=1e-12)
    classes = rng.integers(0, 4, 300)
    logits = rng.normal(size=(300, 4)) + np.eye(4)[classes]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert ovr_auc(classes, probs) == pytest.approx(
        roc_auc_score(classes, probs, multi_class="ovr"), abs=1e-12
    )


@pytest.mark.parametrize("min_tpr", [0.8, 0.5, 0.95])
def test_partial_auc_equals_isic_2024_formula(rng, min_tpr):
    for _ in range(30):
        y, score = _binary_case(rng)
        assert partial_auc(y, score, min_tpr) == pytest.approx(_isic_pauc(y, score, min_tpr), abs=1e-12)


def test_partial_auc_range_and_edges():
    y = np.array([0, 0, 0, 1, 1])
    assert partial_auc(y, [0.1, 0.2, 0.3, 0.8, 0.9]) == pytest.approx(0.2)  # perfect: 1 - min_tpr
    assert partial_auc(y, [0.9, 0.8, 0.7, 0.2, 0.1]) == pytest.approx(0.0)  # reversed
    assert partial_auc(y, [0.5] * 5) == pytest.approx(_isic_pauc(y, [0.5] * 5))  # all equal: 0.02
    assert partial_auc(y, [0.5] * 5) == pytest.approx(0.02)
    assert np.isnan(partial_auc([0, 0], [0.1, 0.2]))


def test_log_losses_equal_sklearn(rng):
    y = (rng.random((150, 6)) < 0.3).astype(int)
    p = rng.uniform(0.01, 0.99, (150, 6))
    per_column = [log_loss(y[:, j], p[:, j], labels=[0, 1]) for j in range(6)]
    assert weighted_log_loss(y, p) == pytest.approx(np.mean(per_column), rel=1e-12)
    weights = np.array([2.0, 1, 1, 1, 1, 1])  # RSNA 2019: 'any' weighs 2, the subtypes 1
    expected = np.dot(weights, per_column) / weights.sum()
    assert weighted_log_loss(y, p, weights) == pytest.approx(expected, rel=1e-12)
    # the same thing row-wise: sum_ij w_j ll_ij / (n sum_j w_j)
    ll = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    assert weighted_log_loss(y, p, weights) == pytest.approx((ll * weights).sum() / (150 * weights.sum()))
    classes = rng.integers(0, 5, 100)
    probs = rng.dirichlet(np.ones(5), 100)
    assert multiclass_log_loss(classes, probs) == pytest.approx(log_loss(classes, probs, labels=range(5)))


def test_log_loss_clips_certain_mistakes():
    # p = 0 for a positive: -log(1e-15) (the clip), not infinity
    assert weighted_log_loss(np.array([[1.0]]), np.array([[0.0]])) == pytest.approx(-np.log(1e-15))
    assert weighted_log_loss(np.array([[1.0], [0.0]]), np.array([[1.0], [0.0]])) < 1e-14


@pytest.mark.parametrize("beta", [0.5, 1.0, 2.0, 3.7])
@pytest.mark.parametrize("average", ["samples", "micro", "macro"])
def test_fbeta_multilabel_equals_sklearn(rng, beta, average):
    y = (rng.random((120, 7)) < 0.25).astype(int)
    pred = (rng.random((120, 7)) < 0.3).astype(int)
    y[:4], pred[2:6], y[:, 3] = 0, 0, 0  # empty rows, empty predictions, a label never true
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = fbeta_score(y, pred, beta=beta, average=average, zero_division=0)
    assert fbeta(y, pred, beta, average) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("average", ["macro", "micro", "weighted"])
def test_fbeta_multiclass_and_binary_equal_sklearn(rng, average):
    y = rng.integers(0, 5, 300)
    pred = np.where(rng.random(300) < 0.5, y, rng.integers(0, 6, 300) % 5)
    pred[pred == 4] = 3  # class 4 is never predicted
    expected = fbeta_score(y, pred, beta=2.0, average=average, zero_division=0)
    assert multiclass_fbeta(y, pred, 5, 2.0, average) == pytest.approx(expected, abs=1e-12)
    yb, pb = (rng.random(80) < 0.3).astype(int), (rng.random(80) < 0.5).astype(int)
    assert fbeta(yb[:, None], pb[:, None], 2.0, "binary") == pytest.approx(fbeta_score(yb, pb, beta=2.0))


def test_macro_recall_differs_from_balanced_accuracy_when_absent_class_predicted():
    y, pred = np.array([0, 0, 1, 1]), np.array([0, 2, 1, 1])  # class 2 predicted, never true
    assert macro_recall(y, pred) == pytest.approx(recall_score(y, pred, average="macro", zero_division=0))
    assert macro_recall(y, pred) == pytest.approx((0.5 + 1.0 + 0.0) / 3)


def test_macro_recall_random_equals_sklearn(rng):
    y, pred = rng.integers(0, 7, 400), rng.integers(0, 8, 400)
    assert macro_recall(y, pred) == pytest.approx(recall_score(y, pred, average="macro", zero_division=0))


def test_quadratic_kappa_equals_sklearn(rng):
    for _ in range(30):
        k = int(rng.integers(2, 7))
        y = rng.integers(0, k, 200)
        pred = np.clip(y + rng.integers(-2, 3, 200), 0, k - 1)
        expected = cohen_kappa_score(y, pred, weights="quadratic")
        assert quadratic_kappa(y, pred) == pytest.approx(expected, abs=1e-12)
    y, pred = np.array([0, 2, 3, 3]), np.array([0, 2, 3, 2])  # class 1 absent: positions, as sklearn
    assert quadratic_kappa(y, pred) == pytest.approx(cohen_kappa_score(y, pred, weights="quadratic"))


def test_quadratic_kappa_hand_case():
    # confusion [[1, 1], [0, 2]]: observed disagreement w=1 once; expected = outer([2,2],[1,3])/4
    y, pred = np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1])
    assert quadratic_kappa(y, pred) == pytest.approx(1 - 1 / ((2 * 3 + 2 * 1) / 4))
    assert np.isnan(quadratic_kappa([1, 1], [1, 1]))  # one label only: 0/0, as sklearn
