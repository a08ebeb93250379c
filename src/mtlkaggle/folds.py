"""Stratified K-fold splits that respect every task at once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mtlkaggle.data.labels import LabelTable, read_split, task_matrix
from mtlkaggle.data.sources import ConcatSource
from mtlkaggle.errors import UserError
from mtlkaggle.io import write_csv_atomic
from mtlkaggle.readback import read_table
from mtlkaggle.spec import Spec

REGRESSION_BINS = 10


@dataclass(frozen=True)
class FoldConfig:
    """How to split: number of folds, seed, and an optional column of group ids."""

    n_splits: int = 5
    seed: int = 42
    group_column: str | None = None


def folds_path(spec: Spec, root: Path | None = None) -> Path:
    """Where ``mtlkaggle folds`` writes this competition's folds."""
    return (root or Path.cwd()) / "folds" / f"{spec.name}.csv"


def stratification_matrix(spec: Spec, table: LabelTable) -> np.ndarray:
    """One 0/1 column per class and label, plus quantile bins for each regression target."""
    blocks = [task_matrix(spec, table)]
    for task in spec.tasks:
        if task.kind == "regression":
            y = table.targets[task.name]
            bins = pd.qcut(y, q=min(REGRESSION_BINS, len(np.unique(y))), labels=False, duplicates="drop")
            bins = np.asarray(bins, dtype=np.int64)
            blocks.append(np.eye(bins.max() + 1, dtype=np.float32)[bins])
    return np.concatenate(blocks, axis=1)


def assign_folds(
    y: np.ndarray, n_splits: int, seed: int, single_multiclass: bool, groups: np.ndarray | None = None
) -> np.ndarray:
    """Fold number (0..n_splits-1) for each row of the 0/1 matrix ``y``.

    A single multiclass target uses scikit-learn's StratifiedKFold (StratifiedGroupKFold with
    groups); anything multi-label, or several tasks, uses iterative stratification
    (Sechidis et al. 2011) on the concatenated columns. With groups, each group's labels are
    merged (any row positive) and groups, not rows, are split, so a group never spans two folds.
    """
    from iterstrat.ml_stratifiers import MultilabelStratifiedKFold
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    n = len(y)
    if n < n_splits:
        raise UserError(f"cannot make {n_splits} folds from {n} rows; lower --n-splits")
    fold = np.full(n, -1, dtype=np.int64)
    if single_multiclass:
        classes = y.argmax(axis=1)
        if groups is None:
            splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
            splits = splitter.split(np.zeros(n), classes)
        else:
            splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
            splits = splitter.split(np.zeros(n), classes, groups)
        for k, (_, val) in enumerate(splits):
            fold[val] = k
        return fold
    splitter = MultilabelStratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    if groups is None:
        for k, (_, val) in enumerate(splitter.split(np.zeros(n), y)):
            fold[val] = k
        return fold
    codes, uniques = pd.factorize(groups)
    if len(uniques) < n_splits:
        raise UserError(f"cannot make {n_splits} folds from {len(uniques)} groups; lower --n-splits")
    group_y = np.zeros((len(uniques), y.shape[1]), dtype=np.float32)
    np.maximum.at(group_y, codes, y)
    group_fold = np.full(len(uniques), -1, dtype=np.int64)
    for k, (_, val) in enumerate(splitter.split(np.zeros(len(uniques)), group_y)):
        group_fold[val] = k
    return group_fold[codes]


def make_folds(spec: Spec, table: LabelTable, config: FoldConfig) -> pd.DataFrame:
    """Split the training rows into stratified folds.

    Args:
        spec: The competition (its tasks say what to stratify on).
        table: The labelled training rows.
        config: Number of folds, seed and optional group column.

    Returns:
        A frame with the id column and ``fold``, in the order of the label file.
    """
    y = stratification_matrix(spec, table)
    single = len(spec.tasks) == 1 and spec.tasks[0].kind == "multiclass"
    groups = None
    if config.group_column:
        from mtlkaggle.data.formats import read_csv_file

        raw = read_csv_file(spec, table.file)
        if config.group_column not in raw.frame.columns:
            raise UserError(
                f"{table.file}: no column '{config.group_column}' for --group-column; "
                f"columns are {list(raw.frame.columns)}"
            )
        by_line = dict(zip(raw.lines.tolist(), raw.frame[config.group_column], strict=True))
        groups = np.array([by_line[int(line)] for line in table.lines])  # rows kept by `keep` only
    fold = assign_folds(y, config.n_splits, config.seed, single, groups)
    return pd.DataFrame({spec.data.id_column: table.ids, "fold": fold})


def write_folds(frame: pd.DataFrame, path: Path) -> None:
    """Write the folds CSV atomically."""
    write_csv_atomic(path, frame)


