"""Every rich table the commands print. Names from data and specs are escaped here, once."""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape
from rich.table import Table
from rich.text import Text


def titled(title: str) -> Table:
    """A table at least as wide as its title (markup allowed), so that a long competition name is
    never broken over two lines when the columns are narrow."""
    return Table(title=title, min_width=Text.from_markup(title).cell_len)


def frame_table(frame, title: str) -> Table:
    """A pandas frame as a rich table, floats to 4 decimals."""
    table = titled(title)
    for column in frame.columns:
        table.add_column(escape(str(column)), justify="right")
    for row in frame.itertuples(index=False):
        table.add_row(*(f"{v:.4f}" if isinstance(v, float) else escape(str(v)) for v in row))
    return table


def files_table(title: str, rows: list[tuple], columns: tuple[str, ...] = ("file", "rows")) -> Table:
    """Files written and a number or two about each (the first column left-aligned)."""
    table = titled(title)
    for k, column in enumerate(columns):
        table.add_column(column, justify="left" if k == 0 else "right")
    for row in rows:
        table.add_row(*(escape(str(cell)) for cell in row))
    return table


def check_summary_table(spec, report, describe) -> Table:
    """``check``: rows of each split and what its targets hold (``describe(task, y)``)."""
    table = titled(f"{escape(spec.name)}: label files")
    table.add_column("split")
    table.add_column("rows", justify="right")
    for task in spec.tasks:
        table.add_column(escape(f"{task.name} ({task.kind})"), overflow="fold")
    for split, labels in report.tables.items():
        cells = []
        for task in spec.tasks:
            y = labels.targets.get(task.name)
            cells.append("-" if y is None or not len(y) else escape(describe(task, y)))
        table.add_row(escape(split), str(len(labels)), *cells)
    return table


def fold_counts_table(counts, title: str) -> Table:
    """One row per class/label, one column per fold, and the worst deviation from 1/K."""
    table = titled(title)
    table.add_column("task:label")
    for k in counts["fold"]:
        table.add_column(f"fold {k}", justify="right")
    table.add_column("max dev. from 1/K", justify="right")
    n_folds = len(counts)
    for name in counts.columns[1:]:
        values = counts[name].to_numpy()
        total = values.sum()
        dev = abs(values / total - 1 / n_folds).max() if total else 0.0
        table.add_row(escape(str(name)), *(str(int(v)) for v in values), f"{dev:.1%}")
    return table


def scores_table(frame, title: str) -> Table:
    """Per-fold scores with one row per metric and one column per fold (names stay readable)."""
    table = titled(title)
    table.add_column("metric")
    for fold in frame["fold"]:
        table.add_column(escape(f"fold {fold}") if fold != "mean" else "mean", justify="right")
    for column in frame.columns[1:]:
        cells = [
            f"{v:.4f}" if isinstance(v, float) else escape("" if v is None else str(v)) for v in frame[column]
        ]
        table.add_row(escape(str(column)), *cells)
    return table


def thresholds_table(results, path: Path) -> Table:
    """Out-of-fold scores at 0.5, one global and per-label thresholds (or QWK cut points), of every
    tuned task."""
    table = titled(f"out-of-fold scores -> {escape(str(path))}")
    for column in ("task", "metric", "at 0.5", "global", "per-label", "thresholds"):
        table.add_column(
            column, justify="right" if column not in ("task", "metric", "thresholds") else "left"
        )
    for name, r in results.items():
        if "per_label" not in r.scores:  # QWK cut points: untuned = argmax or rounding
            cuts = " ".join(f"{t:.3f}" for t in r.thresholds) or "argmax kept"
            cells = (f"{r.scores['default']:.4f}", "-", f"{r.scores['tuned']:.4f}", f"cut points {cuts}")
            table.add_row(escape(name), escape(r.metric), *cells)
            continue
        label = f"{r.scores['per_label']:.4f}"
        if "per_label+at_least_one" in r.scores:
            label += f" ({r.scores['per_label+at_least_one']:.4f} with at-least-one)"
        table.add_row(
            escape(name),
            escape(r.metric),
            f"{r.scores['0.5']:.4f}",
            f"{r.scores['global']:.4f} @ {r.global_threshold:.2f}",
            label,
            " ".join(f"{t:.2f}" for t in r.thresholds),
        )
    return table


def submissions_table(items, title: str) -> Table:
    """Kaggle submissions with their status and public/private scores."""
    table = titled(title)
    for column in ("date", "competition", "file", "message", "status", "public", "private", "ref"):
        table.add_column(column, justify="right" if column in ("public", "private") else "left")
    for s in items:
        status = s.status if s.status != "ERROR" else f"ERROR: {s.error}"
        cells = (
            s.date,
            s.competition,
            s.file,
            s.message,
            status,
            s.public_score or "-",
            s.private_score or "-",
        )
        table.add_row(*(escape(str(c)) for c in cells), escape(s.ref))
    return table


def runs_table(found, metrics: list[str], title: str) -> Table:
    """``runs``: one row per run, best first, with CV, holdout, test and Kaggle scores."""
    table = titled(title)
    holdout = any(r.holdout for r in found)
    test = any(r.test for r in found)
    kaggle = any(r.submission is not None for r in found)
    columns = ["run", "backbone", "img", "epochs", "folds", *(f"{m} (CV)" for m in metrics)]
    columns += ["holdout"] if holdout else []
    columns += ["test"] if test else []
    if holdout or test:
        table.caption = (
            "holdout ('val' fold) and test (submissions/COMP vs test labels): the CV columns' metrics"
        )
    columns += ["wall", "img/s", "date"] + (["submission", "Kaggle public"] if kaggle else [])
    problems = any(r.problem for r in found)
    columns += ["problem"] if problems else []
    for column in columns:
        table.add_column(escape(column), justify="left" if column in ("run", "backbone", "date") else "right")
    for r in found:
        cv = [f"{r.cv[m]['mean']:.4f} ± {r.cv[m]['std']:.4f}" if m in r.cv else "-" for m in metrics]
        cells = [r.name, r.backbone, str(r.img_size), str(r.epochs), ",".join(r.folds), *cv]
        if holdout:
            cells.append(_score_list(r.holdout, metrics))
        if test:
            cells.append(_score_list(r.test, metrics))
        cells += [_duration(r.wall_s), f"{r.img_per_s:.0f}" if r.img_per_s else "-", r.date]
        if kaggle:
            cells += [r.submission or "-", " ".join(f"{f}={v}" for f, v in r.kaggle.items()) or "-"]
        if problems:
            cells.append("damaged: see below" if r.problem else "")
        table.add_row(*(escape(c) for c in cells))
    return table


def _score_list(scores: dict[str, float], metrics: list[str]) -> str:
    return " ".join(f"{scores[m]:.4f}" if m in scores else "-" for m in metrics) if scores else "-"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
