import hashlib

import pandas as pd
import pytest

from mtlkaggle.check import check_dataset
from mtlkaggle.errors import UserError
from mtlkaggle.spec import load_spec


def _frame(workspace, name="train.csv"):
    return pd.read_csv(workspace / "data/demo" / name, dtype=str, keep_default_na=False)


def _save(workspace, frame, name="train.csv"):
    frame.to_csv(workspace / "data/demo" / name, index=False)


def _messages(report):
    return [str(p) for p in report.problems]


def test_clean_demo_passes(workspace):
    report = check_dataset(load_spec("demo"))
    assert report.ok and report.images_checked == 90 + 24


def test_missing_corrupt_and_truncated_images(workspace):
    images = workspace / "data/demo/images"
    (images / "train_00003.jpg").unlink()
    (images / "train_00004.jpg").write_bytes(b"this is not a jpeg")
    good = (images / "train_00005.jpg").read_bytes()
    (images / "train_00005.jpg").write_bytes(good[: len(good) // 2])
    messages = _messages(check_dataset(load_spec("demo")))
    assert len(messages) == 3
    assert any("train.csv:5" in m and "train_00003.jpg: image not found" in m for m in messages)
    assert any("train.csv:6" in m and "train_00004.jpg: unreadable" in m for m in messages)
    assert any("train.csv:7" in m and "train_00005.jpg: unreadable" in m for m in messages)


def test_bad_labels_ids_and_paths(workspace):
    frame = _frame(workspace)
    frame.loc[0, "category_label"] = "10"
    frame.loc[1, "category_label"] = ""
    frame.loc[2, "attribute_label"] = "3 15"
    frame.loc[3, "attribute_label"] = "x"
    frame.loc[4, "file_path"] = frame.loc[5, "file_path"]
    frame.loc[6, "file_path"] = "../outside.jpg"
    frame.loc[7, "file_path"] = "/etc/passwd"
    _save(workspace, frame)
    messages = _messages(check_dataset(load_spec("demo"), open_images=False))
    expected = [
        ("train.csv:2 [category_label]", "class 10 out of range 0..9"),
        ("train.csv:3 [category_label]", "'' is not a class index"),
        ("train.csv:4 [attribute_label]", "label 15 out of range 0..14"),
        ("train.csv:5 [attribute_label]", "'x' is not a label index"),
        ("train.csv:7 [file_path]", "duplicate id"),
        ("train.csv:8 [file_path]", "escapes the data folder"),
        ("train.csv:9 [file_path]", "escapes the data folder"),
    ]
    for where, what in expected:
        assert any(where in m and what in m for m in messages), (where, what, messages)
    assert len(messages) == len(expected)


def test_missing_column_and_nan_regression(workspace):
    frame = _frame(workspace).rename(columns={"attribute_label": "attributes"})
    _save(workspace, frame)
    report = check_dataset(load_spec("demo"), open_images=False)
    assert "missing column(s) ['attribute_label']" in _messages(report)[0]
    from mtlkaggle.data import read_split
    from mtlkaggle.spec import Spec

    raw = load_spec("demo").model_dump()
    raw["tasks"] = [{"name": "age", "kind": "regression", "column": "age"}]
    raw["submissions"] = []
    spec = Spec.model_validate(raw)
    frame = _frame(workspace)
    frame["age"] = ["nan" if i == 2 else str(20 + i) for i in range(len(frame))]
    _save(workspace, frame)
    with pytest.raises(UserError, match=r"train.csv:4 \[age\]: 'nan' is not a finite number"):
        read_split(spec, "train")


def test_test_ids_also_in_train(workspace):
    train = _frame(workspace)
    test = _frame(workspace, "test.csv")
    test.loc[0, "file_path"] = train.loc[0, "file_path"]
    _save(workspace, test, "test.csv")
    messages = _messages(check_dataset(load_spec("demo"), open_images=False))
    assert any("test.csv:2" in m and "also in train" in m for m in messages)


def test_check_modifies_nothing(workspace):
    (workspace / "data/demo/images/train_00001.jpg").write_bytes(b"junk")
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in workspace.rglob("*") if p.is_file()}
    check_dataset(load_spec("demo"))
    after = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in workspace.rglob("*") if p.is_file()}
    assert before == after


def test_a_sample_submission_that_does_not_fit_is_reported(workspace):
    toml = workspace / "competition/demo.toml"
    text = toml.read_text()
    toml.write_text(
        text.replace('file = "category.csv"\n', 'file = "category.csv"\nsample = "sample.csv"\n', 1)
    )
    test = _frame(workspace, "test.csv")["file_path"]
    sample = workspace / "data/demo/sample.csv"
    sample.write_text("file_path,category_label\n" + "".join(f"{i},0\n" for i in reversed(test)))
    assert check_dataset(load_spec("demo"), open_images=False).ok  # another order is fine
    sample.write_text("file_path,label\n" + "".join(f"{i},0\n" for i in test))
    messages = _messages(check_dataset(load_spec("demo"), open_images=False))
    assert messages == [
        "data/demo/sample.csv:1: the sample's header is 'file_path,label', the spec's columns give "
        "'file_path,category_label'; fix the columns of submission 'category.csv'"
    ]
    sample.write_text("file_path,category_label\n" + "".join(f"{i},0\n" for i in test[1:]))
    (message,) = _messages(check_dataset(load_spec("demo"), open_images=False))
    assert message.startswith("data/demo/sample.csv: 1 id(s) of the rows the test file gives are missing")
