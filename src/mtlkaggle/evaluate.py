"""``mtlkaggle evaluate``: score submission files against a label file, with the spec's metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mtlkaggle.data import has_split, parse_label_file, read_split
from mtlkaggle.errors import UserError
from mtlkaggle.metrics import score_task, spec_score
from mtlkaggle.spec import LOWER_IS_BETTER, Spec
from mtlkaggle.submission import check_ids, read_submission


def evaluate_submissions(spec: Spec, submission_dir: Path, labels: Path | None = None) -> pd.DataFrame:
    """Score every submission file of ``submission_dir`` against the true test labels.

    ``labels`` is a CSV with the spec's label columns; by default the competition's own
    ``test_labels`` split (a kept-apart file, a holdout, or CelebA's test partition). Submission
    rows are matched to label rows by id (files without an id column follow the test file's order).
    A file with duplicated ids, or ids missing from or unknown to the labels, is refused: it is
    never scored. Each task is scored once, from the first file (and column) that holds it.

    Returns:
        One row per (task, metric) with the file and column it was scored from, and the score.
    """
    if labels is None:
        if not has_split(spec, "test_labels"):
            raise UserError(f"competition '{spec.name}' keeps no test labels; pass --labels FILE")
        truth = read_split(spec, "test_labels")
    else:
        truth, problems = parse_label_file(spec, labels, labelled=True)
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise UserError(f"{problems[0]}{more}")
    where = {value: row for row, value in enumerate(truth.ids)}
    rows, scored = [], set()
    for sub in spec.submissions:
        path = submission_dir / sub.file
        ids, predictions = read_submission(spec, sub, path)
        if ids is None:
            ids = list(read_split(spec, "test", labelled=False).ids)
            if len(ids) != len(next(iter(predictions.values()))):
                raise UserError(
                    f"{path}: {len(next(iter(predictions.values())))} rows, test file has {len(ids)}"
                )
        else:
            check_ids(
                str(path), ids, truth.ids, "the labels", "a submission needs exactly one row per labelled id"
            )
        order = np.array([where.get(i, -1) for i in ids])
        keep = order >= 0
        for column, name in sub.task_columns():  # a column may be 'task:CLASS' or list tasks
            if name in scored:  # a task written to two files is scored once, from the first
                continue
            scored.add(name)
            task = spec.task(name)
            y = truth.targets[name][order[keep]]
            for metric, value in score_task(task, y, np.asarray(predictions[name])[keep]).items():
                rows.append(
                    {"file": sub.file, "column": column, "task": name, "metric": metric, "score": value}
                )
    return pd.DataFrame(rows)


def weighted_score(spec: Spec, scores: pd.DataFrame) -> tuple[float, str] | None:
    """The spec score (:func:`mtlkaggle.metrics.spec_score`) of evaluated submissions and how it is
    made (e.g. ``0.5 x root/macro_recall + 0.25 x vowel/macro_recall``).

    None when the spec weighs no tasks and has one task, when a weighted task was not in any file,
    or when unweighted primaries point different ways (e.g. accuracy and mae).
    """
    weights = spec.score_weights
    if weights is None:
        if len(spec.tasks) < 2:
            return None
        if len({t.resolved_metrics[0] in LOWER_IS_BETTER for t in spec.tasks}) > 1:
            return None
        weights = {t.name: 1.0 / len(spec.tasks) for t in spec.tasks}
    found = {f"{r.task}/{r.metric}": float(r.score) for r in scores.itertuples()}
    keys = {t: f"{t}/{spec.task(t).resolved_metrics[0]}" for t, w in weights.items() if w > 0}
    if any(k not in found for k in keys.values()):
        return None
    total = sum(weights[t] for t in keys)
    value = spec_score(spec, found)  # the training monitor's formula, on the files' scores
    recipe = " + ".join(f"{weights[t] / total:.4g} x {k}" for t, k in keys.items())
    return float(value), recipe


def task_means(scores: pd.DataFrame) -> dict[str, tuple[float, int]]:
    """With several tasks, the mean of each metric over the tasks that report it (and their count)."""
    if scores["task"].nunique() < 2:
        return {}
    means = scores.groupby("metric", sort=False)["score"].agg(["mean", "count"])
    return {
        str(metric): (float(row["mean"]), int(row["count"]))
        for metric, row in means.iterrows()
        if row["count"] > 1
    }