def read_folds(spec: Spec, table: LabelTable, path: Path | None = None) -> np.ndarray:
    """Fold number for each row of ``table``, from the folds CSV; checks it matches the labels.

    The folds file is the truth about how many folds there are; ids it lacks, or holds but the
    label file does not, mean the labels changed since it was written.
    """
    path = path or folds_path(spec)
    redo = f"rerun `mtlkaggle folds {spec.name}`"
    if not path.is_file():
        raise UserError(f"{path}: no folds yet; run `mtlkaggle folds {spec.name}` first")
    frame = read_table(
        path,
        redo,
        [spec.data.id_column, "fold"],
        "folds file",
        dtype={spec.data.id_column: str},
        keep_default_na=False,
    )
    twice = frame[spec.data.id_column].duplicated()
    if twice.any():
        row = int(np.flatnonzero(twice)[0])
        value = frame[spec.data.id_column].iloc[row]
        raise UserError(f"{path}:{row + 2}: id '{value}' has a second fold; {redo}")
    folds = pd.to_numeric(frame["fold"], errors="coerce")
    if folds.isna().any() or (folds < 0).any() or (folds % 1 != 0).any():
        bad = int(np.flatnonzero(folds.isna() | (folds < 0) | (folds % 1 != 0))[0])
        raise UserError(f"{path}:{bad + 2}: fold '{frame['fold'].iloc[bad]}' is not a fold number; {redo}")
    lookup = dict(zip(frame[spec.data.id_column], folds.astype(int), strict=True))
    missing = [i for i in table.ids if i not in lookup]
    extra = sorted(set(lookup) - set(table.ids))
    for ids, what in ((missing, "training ids have no fold"), (extra, "ids are not in the label file")):
        if ids:
            shown = ", ".join(f"'{i}'" for i in ids[:3]) + (", ..." if len(ids) > 3 else "")
            raise UserError(f"{path}: {len(ids)} {what} ({shown}); the label file changed since: {redo}")
    return np.array([lookup[i] for i in table.ids], dtype=np.int64)


def fold_names(spec: Spec, fold: str) -> list[str]:
    """Expand ``--fold``: ``all`` (every fold of the folds file), a number, ``val`` or ``full``.

    ``val`` is the spec's fixed train/val split; ``full`` trains on every labelled row (no holdout).
    """
    if fold == "full":
        return ["full"]
    if fold == "val":
        if not spec.data.val:
            raise UserError(f"competition '{spec.name}' has no val file; use --fold K or --fold all")
        return ["val"]
    n_folds = int(read_folds(spec, read_split(spec, "train")).max()) + 1
    if fold == "all":
        return [str(k) for k in range(n_folds)]
    if fold.isdigit() and int(fold) < n_folds:
        return [str(int(fold))]
    raise UserError(
        f"--fold {fold}: expected 'all', 'val', 'full' or 0..{n_folds - 1} (the folds of {folds_path(spec)})"
    )


def split_fold(spec: Spec, fold: str) -> tuple[LabelTable, LabelTable]:
    """The training and validation rows of a fold.

    ``val``: the spec's train and val files. ``full``: every labelled row (train and val files)
    and an empty validation table.
    """
    train = read_split(spec, "train")
    if fold == "full":
        return _all_labelled(spec, train), train.subset(np.zeros(0, dtype=np.int64))
    if fold == "val":
        return train, read_split(spec, "val")
    assignment = read_folds(spec, train)
    k = int(fold)
    return train.subset(np.flatnonzero(assignment != k)), train.subset(np.flatnonzero(assignment == k))


def _all_labelled(spec: Spec, train: LabelTable) -> LabelTable:
    """The train rows plus the val file's rows, when the spec has one."""
    if not spec.data.val:
        return train
    val = read_split(spec, "val")
    return LabelTable(
        "full",
        train.file,
        np.concatenate([train.ids, val.ids]),
        [*train.paths, *val.paths],
        {k: np.concatenate([v, val.targets[k]]) for k, v in train.targets.items()},
        ConcatSource([train.source, val.source]),
    )


def fold_label_counts(spec: Spec, table: LabelTable, fold: np.ndarray) -> pd.DataFrame:
    """Rows and per-class/per-label positives in each fold (one row per fold, plus ideal share)."""
    y = task_matrix(spec, table)
    names = [f"{t.name}:{label}" for t in spec.tasks if t.kind != "regression" for label in t.label_names]
    rows = []
    for k in range(fold.max() + 1):
        mask = fold == k
        rows.append([k, int(mask.sum()), *y[mask].sum(axis=0).astype(int).tolist()])
    return pd.DataFrame(rows, columns=["fold", "rows", *names])
