"""Stratified K-fold splits that respect every task at once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mtlkaggle.data.labels import LabelTable, read_split, task_matrix
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
    y: np.ndarray, n_splits: int, seed: int, single_target: bool, groups: np.ndarray | None = None
) -> np.ndarray:
    """Fold number (0..n_splits-1) for each row of the 0/1 matrix ``y``.

    A single target column (``single_target``: the columns of ``y`` are the one-hot values of one
    target, e.g. one multiclass task or one binned regression; or ``y`` has one 0/1 column, e.g. one
    binary label) uses scikit-learn's StratifiedKFold (StratifiedGroupKFold with groups). Anything
    multi-label, or several tasks, uses iterative stratification (Sechidis et al. 2011) on the
    concatenated columns; with groups, each group's labels are merged (any row positive) and groups,
    not rows, are split. A group never spans two folds.

    Raises:
        UserError: too few rows or groups for ``n_splits`` folds.
    """
    n = len(y)
    if n < n_splits:
        raise UserError(f"cannot make {n_splits} folds from {n} rows; lower --n-splits")
    if groups is not None and len(pd.unique(groups)) < n_splits:
        count = len(pd.unique(groups))
        raise UserError(f"cannot make {n_splits} folds from {count} groups; lower --n-splits")
    if single_target or y.shape[1] <= 1:
        target = y.argmax(axis=1) if y.shape[1] > 1 else y.reshape(n, -1)[:, 0].astype(np.int64)
        return _stratified_single(target, n_splits, seed, groups)
    return _stratified_multilabel(y, n_splits, seed, groups)


def _stratified_single(target: np.ndarray, n_splits: int, seed: int, groups: np.ndarray | None) -> np.ndarray:
    import warnings

    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    fold = np.full(len(target), -1, dtype=np.int64)
    if groups is None:
        splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    else:
        splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # "least populated class has only k members": checked after
        warnings.simplefilter("ignore", UserWarning)
        try:
            for k, (_, val) in enumerate(splitter.split(np.zeros(len(target)), target, groups)):
                fold[val] = k
        except ValueError as e:
            raise UserError(f"cannot make {n_splits} stratified folds: {e}; lower --n-splits") from None
    return fold


def _stratified_multilabel(y: np.ndarray, n_splits: int, seed: int, groups: np.ndarray | None) -> np.ndarray:
    from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

    splitter = MultilabelStratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    if groups is None:
        codes, rows_y = np.arange(len(y)), y
    else:
        codes, uniques = pd.factorize(groups)
        rows_y = np.zeros((len(uniques), y.shape[1]), dtype=np.float32)
        np.maximum.at(rows_y, codes, y)
    unit_fold = np.full(len(rows_y), -1, dtype=np.int64)
    for k, (_, val) in enumerate(splitter.split(np.zeros(len(rows_y)), rows_y)):
        unit_fold[val] = k
    return unit_fold[codes]


def _binary_targets(spec: Spec, table: LabelTable) -> dict[str, tuple[np.ndarray, list[str]]]:
    """Tasks with two outcomes (a 2-class multiclass, a one-column 0/1 task): their 0/1 column and
    the names of its outcomes (0, 1)."""
    out = {}
    for task in spec.tasks:
        y = np.asarray(table.targets[task.name])
        if task.kind == "multiclass" and task.size == 2:
            out[task.name] = (y.astype(np.int64), task.label_names)
        elif task.kind not in ("multiclass", "regression") and y.reshape(len(y), -1).shape[1] == 1:
            label = task.label_names[0]
            out[task.name] = (y.reshape(len(y), -1)[:, 0].astype(np.int64), [f"not {label}", label])
    return out


def _check_binary_folds(
    spec: Spec, table: LabelTable, fold: np.ndarray, config: FoldConfig, groups: np.ndarray | None
) -> None:
    """Every fold must hold both outcomes of each two-outcome task (its validation score needs them)."""
    n_splits = int(fold.max()) + 1
    for name, (y, outcomes) in _binary_targets(spec, table).items():
        for value in (1, 0):
            empty = [k for k in range(n_splits) if not (y[fold == k] == value).any()]
            if not empty:
                continue
            why = f"{int((y == value).sum())} such row(s)"
            if groups is not None:
                holders = len(pd.unique(groups[y == value]))
                why += f" in {holders} group(s) of '{config.group_column}'"
            raise UserError(
                f"task '{name}': fold {empty[0]} would get no '{outcomes[value]}' row ({why}, "
                f"{n_splits} folds); lower --n-splits or add such rows"
            )


def make_folds(spec: Spec, table: LabelTable, config: FoldConfig) -> pd.DataFrame:
    """Split the training rows into stratified folds.

    Args:
        spec: The competition (its tasks say what to stratify on).
        table: The labelled training rows.
        config: Number of folds, seed and optional group column (``data.group_column`` is passed
            here by the CLI unless overridden).

    Returns:
        A frame with the id column and ``fold``, in the order of the label file, plus the group
        column when grouped (so ``train`` can tell how the folds were made).

    Raises:
        UserError: too few rows or groups, an unknown group column, or a two-outcome task whose
            rarer outcome cannot reach every fold.
    """
    y = stratification_matrix(spec, table)
    single = len(spec.tasks) == 1 and (spec.tasks[0].kind in ("multiclass", "regression") or y.shape[1] == 1)
    groups = _groups(spec, table, config.group_column) if config.group_column else None
    fold = assign_folds(y, config.n_splits, config.seed, single, groups)
    _check_binary_folds(spec, table, fold, config, groups)
    frame = pd.DataFrame({spec.data.id_column: table.ids, "fold": fold})
    if groups is not None and config.group_column not in frame.columns:
        frame[config.group_column] = groups
    return frame


def _groups(spec: Spec, table: LabelTable, column: str) -> np.ndarray:
    """The group of each row of ``table``, from the same rows of the training file."""
    from mtlkaggle.data.labels import read_rows

    raw = read_rows(spec, "train", labelled=True)
    if column not in raw.frame.columns:
        source = "data.group_column" if column == spec.data.group_column else "--group-column"
        raise UserError(
            f"{raw.file}: no column '{column}' for {source}; columns are {list(raw.frame.columns)}"
        )
    groups = raw.frame[column].to_numpy(dtype=object)
    if len(groups) != len(table):  # the rows the label table was built from, in the same order
        raise UserError(f"{raw.file}: the file changed while reading it; run `mtlkaggle folds` again")
    return groups


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
    _check_grouping(spec, frame, path, redo)
    lookup = dict(zip(frame[spec.data.id_column], folds.astype(int), strict=True))
    missing = [i for i in table.ids if i not in lookup]
    extra = sorted(set(lookup) - set(table.ids))
    for ids, what in ((missing, "training ids have no fold"), (extra, "ids are not in the label file")):
        if ids:
            shown = ", ".join(f"'{i}'" for i in ids[:3]) + (", ..." if len(ids) > 3 else "")
            raise UserError(f"{path}: {len(ids)} {what} ({shown}); the label file changed since: {redo}")
    return np.array([lookup[i] for i in table.ids], dtype=np.int64)


def _check_grouping(spec: Spec, frame: pd.DataFrame, path: Path, redo: str) -> None:
    """The folds file's third column names the groups it was made with; they must be the spec's."""
    extra = [c for c in frame.columns if c not in (spec.data.id_column, "fold")]
    made_by, wanted = (extra[0] if extra else None), spec.data.group_column
    if wanted and made_by != wanted and wanted != spec.data.id_column:
        how = f"grouped by '{made_by}'" if made_by else "without groups"
        raise UserError(f"{path}: made {how}, but data.group_column is '{wanted}'; {redo}")
    if made_by:
        spans = frame.groupby(made_by)["fold"].nunique()
        if (spans > 1).any():
            raise UserError(f"{path}: group '{spans[spans > 1].index[0]}' spans several folds; {redo}")


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
        None if train.images is None else np.concatenate([train.images, val.images]),
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
