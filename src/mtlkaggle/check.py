"""``mtlkaggle check``: read every label file and open every image, change nothing."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mtlkaggle.data import LabelTable, Problem, has_split, parse_split
from mtlkaggle.data.locate import FileIndex, image_root, suggest
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
    if not spec.data.id_from_row:  # row numbers restart in every file: no overlap to find
        _check_overlap(report)
    _check_samples(spec, report)
    if open_images:
        _check_images(spec, report, workers)
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


def _check_images(spec: Spec, report: CheckReport, workers: int) -> None:
    """Decode every image once through its split's source; a path outside its split's image folder
    (already reported) is never opened. A missing file says which extension or folder would find it."""
    jobs: list[tuple[LabelTable, int]] = []
    seen: set[str] = set()
    contained = spec.data.image_source in ("pixels", "hdf5")  # a container, no path per row
    for split, table in report.tables.items():
        root = image_root(spec, split)
        for row, path in enumerate(table.paths):
            name = table.source.name(row)
            if name not in seen and (contained or path.resolve().is_relative_to(root)):
                seen.add(name)
                jobs.append((table, row))
    index: FileIndex | None = None
    reported: set[str] = set()  # a container-wide fault (a missing HDF5 file) is listed once
    with make_progress(transient=True) as progress, ThreadPoolExecutor(workers) as pool:
        bar = progress.add_task("opening images", total=len(jobs), unit="img", status="")
        issues = pool.map(lambda job: job[0].source.verify(job[1]), jobs)
        for (table, row), issue in zip(jobs, issues, strict=True):
            progress.advance(bar)
            if not issue or issue in reported:
                continue
            reported.add(issue)
            missing, found, _ = issue.partition(": image not found")
            if found:
                index = index or FileIndex(spec.data_path.resolve())
                hint = suggest(Path(missing), index)
                issue = f"{issue}; {hint}" if hint else issue
            report.problems.append(_image_problem(table, row, issue))
    report.images_checked += len(jobs)


def _image_problem(table: LabelTable, row: int, issue: str) -> Problem:
    """The problem of one image, at its label-file line (a source that names the line itself, such
    as pixels held in the label file, is not located twice)."""
    if issue.startswith(f"{table.file}:"):
        where, message = issue.split(": ", 1)
        return Problem(where, None, None, message)
    return Problem(str(table.file), table.line(row), None, issue)


def target_counts(task, y: np.ndarray) -> dict[str, float]:
    """Rows per class (multiclass), rows per label (multi-label), positives and negatives (binary),
    or mean/min/max (regression)."""
    if task.kind == "regression":
        return {"mean": float(y.mean()), "min": float(y.min()), "max": float(y.max())}
    if task.kind == "binary":
        positives = int(y.sum())
        return {task.label_names[0]: positives, "negative": len(y) - positives}
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
