"""Submission cells of every kind, long files, and the sample submission as the contract.

Expected files are written by hand from the competitions' published formats (the RANZCR, Cassava,
Plant Pathology, ISIC, Bengali and RSNA layouts, shrunk to a few rows).
"""

from __future__ import annotations

import numpy as np
import pytest

from mtlkaggle.errors import UserError
from mtlkaggle.spec import Spec
from mtlkaggle.submission import check_file, file_rows, read_submission, render_submission, write_submissions

IDS = np.array(["a", "b"], dtype=object)


def _spec(tasks: list[dict], submissions: list[dict], data_dir: str = ".") -> Spec:
    return Spec.model_validate(
        {
            "name": "t",
            "data_dir": data_dir,
            "data": {"train": "train.csv", "test": "test.csv", "id_column": "id", "image_column": "id"},
            "tasks": tasks,
            "submissions": submissions,
        }
    )


DISEASE = {"name": "disease", "kind": "multiclass", "column": "d", "classes": ["healthy", "rust", "scab"]}
LABELS = {"name": "labels", "kind": "multilabel", "column": "l", "classes": ["complex", "rust", "scab"]}
AGE = {"name": "age", "kind": "regression", "column": "age"}
MELANOMA = {"name": "melanoma", "kind": "multiclass", "column": "m", "classes": ["benign", "malignant"]}

DECIDED = {
    "disease": np.array([2, 0]),
    "labels": np.array([[1, 0, 1], [0, 0, 0]], dtype=np.float32),
    "age": np.array([31.25, 4.0]),
    "melanoma": np.array([1, 0]),
}
PROBS = {
    "disease": np.array([[0.1, 0.2, 0.7], [0.6, 0.3, 0.1]]),
    "labels": np.array([[0.9, 0.2, 0.8], [0.1, 0.4, 0.0]]),
    "age": np.array([31.25, 4.0]),
    "melanoma": np.array([[0.25, 0.75], [0.99999, 0.00001]]),
}


def test_labels_as_indices_and_names_multilabel_joined_by_the_files_separator():
    spec = _spec(
        [DISEASE, LABELS],
        [
            {"file": "idx.csv", "id_column": "image", "columns": {"label": "disease", "labels": "labels"}},
            {
                "file": "names.csv",
                "id_column": "image",
                "columns": {"label": "disease", "labels": "labels"},
                "label_format": "name",
                "label_sep": ";",
            },
        ],
    )
    assert render_submission(spec, spec.submissions[0], IDS, DECIDED) == "image,label,labels\na,2,0 2\nb,0,\n"
    # label_format = "name" now holds for multi-label tasks too (it was ignored)
    assert render_submission(spec, spec.submissions[1], IDS, DECIDED) == (
        "image,label,labels\na,scab,complex;scab\nb,healthy,\n"
    )


def test_probability_columns_per_class_named_class_and_two_class_positive():
    spec = _spec(
        [DISEASE, MELANOMA, AGE],
        [
            {
                "file": "ranzcr.csv",
                "id_column": "id",
                "columns": {"{class}": "disease"},
                "float_format": ".2f",
            },
            {"file": "one.csv", "id_column": "id", "columns": {"p_rust": "disease:rust", "age": "age"}},
            {
                "file": "isic.csv",
                "id_column": "image_name",
                "columns": {"target": "melanoma"},
                "values": "probability",
            },
        ],
    )
    sub = spec.submissions
    assert render_submission(spec, sub[0], IDS, DECIDED, PROBS) == (
        "id,healthy,rust,scab\na,0.10,0.20,0.70\nb,0.60,0.30,0.10\n"
    )
    assert (
        render_submission(spec, sub[1], IDS, DECIDED, PROBS)
        == "id,p_rust,age\na,0.2000,31.2500\nb,0.3000,4.0000\n"
    )
    # a two-class task's single probability column is the second class's (ISIC's `target`)
    assert render_submission(spec, sub[2], IDS, DECIDED, PROBS) == "image_name,target\na,0.7500\nb,0.0000\n"


