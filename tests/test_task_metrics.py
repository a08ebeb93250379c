"""Metric parameters and the spec score on the spec: validation (one line each), the task-level
dispatch (score_all, monitor_score), and the binary kind's label decoding."""

import numpy as np
import pytest
from sklearn.metrics import fbeta_score, log_loss, roc_auc_score

from mtlkaggle.data import parse_label_file
from mtlkaggle.errors import UserError
from mtlkaggle.metrics import UNDEFINED_MONITOR, monitor_score, score_all, spec_score
from mtlkaggle.spec import load_spec

from .conftest import write_toml

BASE = """
name = "toy"
data_dir = "data/toy"
{top}
[data]
train = "train.csv"
id_column = "id"
image_column = "path"
[[tasks]]
name = "lesion"
kind = "binary"
column = "target"
{binary}
[[tasks]]
name = "hemorrhage"
kind = "multilabel"
columns = ["epidural", "subdural", "any"]
encoding = "columns"
{multilabel}
[[tasks]]
name = "grade"
kind = "multiclass"
column = "grade"
num_classes = 4
{multiclass}
"""


def _spec(tmp_path, top="", binary="", multilabel="", multiclass=""):
    text = BASE.format(top=top, binary=binary, multilabel=multilabel, multiclass=multiclass)
    return load_spec(write_toml(tmp_path / "toy.toml", text))


@pytest.mark.parametrize(
    ("part", "text", "message"),
    [
        ("binary", 'positive = "x"\nclasses = ["a", "b"]', "'positive' must be one of classes"),
        ("binary", 'metrics = ["mean_f1"]', "unknown metric ['mean_f1'] for a binary task"),
        (
            "multilabel",
            'metrics = ["fbeta"]\naverage = "weighted"',
            "average 'weighted' is not for a multilabel",
        ),
        ("multilabel", "label_weights = { none = 2.0 }", "label_weights names unknown label(s) ['none']"),
        ("multiclass", "beta = 0", "greater than 0"),
        ("multiclass", "pos_weight = 3.0", "pos_weight is for binary and multilabel tasks"),
        (
            "top",
            "score_weights = { lesion = 1.0, nope = 1.0 }",
            "score_weights names unknown task(s) ['nope']",
        ),
        ("top", "score_weights = { lesion = 0.0 }", "positive sum"),
    ],
)
def test_bad_metric_fields_fail_in_one_line(tmp_path, part, text, message):
    with pytest.raises(UserError, match=None) as info:
        _spec(tmp_path, **{part: text})
    assert message in str(info.value) and "\n" not in str(info.value).strip()


def test_score_weights_refuse_mixed_directions(tmp_path):
    with pytest.raises(UserError) as info:
        _spec(
            tmp_path,
            top="score_weights = { lesion = 0.5, hemorrhage = 0.5 }",
            multilabel='metrics = ["log_loss"]',
        )
    assert "better high with ones better low" in str(info.value)


def test_regression_qwk_needs_num_classes(tmp_path):
    text = BASE.format(top="", binary="", multilabel="", multiclass="") + (
        '[[tasks]]\nname = "score"\nkind = "regression"\ncolumn = "s"\nmetrics = ["qwk"]\n'
    )
    with pytest.raises(UserError) as info:
        load_spec(write_toml(tmp_path / "toy.toml", text))
    assert "needs num_classes" in str(info.value)


def _outputs(rng, n=200):
    y_bin = (rng.random((n, 1)) < 0.3).astype(np.float32)
    y_ml = (rng.random((n, 3)) < [0.1, 0.2, 0.3]).astype(np.float32)
    y_mc = rng.integers(0, 4, n)
    p_bin = np.clip(0.3 * y_bin + 0.7 * rng.random((n, 1)), 0.001, 0.999)
    p_ml = np.clip(0.3 * y_ml + 0.7 * rng.random((n, 3)), 0.001, 0.999)
    logits = rng.normal(size=(n, 4)) + np.eye(4)[y_mc]
    p_mc = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    targets = {"lesion": y_bin, "hemorrhage": y_ml, "grade": y_mc}
    return targets, {"lesion": p_bin, "hemorrhage": p_ml, "grade": p_mc}


