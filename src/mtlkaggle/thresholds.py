"""Decisions tuned on out-of-fold predictions (never on the test set), per task, by its primary
metric: per-label thresholds for F-beta and accuracy (multi-label, binary; the exact search is in
:mod:`mtlkaggle.threshold_search`), cut points for quadratic weighted kappa (multiclass expected
class or regression value; :mod:`mtlkaggle.cut_points`). Probabilistic metrics (AUC, pAUC, log
loss) need no decision: probabilities go out.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mtlkaggle.cut_points import kappa_with_labels, tune_cuts
from mtlkaggle.errors import UserError
from mtlkaggle.io import write_json_atomic
from mtlkaggle.metrics import decide, default_cuts, expected_class, score_metric, to_classes, uses_cuts
from mtlkaggle.paths import RunLayout
from mtlkaggle.probabilities import probability_columns, task_probabilities, with_named_columns
from mtlkaggle.readback import numeric_columns, read_json_object, read_table
from mtlkaggle.spec import PROBABILISTIC, Spec, TaskSpec
from mtlkaggle.threshold_search import (
    F_METRICS,
    TUNABLE,
    ThresholdResult,
    apply_thresholds,
    candidate_grid,
    score_labels,
    tune_global,
    tune_thresholds,
)

__all__ = [
    "F_METRICS",
    "TUNABLE",
    "ThresholdResult",
    "apply_thresholds",
    "candidate_grid",
    "collect_oof",
    "load_thresholds",
    "read_thresholds_file",
    "score_labels",
    "tune_global",
    "tune_probabilities",
    "tune_run",
    "tune_task",
    "tuned_tasks",
    "tune_thresholds",
]


# ---------------------------------------------------------------- the `tune` stage


def collect_oof(
    spec: Spec, run: RunLayout
) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Every fold's out-of-fold probabilities, joined with the true labels by id.

    Returns:
        ids, targets by task, probabilities (or regression values) by task.
    """
    import pandas as pd

    from mtlkaggle.data.labels import read_split

    files = [f for f in run.trained_folds() if f.oof.is_file()]
    if not files:
        raise UserError(f"{run.dir}: no out-of-fold predictions; run `mtlkaggle train {spec.name}` first")
    oof = pd.concat([_read_oof(spec, fold.oof) for fold in files])
    tables = [read_split(spec, "train")] + ([read_split(spec, "val")] if spec.data.val else [])
    position = {}
    for t_index, table in enumerate(tables):
        for row, value in enumerate(table.ids):
            position.setdefault(value, (t_index, row))
    ids = oof[spec.data.id_column].to_numpy(dtype=object)
    unknown = [i for i in ids if i not in position]
    if unknown:
        raise UserError(f"{files[0].dir}: OOF id '{unknown[0]}' is not in the label files; retrain the run")
    targets, probs = {}, {}
    for task in spec.tasks:
        targets[task.name] = np.stack(
            [tables[t].targets[task.name][r] for t, r in (position[i] for i in ids)]
        )
        if task.kind == "regression":
            probs[task.name] = oof[task.name].to_numpy(dtype=np.float64)
        else:
            probs[task.name] = task_probabilities(oof, task)
    return ids, targets, probs


def _read_oof(spec: Spec, path: Path):
    """One fold's ``oof.csv``, with every probability column present, numeric and in [0, 1]."""
    fix = f"train that fold again (`mtlkaggle train {spec.name} --fold {path.parent.name[4:]} --overwrite`)"
    id_column = spec.data.id_column
    values = [t.name for t in spec.tasks if t.kind == "regression"]
    frame = read_table(
        path, fix, [id_column, *values], "out-of-fold file", dtype={id_column: str}, keep_default_na=False
    )
    frame = with_named_columns(spec, frame)  # a file of an earlier version names classes by index
    probability = [c for t in spec.tasks if t.kind != "regression" for c in probability_columns(t)]
    missing = [c for c in probability if c not in frame.columns]
    if missing:
        raise UserError(f"{path}:1: no column(s) {', '.join(repr(c) for c in missing[:3])}; {fix}")
    if probability:
        numeric_columns(frame, path, probability, fix, 0.0, 1.0)
    if values:
        numeric_columns(frame, path, values, fix)
    return frame


def tune_run(spec: Spec, run: RunLayout) -> dict[str, ThresholdResult]:
    """Tune every tuned task's decision (:func:`tuned_tasks`) on a run's OOF and write
    ``thresholds.json``."""
    _, targets, probs = collect_oof(spec, run)
    results = tune_probabilities(spec, targets, probs)
    write_json_atomic(run.thresholds, {name: r.to_json() for name, r in results.items()})
    return results


def tuned_tasks(spec: Spec) -> list[TaskSpec]:
    """The tasks whose decision is tuned on OOF: a multi-label task (for its primary metric when
    that is an F-score, else for Mean F1) or a binary task (F-beta, accuracy) whose primary metric
    is decided, and a task whose primary metric is ``qwk`` (cut points). A task scored by AUC, pAUC
    or log loss tunes nothing: its probabilities go out."""
    out = []
    for task in spec.tasks:
        primary = task.resolved_metrics[0]
        if uses_cuts(task) or (task.kind in ("multilabel", "binary") and primary not in PROBABILISTIC):
            out.append(task)
    return out


