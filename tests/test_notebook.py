"""``mtlkaggle notebook``: a valid .ipynb that installs the wheel offline and writes submission.csv."""

from __future__ import annotations

import json

import nbformat
import pytest

from mtlkaggle.cli import app
from mtlkaggle.errors import UserError
from mtlkaggle.notebook import NotebookOptions, write_notebook
from mtlkaggle.spec import load_spec


def _code(path) -> list[str]:
    return [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def test_notebook_is_valid_and_names_the_datasets(workspace, runner):
    result = runner.invoke(app, ["notebook", "demo", "--bundle-dataset", "alice/demo-bundle"])
    assert result.exit_code == 0, result.output
    path = workspace / "demo-inference.ipynb"
    nbformat.validate(nbformat.read(path, as_version=4))
    paths, install, predict, copy = _code(path)
    assert 'BUNDLE = "/kaggle/input/demo-bundle"' in paths
    assert 'DATA = "/kaggle/input/deepfashion-category-prediction"' in paths  # the spec's Kaggle slug
    assert '"--no-index", "--no-deps"' in install and "mtlkaggle-*.whl" in install
    assert '"--competition-files"' in predict and '"--tta"' in predict
    assert '"category.csv"' in copy and "submission.csv" in copy
    result = runner.invoke(app, ["notebook", "demo", "--bundle-dataset", "alice"])
    assert result.exit_code == 2 and "expected OWNER/SLUG" in result.output


def test_spec_without_submissions_is_refused(workspace, tmp_path):
    spec = load_spec("demo").model_copy(update={"submissions": []})
    with pytest.raises(UserError, match="names no submission files"):
        write_notebook(spec, NotebookOptions("alice/demo-bundle", tmp_path / "n.ipynb"))


@pytest.mark.slow
def test_notebook_cells_write_submission_csv(exported_demo, tmp_path, monkeypatch):
    """Run the notebook's cells (all but the pip install) with the Kaggle paths pointed here."""
    monkeypatch.chdir(tmp_path)
    path = write_notebook(exported_demo.spec, NotebookOptions("alice/demo-bundle", tmp_path / "n.ipynb"))
    _, _, predict, copy = _code(path)
    working = tmp_path / "working"
    working.mkdir()
    scope = {
        "BUNDLE": str(exported_demo.bundle),
        "DATA": str(exported_demo.root / "data/demo"),
        "WORKING": str(working),
    }
    exec(predict, scope)  # noqa: S102 - our own generated cell
    exec(copy, scope)  # noqa: S102
    submission = (working / "submission.csv").read_text().splitlines()
    assert submission[0] == "file_path,category_label" and len(submission) == 25
    assert (working / "attribute.csv").is_file()
    assert json.loads((exported_demo.bundle / "bundle.json").read_text())["name"] == "demo"
