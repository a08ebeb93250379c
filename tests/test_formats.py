"""Every supported label-file layout: short rows, header-only files, bad bytes and bad values are
problems with the right file:line, read from the original layouts (tests/formats_fixtures.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtlkaggle.data import parse_split, read_split
from mtlkaggle.errors import UserError
from mtlkaggle.spec import load_spec

from . import formats_fixtures as fx
from .conftest import REPO


def _spec(name: str, data: Path):
    return load_spec(REPO / "competition" / f"{name}.toml", data_dir=data)


def _set_line(path: Path, number: int, text: str) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[number - 1] = text
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _problems(spec, split: str = "train") -> list[str]:
    return [str(p) for p in parse_split(spec, split)[1] if p.fatal]


def test_lists_short_row_and_bad_value_name_the_label_file_line(tmp_path):
    fx.write_ai6126(tmp_path)
    attr = tmp_path / "split/train_attr.txt"
    _set_line(attr, 4, "1 2 0")
    _set_line(attr, 9, "1 2 0 1 9 0")
    problems = _problems(_spec("fashion-ai6126", tmp_path))
    assert f"{attr}:4: expected 6 values" in problems[0] and "found 3" in problems[0]
    assert any(p.startswith(f"{attr}:9 [") and "out of range" in p for p in problems), problems
    assert len(problems) == 2  # the short row is not reported again as empty labels


def test_lists_empty_image_list_is_an_error(tmp_path):
    fx.write_ai6126(tmp_path)
    (tmp_path / "split/test.txt").write_text("\n")
    with pytest.raises(UserError, match=r"test.txt: no data rows \(an empty or header-only file\)"):
        read_split(_spec("fashion-ai6126", tmp_path), "test", labelled=False)


def test_celeba_short_line_header_only_and_bad_value(tmp_path):
    fx.write_celeba(tmp_path)
    attr = tmp_path / "list_attr_celeba.txt"
    _set_line(attr, 5, "000003.jpg 1 -1")
    _set_line(attr, 8, "000006.jpg " + " ".join(["1"] * 39 + ["7"]))
    problems = _problems(_spec("celeba", tmp_path))
    assert f"{attr}:5: expected a file name and 40 values, found 3 fields" in problems
    assert any(p.startswith(f"{attr}:8 [Young]") and "'7' is not 1 or -1" in p for p in problems), problems
    attr.write_text("0\n" + attr.read_text().splitlines()[1] + "\n")  # a header that says 0 images
    assert any("no data rows" in p for p in _problems(_spec("celeba", tmp_path))), problems


def test_pixels_csv_short_row_and_header_only(tmp_path):
    fx.write_utkface48(tmp_path)
    path = tmp_path / "age_gender.csv"
    _set_line(path, 4, "30,1,0")
    problems = _problems(_spec("utkface48", tmp_path))
    assert problems == [
        f"{path}:4: expected 5 fields (age, ethnicity, gender, img_name, pixels), found 3: missing value(s); "
        "quote fields that contain the separator"
    ]
    path.write_text("age,ethnicity,gender,img_name,pixels\n")
    assert _problems(_spec("utkface48", tmp_path)) == [
        f"{path}: no data rows (an empty or header-only file); add the rows"
    ]


def test_utkface_empty_folder_is_an_error(tmp_path):
    (tmp_path / "UTKFace").mkdir()
    with pytest.raises(UserError, match="UTKFace: no data rows"):
        read_split(_spec("utkface", tmp_path), "train")


def test_csv_line_numbers_survive_blank_lines_and_quoted_newlines(tmp_path):
    fx.write_pedestrian(tmp_path)
    path = tmp_path / "train.csv"
    lines = path.read_text().splitlines()
    lines[2] = ""  # a blank line 3
    lines[4] = '"images/p0003.png",Male,"Bl\nack",Black'  # a quoted newline: lines 5-6 are one row
    lines[7] = lines[7].replace("Male", "Robot").replace("Female", "Robot").replace("N/V", "Robot", 1)
    path.write_text("\n".join(lines) + "\n")
    problems = _problems(_spec("pedestrian", tmp_path))
    assert any(p.startswith(f"{path}:5 [upper_color]") for p in problems), problems
    assert any(p.startswith(f"{path}:9 [gender]") and "'Robot'" in p for p in problems), problems


def test_non_utf8_label_file_names_line_and_byte(tmp_path):
    fx.write_ai6126(tmp_path)
    attr = tmp_path / "split/val_attr.txt"
    attr.write_bytes(attr.read_bytes() + "caf\u00e9\n".encode("latin-1"))
    with pytest.raises(UserError, match=r"val_attr.txt:13: not UTF-8 \(byte 0xe9 at column 4\)"):
        read_split(_spec("fashion-ai6126", tmp_path), "val")


def test_keep_filters_and_holdout_keep_each_row_line(tmp_path):
    """Rows dropped by ``keep`` and by the holdout do not shift the lines of the rows that remain."""
    fx.write_utkface48(tmp_path / "data")
    toml = (REPO / "competition/utkface48.toml").read_text(encoding="utf-8")
    toml = toml.replace("holdout = 0.2\n", 'holdout = 0.2\nkeep = [{ column = "age", min = 21, max = 60 }]\n')
    (tmp_path / "keep.toml").write_text(toml, encoding="utf-8")
    spec = load_spec(tmp_path / "keep.toml", data_dir=tmp_path / "data")
    path = tmp_path / "data/age_gender.csv"
    table = read_split(spec, "train")
    row = len(table) - 1
    line = table.line(row)
    assert 21 <= float(path.read_text().splitlines()[line - 1].split(",")[0]) <= 60
    fields = path.read_text().splitlines()[line - 1].split(",")
    _set_line(path, line, ",".join([fields[0], fields[1], "7", *fields[3:]]))
    problems = _problems(spec)
    assert problems == [f"{path}:{line} [gender]: class 7 out of range 0..1"], problems