def test_a_column_that_does_not_fit_its_task_is_refused_when_the_spec_loads():
    def sub(**fields):
        return [{"file": "s.csv", "id_column": "id", "columns": {"p": "disease"}, **fields}]

    with pytest.raises(ValueError, match=r"column 'p' holds one probability but 'disease' has 3 classes"):
        _spec([DISEASE], sub(values="probability"))
    with pytest.raises(ValueError, match=r"values = 'value' needs a regression task"):
        _spec([DISEASE], sub(values="value"))
    with pytest.raises(ValueError, match=r"a regression task has no probability"):
        _spec([AGE], [{"file": "s.csv", "columns": {"a": "age"}, "values": "probability"}])


def test_clip_keeps_probabilities_off_0_and_1_at_the_formats_step():
    spec = _spec(
        [MELANOMA],
        [{"file": "s.csv", "id_column": "id", "columns": {"target": "melanoma:benign"}, "clip": 1e-6}],
    )
    # 1e-6 is below .4f's step: the clip is raised to 1e-4, so no cell reads 0 or 1
    assert (
        render_submission(spec, spec.submissions[0], IDS, DECIDED, PROBS) == "id,target\na,0.2500\nb,0.9999\n"
    )


def test_unknown_class_and_list_outside_long_files_are_spec_errors():
    with pytest.raises(ValueError, match="'mildew' is not a class of 'disease'"):
        _spec([DISEASE], [{"file": "s.csv", "columns": {"p": "disease:mildew"}}])
    with pytest.raises(ValueError, match="only a long file"):
        _spec([DISEASE], [{"file": "s.csv", "columns": {"p": ["disease"]}}])
    with pytest.raises(ValueError, match="use \\{image\\}"):
        _spec(
            [DISEASE],
            [{"file": "s.csv", "id_column": "r", "columns": {"p": "disease"}, "id_template": "{id}"}],
        )


BENGALI = [
    {"name": "grapheme_root", "kind": "multiclass", "column": "g", "num_classes": 168},
    {"name": "vowel_diacritic", "kind": "multiclass", "column": "v", "num_classes": 11},
    {"name": "consonant_diacritic", "kind": "multiclass", "column": "c", "num_classes": 7},
]
BENGALI_SUB = {
    "file": "submission.csv",
    "id_column": "row_id",
    "id_template": "{image}_{task}",
    "columns": {"target": ["consonant_diacritic", "grapheme_root", "vowel_diacritic"]},
    "sample": "sample_submission.csv",
}
BENGALI_DECIDED = {
    "grapheme_root": np.array([3, 151]),
    "vowel_diacritic": np.array([0, 10]),
    "consonant_diacritic": np.array([5, 0]),
}
BENGALI_IDS = np.array(["Test_0", "Test_1"], dtype=object)


def test_long_file_in_the_sample_submissions_order(tmp_path):
    # Bengali's sample lists a row per image and component; here the images are in reverse order
    (tmp_path / "sample_submission.csv").write_text(
        "row_id,target\nTest_1_consonant_diacritic,0\nTest_1_grapheme_root,0\nTest_1_vowel_diacritic,0\n"
        "Test_0_consonant_diacritic,0\nTest_0_grapheme_root,0\nTest_0_vowel_diacritic,0\n"
    )
    spec = _spec(BENGALI, [BENGALI_SUB], str(tmp_path))
    write_submissions(spec, BENGALI_IDS, BENGALI_DECIDED, BENGALI_IDS, tmp_path / "out")
    assert (tmp_path / "out/submission.csv").read_text() == (
        "row_id,target\nTest_1_consonant_diacritic,0\nTest_1_grapheme_root,151\nTest_1_vowel_diacritic,10\n"
        "Test_0_consonant_diacritic,5\nTest_0_grapheme_root,3\nTest_0_vowel_diacritic,0\n"
    )
    assert check_file(spec, spec.submissions[0], tmp_path / "out/submission.csv", BENGALI_IDS) == 6
    assert file_rows(spec, spec.submissions[0], len(BENGALI_IDS)) == 6  # what predict's table shows


