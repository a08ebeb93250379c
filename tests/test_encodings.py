"""Label encodings read from files written by pandas: names and indices with any separator, one-hot
multiclass columns, long-format labels pivoted to one row per image, repeated test ids, and column
names with spaces and hyphens."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from mtlkaggle.data import parse_split, read_split
from mtlkaggle.errors import UserError
from mtlkaggle.spec import Spec

RSNA = ["epidural", "intraparenchymal", "intraventricular", "subarachnoid", "subdural", "any"]


def _spec(root, tasks, **data) -> Spec:
    fields = {"train": "train.csv", "id_column": "image_id", "image_column": "image_id", **data}
    return Spec.model_validate({"name": "t", "data_dir": str(root), "data": fields, "tasks": tasks})


def test_multilabel_names_with_whitespace(tmp_path):
    """Plant Pathology 2021: labels = "scab frog_eye_leaf_spot"."""
    classes = ["complex", "frog_eye_leaf_spot", "healthy", "powdery_mildew", "rust", "scab"]
    pd.DataFrame(
        {
            "image": ["a.jpg", "b.jpg", "c.jpg"],
            "labels": ["scab frog_eye_leaf_spot", "healthy", "rust  complex"],
        }
    ).to_csv(tmp_path / "train.csv", index=False)
    task = {
        "name": "labels",
        "kind": "multilabel",
        "column": "labels",
        "encoding": "names",
        "classes": classes,
    }
    spec = _spec(tmp_path, [task], id_column="image", image_column="image")
    y = read_split(spec, "train").targets["labels"]
    assert y.tolist() == [[0, 1, 0, 0, 0, 1], [0, 0, 1, 0, 0, 0], [1, 0, 0, 0, 1, 0]]


def test_multilabel_names_unknown_label_is_one_line(tmp_path):
    pd.DataFrame({"image_id": ["a", "b"], "labels": ["scab", "scabby rust"]}).to_csv(
        tmp_path / "train.csv", index=False
    )
    task = {"name": "labels", "kind": "multilabel", "column": "labels", "encoding": "names"}
    spec = _spec(tmp_path, [{**task, "classes": ["rust", "scab"]}])
    with pytest.raises(UserError, match=r"train.csv:3 \[labels\]: unknown label 'scabby'; expected one of"):
        read_split(spec, "train")
    with pytest.raises(ValidationError, match="encoding='names' needs 'classes'"):
        _spec(tmp_path, [task])


def test_multilabel_indices_with_a_pipe_and_empty_cells(tmp_path):
    """HPA Single-Cell: Label = "8|5|0"; an empty cell is a row without labels."""
    pd.DataFrame({"ID": ["x", "y", "z"], "Label": ["8|5|0", "", "18"]}).to_csv(
        tmp_path / "train.csv", index=False
    )
    task = {"name": "Label", "kind": "multilabel", "column": "Label", "num_classes": 19, "label_sep": "|"}
    y = read_split(_spec(tmp_path, [task], id_column="ID", image_column="ID"), "train").targets["Label"]
    assert [np.flatnonzero(row).tolist() for row in y] == [[0, 5, 8], [], [18]]


def test_multilabel_indices_with_spaces(tmp_path):
    """iMet 2020: attribute_ids = "147 616 813" among 3474 attributes."""
    pd.DataFrame({"id": ["p1", "p2"], "attribute_ids": ["147 616 813", "3473"]}).to_csv(
        tmp_path / "train.csv", index=False
    )
    task = {"name": "attributes", "kind": "multilabel", "column": "attribute_ids", "num_classes": 3474}
    y = read_split(_spec(tmp_path, [task], id_column="id", image_column="id"), "train").targets["attributes"]
    assert [np.flatnonzero(row).tolist() for row in y] == [[147, 616, 813], [3473]]


def test_multiclass_from_one_hot_columns(tmp_path):
    """One 0/1 column per class (Plant Pathology 2020: healthy, multiple_diseases, rust, scab)."""
    columns = ["healthy", "multiple_diseases", "rust", "scab"]
    onehot = np.eye(4, dtype=int)[[2, 0, 3, 1]]
    frame = pd.DataFrame(onehot, columns=columns)
    frame.insert(0, "image_id", ["Train_0", "Train_1", "Train_2", "Train_3"])
    frame.to_csv(tmp_path / "train.csv", index=False)
    task = {"name": "disease", "kind": "multiclass", "encoding": "columns", "columns": columns}
    spec = _spec(tmp_path, [task])
    assert spec.tasks[0].size == 4 and spec.tasks[0].label_names == columns
    assert read_split(spec, "train").targets["disease"].tolist() == [2, 0, 3, 1]
    frame.loc[1, "rust"] = 1  # two classes in one row
    frame.loc[2, "scab"] = 0  # no class
    frame.to_csv(tmp_path / "train.csv", index=False)
    _, problems = parse_split(spec, "train")
    assert [(p.line, p.message) for p in problems] == [
        (3, "expected exactly one 1 across the class columns, found 2"),
        (4, "expected exactly one 1 across the class columns, found 0"),
    ]


def test_column_and_task_names_with_spaces_and_hyphens(tmp_path):
    """RANZCR CLiP: "ETT - Abnormal" as a column, a task name and a label name."""
    columns = ["ETT - Abnormal", "ETT - Borderline", "ETT - Normal", "CVC - Abnormal"]
    frame = pd.DataFrame(np.eye(4, dtype=int)[[0, 1, 2, 3, 0]], columns=columns)
    frame.insert(0, "StudyInstanceUID", [f"1.2.826.{i}" for i in range(5)])
    frame["PatientID"] = ["p 1", "p-2", "p 1", "p3", "p-2"]
    frame.to_csv(tmp_path / "train.csv", index=False)
    tasks = [
        {"name": "ETT lines", "kind": "multilabel", "encoding": "columns", "columns": columns[:3]},
        {"name": "CVC - Abnormal", "kind": "multiclass", "column": "CVC - Abnormal", "num_classes": 2},
    ]
    spec = _spec(tmp_path, tasks, id_column="StudyInstanceUID", image_column="StudyInstanceUID")
    table = read_split(spec, "train")
    assert table.targets["ETT lines"][:, 0].tolist() == [1, 0, 0, 0, 1]
    assert table.targets["CVC - Abnormal"].tolist() == [0, 0, 0, 1, 0]
    assert spec.task("ETT lines").label_names == columns[:3]


def test_task_names_may_not_hold_the_key_separators(tmp_path):
    with pytest.raises(ValidationError, match="'/' or ':'"):
        _spec(tmp_path, [{"name": "a/b", "kind": "regression", "column": "y"}])


def _rsna_rows(images, skip=(), twice=()):
    rows = []
    for i, image in enumerate(images):
        for j, subtype in enumerate(RSNA):
            if (image, subtype) in skip:
                continue
            rows.append({"ID": f"ID_{image}_{subtype}", "Label": (i + j) % 2})
            if (image, subtype) in twice:
                rows.append(dict(rows[-1]))
    return pd.DataFrame(rows)


def _rsna_spec(root, **long):
    task = {"name": "hemorrhage", "kind": "multilabel", "encoding": "columns", "columns": RSNA}
    long = {"column": "ID", "template": "ID_{image}_{class}", "value_column": "Label", **long}
    return _spec(root, [task], test="stage_2_sample_submission.csv", long=long)


def test_long_format_pivots_to_one_row_per_image(tmp_path):
    """RSNA 2019 stage_2_train.csv: ID_{image}_{subtype},Label; six rows per image."""
    images = ["63a0e5ab1", "b_0c3", "12cadc6af"]  # an underscore inside an id too
    _rsna_rows(images).to_csv(tmp_path / "train.csv", index=False)
    spec = _rsna_spec(tmp_path)
    table, problems = parse_split(spec, "train")
    assert problems == []
    assert table.ids.tolist() == images
    expected = [[(i + j) % 2 for j in range(6)] for i in range(3)]
    assert table.targets["hemorrhage"].tolist() == expected
    assert table.lines.tolist() == [2, 8, 14]  # each image's first line


def test_long_format_reports_duplicates_and_missing_pairs_in_one_line_each(tmp_path):
    images = [f"img{i}" for i in range(6)]
    skip = {("img1", "any"), ("img4", "subdural")}
    twice = {("img2", "epidural"), ("img3", "any"), ("img5", "epidural")}
    _rsna_rows(images, skip, twice).to_csv(tmp_path / "train.csv", index=False)
    table, problems = parse_split(_rsna_spec(tmp_path), "train")
    messages = [(p.fatal, p.message) for p in problems]  # img0: lines 2-7, img1: 8-12, img2: 13, 14
    assert messages == [
        (
            False,
            "3 duplicated (image, class) row(s) (first line 14: 'ID_img2_epidural'), "
            "same values; the first is kept",
        ),
        (True, "2 (image, class) pair(s) missing (e.g. 'img1' has no 'any' row); add them"),
    ]
    assert table.ids.tolist() == ["img0", "img2", "img3", "img5"]  # incomplete images left out


def test_long_format_conflicting_duplicates_and_foreign_ids_are_fatal(tmp_path):
    frame = _rsna_rows(["a1", "a2"])
    frame = pd.concat(
        [frame, pd.DataFrame({"ID": ["ID_a1_epidural", "ID_a2_bleed", "a3"], "Label": [1, 0, 0]})]
    )
    frame.to_csv(tmp_path / "train.csv", index=False)
    with pytest.raises(
        UserError, match=r"2 id\(s\) do not follow 'ID_\{image\}_\{class\}'.*line 15: 'ID_a2_bleed'"
    ):
        read_split(_rsna_spec(tmp_path), "train")
    _, problems = parse_split(_rsna_spec(tmp_path), "train")
    assert "values differ (e.g. 'a1' epidural)" in problems[1].message and problems[1].fatal


def test_long_format_test_list_gives_one_image_per_id_in_order(tmp_path):
    """A long-format sample submission as the test list: one image per unique id."""
    _rsna_rows(["t9", "t1", "t5"]).assign(Label=0.5).to_csv(
        tmp_path / "stage_2_sample_submission.csv", index=False
    )
    table = read_split(_rsna_spec(tmp_path), "test")
    assert table.ids.tolist() == ["t9", "t1", "t5"] and not table.has_targets


def test_long_format_template_must_name_image_and_class(tmp_path):
    with pytest.raises(ValidationError, match=r"must hold \{class\} exactly once"):
        _rsna_spec(tmp_path, template="ID_{image}")


def test_repeated_test_ids_first_keeps_one_row_per_id(tmp_path):
    pd.DataFrame({"image_id": ["b", "a", "b", "c", "a"], "part": [1, 1, 2, 1, 2]}).to_csv(
        tmp_path / "test.csv", index=False
    )
    task = {"name": "y", "kind": "regression", "column": "y"}
    with pytest.raises(UserError, match="duplicate id 'b'"):
        read_split(_spec(tmp_path, [task], test="test.csv"), "test")
    table = read_split(_spec(tmp_path, [task], test="test.csv", repeated_test_ids="first"), "test")
    assert table.ids.tolist() == ["b", "a", "c"] and table.lines.tolist() == [2, 3, 5]


RANZCR_TOML = """name = "lines"
data_dir = "data/demo"
[data]
train = "lines_train.csv"
test = "test.csv"
id_column = "file_path"
image_column = "file_path"
group_column = "PatientID"
[[tasks]]
name = "ETT lines"
kind = "multilabel"
encoding = "columns"
columns = ["ETT - Abnormal", "ETT - Normal"]
[[tasks]]
name = "CVC - Abnormal"
kind = "multiclass"
column = "CVC - Abnormal"
classes = ["no - CVC", "CVC - Abnormal"]
[[submissions]]
file = "submission.csv"
columns = { "CVC - Abnormal" = "CVC - Abnormal", "ETT - Abnormal" = "ETT lines" }
kaggle = "lines-test"
id_column = "file_path"
"""


@pytest.mark.slow
def test_names_with_spaces_and_hyphens_through_the_pipeline(runner, workspace):
    """Column, task and class names such as "ETT - Abnormal" in the folds file, the OOF and
    probability headers, metrics.csv, the report and the submission."""
    from mtlkaggle.cli import app

    train = pd.read_csv(workspace / "data/demo/train.csv")
    frame = pd.DataFrame({"file_path": train["file_path"]})
    frame["ETT - Abnormal"] = (train["category_label"] < 3).astype(int)
    frame["ETT - Normal"] = (train["category_label"] >= 5).astype(int)
    frame["CVC - Abnormal"] = train["category_label"] % 2
    frame["PatientID"] = [f"patient {i // 3}" for i in range(len(frame))]
    frame.to_csv(workspace / "data/demo/lines_train.csv", index=False)
    (workspace / "competition/lines.toml").write_text(RANZCR_TOML, encoding="utf-8")
    tiny = ["--backbone", "test_efficientnet", "--no-pretrained", "--img-size", "32", "--num-workers", "0"]
    steps = [
        ["check", "lines"],
        ["folds", "lines", "--n-splits", "3"],
        ["train", "lines", "--fold", "0", "--epochs", "1", "--batch-size", "16", *tiny],
        ["predict", "lines", "--num-workers", "0"],
        ["submit", "lines", "--dry-run"],
        ["report", "lines"],
    ]
    for args in steps:
        result = runner.invoke(app, args)
        assert result.exit_code == 0, (args, result.output)
    folds = pd.read_csv(workspace / "folds/lines.csv")
    assert list(folds.columns) == ["file_path", "fold", "PatientID"]
    fold_dir = workspace / "runs/lines/main/fold0"
    oof = pd.read_csv(fold_dir / "oof.csv")
    for task in ("ETT lines", "CVC - Abnormal"):  # probability columns TASK:CLASS (by index or name)
        assert len([c for c in oof.columns if c.startswith(f"{task}:")]) == 2, list(oof.columns)
    metrics = pd.read_csv(fold_dir / "metrics.csv")
    assert "val/CVC - Abnormal/accuracy" in metrics.columns and "val/ETT lines/mean_f1" in metrics.columns
    report = (workspace / "reports/lines/main/report.md").read_text(encoding="utf-8")
    assert "CVC - Abnormal" in report and "ETT lines" in report
    submission = pd.read_csv(workspace / "submissions/lines/submission.csv")
    assert list(submission.columns) == ["file_path", "CVC - Abnormal", "ETT - Abnormal"]