def tune_task(task: TaskSpec, y: np.ndarray, output: np.ndarray, grid: np.ndarray) -> ThresholdResult:
    """One task's tuned decision on out-of-fold targets ``y`` and outputs, with the OOF score of
    the untuned decision (``0.5``: threshold 0.5; ``default``: argmax or rounding) and the tuned."""
    primary = task.resolved_metrics[0]
    if uses_cuts(task):
        k = int(task.num_classes if task.kind == "regression" else task.size)
        values = expected_class(output) if task.kind == "multiclass" else output
        truth = to_classes(y, default_cuts(k)) if task.kind == "regression" else y
        cuts = tune_cuts(truth, values, k)
        default = score_metric(task, "qwk", y, decide(task, output), output)
        tuned = score_metric(task, "qwk", y, decide(task, output, cuts), output)
        if tuned <= default:  # argmax beats every cut of the expected class: keep argmax
            cuts = np.array([])
            tuned = default
        fixed = kappa_with_labels(truth, to_classes(values, default_cuts(k)), k)
        scores = {"default": default, "cuts at k+0.5": fixed, "tuned": tuned}
        return ThresholdResult("qwk", cuts, float("nan"), scores)
    metric = primary if primary in TUNABLE else "mean_f1"
    average = task.resolved_average if metric == "fbeta" else None
    result = tune_thresholds(
        y, output, metric, grid, at_least_one=task.at_least_one, beta=task.beta, average=average
    )
    result.scores["tuned"] = result.scores["per_label"]
    return result


def tune_probabilities(
    spec: Spec, targets: dict[str, np.ndarray], probs: dict[str, np.ndarray]
) -> dict[str, ThresholdResult]:
    """Tune every tuned task's decision (:func:`tuned_tasks`) on given out-of-fold targets and
    probabilities (one run's, or an ensemble's averaged ones)."""
    grid = candidate_grid(spec.predict.threshold_candidates)
    return {
        task.name: tune_task(task, targets[task.name], probs[task.name], grid) for task in tuned_tasks(spec)
    }


def read_thresholds_file(spec: Spec, path: Path) -> dict[str, dict]:
    """The saved ``thresholds.json``, checked entry by entry against the spec's tuned tasks.

    Returns:
        The saved entries of the spec's tuned tasks (``metric``, ``thresholds``, ``scores``).

    Raises:
        UserError: an unreadable file, a task without thresholds, a wrong count, or a value that is
            not a number in [0, 1] (thresholds) or not increasing finite numbers (cut points).
    """
    fix = f"run `mtlkaggle tune {spec.name} --run {path.parent.name}` to write it again"
    saved = read_json_object(path, fix, "thresholds file")
    out = {}
    for task in tuned_tasks(spec):
        entry = saved.get(task.name)
        values = entry.get("thresholds") if isinstance(entry, dict) else None
        cuts = uses_cuts(task)
        sizes = {int(task.num_classes or task.size) - 1, 0} if cuts else {task.size}
        if not isinstance(values, list) or len(values) not in sizes:
            found = f"{len(values)} values" if isinstance(values, list) else "none"
            need = f"{max(sizes)} cut points" if cuts else f"{task.size} thresholds"
            raise UserError(f"{path}: task '{task.name}' needs {need}, found {found}; {fix}")
        bad = [v for v in values if not (_is_number(v) if cuts else _is_fraction(v))]
        if bad or (cuts and any(b < a for a, b in zip(values, values[1:], strict=False))):
            what = "not increasing numbers" if not bad else f"{bad[0]!r} is not a number in [0, 1]"
            raise UserError(f"{path}: task '{task.name}': threshold {what}; {fix}")
        scores = entry.get("scores", {})
        if not isinstance(scores, dict) or not all(isinstance(v, int | float) for v in scores.values()):
            raise UserError(f"{path}: task '{task.name}': 'scores' must map names to numbers; {fix}")
        out[task.name] = {"metric": str(entry.get("metric", "")), "thresholds": values, "scores": scores}
    return out


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value)


def _is_fraction(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1


def load_thresholds(spec: Spec, run: RunLayout) -> dict[str, np.ndarray]:
    """Thresholds (or cut points) per tuned task from ``thresholds.json`` (tuning first if it is
    missing).

    A run that holds only a full-data fit has no out-of-fold predictions to tune on: its tasks use
    0.5, argmax or rounding (an empty dict).
    """
    path = run.thresholds
    if not tuned_tasks(spec):
        return {}
    if not path.exists():
        if {f.name for f in run.trained_folds()} == {"full"}:
            return {}
        tune_run(spec, run)
    return {name: np.array(entry["thresholds"]) for name, entry in read_thresholds_file(spec, path).items()}
