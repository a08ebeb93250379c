"""`mtlkaggle folds` for every task kind, grouped and not, including a rare binary target (~2%
positives): folds are written with both outcomes in every fold, or one line says why not; the folds
file records its grouping and `train` refuses one not grouped as the spec says."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mtlkaggle.cli import app
from mtlkaggle.data import read_split
from mtlkaggle.errors import UserError
from mtlkaggle.folds import FoldConfig, make_folds, read_folds, write_folds
from mtlkaggle.spec import load_spec

N, PATIENTS = 500, 100
LABELS = [f"finding {k}" for k in range(5)]

TASKS = {
    "multiclass": '[[tasks]]\nname = "grade"\nkind = "multiclass"\ncolumn = "grade"\nnum_classes = 4\n',
    "binary 2-class": '[[tasks]]\nname = "rare"\nkind = "multiclass"\ncolumn = "rare"\nnum_classes = 2\n',
    "one label": '[[tasks]]\nname = "rare"\nkind = "multilabel"\nencoding = "columns"\ncolumns = ["rare"]\n',
    "multilabel": f'[[tasks]]\nname = "findings"\nkind = "multilabel"\nencoding = "columns"\n'
    f"columns = {LABELS}\n",
    "regression": '[[tasks]]\nname = "age"\nkind = "regression"\ncolumn = "age"\n',
}
TASKS["several"] = TASKS["multiclass"] + TASKS["multilabel"] + TASKS["regression"] + TASKS["binary 2-class"]
BINARY = {"binary 2-class", "one label", "several"}


def _write(root, tasks: str, group: bool, positives: np.ndarray) -> str:
    """train.csv (written by pandas) with every kind's columns, and a competition file."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "image_id": [f"ISIC_{i:07d}" for i in range(N)],
            "patient_id": [f"IP_{i // 5:04d}" for i in range(N)],  # rows 5k..5k+4: one patient
            "grade": rng.choice(4, N, p=[0.55, 0.25, 0.15, 0.05]),
            "rare": np.isin(np.arange(N), positives).astype(int),
            "age": rng.normal(55, 15, N).round(1),
        }
    )
    for k, name in enumerate(LABELS):
        frame[name] = (rng.random(N) < 0.04 + 0.1 * k).astype(int)
    frame.to_csv(root / "train.csv", index=False)
    grouping = 'group_column = "patient_id"\n' if group else ""
    text = (
        f'name = "kinds"\ndata_dir = "{root.as_posix()}"\n'
        f'[data]\ntrain = "train.csv"\nid_column = "image_id"\nimage_column = "image_id"\n{grouping}'
        f"{tasks}"
    )
    path = root / "kinds.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("group", [False, True], ids=["ungrouped", "grouped"])
