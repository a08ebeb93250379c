"""Kaggle commands: ``submit`` (upload, wait for the scores) and ``submissions`` (list them)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from mtlkaggle.cli.options import Comp, DataDir, Json, console, err_console, print_json, user_errors
from mtlkaggle.cli.tables import submissions_table, titled
from mtlkaggle.errors import UserError

_DryRun = Annotated[
    bool,
    typer.Option(
        help="Check every file as Kaggle reads it and show what would be sent; upload nothing "
        "(needs no Kaggle slug or credentials)."
    ),
]


@user_errors
def submit(
    comp: Comp,
    message: Annotated[str, typer.Option(help="Submission description shown on Kaggle.")] = "mtlkaggle",
    submission_dir: Annotated[Path | None, typer.Option(help="Default: submissions/COMP.")] = None,
    dry_run: _DryRun = False,
    wait: Annotated[
        bool,
        typer.Option("--wait/--no-wait", help="Wait until Kaggle has scored each file; print the scores."),
    ] = False,
    timeout: Annotated[
        float, typer.Option(help="With --wait: give up after this many seconds.", min=0)
    ] = 900,
    poll_interval: Annotated[
        float, typer.Option(help="With --wait: seconds between two looks at the submissions list.", min=0)
    ] = 15,
    kernel: Annotated[
        str | None,
        typer.Option(
            help="Code competition: submit this notebook's submission.csv (OWNER/SLUG, pushed with "
            "`mtlkaggle notebook --push`) instead of files.",
            rich_help_panel="Code competitions",
        ),
    ] = None,
    version: Annotated[
        int | None,
        typer.Option(
            help="With --kernel: the notebook version (default: the latest).",
            min=1,
            rich_help_panel="Code competitions",
        ),
    ] = None,
    run: Annotated[
        str | None,
        typer.Option(
            help="With --kernel: the run whose bundle the notebook uses, for `mtlkaggle runs`.",
            rich_help_panel="Code competitions",
        ),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Check every submission file, then upload each to its Kaggle competition.

    Each file is checked as Kaggle reads it, against the spec's sample submission where it names
    one (else the test file): the header, every id once, the row count, every cell (probabilities
    finite and within [0, 1], labels among the classes). The first bad cell is named; nothing is sent.

    Uses the official kaggle client: credentials from KAGGLE_USERNAME/KAGGLE_KEY,
    KAGGLE_API_TOKEN or ~/.kaggle/kaggle.json. Exits non-zero with Kaggle's message when an upload
    is refused. Each upload is recorded in submissions/COMP/submitted.json (with the run that made
    it), which `mtlkaggle runs` shows. With --wait, exits 1 when Kaggle fails to score a file or
    the timeout passes first.

    In a code competition, --kernel OWNER/SLUG [--version N] submits the submission.csv of that
    notebook version (pushed with `mtlkaggle notebook --push`) instead of files.
    """
    from mtlkaggle.paths import submissions_dir
    from mtlkaggle.spec import load_spec
    from mtlkaggle.submit import submit_files, wait_for_scores

    spec = load_spec(comp, data_dir)
    if kernel is not None:
        uploads = _submit_kernel(spec, kernel, version, message, run, dry_run)
    elif version is not None or run is not None:
        raise UserError("--version and --run go with --kernel OWNER/SLUG")
    else:
        uploads = submit_files(spec, submission_dir or submissions_dir(spec.name), message, dry_run)
    table = titled(f"{escape(spec.name)}: {'dry run, nothing sent' if dry_run else 'submitted'}")
    for column in ("file", "competition", "ref", "message"):
        table.add_column(column)
    for u in uploads:
        table.add_row(escape(str(u.file)), escape(u.competition), escape(u.ref or "-"), escape(u.message))
    console.print(table)
    if not wait or dry_run:
        return
    err_console.print(f"waiting up to {timeout:g} s for Kaggle to score {len(uploads)} file(s) ...")
    scored = wait_for_scores(spec, uploads, timeout, poll_interval)
    console.print(submissions_table(scored, f"{escape(spec.name)}: Kaggle's scores"))
    _exit_unless_scored(spec.name, scored, timeout)


def _submit_kernel(spec, kernel: str, version, message: str, run, dry_run: bool):
    """``submit --kernel``: one code submission (a dry run only checks the references)."""
    from mtlkaggle.kaggle_kernels import submit_kernel
    from mtlkaggle.notebook import SUBMISSION, check_kernel_ref, competition_slug
    from mtlkaggle.paths import RunLayout
    from mtlkaggle.submit import Upload

    run_dir = None
    if run is not None:
        layout = RunLayout.of(spec.name, run)
        if not layout.dir.is_dir():
            raise UserError(f"--run {run}: no run folder {layout.dir}")
        run_dir = str(layout.dir)
    if dry_run:
        check_kernel_ref(kernel)
        slug = competition_slug(spec, required=True)
        return [Upload(Path(SUBMISSION), slug, "", f"would submit {kernel} version {version or 'latest'}")]
    return [submit_kernel(spec, kernel, version, message, run_dir)]


def _exit_unless_scored(comp: str, scored, timeout: float) -> None:
    failed = [s for s in scored if s.status == "ERROR"]
    pending = [s for s in scored if s.pending]
    for s in failed:
        err_console.print(
            f"[bold red]error:[/] Kaggle could not score {escape(s.file)} ({escape(s.competition)}): "
            f"{escape(s.error or 'no reason given')}",
            highlight=False,
            soft_wrap=True,
        )
    if pending:
        err_console.print(
            f"[yellow]still pending after {timeout:g} s:[/] {escape(', '.join(s.file for s in pending))}; "
            f"see the scores later with `mtlkaggle submissions {escape(comp)}`",
            highlight=False,
            soft_wrap=True,
        )
    if failed or pending:
        raise typer.Exit(1)


@user_errors
def submissions(
    comp: Comp,
    limit: Annotated[int, typer.Option(help="Submissions to list per Kaggle competition.", min=1)] = 20,
    data_dir: DataDir = None,
    as_json: Json = False,
) -> None:
    """List the recent submissions to the spec's Kaggle competitions, with their scores.

    Scores of submissions made with `mtlkaggle submit` are copied into
    submissions/COMP/submitted.json, where `mtlkaggle runs` finds them.
    """
    from mtlkaggle.spec import load_spec
    from mtlkaggle.submit import list_submissions

    spec = load_spec(comp, data_dir)
    listed = list_submissions(spec, limit)
    if as_json:
        print_json({"competition": spec.name, "submissions": [s.to_json() for s in listed]})
        return
    console.print(submissions_table(listed, f"{escape(spec.name)}: submissions on Kaggle, newest first"))
