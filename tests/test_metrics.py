import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, f1_score

from mtlkaggle.metrics import mean_f1, score_multiclass, score_multilabel, score_regression


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_mean_f1_equals_sklearn_samples(rng):
    y = (rng.random((300, 15)) < 0.2).astype(np.float32)
    pred = (rng.random((300, 15)) < 0.25).astype(np.float32)
    y[:5] = 0  # rows with no true labels
    pred[3:8] = 0  # and rows with no predictions (both empty on rows 3-4)
    expected = f1_score(y, pred, average="samples", zero_division=0)
    assert mean_f1(y, pred) == pytest.approx(expected, abs=1e-12)


def _multi_hot(rows, n=13):
    out = np.zeros((len(rows), n), dtype=np.float32)
    for i, row in enumerate(rows):
        out[i, row] = 1
    return out


def test_kaggle_mean_f1_wiki_example():
    # Kaggle wiki "Mean F Score": this test data "produces a Mean F Score of 0.53333333"
    y_true = _multi_hot([[1, 2], [3, 4, 5], [6], [7]])
    y_pred = _multi_hot([[1, 2, 3, 9], [3, 4], [6, 12], [1]])
    assert mean_f1(y_true, y_pred) == pytest.approx(0.53333333, abs=1e-8)


@pytest.mark.parametrize("metric", ["macro_f1", "micro_f1"])
def test_multilabel_f1_equals_sklearn(rng, metric):
    y = (rng.random((200, 8)) < 0.3).astype(int)
    pred = (rng.random((200, 8)) < 0.3).astype(int)
    expected = f1_score(y, pred, average=metric.split("_")[0], zero_division=0)
    assert score_multilabel(y, pred, metric) == pytest.approx(expected)


def test_multiclass_metrics_equal_sklearn(rng):
    y = rng.integers(0, 6, 500)
    pred = np.where(rng.random(500) < 0.6, y, rng.integers(0, 6, 500))
    assert score_multiclass(y, pred, 6, "accuracy") == pytest.approx((y == pred).mean())
    assert score_multiclass(y, pred, 6, "macro_f1") == pytest.approx(f1_score(y, pred, average="macro"))
    assert score_multiclass(y, pred, 6, "weighted_f1") == pytest.approx(f1_score(y, pred, average="weighted"))
    assert score_multiclass(y, pred, 6, "balanced_accuracy") == pytest.approx(
        balanced_accuracy_score(y, pred)
    )


def test_regression_metrics():
    y, pred = np.array([10.0, 20.0, 30.0]), np.array([12.0, 17.0, 30.0])
    assert score_regression(y, pred, "mae") == pytest.approx(5 / 3)
    assert score_regression(y, pred, "rmse") == pytest.approx(np.sqrt(13 / 3))


def test_class_accuracy_counts_unseen_classes_as_zero_balanced_accuracy_does_not():
    y = np.array([0, 0, 1, 1, 1, 2])
    pred = np.array([0, 1, 1, 1, 0, 2])
    # 4 classes, class 3 never appears: recalls 1/2, 2/3, 1, (none)
    assert score_multiclass(y, pred, 4, "class_accuracy") == pytest.approx((0.5 + 2 / 3 + 1 + 0) / 4)
    assert score_multiclass(y, pred, 4, "balanced_accuracy") == pytest.approx(
        balanced_accuracy_score(y, pred)
    )
