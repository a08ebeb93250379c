"""``mtlkaggle evaluate``: score submission files against a label file, with the spec's metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mtlkaggle.data import has_split, parse_label_file, read_split
from mtlkaggle.errors import UserError
from mtlkaggle.metrics import score_task
from mtlkaggle.spec import Spec
from mtlkaggle.submission import check_ids, read_submission


def evaluate_submissions(spec: Spec, submission_dir: Path, labels: Path | None = None) -> pd.DataFrame:
    """Score every submission file of ``submission_dir`` against the true test labels.

    ``labels`` is a CSV with the spec's label columns; by default the competition's own
    ``test_labels`` split (a kept-apart file, a holdout, or CelebA's test partition). Submission
    rows are matched to label rows by id (files without an id column follow the test file's order).
    A file with duplicated ids, or ids missing from or unknown to the labels, is refused: it is
    never scored.

    Returns:
        One row per (file, task, metric) with the score.
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
    rows = []
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
            task = spec.task(name)
            y = truth.targets[name][order[keep]]
            for metric, value in score_task(task, y, predictions[name][keep]).items():
                rows.append(
                    {"file": sub.file, "column": column, "task": name, "metric": metric, "score": value}
                )
    return pd.DataFrame(rows)


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
