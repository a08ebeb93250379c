import hashlib

import numpy as np
import pandas as pd

from mtlkaggle.data import read_split
from mtlkaggle.demo import ATTRIBUTES, CATEGORIES, DemoConfig, make_demo
from mtlkaggle.spec import load_spec

from .conftest import REPO


def _digest(root):
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file():
            h.update(path.relative_to(root).as_posix().encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def _draw(tmp_path, name, seed, n_train=30):
    spec = load_spec(REPO / "competition" / "demo.toml", data_dir=tmp_path / name)
    make_demo(spec, DemoConfig(n_train=n_train, n_test=6, image_size=32, seed=seed))
    return spec


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    _draw(tmp_path, "a", seed=1)
    _draw(tmp_path, "b", seed=1)
    _draw(tmp_path, "c", seed=2)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")


def test_files_follow_the_deepfashion_format(tmp_path):
    spec = _draw(tmp_path, "d", seed=0)
    train = pd.read_csv(spec.data_path / "train.csv", dtype=str, keep_default_na=False)
    test = pd.read_csv(spec.data_path / "test.csv", dtype=str, keep_default_na=False)
    labels = pd.read_csv(spec.data_path / "test_labels.csv", dtype=str, keep_default_na=False)
    assert list(train.columns) == ["file_path", "category_label", "attribute_label"]
    assert list(test.columns) == ["file_path"]  # the test file carries no labels
    assert list(labels["file_path"]) == list(test["file_path"])
    for value in train["attribute_label"]:
        indices = [int(t) for t in value.split()]
        assert indices == sorted(set(indices)) and all(0 <= k < 15 for k in indices)
    table = read_split(spec, "train")
    assert all(p.is_file() for p in table.paths)


def test_labels_cover_every_class_and_attributes_independent_of_category(tmp_path):
    spec = _draw(tmp_path, "e", seed=0, n_train=600)
    table = read_split(spec, "train")
    cat, attr = table.targets["category"], table.targets["attribute"]
    assert set(cat) == set(range(len(CATEGORIES)))
    rates = attr.mean(axis=0)
    assert ((rates > 0.08) & (rates < 0.65)).all(), rates
    # attributes are drawn independently of the category: per-category rates stay near the overall
    # rate (600 rows / 10 categories ~ 60 per category: binomial sd <= 0.065, so 0.25 is ~4 sd)
    for k in range(len(CATEGORIES)):
        assert np.abs(attr[cat == k].mean(axis=0) - rates).max() < 0.25
    assert len(ATTRIBUTES) == 15
