"""Reading label files the vectorised way: the long-format id split, image paths joined by string
under the resolved data folder (``..`` folded, escapes refused), empty and repeated ids. Expected
values are written out by hand; speed is measured by bench/bench_read.py, not here."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mtlkaggle.data import parse_split
from mtlkaggle.data.long import split_ids, template_pattern
from mtlkaggle.spec import Spec


def _pairs(frame: pd.DataFrame) -> list[tuple]:
    return [
        (None if pd.isna(i) else i, None if pd.isna(c) else c)
        for i, c in zip(frame["image"], frame["cls"], strict=True)
    ]


def test_split_ids_longest_class_wins_and_image_is_never_empty():
    classes = ["any", "hemorrhage_any", "a"]
    ids = pd.Series(
        [
            "ID_x_hemorrhage_any",
            "ID_x_any",
            "ID_y_a_any",
            "ID___any",
            "ID__any",
            "ID_q_bleed",
            "ID_\nz_a",
            7,
            None,
        ],
        dtype=object,
    )
    got = _pairs(split_ids(ids, "ID_{image}_{class}", classes))
    assert got == [
        ("x", "hemorrhage_any"),
        ("x", "any"),
        ("y_a", "any"),
        ("_", "any"),  # the image may hold the separator, never be empty
        (None, None),  # 'ID__any': the image would be empty
        (None, None),
        ("\nz", "a"),
        (None, None),  # not text: not following the template
        (None, None),
    ]
    regex = template_pattern("ID_{image}_{class}", classes)
    assert got[:7] == [(m["image"], m["cls"]) if (m := regex.match(s)) else (None, None) for s in ids[:7]]


def test_split_ids_class_first_template_with_a_suffix():
    ids = pd.Series(["sub-12.dcm", "subdural-7.dcm", "sub-.dcm", "sub-3.png"], dtype=object)
    got = _pairs(split_ids(ids, "{class}-{image}.dcm", ["sub", "subdural"]))
    assert got == [("12", "sub"), ("7", "subdural"), (None, None), (None, None)]


def test_long_format_with_classes_that_end_alike(tmp_path):
    rows = [("ID_a_any", 1), ("ID_a_b_any", 0), ("ID_b_any", 0), ("ID_b_b_any", 1)]
    pd.DataFrame(rows, columns=["ID", "Label"]).to_csv(tmp_path / "train.csv", index=False)
    task = {"name": "t", "kind": "multilabel", "encoding": "columns", "columns": ["any", "b_any"]}
    data = {"train": "train.csv", "id_column": "image_id", "image_column": "image_id"}
    data["long"] = {"column": "ID", "template": "ID_{image}_{class}", "value_column": "Label"}
    spec = Spec.model_validate({"name": "t", "data_dir": str(tmp_path), "data": data, "tasks": [task]})
    table, problems = parse_split(spec, "train")
    assert problems == []
    assert table.ids.tolist() == ["a", "b"]
    assert table.targets["t"].tolist() == [[1, 0], [0, 1]]


def _files_spec(root) -> Spec:
    task = {"name": "y", "kind": "multiclass", "column": "y", "num_classes": 2}
    data = {"train": "train.csv", "id_column": "id", "image_pattern": "img/{file}"}
    return Spec.model_validate({"name": "t", "data_dir": str(root), "data": data, "tasks": [task]})


def test_paths_are_joined_under_the_resolved_folder_and_escapes_refused(tmp_path):
    real = tmp_path / "real"
    (real / "img").mkdir(parents=True)
    (tmp_path / "link").symlink_to(real)  # data_dir reached through a link: resolved once
    files = ["a.png", "sub/../b.png", "x..png", "./c.png", "../img/d.png", "../../e.png", "/etc/passwd"]
    frame = pd.DataFrame({"id": [f"i{k}" for k in range(len(files))], "file": files, "y": 0})
    frame.to_csv(real / "train.csv", index=False)
    table, problems = parse_split(_files_spec(tmp_path / "link"), "train")
    assert [str(p) for p in table.paths] == [
        f"{real}/img/a.png",
        f"{real}/img/b.png",
        f"{real}/img/x..png",
        f"{real}/img/c.png",
        f"{real}/img/d.png",  # up and back down: still inside
        f"{tmp_path}/e.png",
        f"{real}/img/etc/passwd",  # 'img//etc/passwd': relative, inside
    ]
    assert [(p.line, p.message.split(" escapes")[0]) for p in problems] == [
        (7, "image path 'img/../../e.png'"),
    ]


def test_absolute_image_column_value_is_refused(tmp_path):
    """Without a template the image column is taken verbatim: an absolute path escapes."""
    frame = pd.DataFrame({"id": ["a", "b", "c"], "file": ["a.png", "/etc/passwd", "d/../../x.png"], "y": 0})
    frame.to_csv(tmp_path / "train.csv", index=False)
    task = {"name": "y", "kind": "multiclass", "column": "y", "num_classes": 2}
    data = {"train": "train.csv", "id_column": "id", "image_column": "file", "image_dir": "imgs"}
    spec = Spec.model_validate({"name": "t", "data_dir": str(tmp_path), "data": data, "tasks": [task]})
    table, problems = parse_split(spec, "train")
    root = tmp_path.resolve() / "imgs"
    assert [str(p) for p in table.paths] == [f"{root}/a.png", "/etc/passwd", f"{tmp_path.resolve()}/x.png"]
    assert [(p.line, p.column, p.message) for p in problems] == [
        (
            3,
            "file",
            f"image path '/etc/passwd' escapes the data folder {root}; use a relative path inside it",
        ),
        (
            4,
            "file",
            f"image path 'd/../../x.png' escapes the data folder {root}; use a relative path inside it",
        ),
    ]


def test_empty_and_repeated_ids_one_line_each_in_row_order(tmp_path):
    frame = pd.DataFrame({"id": ["a", "", "b", "a", "", "b", "a"], "file": list("1234567"), "y": 0})
    frame.to_csv(tmp_path / "train.csv", index=False)
    _, problems = parse_split(_files_spec(tmp_path), "train")
    assert [(p.line, p.message) for p in problems] == [
        (3, "empty id"),
        (5, "duplicate id 'a' (first on line 2)"),
        (6, "empty id"),
        (7, "duplicate id 'b' (first on line 4)"),
        (8, "duplicate id 'a' (first on line 2)"),
    ]
    assert np.all([p.fatal for p in problems])


def test_plain_csv_keeps_text_verbatim_and_counts_blank_lines(tmp_path):
    """Quote-free files take pandas' C parser: the same cells and line numbers as the csv module."""
    from mtlkaggle.data.formats import read_csv_file

    spec = _files_spec(tmp_path)
    (tmp_path / "a.csv").write_text("id,file,y\n007,a b.png,NA\n\n x ,,1.50\n\n\nlast,z,\n")
    raw = read_csv_file(spec, tmp_path / "a.csv")
    assert raw.frame.to_numpy().tolist() == [["007", "a b.png", "NA"], [" x ", "", "1.50"], ["last", "z", ""]]
    assert raw.lines.tolist() == [2, 4, 7] and raw.problems == []
    (tmp_path / "b.csv").write_text("id,file,y\n1,a,0\n2,b\n   \n3,c,0")  # short row, a row of spaces
    raw = read_csv_file(spec, tmp_path / "b.csv")
    assert raw.frame["id"].tolist() == ["1", "3"] and raw.lines.tolist() == [2, 5]
    assert [p.line for p in raw.problems] == [3, 4]
