"""``mtlkaggle notebook``: a valid .ipynb that installs the wheel offline and writes submission.csv."""

from __future__ import annotations

import json

import nbformat
import pytest

from mtlkaggle.cli import app
from mtlkaggle.errors import UserError
from mtlkaggle.notebook import BundleSource, NotebookOptions, write_notebook
from mtlkaggle.spec import load_spec


def _code(path) -> list[str]:
    return [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def test_notebook_is_valid_and_names_the_datasets(workspace, runner):
    result = runner.invoke(app, ["notebook", "demo", "--bundle-dataset", "alice/demo-bundle"])
    assert result.exit_code == 0, result.output
    path = workspace / "demo-inference.ipynb"
    nbformat.validate(nbformat.read(path, as_version=4))
    paths, find, install, predict, copy = _code(path)
    scope: dict = {}
    exec(paths, scope)  # noqa: S102 - our own generated cell: constants only
    assert (scope["INPUT"], scope["WORKING"], scope["PIP_TARGET"]) == (
        "/kaggle/input",
        "/kaggle/working",
        None,
    )
    assert scope["BUNDLE_AT"][0] == "demo-bundle" and scope["TEST_FILE"] == "test.csv"
    assert scope["DATA_AT"][0] == "deepfashion-category-prediction"  # the spec's Kaggle slug
    assert '"--no-index", "--no-deps"' in install and "mtlkaggle-*.whl" in install
    assert '"--competition-files"' in predict and '"--tta"' in predict
    assert '"category.csv"' in copy and "submission.csv" in copy
    result = runner.invoke(app, ["notebook", "demo", "--bundle-dataset", "alice"])
    assert result.exit_code == 2 and "expected OWNER/SLUG" in result.output


def test_spec_without_submissions_is_refused(workspace, tmp_path):
    spec = load_spec("demo").model_copy(update={"submissions": []})
    with pytest.raises(UserError, match="names no submission files"):
        write_notebook(spec, NotebookOptions("alice/demo-bundle", tmp_path / "n.ipynb"))


def _find_scope(spec, source: BundleSource, root) -> dict:
    """The paths and find cells run with INPUT at ``root``."""
    path = write_notebook(spec, NotebookOptions(source, root.parent / "n.ipynb", input_root=str(root)))
    paths, find = _code(path)[:2]
    scope: dict = {}
    exec(paths, scope)  # noqa: S102 - our own generated cells
    exec(find, scope)  # noqa: S102
    return scope


def test_notebook_finds_the_bundle_and_data_where_kaggle_mounts_them(workspace, tmp_path):
    spec = load_spec("demo")
    root = tmp_path / "input"
    # the usual places: /kaggle/input/SLUG and /kaggle/input/COMPETITION
    for folder, marker in (("demo-bundle", "bundle.json"), ("deepfashion-category-prediction", "test.csv")):
        (root / folder).mkdir(parents=True)
        (root / folder / marker).write_text("x")
    scope = _find_scope(spec, BundleSource("dataset", "alice/demo-bundle"), root)
    assert (scope["BUNDLE"], scope["DATA"]) == (
        str(root / "demo-bundle"),
        str(root / "deepfashion-category-prediction"),
    )
    # a model version mounted elsewhere, data under a competitions/ folder: found by their files
    other = tmp_path / "other"
    (other / "models/alice/demo-bundle/pytorch/main/3").mkdir(parents=True)
    (other / "models/alice/demo-bundle/pytorch/main/3/bundle.json").write_text("x")
    (other / "competitions/deepfashion-category-prediction").mkdir(parents=True)
    (other / "competitions/deepfashion-category-prediction/test.csv").write_text("x")
    (other / "unrelated").mkdir()
    scope = _find_scope(spec, BundleSource("model", "alice/demo-bundle/pyTorch/main/3"), other)
    assert scope["BUNDLE"] == str(other / "models/alice/demo-bundle/pytorch/main/3")
    assert scope["DATA"] == str(other / "competitions/deepfashion-category-prediction")
    (other / "competitions/deepfashion-category-prediction/test.csv").unlink()
    with pytest.raises(FileNotFoundError, match="no test.csv under .*: attach the competition"):
        _find_scope(spec, BundleSource("model", "alice/demo-bundle/pyTorch/main/3"), other)


@pytest.mark.slow
def test_notebook_cells_write_submission_csv(exported_demo, tmp_path, monkeypatch):
    """Run the notebook's cells (all but the pip install) with the Kaggle paths pointed here."""
    monkeypatch.chdir(tmp_path)
    path = write_notebook(exported_demo.spec, NotebookOptions("alice/demo-bundle", tmp_path / "n.ipynb"))
    _, _, _, predict, copy = _code(path)
    working = tmp_path / "working"
    working.mkdir()
    scope = {
        "PIP_TARGET": None,
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
