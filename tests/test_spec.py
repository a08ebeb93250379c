from pathlib import Path

import pytest

from mtlkaggle.errors import UserError
from mtlkaggle.spec import load_spec

from .conftest import REPO, write_toml

VALID = """
name = "toy"
data_dir = "data/toy"
[data]
train = "train.csv"
id_column = "id"
image_column = "path"
[[tasks]]
name = "kind"
kind = "multiclass"
column = "label"
num_classes = 3
[[tasks]]
name = "tags"
kind = "multilabel"
columns = ["a", "b"]
encoding = "columns"
[[tasks]]
name = "age"
kind = "regression"
column = "age"
loss = "l1"
[[submissions]]
file = "sub.csv"
id_column = "id"
columns = { label = "kind", age = "age" }
"""


@pytest.mark.parametrize("name", ["deepfashion", "demo"])
def test_shipped_specs_load(name, monkeypatch):
    monkeypatch.chdir(REPO)
    spec = load_spec(name)
    assert [t.kind for t in spec.tasks] == ["multiclass", "multilabel"]
    assert [t.size for t in spec.tasks] == [10, 15]
    assert [s.file for s in spec.submissions] == ["category.csv", "attribute.csv"]
    assert spec.tasks[1].resolved_metrics[0] == "mean_f1"


def test_deepfashion_submission_columns(monkeypatch):
    monkeypatch.chdir(REPO)
    spec = load_spec("deepfashion")
    cat, attr = spec.submissions
    assert (cat.id_column, list(cat.columns)) == ("file_path", ["category_label"])
    assert (attr.id_column, list(attr.columns)) == ("file_path", ["attribute_label"])
    assert cat.kaggle != attr.kaggle and cat.header and cat.sep == ","


def test_valid_spec_with_defaults(tmp_path):
    spec = load_spec(write_toml(tmp_path / "toy.toml", VALID))
    assert spec.task("tags").size == 2 and spec.task("tags").label_names == ["a", "b"]
    assert spec.task("age").resolved_loss == "l1" and spec.task("kind").resolved_loss == "ce"
    assert spec.task("kind").resolved_metrics == ["accuracy"]
    assert spec.train.backbone == "efficientnet_lite0"


def test_data_dir_override(tmp_path):
    spec = load_spec(write_toml(tmp_path / "toy.toml", VALID), data_dir=tmp_path / "elsewhere")
    assert spec.data_path == tmp_path / "elsewhere"


@pytest.mark.parametrize(
    ("old", "new", "fragments"),
    [
        ("num_classes = 3", "num_classes = 0", ["tasks['kind'].num_classes", "greater than or equal to 1"]),
        ('column = "label"\nnum_classes = 3', "num_classes = 3", ["tasks['kind']", "needs 'column'"]),
        ('kind = "multiclass"', 'kind = "ordinal"', ["tasks['kind'].kind", "multiclass"]),
        ('loss = "l1"', 'loss = "ce"', ["tasks['age']", "l1"]),
        (
            'image_column = "path"',
            'image_column = "path"\nimage_colum = "p"',
            ["data.image_colum", "Extra inputs"],
        ),
        ('id_column = "id"\n', "", ["data.id_column", "Field required"]),
        ('age = "age" }', 'age = "height" }', ["unknown task", "height"]),
        ('name = "toy"', 'name = "toy"\nmonitor = "kind/mae"', ["monitor", "kind/mae"]),
        ('encoding = "columns"', 'encoding = "index"', ["tasks['tags']", "encoding"]),
        (
            'data_dir = "data/toy"',
            'data_dir = "data/toy"\n[predict]\ntta = ["hflip", "spin"]',
            ["predict.tta", "unknown view 'spin'; valid views: identity, hflip"],
        ),
    ],
)
def test_invalid_spec_names_file_and_field(tmp_path, old, new, fragments):
    assert old in VALID
    path = write_toml(tmp_path / "bad.toml", VALID.replace(old, new, 1))
    with pytest.raises(UserError) as info:
        load_spec(path)
    message = str(info.value)
    assert message.startswith(str(path))
    for fragment in fragments:
        assert fragment in message
    assert "\n" not in message


def test_invalid_toml_syntax(tmp_path):
    path = write_toml(tmp_path / "broken.toml", "name = \n")
    with pytest.raises(UserError, match="not valid TOML"):
        load_spec(path)


def test_unknown_competition_lists_known(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    with pytest.raises(UserError, match="unknown competition 'nope'.*deepfashion"):
        load_spec("nope")
    with pytest.raises(UserError, match="not found"):
        load_spec(str(Path(tmp_path) / "missing.toml"))