def test_long_file_per_class_probabilities_rsna_style(tmp_path):
    hemorrhage = {"name": "hemorrhage", "kind": "multilabel", "column": "h", "classes": ["epidural", "any"]}
    sub = {
        "file": "s.csv",
        "id_column": "ID",
        "id_template": "{image}_{class}",
        "columns": {"Label": "hemorrhage"},
    }
    spec = _spec([hemorrhage], [sub])
    ids = np.array(["ID_0a", "ID_1b"], dtype=object)
    probs = {"hemorrhage": np.array([[0.125, 0.5], [0.0, 1.0]])}
    decided = {"hemorrhage": (probs["hemorrhage"] > 0.5).astype(np.float32)}
    assert render_submission(spec, spec.submissions[0], ids, decided, probs) == (
        "ID,Label\nID_0a_epidural,0.1250\nID_0a_any,0.5000\nID_1b_epidural,0.0000\nID_1b_any,1.0000\n"
    )


def test_a_sample_whose_ids_differ_from_the_test_file_stops_predict(tmp_path):
    (tmp_path / "sample_submission.csv").write_text("row_id,target\nTest_0_grapheme_root,0\n")
    spec = _spec(BENGALI, [BENGALI_SUB], str(tmp_path))
    missing = r"sample_submission.csv: 5 id\(s\) of the rows the test file gives are missing"
    with pytest.raises(UserError, match=missing):
        write_submissions(spec, BENGALI_IDS, BENGALI_DECIDED, BENGALI_IDS, tmp_path / "out")
    assert not (tmp_path / "out").exists()


ISIC_SUB = {
    "file": "submission.csv",
    "id_column": "isic_id",
    "columns": {"target": "melanoma:malignant", "label": "disease"},
    "sample": "sample_submission.csv",
}


@pytest.fixture
def isic(tmp_path):
    (tmp_path / "sample_submission.csv").write_text("isic_id,target,label\nb,0.3,0\na,0.3,0\n")
    return _spec([MELANOMA, DISEASE], [ISIC_SUB], str(tmp_path)), tmp_path


def _check(spec, path, text):
    path.write_text(text)
    return check_file(spec, spec.submissions[0], path, IDS)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("isic_id,target\nb,0.3\na,0.3\n", r"s.csv:1: header should be 'isic_id,target,label'"),
        (
            "isic_id,target,label\nb,0.3,1\n",
            r"1 id\(s\) of the sample submission sample_submission.csv are missing \('a'\)",
        ),
        ("isic_id,target,label\nb,0.3,1\nb,0.3,1\n", r"1 id\(s\) appear more than once \('b' x2\)"),
        (
            "isic_id,target,label\nb,0.3,1\na,malignant,1\n",
            r"s.csv:3: row 'a', column 'target': 'malignant' is not a probability",
        ),
        (
            "isic_id,target,label\nb,nan,1\na,0.3,1\n",
            r"s.csv:2: row 'b', column 'target': 'nan' is not a probability",
        ),
        (
            "isic_id,target,label\nb,0.3,1\na,1.5,1\n",
            r"s.csv:3: row 'a', column 'target': '1.5' is not a probability within \[0, 1\]",
        ),
        (
            "isic_id,target,label\nb,0.3,0.50\na,0.3,1\n",
            r"s.csv:2: row 'b', column 'label': '0.50' is not a class index of 'disease' \(0..2\)",
        ),
    ],
)
def test_submit_check_names_the_first_bad_cell(isic, text, message):
    spec, folder = isic
    with pytest.raises(UserError, match=message) as caught:
        _check(spec, folder / "s.csv", text)
    assert "\n" not in str(caught.value)


def test_submit_check_blames_a_sample_that_lost_a_test_id_not_the_file(isic):
    spec, folder = isic
    (folder / "sample_submission.csv").write_text("isic_id,target,label\nb,0.3,0\n")  # 'a' lost
    with pytest.raises(UserError) as caught:
        _check(spec, folder / "s.csv", "isic_id,target,label\nb,0.3,1\na,0.3,1\n")
    assert str(caught.value) == (
        f"{folder / 'sample_submission.csv'}: 1 id(s) of the rows the test file gives are missing ('a'); "
        "the sample and the test file (or id_template) disagree; check data.test and id_template"
    )


