import os

import pandas as pd
import pytest

from mtlkaggle.io import atomic_path, write_csv_atomic, write_json_atomic, write_text_atomic


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "out.csv"
    path.write_text("old\n")
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert path.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


def test_writes_replace_and_get_normal_permissions(tmp_path):
    write_text_atomic(tmp_path / "a/b.txt", "x\n")
    write_json_atomic(tmp_path / "c.json", {"k": [1, 2]})
    write_csv_atomic(tmp_path / "d.csv", pd.DataFrame({"a": [1]}))
    assert (tmp_path / "a/b.txt").read_text() == "x\n"
    assert (tmp_path / "c.json").read_text() == '{\n  "k": [\n    1,\n    2\n  ]\n}\n'
    assert (tmp_path / "d.csv").read_text() == "a\n1\n"
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "d.csv").stat().st_mode & 0o777 == 0o666 & ~mask