def test_score_all_against_sklearn_with_parameters(tmp_path):
    spec = _spec(
        tmp_path,
        top="score_weights = { lesion = 0.5, grade = 0.25, hemorrhage = 0.25 }",
        binary='metrics = ["roc_auc", "fbeta"]\nbeta = 2.0',
        multilabel='metrics = ["fbeta", "log_loss"]\nbeta = 2.0\naverage = "micro"\n'
        "label_weights = { any = 2.0 }",
        multiclass='metrics = ["macro_recall", "roc_auc", "log_loss"]',
    )
    targets, probs = _outputs(np.random.default_rng(0))
    scores = score_all(spec, targets, probs)
    y, p = targets["lesion"][:, 0], probs["lesion"][:, 0]
    assert scores["lesion/roc_auc"] == pytest.approx(roc_auc_score(y, p))
    assert scores["lesion/fbeta"] == pytest.approx(fbeta_score(y, p > 0.5, beta=2.0))
    y, p = targets["hemorrhage"], probs["hemorrhage"]
    assert scores["hemorrhage/fbeta"] == pytest.approx(fbeta_score(y, p > 0.5, beta=2.0, average="micro"))
    per_column = [log_loss(y[:, j], p[:, j]) for j in range(3)]
    assert scores["hemorrhage/log_loss"] == pytest.approx(
        (per_column[0] + per_column[1] + 2 * per_column[2]) / 4
    )
    y, p = targets["grade"], probs["grade"]
    assert scores["grade/roc_auc"] == pytest.approx(roc_auc_score(y, p, multi_class="ovr"))
    assert scores["grade/log_loss"] == pytest.approx(log_loss(y, p))
    weighted = 0.5 * scores["lesion/roc_auc"] + 0.25 * scores["grade/macro_recall"]
    weighted += 0.25 * scores["hemorrhage/fbeta"]
    assert scores["spec_score"] == pytest.approx(weighted)
    assert spec_score(spec, scores) == pytest.approx(weighted)
    assert monitor_score(spec, scores) == pytest.approx(weighted)


def test_monitor_negates_log_loss_and_skips_undefined_auc(tmp_path):
    spec = _spec(tmp_path, binary='metrics = ["log_loss"]')
    scores = {"lesion/log_loss": 0.4, "hemorrhage/mean_f1": 0.6, "grade/accuracy": 0.8}
    assert monitor_score(spec, scores) == pytest.approx((-0.4 + 0.6 + 0.8) / 3)
    spec = _spec(tmp_path, top='monitor = "lesion/roc_auc"')
    targets, probs = _outputs(np.random.default_rng(1))
    targets["lesion"][:] = 0  # no positive in this validation fold: AUC undefined
    scores = score_all(spec, targets, probs)
    assert np.isnan(scores["lesion/roc_auc"])
    assert monitor_score(spec, scores) == UNDEFINED_MONITOR  # finite: the first epoch is still kept


def test_binary_labels_decode_values_or_named_positive(tmp_path):
    (tmp_path / "labels.csv").write_text(
        "id,path,target,epidural,subdural,any,grade\n"
        + "a,a.png,malignant,0,0,0,1\nb,b.png,benign,1,0,1,2\nc,c.png,Malignant,0,0,0,0\n"
    )
    spec = _spec(tmp_path, binary='positive = "malignant"\nclasses = ["benign", "malignant"]')
    table, problems = parse_label_file(spec, tmp_path / "labels.csv")
    why = "unknown class 'Malignant'; expected one of ['benign', 'malignant']"
    assert [str(p) for p in problems] == [f"{tmp_path / 'labels.csv'}:4 [target]: {why}"]
    assert table.targets["lesion"].tolist() == [[1.0], [0.0], [0.0]]
    (tmp_path / "labels.csv").write_text(
        "id,path,target,epidural,subdural,any,grade\na,a.png,1,0,0,0,1\nb,b.png,true,1,0,1,2\nc,c.png,yes,0,0,0,0\n"
    )
    spec = _spec(tmp_path)
    table, problems = parse_label_file(spec, tmp_path / "labels.csv")
    assert len(problems) == 1 and "'yes' is not 0 or 1" in str(problems[0])
    assert table.targets["lesion"].dtype == np.float32 and table.targets["lesion"][:2].tolist() == [
        [1.0],
        [1.0],
    ]


