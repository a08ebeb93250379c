"""Submission files byte for byte, written by hand from the competitions' format descriptions."""

import numpy as np
import pytest

from mtlkaggle.errors import UserError
from mtlkaggle.spec import Spec, load_spec
from mtlkaggle.submission import check_ids, read_submission, render_submission, write_submissions

from .conftest import REPO

IDS = np.array(["img/a.jpg", "img/b,c.jpg", "img/d.jpg"], dtype=object)


def _attrs(rows):
    out = np.zeros((len(rows), 15), dtype=np.float32)
    for i, row in enumerate(rows):
        out[i, row] = 1
    return out


@pytest.fixture
def spec(monkeypatch):
    monkeypatch.chdir(REPO)
    return load_spec("deepfashion")


def test_deepfashion_files_byte_for_byte(spec, tmp_path):
    predictions = {"category": np.array([3, 0, 9]), "attribute": _attrs([[14, 2], [], [0]])}
    write_submissions(spec, IDS, predictions, IDS, tmp_path)
    assert (tmp_path / "category.csv").read_bytes() == (
        b'file_path,category_label\nimg/a.jpg,3\n"img/b,c.jpg",0\nimg/d.jpg,9\n'
    )
    # ascending space-separated indices; an empty row keeps its comma
    assert (tmp_path / "attribute.csv").read_bytes() == (
        b'file_path,attribute_label\nimg/a.jpg,2 14\n"img/b,c.jpg",\nimg/d.jpg,0\n'
    )


def test_headerless_space_separated_file_and_regression_format():
    spec = Spec.model_validate(
        {
            "name": "t",
            "data_dir": ".",
            "data": {"train": "x.csv", "id_column": "id", "image_column": "id"},
            "tasks": [
                {"name": "g", "kind": "multiclass", "column": "g", "classes": ["Male", "Female"]},
                {"name": "age", "kind": "regression", "column": "age"},
            ],
            "submissions": [
                {
                    "file": "prediction.txt",
                    "columns": {"g": "g", "age": "age"},
                    "header": False,
                    "sep": " ",
                    "float_format": ".1f",
                },
                {"file": "names.csv", "id_column": "id", "columns": {"gender": "g"}, "label_format": "name"},
            ],
        }
    )
    predictions = {"g": np.array([1, 0]), "age": np.array([31.25, 4.0])}
    ids = np.array(["x", "y"], dtype=object)
    assert render_submission(spec, spec.submissions[0], ids, predictions) == "1 31.2\n0 4.0\n"
    assert render_submission(spec, spec.submissions[1], ids, predictions) == "id,gender\nx,Female\ny,Male\n"


def test_round_trip_and_validation(spec, tmp_path):
    predictions = {"category": np.array([3, 0, 9]), "attribute": _attrs([[1], [], [0, 5]])}
    write_submissions(spec, IDS, predictions, IDS, tmp_path)
    ids, back = read_submission(spec, spec.submissions[1], tmp_path / "attribute.csv")
    assert ids == list(IDS)
    np.testing.assert_array_equal(back["attribute"], predictions["attribute"])
    with pytest.raises(UserError, match=r"1 id\(s\) are not in the test file \('img/d.jpg'\)"):
        write_submissions(spec, IDS, predictions, IDS[:2], tmp_path / "other")
    assert not (tmp_path / "other").exists()  # nothing half-written
    with pytest.raises(UserError, match="class 10 outside 0..9"):
        write_submissions(spec, IDS, {**predictions, "category": np.array([3, 10, 1])}, IDS, tmp_path / "x")
    with pytest.raises(UserError, match="class -1 outside 0..9"):  # the bad class, not the largest
        write_submissions(spec, IDS, {**predictions, "category": np.array([3, -1, 1])}, IDS, tmp_path / "x")


def test_read_submission_names_bad_line(spec, tmp_path):
    (tmp_path / "category.csv").write_text("file_path,category_label\nimg/a.jpg,3\nimg/b.jpg,12\n")
    bad = r"category.csv:3: row 'img/b.jpg', column 'category_label': '12' is not a class index of 'category'"
    with pytest.raises(UserError, match=bad + r" \(0..9\)"):
        read_submission(spec, spec.submissions[0], tmp_path / "category.csv")
    (tmp_path / "category.csv").write_text("file_path,category\nimg/a.jpg,3\n")
    with pytest.raises(UserError, match=r"category.csv:1: header should be 'file_path,category_label'"):
        read_submission(spec, spec.submissions[0], tmp_path / "category.csv")


def test_check_ids_counts_duplicated_missing_and_extra_ids():
    with pytest.raises(UserError) as caught:
        check_ids("sub.csv", list("aaabzy"), ["a", "b", "c"], "the test file", "predict again")
    message = str(caught.value)
    assert message == (
        "sub.csv: 1 id(s) appear more than once ('a' x3); 1 id(s) of the test file are missing ('c'); "
        "2 id(s) are not in the test file ('z', 'y'); predict again"
    )
    check_ids("sub.csv", ["b", "a"], ["a", "b"], "the test file", "x")  # order is not this check's job


def test_predictions_in_another_order_are_refused(spec, tmp_path):
    predictions = {"category": np.array([3, 0, 9]), "attribute": _attrs([[1], [], [0, 5]])}
    with pytest.raises(UserError, match="test ids in another order"):
        write_submissions(spec, IDS[::-1], predictions, IDS, tmp_path)
    assert not any(tmp_path.iterdir())


def test_non_utf8_submission_names_file_and_line(spec, tmp_path):
    path = tmp_path / "category.csv"
    path.write_bytes("file_path,category_label\nimg/a.jpg,3\nimg/caf\u00e9.jpg,1\n".encode("latin-1"))
    with pytest.raises(UserError, match=r"category.csv:3: not UTF-8 \(byte 0xe9 at column 8\)"):
        read_submission(spec, spec.submissions[0], path)
