"""``mtlkaggle check``: read every label file and open every image, change nothing."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mtlkaggle.data import LabelTable, Problem, has_split, parse_split, verify_image
from mtlkaggle.progress import make_progress
from mtlkaggle.spec import Spec


@dataclass
class CheckReport:
    """What ``check`` found: each split's table and every problem."""

    tables: dict[str, LabelTable] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    images_checked: int = 0

    @property
    def ok(self) -> bool:
        """True when nothing is wrong (warnings, such as skipped files, do not count)."""
        return not any(p.fatal for p in self.problems)


def check_dataset(spec: Spec, open_images: bool = True, workers: int = 8) -> CheckReport:
    """Validate a competition's data.

    Checks columns, ids (empty, duplicate), labels (type, range, NaN), image paths (must stay
    inside the data folder) and, with ``open_images``, decodes every image in full so missing,
    unreadable and truncated files are found. Ids present in both train and test are reported too.

    Args:
        spec: The competition.
        open_images: Decode every image (the slow part).
        workers: Threads decoding images (PIL releases the GIL while decoding).
    """
    report = CheckReport()
    for split in ("train", "val", "test", "test_labels"):
        if not has_split(spec, split):
            continue
        table, problems = parse_split(spec, split)
        report.tables[split] = table
        report.problems.extend(problems)
    report.problems = list(dict.fromkeys(report.problems))  # a layout problem shows in every split
    _check_overlap(report)
    _check_samples(spec, report)
    if open_images:
        _check_images(report, (spec.data_path / spec.data.image_dir).resolve(), workers)
    return report


def _check_overlap(report: CheckReport) -> None:
    if "train" not in report.tables or "test" not in report.tables:
        return
    test = report.tables["test"]
    overlap = set(report.tables["train"].ids) & set(test.ids)
    for value in sorted(overlap)[:20]:
        line = test.line(int(np.flatnonzero(test.ids == value)[0]))
        report.problems.append(Problem(str(test.file), line, None, f"id '{value}' is also in train"))


def _check_samples(spec: Spec, report: CheckReport) -> None:
    """A sample submission that the spec's columns or the test file do not fit (its header, its
    ids), found before any training rather than at ``predict``."""
    from mtlkaggle.errors import UserError
    from mtlkaggle.submission_cells import plan, row_ids, sample_order

    if "test" not in report.tables:
        return
    for sub in spec.submissions:
        if not sub.sample:
            continue
        path = str(spec.data_path / sub.sample)
        try:
            sample_order(spec, sub, row_ids(sub, plan(spec, sub), report.tables["test"].ids))
        except UserError as e:
            place = re.match(rf"{re.escape(path)}(?::(\d+))?: ", str(e))
            message = str(e)[place.end() :] if place else str(e)
            line = int(place.group(1)) if place and place.group(1) else None
            report.problems.append(Problem(path, line, None, message))


def _check_images(report: CheckReport, root: Path, workers: int) -> None:
    """Decode every image once; a path outside ``root`` (already reported) is never opened."""
    jobs: list[tuple[LabelTable, int, Path]] = []
    seen: set[Path] = set()
    for table in report.tables.values():
        if table.images is not None:  # decoded from the label file itself while parsing
            report.images_checked += len(table.images)
            continue
        for row, path in enumerate(table.paths):
            if path not in seen and path.resolve().is_relative_to(root):
                seen.add(path)
                jobs.append((table, row, path))
    with make_progress(transient=True) as progress, ThreadPoolExecutor(workers) as pool:
        bar = progress.add_task("opening images", total=len(jobs), unit="img", status="")
        for (table, row, path), issue in zip(jobs, pool.map(lambda j: verify_image(j[2]), jobs), strict=True):
            if issue:
                report.problems.append(Problem(str(table.file), table.line(row), None, f"{path}: {issue}"))
            progress.advance(bar)
    report.images_checked += len(jobs)


def target_counts(task, y: np.ndarray) -> dict[str, float]:
    """Rows per class (multiclass), rows per label (multi-label), or mean/min/max (regression)."""
    if task.kind == "regression":
        return {"mean": float(y.mean()), "min": float(y.min()), "max": float(y.max())}
    counts = np.bincount(y, minlength=task.size) if task.kind == "multiclass" else y.sum(axis=0)
    return {n: int(c) for n, c in zip(task.label_names, counts, strict=True)}


def report_json(spec: Spec, report: CheckReport) -> dict:
    """``check --json``: the splits' rows and label counts, and every problem with its place."""
    splits = {
        split: {
            "file": str(labels.file),
            "rows": len(labels),
            "targets": {
                task.name: target_counts(task, labels.targets[task.name])
                for task in spec.tasks
                if labels.targets.get(task.name) is not None and len(labels.targets[task.name])
            },
        }
        for split, labels in report.tables.items()
    }
    problems = [
        {"file": p.file, "line": p.line, "column": p.column, "message": p.message, "fatal": p.fatal}
        for p in report.problems
    ]
    return {
        "competition": spec.name,
        "ok": report.ok,
        "images_checked": report.images_checked,
        "splits": splits,
        "problems": problems,
    }