EVAL = """
name = "toy"
data_dir = "data"
score_weights = { root = 0.5, vowel = 0.25, consonant = 0.25 }
[data]
train = "train.csv"
id_column = "id"
image_column = "id"
[[tasks]]
name = "root"
kind = "multiclass"
column = "root"
num_classes = 3
metrics = ["macro_recall"]
[[tasks]]
name = "vowel"
kind = "multiclass"
column = "vowel"
num_classes = 3
metrics = ["macro_recall"]
[[tasks]]
name = "consonant"
kind = "multiclass"
column = "consonant"
num_classes = 3
metrics = ["macro_recall"]
[[submissions]]
file = "a.csv"
id_column = "id"
columns = { root = "root", vowel = "vowel" }
[[submissions]]
file = "b.csv"
id_column = "id"
columns = { vowel = "vowel", consonant = "consonant" }
"""


def test_evaluate_scores_each_task_once_and_the_weighted_score(tmp_path):
    from mtlkaggle.evaluate import evaluate_submissions, task_means, weighted_score

    spec = load_spec(write_toml(tmp_path / "toy.toml", EVAL))
    (tmp_path / "labels.csv").write_text("id,root,vowel,consonant\na,0,1,2\nb,1,1,0\nc,2,0,0\nd,2,2,1\n")
    (tmp_path / "a.csv").write_text("id,root,vowel\na,0,1\nb,1,0\nc,2,0\nd,0,2\n")
    (tmp_path / "b.csv").write_text("id,vowel,consonant\na,0,2\nb,0,0\nc,0,0\nd,0,0\n")  # vowel: ignored
    scores = evaluate_submissions(spec, tmp_path, tmp_path / "labels.csv")
    assert list(zip(scores["file"], scores["task"], strict=True)) == [
        ("a.csv", "root"),
        ("a.csv", "vowel"),
        ("b.csv", "consonant"),
    ]
    got = dict(zip(scores["task"], scores["score"], strict=True))
    # by hand: root recalls 1, 1, 1/2; vowel 1, 1/2, 1; consonant 1, 0, 1
    assert got == pytest.approx({"root": 2.5 / 3, "vowel": 2.5 / 3, "consonant": 2 / 3})
    assert task_means(scores)["macro_recall"] == pytest.approx(((2.5 + 2.5 + 2) / 3 / 3, 3))
    value, recipe = weighted_score(spec, scores)
    assert value == pytest.approx(0.5 * 2.5 / 3 + 0.25 * 2.5 / 3 + 0.25 * 2 / 3)
    assert recipe == "0.5 x root/macro_recall + 0.25 x vowel/macro_recall + 0.25 x consonant/macro_recall"


def test_a_file_of_probabilities_scores_auc_on_them_and_decided_metrics_at_half(tmp_path):
    from mtlkaggle.metrics import score_task

    spec = _spec(tmp_path, binary='metrics = ["roc_auc", "accuracy", "fbeta"]\nbeta = 2.0')
    y = np.array([0, 0, 1, 1, 1], dtype=np.float32)[:, None]
    p = np.array([0.1, 0.6, 0.4, 0.8, 0.9])  # as read from a submission file: (n,)
    got = score_task(spec.task("lesion"), y, p)
    assert got["roc_auc"] == pytest.approx(roc_auc_score(y[:, 0], p))
    assert got["accuracy"] == pytest.approx(3 / 5)
    assert got["fbeta"] == pytest.approx(fbeta_score(y[:, 0], p > 0.5, beta=2.0))
