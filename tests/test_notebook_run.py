"""``notebook --run-local``: the generated notebook executed in a real Jupyter kernel against a
/kaggle/input-like folder; its submission.csv equals ``predict --bundle --competition-files``, and
the Python that runs it is left as it was (the wheel goes into the run folder)."""

from __future__ import annotations

import sysconfig
from pathlib import Path

import nbformat
import pytest

from mtlkaggle.cli import app


def _site_packages() -> dict[str, int]:
    """Every entry of this Python's site-packages with its modification time."""
    root = Path(sysconfig.get_paths()["purelib"])
    return {p.name: p.stat().st_mtime_ns for p in root.iterdir()}


@pytest.mark.slow
def test_run_local_leaves_the_submission_of_predict_bundle(exported_demo, tmp_path, monkeypatch, runner):
    monkeypatch.chdir(exported_demo.root)  # competition/demo.toml; nothing is written here
    data = exported_demo.root / "data/demo"
    before = _site_packages()
    args = ["notebook", "demo", "--bundle-dataset", "alice/demo-bundle", "--run-local"]
    args += [
        "--bundle",
        str(exported_demo.bundle),
        "--data-dir",
        str(data),
        "--out-dir",
        str(tmp_path / "run"),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    submission = tmp_path / "run/working/submission.csv"
    assert f"ok: {submission}" in result.output.replace("\n", "")
    assert "24 rows, ids as in test.csv" in result.output and "peak memory" in result.output

    reference = ["predict", "--bundle", str(exported_demo.bundle), "--competition-files", "--tta"]
    reference += ["--data-dir", str(data), "--out-dir", str(tmp_path / "reference")]
    assert runner.invoke(app, reference).exit_code == 0
    assert submission.read_bytes() == (tmp_path / "reference/category.csv").read_bytes()

    assert _site_packages() == before  # nothing installed into the Python running the tests
    installed = tmp_path / "run/site-packages"
    assert (installed / "mtlkaggle/__init__.py").is_file()  # the bundle's wheel went here instead
    executed = nbformat.read(tmp_path / "run/demo-local.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for c in executed.cells for o in c.get("outputs", []))
    assert f"bundle: {tmp_path / 'run/input/demo-bundle'}" in printed  # found where Kaggle mounts it
    assert (tmp_path / "run/input/demo-bundle").resolve() == exported_demo.bundle.resolve()


@pytest.mark.slow
def test_run_local_failure_shows_the_failing_cell_and_exits_1(exported_demo, tmp_path, monkeypatch, runner):
    monkeypatch.chdir(exported_demo.root)
    empty = tmp_path / "no-data"
    empty.mkdir()
    args = ["notebook", "demo", "--bundle-dataset", "alice/demo-bundle", "--run-local"]
    args += [
        "--bundle",
        str(exported_demo.bundle),
        "--data-dir",
        str(empty),
        "--out-dir",
        str(tmp_path / "run"),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert (
        "FileNotFoundError: no test.csv under" in result.output and "attach the competition" in result.output
    )
    assert "the notebook failed locally after" in result.output
    assert not (tmp_path / "run/working/submission.csv").exists()
    assert (tmp_path / "run/demo-local.ipynb").is_file()  # the executed notebook, for a look