def test_a_hand_corrected_file_the_format_allows_is_accepted(isic):
    spec, folder = isic
    # written by hand, in another row order and precision than predict's: Kaggle reads it alike
    assert _check(spec, folder / "s.csv", "isic_id,target,label\na,0.50,2\nb,1,0\n") == 2
    ids, back = read_submission(spec, spec.submissions[0], folder / "s.csv")
    assert ids == ["a", "b"] and back["disease"].tolist() == [2, 0]
    np.testing.assert_array_equal(back["melanoma"][:, 1], [0.5, 1.0])
    # saved by a Windows editor: CRLF line ends, a BOM, a blank line at the end
    assert _check(spec, folder / "s.csv", "\ufeffisic_id,target,label\r\na,0.50,2\r\nb,1e-3,0\r\n\r\n") == 2


def test_submit_dry_run_needs_no_kaggle_slug(workspace, runner, monkeypatch):
    import re

    from mtlkaggle.cli import app
    from mtlkaggle.data import read_split
    from mtlkaggle.spec import load_spec

    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(workspace / "no-kaggle-config"))
    toml = workspace / "competition/demo.toml"
    toml.write_text(re.sub(r'(?m)^kaggle = ".*"\n', "", toml.read_text()))
    spec = load_spec("demo")
    assert all(sub.kaggle is None for sub in spec.submissions) and spec.data.kaggle is None
    test = read_split(spec, "test", labelled=False)
    decided = {"category": np.zeros(len(test), int), "attribute": np.zeros((len(test), 15), np.float32)}
    write_submissions(spec, test.ids, decided, test.ids, workspace / "submissions/demo")
    result = runner.invoke(app, ["submit", "demo", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert result.output.count(f"would submit {len(test)} rows") == 2
    sent = runner.invoke(app, ["submit", "demo"])  # an upload does need one, and says so
    assert sent.exit_code == 2 and "names no Kaggle competition" in sent.output


def test_a_regression_task_decided_into_grades_writes_labels(tmp_path):
    # APTOS: a regression head, cut into grades 0-4 (the decision), written as the grade
    grade = {"name": "grade", "kind": "regression", "column": "diagnosis", "num_classes": 5}
    sub = {"file": "s.csv", "id_column": "id_code", "columns": {"diagnosis": "grade"}, "values": "label"}
    spec = _spec([grade], [sub])
    assert render_submission(spec, spec.submissions[0], IDS, {"grade": np.array([3.0, 0.0])}) == (
        "id_code,diagnosis\na,3\nb,0\n"
    )
    (tmp_path / "s.csv").write_text("id_code,diagnosis\na,2.5\nb,0\n")
    with pytest.raises(
        UserError, match=r"row 'a', column 'diagnosis': '2.5' is not a class index of 'grade' \(0..4\)"
    ):
        check_file(spec, spec.submissions[0], tmp_path / "s.csv", IDS)
    (tmp_path / "s.csv").write_text("id_code,diagnosis\na,4\nb,0\n")
    assert check_file(spec, spec.submissions[0], tmp_path / "s.csv", IDS) == 2


def test_long_files_read_back_one_row_per_image(tmp_path):
    spec = _spec(BENGALI, [{**BENGALI_SUB, "sample": None}])
    path = tmp_path / "submission.csv"
    path.write_text(render_submission(spec, spec.submissions[0], BENGALI_IDS, BENGALI_DECIDED))
    ids, back = read_submission(spec, spec.submissions[0], path)
    assert ids == ["Test_0", "Test_1"]
    for name, decided in BENGALI_DECIDED.items():
        np.testing.assert_array_equal(back[name], decided)
    # an image whose id holds the separator, and classes that end like one another
    hemorrhage = {"name": "h", "kind": "multilabel", "column": "h", "classes": ["any", "many"]}
    sub = {"file": "s.csv", "id_column": "ID", "id_template": "ID_{image}_{class}", "columns": {"Label": "h"}}
    spec = _spec([hemorrhage], [sub])
    probs = {"h": np.array([[0.25, 0.5], [0.125, 1.0]])}
    ids = np.array(["a_b", "c"], dtype=object)
    path.write_text(render_submission(spec, spec.submissions[0], ids, {"h": probs["h"] > 0.5}, probs))
    assert path.read_text().splitlines()[1:3] == ["ID_a_b_any,0.2500", "ID_a_b_many,0.5000"]
    got_ids, back = read_submission(spec, spec.submissions[0], path)
    assert got_ids == ["a_b", "c"]
    np.testing.assert_array_equal(back["h"], probs["h"])
    path.write_text("ID,Label\nID_a_b_any,0.25\nID_a_b_few,0.5\n")
    with pytest.raises(
        UserError,
        match=r"submission.csv:3: row 'ID_a_b_few' is not an id of the form 'ID_\{image\}_\{class\}'",
    ):
        read_submission(spec, spec.submissions[0], path)


def test_a_wide_file_follows_the_sample_order_and_its_own_check(isic):
    spec, folder = isic  # the sample lists b before a; the test file a before b
    decided = {"melanoma": np.array([1, 0]), "disease": np.array([2, 0])}
    write_submissions(spec, IDS, decided, IDS, folder / "out", PROBS)
    text = (folder / "out/submission.csv").read_text()
    assert text == "isic_id,target,label\nb,0.0000,0\na,0.7500,2\n"
    assert check_file(spec, spec.submissions[0], folder / "out/submission.csv", IDS) == 2
    bad = {**PROBS, "melanoma": np.array([[0.5, np.nan], [0.2, 0.8]])}
    with pytest.raises(UserError, match="task 'melanoma': probabilities must be finite and within"):
        write_submissions(spec, IDS, decided, IDS, folder / "bad", bad)
    assert not (folder / "bad").exists()


def _has_binary_and_log_loss() -> bool:
    from mtlkaggle.spec import METRICS_BY_KIND

    return "binary" in METRICS_BY_KIND and "log_loss" in METRICS_BY_KIND.get("multilabel", ())


needs_binary = pytest.mark.skipif(
    not _has_binary_and_log_loss(), reason="the binary kind and log_loss (issue 21 point 1) are not here"
)


@needs_binary
def test_auto_values_follow_the_primary_metric_binary_and_log_loss(tmp_path):
    malignant = {"name": "malignant", "kind": "binary", "column": "target"}  # roc_auc by default
    labels = {**LABELS, "metrics": ["log_loss"]}
    subs = [
        {"file": "isic.csv", "id_column": "isic_id", "columns": {"target": "malignant"}},
        {"file": "ll.csv", "id_column": "id", "columns": {"{class}": "labels"}, "float_format": ".6f"},
        {"file": "lab.csv", "id_column": "id", "columns": {"y": "malignant"}, "values": "label"},
    ]
    spec = _spec([malignant, labels], subs)
    probs = {
        "malignant": np.array([[0.75], [0.125]]),
        "labels": np.array([[1.0, 0.5, 0.0], [0.25, 0.0, 1.0]]),
    }
    decided = {"malignant": np.array([0.75, 0.125]), "labels": (probs["labels"] > 0.5).astype(np.float32)}
    # AUC scores the probability: it goes out, never the 0/1 decision
    assert render_submission(spec, spec.submissions[0], IDS, decided, probs) == (
        "isic_id,target\na,0.7500\nb,0.1250\n"
    )
    # log loss: clipped to the format's step, so no cell is 0 or 1 (an infinite loss)
    assert render_submission(spec, spec.submissions[1], IDS, decided, probs) == (
        "id,complex,rust,scab\na,0.999999,0.500000,0.000001\nb,0.250000,0.000001,0.999999\n"
    )
    assert (
        render_submission(spec, spec.submissions[2], IDS, {"malignant": np.array([1, 0])})
        == "id,y\na,1\nb,0\n"
    )
    (tmp_path / "lab.csv").write_text("id,y\na,1\nb,2\n")
    with pytest.raises(
        UserError, match=r"row 'b', column 'y': '2' is not a class index of 'malignant' \(0..1\)"
    ):
        check_file(spec, spec.submissions[2], tmp_path / "lab.csv", IDS)


def test_evaluate_reads_class_probability_columns_without_a_traceback(tmp_path):
    from mtlkaggle.evaluate import evaluate_submissions

    pd = pytest.importorskip("pandas")
    columns = {"label": "disease", "p_scab": "disease:scab", "p_rust": "disease:rust"}
    sub = {"file": "s.csv", "id_column": "id", "columns": columns}
    spec = _spec([DISEASE], [sub], str(tmp_path))
    assert spec.submissions[0].task_columns() == [("label", "disease")]
    pd.DataFrame({"id": ["a", "b"], "d": [2, 0]}).to_csv(tmp_path / "labels.csv", index=False)
    write_submissions(spec, IDS, DECIDED, IDS, tmp_path / "out", PROBS)
    scores = evaluate_submissions(spec, tmp_path / "out", tmp_path / "labels.csv")
    assert set(scores["task"]) == {"disease"}
    assert scores.query("metric == 'accuracy'")["score"].item() == 1.0  # the labels 2, 0 are right


def test_binary_labels_by_name_follow_the_positive_class_not_the_classes_order(tmp_path):
    # `positive` names the class a decision of 1 means, wherever it stands in `classes`
    task = {"name": "m", "kind": "binary", "column": "t", "classes": ["malignant", "benign"]}
    task["positive"] = "malignant"
    sub = {"file": "lab.csv", "id_column": "id", "columns": {"y": "m"}, "values": "label"}
    sub["label_format"] = "name"
    spec = _spec([task], [sub])
    decided = {"m": np.array([1, 0])}
    assert render_submission(spec, spec.submissions[0], IDS, decided) == "id,y\na,malignant\nb,benign\n"
    (tmp_path / "lab.csv").write_text("id,y\na,malignant\nb,benign\n")
    ids, back = read_submission(spec, spec.submissions[0], tmp_path / "lab.csv")
    assert ids == ["a", "b"] and np.ravel(back["m"]).tolist() == [1, 0]


def test_a_long_row_pairing_a_task_with_another_tasks_class_is_one_line_not_a_traceback(tmp_path):
    a = {"name": "a", "kind": "multilabel", "column": "a", "classes": ["x", "y"]}
    b = {"name": "b", "kind": "multilabel", "column": "b", "classes": ["z"]}
    sub = {"file": "s.csv", "id_column": "ID", "id_template": "{image}_{task}_{class}"}
    sub["columns"] = {"Label": ["a", "b"]}
    spec = _spec([a, b], [sub])
    path = tmp_path / "s.csv"
    path.write_text("ID,Label\ni_a_x,0.5\ni_a_z,0.5\ni_b_z,0.1\n")
    with pytest.raises(UserError, match=r"s.csv:3: row 'i_a_z': task 'a' has no class 'z'"):
        read_submission(spec, spec.submissions[0], path)


def test_evaluate_scores_a_multiclass_file_of_class_probabilities_by_its_argmax(tmp_path):
    from mtlkaggle.evaluate import evaluate_submissions

    pd = pytest.importorskip("pandas")
    task = {**DISEASE, "metrics": ["accuracy", "roc_auc"]}
    sub = {"file": "s.csv", "id_column": "id", "columns": {"{class}": "disease"}}
    spec = _spec([task], [sub], str(tmp_path))
    pd.DataFrame({"id": ["a", "b"], "d": [2, 1]}).to_csv(tmp_path / "labels.csv", index=False)
    write_submissions(spec, IDS, DECIDED, IDS, tmp_path / "out", PROBS)  # argmax 2, 0
    scores = evaluate_submissions(spec, tmp_path / "out", tmp_path / "labels.csv")
    assert scores.query("metric == 'accuracy'")["score"].item() == 0.5
    assert scores.query("metric == 'roc_auc'")["score"].item() == 1.0
