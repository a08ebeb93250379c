"""Result commands: ``evaluate`` submission files, compare ``runs``, write a ``report``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from mtlkaggle.cli.options import (
    Comp,
    DataDir,
    Json,
    console,
    err_console,
    parse_list,
    print_json,
    user_errors,
)
from mtlkaggle.cli.tables import frame_table, runs_table, scores_table


@user_errors
def evaluate(
    comp: Comp,
    submission_dir: Annotated[Path, typer.Argument(help="Folder holding the submission files.")],
    labels: Annotated[Path | None, typer.Option(help="Label file (default: the spec's test_labels).")] = None,
    data_dir: DataDir = None,
    as_json: Json = False,
) -> None:
    """Score submission files with the spec's metrics against a label file.

    Each task is scored once, from the first file holding it: label columns by its decided
    metrics, probability columns (values = "probability") by roc_auc, pauc and log_loss directly.
    With several tasks (or score_weights), the spec score: the primary metrics, weighted.
    A file whose ids, header or cells are wrong is refused in one line, and no score is printed.
    """
    from mtlkaggle.evaluate import evaluate_submissions, task_means, weighted_score
    from mtlkaggle.spec import load_spec

    spec = load_spec(comp, data_dir)
    scores = evaluate_submissions(spec, submission_dir, labels)
    means = task_means(scores)
    weighted = weighted_score(spec, scores)
    if as_json:
        print_json(
            {
                "competition": spec.name,
                "submission_dir": str(submission_dir),
                "labels": str(labels) if labels else "test_labels",
                "scores": scores.to_dict(orient="records"),
                "task_means": {m: {"mean": v, "tasks": n} for m, (v, n) in means.items()},
                "spec_score": {"score": weighted[0], "of": weighted[1]} if weighted else None,
            }
        )
        return
    title = f"{spec.name}: {submission_dir} scored against {labels or 'test labels'}"
    console.print(frame_table(scores, escape(title)))
    for metric, (mean, count) in means.items():
        console.print(f"mean {escape(metric)} over {count} tasks: {mean:.4f}")
    if weighted:
        console.print(f"spec score ({escape(weighted[1])}): {weighted[0]:.4f}")


@user_errors
def runs(
    comp: Comp,
    data_dir: DataDir = None,
    as_json: Json = False,
    mlflow: Annotated[
        bool,
        typer.Option(
            "--mlflow",
            help="Also list the competition's MLflow runs (\\[log] mlflow_uri, $MLFLOW_TRACKING_URI or "
            "./mlruns), after sending each run's CV, test and Kaggle scores to its MLflow run.",
        ),
    ] = False,
) -> None:
    """Compare every run of a competition in one table, best first by the spec's monitor.

    Per run: backbone, image size, epochs, folds trained, CV score of each metric (mean +- std
    over the numbered folds), the holdout ('val' fold) score, the test score of its files in
    submissions/COMP where test labels exist, wall time, img/s, date, and the latest
    submission's message and Kaggle public score where known.
    """
    from mtlkaggle.runs import compare_runs, metric_names, mlflow_runs
    from mtlkaggle.spec import load_spec

    spec = load_spec(comp, data_dir)
    found = compare_runs(spec)
    tracked = mlflow_runs(spec, found.runs) if mlflow else None
    monitor = spec.monitor or "mean of the primary metrics"
    if as_json:
        runs_json = [r.to_json() for r in found.runs]
        listing = {
            "competition": spec.name,
            "monitor": monitor,
            "runs": runs_json,
            "warnings": found.warnings,
        }
        print_json(listing | ({"mlflow": [r.to_json() for r in tracked]} if tracked is not None else {}))
        return
    title = f"{escape(spec.name)}: runs by {escape(monitor)}"
    console.print(runs_table(found.runs, metric_names(spec), title))
    if tracked is not None:
        console.print(_mlflow_table(spec, tracked))
    for warning in found.warnings:
        err_console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)
    for run in found.runs:
        if run.problem:
            err_console.print(
                f"[yellow]run '{escape(run.name)}' not scored:[/] {escape(run.problem)}",
                highlight=False,
                soft_wrap=True,
            )


def _mlflow_table(spec, tracked):
    """The MLflow parent runs: name, status, start, folds logged and their CV / LB scores."""
    import pandas as pd

    from mtlkaggle.trackers import experiment_name, mlflow_uri

    rows = [
        {
            "run": r.name,
            "run id": r.run_id[:8],
            "status": r.status,
            "start": r.start,
            "folds": r.folds,
            **{k: v for k, v in r.metrics.items() if k.startswith(("cv/", "lb/", "test/"))},
        }
        for r in tracked
    ]
    title = f"MLflow runs of experiment '{experiment_name(spec)}' in {mlflow_uri(spec)}"
    return frame_table(pd.DataFrame(rows).fillna("-"), escape(title))


@user_errors
def report(
    comp: Comp,
    run: Annotated[str, typer.Option(help="Run to report on.")] = "main",
    runs: Annotated[
        str | None, typer.Option(help="Comma-separated runs: report their ensemble's CV instead.")
    ] = None,
    run_weights: Annotated[str | None, typer.Option(help="One weight per --runs run.")] = None,
    out_dir: Annotated[Path | None, typer.Option(help="Default: reports/COMP/RUN.")] = None,
    submission_dir: Annotated[
        Path | None,
        typer.Option(
            help="Files predicted from this run, scored when test labels exist (default: submissions/COMP)."
        ),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Write a run's report.md and figures into reports/COMP/RUN.

    Figures: class distributions, training curves, confusion matrices, per-label F1, regression
    errors. report.md: per-fold and mean scores, test (holdout) scores of the run's submission
    files when labels exist, tuned thresholds per label, time and img/s per fold, environment,
    command and configuration. Prints the score tables and the folder's path. A run trained with
    --log (or a spec with \\[log] trackers) also gets the figures and report.md in its trackers.
    """
    from mtlkaggle.ensemble import members_for
    from mtlkaggle.paths import RunLayout, report_dir
    from mtlkaggle.report import make_ensemble_report, make_report
    from mtlkaggle.spec import load_spec

    spec = load_spec(comp, data_dir)
    out = out_dir or report_dir(spec.name, runs.replace(",", "+") if runs else run)
    if runs:
        weights = parse_list(run_weights, "--run-weights", "weight", float, unique=False)
        members = members_for(spec.name, run, parse_list(runs, "--runs", "run"), weights)
        written = make_ensemble_report(spec, members, out)
    else:
        from mtlkaggle.trackers import log_report

        layout = RunLayout.of(spec.name, run)
        written = make_report(spec, layout, out, submission_dir)
        log_report(spec, layout, written.figures, out / "report.md")
    if "run" in written.scores.columns:  # an ensemble: one row per member and one for the average
        title = f"{escape(spec.name)}: out-of-fold CV of each run and the ensemble"
        console.print(frame_table(written.scores, title))
    else:
        title = f"{escape(spec.name)}: run '{escape(run)}', best epoch of each fold"
        console.print(scores_table(written.scores, title))
    if getattr(written, "test_scores", None) is not None:
        console.print(
            frame_table(written.test_scores, f"{escape(spec.name)}: run '{escape(run)}', test labels")
        )
    console.print(f"report: {escape(str(out / 'report.md'))} ({len(written.figures)} figures)")