@pytest.mark.parametrize("kind", list(TASKS))
def test_folds_for_every_kind(kind, group, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    positives = np.arange(0, N, 50)  # 10 of 500 rows: 2%, in 10 different patients when grouped
    comp = _write(tmp_path, TASKS[kind], group, positives)
    result = CliRunner().invoke(app, ["folds", comp, "--n-splits", "5"])
    assert result.exit_code == 0, result.output
    folds = pd.read_csv(tmp_path / "folds/kinds.csv")
    train = pd.read_csv(tmp_path / "train.csv")
    assert folds["image_id"].tolist() == train["image_id"].tolist()
    assert sorted(folds["fold"].unique()) == [0, 1, 2, 3, 4]
    if group:
        assert list(folds.columns) == ["image_id", "fold", "patient_id"]
        assert (folds.groupby("patient_id")["fold"].nunique() == 1).all()
    if kind in BINARY:
        per_fold = train["rare"].groupby(folds["fold"]).sum()
        assert (per_fold >= 1).all() and per_fold.sum() == 10
    if kind == "multiclass" and not group:  # exact stratification of one target column
        counts = pd.crosstab(folds["fold"], train["grade"])
        assert (counts.max() - counts.min() <= 1).all()
    spec = load_spec(comp)
    assert len(read_folds(spec, read_split(spec, "train"), tmp_path / "folds/kinds.csv")) == N


@pytest.mark.parametrize("group", [False, True], ids=["ungrouped", "grouped"])
@pytest.mark.parametrize("kind", ["binary 2-class", "one label"])
def test_too_few_positives_is_one_line(kind, group, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    positives = np.array([0, 1, 2, 3, 4, 5]) if group else np.array([7, 90, 300])
    comp = _write(tmp_path, TASKS[kind], group, positives)  # grouped: 6 rows in at most 2 patients
    result = CliRunner().invoke(app, ["folds", comp, "--n-splits", "5"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "task 'rare': fold" in result.output and "lower --n-splits" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert ("group(s) of 'patient_id'" in result.output) == group
    assert not (tmp_path / "folds/kinds.csv").exists()


def test_too_few_groups_is_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    comp = _write(tmp_path, TASKS["regression"], True, np.arange(10))
    result = CliRunner().invoke(app, ["folds", comp, "--n-splits", "5", "--group-column", "grade"])
    assert result.exit_code == 2 and "cannot make 5 folds from 4 groups" in result.output


def test_train_refuses_folds_not_grouped_as_the_spec_says(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = load_spec(_write(tmp_path, TASKS["multiclass"], True, np.arange(10)))
    table = read_split(spec, "train")
    path = tmp_path / "folds.csv"
    write_folds(make_folds(spec, table, FoldConfig(4)), path)
    with pytest.raises(UserError, match="made without groups, but data.group_column is 'patient_id'; rerun"):
        read_folds(spec, table, path)
    write_folds(make_folds(spec, table, FoldConfig(4, group_column="grade")), path)
    with pytest.raises(UserError, match="grouped by 'grade', but data.group_column is 'patient_id'"):
        read_folds(spec, table, path)
    frame = make_folds(spec, table, FoldConfig(4, group_column="patient_id"))
    write_folds(frame, path)
    assert (read_folds(spec, table, path) == frame["fold"].to_numpy()).all()
    frame.loc[0, "fold"] = (frame.loc[0, "fold"] + 1) % 4  # one row of a patient moved to another fold
    write_folds(frame, path)
    with pytest.raises(UserError, match=r"group 'IP_\d+' spans several folds"):
        read_folds(spec, table, path)


def test_group_column_override_and_unknown_column(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    comp = _write(tmp_path, TASKS["multilabel"], False, np.arange(10))
    result = CliRunner().invoke(app, ["folds", comp, "--n-splits", "4", "--group-column", "patient_id"])
    assert result.exit_code == 0, result.output
    assert "grouped by 'patient_id'" in result.output
    assert (pd.read_csv(tmp_path / "folds/kinds.csv").groupby("patient_id")["fold"].nunique() == 1).all()
    result = CliRunner().invoke(app, ["folds", comp, "--group-column", "hospital"])
    assert result.exit_code == 2 and "no column 'hospital' for --group-column" in result.output


EDGE_TASKS = {
    "multiclass": {"name": "m", "kind": "multiclass", "column": "m", "num_classes": 3},
    "2-class": {"name": "b", "kind": "multiclass", "column": "b", "num_classes": 2},
    "one label": {"name": "o", "kind": "multilabel", "encoding": "columns", "columns": ["o"]},
    "multilabel": {"name": "l", "kind": "multilabel", "column": "l", "num_classes": 4},
    "regression": {"name": "r", "kind": "regression", "column": "r"},
}


@pytest.mark.parametrize("mode", ["balanced", "rare", "constant"])
@pytest.mark.parametrize("n", [7, 60])
def test_no_fold_configuration_raises_anything_but_one_line(n, mode, tmp_path):
    """Tiny, rare and constant targets of every kind, alone and together, grouped or not, 2 or 5
    folds: either every fold gets rows, or a one-line UserError says why."""
    from mtlkaggle.spec import Spec

    rng = np.random.default_rng(n)
    rate = {"balanced": 0.5, "rare": 0.02, "constant": 0.0}[mode]
    frame = pd.DataFrame(
        {
            "id": [f"r{i}" for i in range(n)],
            "grp": [f"g{i // 4}" for i in range(n)],
            "m": rng.integers(0, 3, n) * (mode != "constant"),
            "b": (rng.random(n) < rate).astype(int),
            "o": (rng.random(n) < rate).astype(int),
            "l": [" ".join(str(k) for k in range(4) if rng.random() < rate) for _ in range(n)],
            "r": rng.normal(size=n).round(3) * (mode != "constant"),
        }
    )
    frame.to_csv(tmp_path / "t.csv", index=False)
    combos = [[k] for k in EDGE_TASKS] + [
        ["multiclass", "regression"],
        ["2-class", "multilabel", "regression"],
    ]
    outcomes = []
    for combo in combos:
        spec = Spec.model_validate(
            {
                "name": "edge",
                "data_dir": str(tmp_path),
                "data": {"train": "t.csv", "id_column": "id", "image_column": "id"},
                "tasks": [EDGE_TASKS[k] for k in combo],
            }
        )
        table = read_split(spec, "train")
        for k in (2, 5):
            for group in (None, "grp"):
                try:
                    fold = make_folds(spec, table, FoldConfig(k, 0, group))["fold"]
                except UserError as e:
                    assert "\n" not in str(e)
                    outcomes.append("error")
                    continue
                assert sorted(fold.unique()) == list(range(k)), (combo, k, group)
                if group:
                    assert (fold.groupby(frame["grp"]).nunique() == 1).all()
                outcomes.append("folds")
    assert "folds" in outcomes
    if mode == "balanced" and n == 60:
        assert set(outcomes) == {"folds"}


def test_check_reports_a_missing_group_column(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    comp = _write(tmp_path, TASKS["multiclass"], True, np.arange(10))
    pd.read_csv(tmp_path / "train.csv").drop(columns=["patient_id"]).to_csv(
        tmp_path / "train.csv", index=False
    )
    result = CliRunner().invoke(app, ["check", comp, "--no-images"])
    assert result.exit_code == 1 and "missing column(s) ['patient_id']" in result.output


def test_train_command_stops_at_an_ungrouped_folds_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    comp = _write(tmp_path, TASKS["multiclass"], True, np.arange(10))
    spec = load_spec(comp)
    (tmp_path / "folds").mkdir()
    write_folds(make_folds(spec, read_split(spec, "train"), FoldConfig(5)), tmp_path / "folds/kinds.csv")
    result = CliRunner().invoke(app, ["train", comp, "--fold", "0", "--epochs", "1"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert (
        "made without groups, but data.group_column is 'patient_id'; rerun `mtlkaggle folds kinds`"
        in result.output
    )
