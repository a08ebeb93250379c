"""The ``notebook`` command: a Kaggle notebook for a code competition, run here (``--run-local``)
or pushed to Kaggle and watched (``--push --wait``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from mtlkaggle.cli.options import Comp, DataDir, console, err_console, user_errors
from mtlkaggle.errors import UserError

_LOCAL = "Local run (--run-local)"
_PUSH = "Push to Kaggle (--push)"

BundleDataset = Annotated[
    str | None, typer.Option(help="The Kaggle dataset OWNER/SLUG holding the bundle (`export --upload`).")
]
BundleModel = Annotated[
    str | None,
    typer.Option(
        help="Or the Kaggle Model OWNER/MODEL/FRAMEWORK/VARIATION\\[/VERSION] holding it "
        "(`export --upload-model`; the latest version when none is given)."
    ),
]
_Out = Annotated[Path | None, typer.Option(help="Notebook file (default: COMP-inference.ipynb).")]
_Tta = Annotated[bool, typer.Option("--tta/--no-tta", help="Predict with the spec's TTA views.")]
_RunLocal = Annotated[
    bool,
    typer.Option(
        help="Execute the notebook here (nbclient, a real kernel) against a /kaggle/input-like folder; "
        "check submission.csv; print time and peak memory.",
        rich_help_panel=_LOCAL,
    ),
]
_Bundle = Annotated[
    Path | None,
    typer.Option(help="The local bundle folder (default: bundles/COMP/main).", rich_help_panel=_LOCAL),
]
_Push = Annotated[
    bool, typer.Option(help="Push the notebook to Kaggle (internet off, private).", rich_help_panel=_PUSH)
]
_DryRun = Annotated[
    bool, typer.Option(help="With --push: write the push folder, send nothing.", rich_help_panel=_PUSH)
]
_Kernel = Annotated[
    str | None,
    typer.Option(
        help="The notebook OWNER/SLUG on Kaggle (default: the bundle's owner/COMP-mtlkaggle-inference).",
        rich_help_panel=_PUSH,
    ),
]
_Gpu = Annotated[bool, typer.Option("--gpu/--no-gpu", help="Run on a GPU.", rich_help_panel=_PUSH)]
_MachineShape = Annotated[
    str | None, typer.Option(help="Kaggle's accelerator name, e.g. NvidiaTeslaT4.", rich_help_panel=_PUSH)
]
_Public = Annotated[
    bool, typer.Option(help="Make the notebook public (default: private).", rich_help_panel=_PUSH)
]
_Wait = Annotated[
    bool,
    typer.Option(
        help="Watch the run to its end, then download and check submission.csv.", rich_help_panel=_PUSH
    ),
]
_Timeout = Annotated[
    float, typer.Option(help="With --wait or --run-local (per cell): give up after this many seconds.", min=1)
]
_PollInterval = Annotated[
    float,
    typer.Option(help="With --wait: seconds between two status looks.", min=0, rich_help_panel=_PUSH),
]
_OutDir = Annotated[
    Path | None,
    typer.Option(
        help="The run folder of --run-local (default: notebooks/COMP/local) or the push folder of "
        "--push (default: notebooks/COMP/kernel)."
    ),
]


@user_errors
def notebook(
    comp: Comp,
    bundle_dataset: BundleDataset = None,
    bundle_model: BundleModel = None,
    out: _Out = None,
    tta: _Tta = True,
    data_dir: DataDir = None,
    run_local: _RunLocal = False,
    bundle: _Bundle = None,
    push: _Push = False,
    dry_run: _DryRun = False,
    kernel: _Kernel = None,
    gpu: _Gpu = False,
    machine_shape: _MachineShape = None,
    public: _Public = False,
    wait: _Wait = False,
    timeout: _Timeout = 9 * 3600,
    poll_interval: _PollInterval = 30,
    out_dir: _OutDir = None,
) -> None:
    """Write a Kaggle notebook that installs mtlkaggle offline from the bundle and writes
    submission.csv (for code competitions, where the test images exist only inside Kaggle).

    --run-local executes it here first; --push sends it to Kaggle (kernels_push), --wait watches the
    run and checks its output. Then `mtlkaggle submit COMP --kernel OWNER/SLUG` submits it.
    """
    from mtlkaggle.notebook import BundleSource, KernelOptions, NotebookOptions, write_notebook
    from mtlkaggle.paths import notebook_path
    from mtlkaggle.spec import load_spec

    spec = load_spec(comp, data_dir)
    source = BundleSource.parse(bundle_dataset, bundle_model)
    if run_local and push:
        raise UserError("--run-local and --push are two steps: run locally first, then push")
    if (dry_run or wait or kernel) and not push:
        raise UserError("--dry-run, --wait and --kernel go with --push")
    if push and source.kind == "model" and source.version is None and not dry_run:
        from mtlkaggle.kaggle_datasets import model_version

        source = source.with_version(model_version(source.ref))
    options = NotebookOptions(source, out or notebook_path(spec.name), tta)
    if run_local:
        _notebook_local(spec, options, bundle, out_dir, timeout)
    elif push:
        kernel_options = KernelOptions(kernel, gpu, machine_shape, not public)
        _notebook_push(spec, options, kernel_options, out_dir, dry_run, wait, timeout, poll_interval)
    else:
        path = write_notebook(spec, options)
        console.print(
            f"[green]ok[/]: {escape(str(path))} (attach the {source.kind} {escape(source.ref)} and the "
            "competition's data, internet off)"
        )


def _notebook_local(spec, options, bundle, out_dir, timeout) -> None:
    """``notebook --run-local``: run, then say where submission.csv is, how long and how much memory."""
    from mtlkaggle.notebook_run import LocalRunOptions, run_local
    from mtlkaggle.paths import bundle_dir, notebook_run_dir

    bundle = bundle or bundle_dir(spec.name, "main")
    run = LocalRunOptions(bundle, spec.data_path, out_dir or notebook_run_dir(spec.name), timeout)
    err_console.print(f"running the notebook locally in {escape(str(run.out_dir))} ...")
    done = run_local(spec, options, run)
    usage = f"{done.seconds:.1f} s, peak memory {done.peak_rss / 2**20:,.0f} MiB (kernel and its processes)"
    if done.error is not None:
        _print_tail("notebook log, failing cell", done.log_tail)
        err_console.print(
            f"[bold red]error:[/] the notebook failed locally after {usage}: {escape(done.error)}; "
            f"the executed notebook is {escape(str(done.notebook))}",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1)
    console.print(
        f"[green]ok[/]: {escape(str(done.submission))} ({escape(done.checked)}); ran in {usage}; "
        f"executed notebook: {escape(str(done.notebook))}",
        highlight=False,
        soft_wrap=True,
    )


def _notebook_push(spec, options, kernel_options, out_dir, dry_run, wait, timeout, poll_interval) -> None:
    """``notebook --push``: write the folder, push, watch (progress), report the run's end."""
    from mtlkaggle.kaggle_kernels import PushOptions, push_notebook
    from mtlkaggle.paths import kernel_push_dir
    from mtlkaggle.progress import make_progress

    folder = out_dir or kernel_push_dir(spec.name)
    with make_progress() as progress:
        bar = None

        def on_poll(status) -> None:
            nonlocal bar
            if bar is None:
                bar = progress.add_task("Kaggle run", total=None, unit="poll", status="")
            progress.update(bar, advance=1, status=f"{status.status} after {status.seconds:.0f} s")

        push_options = PushOptions(dry_run, wait, timeout, poll_interval)
        done = push_notebook(spec, options, kernel_options, folder, push_options, on_poll)
    meta = done.metadata
    sources = ", ".join(meta["dataset_sources"] + meta["model_sources"] + meta["competition_sources"])
    if done.pushed is None:
        console.print(
            f"[green]dry run[/]: {escape(str(folder))} holds {escape(meta['code_file'])} and "
            f"kernel-metadata.json (id {escape(meta['id'])}, sources {escape(sources)}, internet off); "
            "nothing sent"
        )
        return
    pushed = done.pushed
    version = f" version {pushed.version}" if pushed.version else ""
    console.print(f"[green]pushed[/]: {escape(pushed.ref)}{version}: {escape(pushed.url)}")
    if done.status is None:
        return
    if done.failed:
        _print_tail(f"log of {pushed.ref}", done.log_tail or [])
        status = done.status
        reason = f": {status.failure}" if status.failure else ""
        if status.done:
            message = (
                f"the notebook's run ended {status.status}{reason}; fix it (try --run-local), then push again"
            )
        else:
            message = f"the notebook is still {status.status} after {timeout:g} s; follow it at {pushed.url}"
        err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    submit = f"mtlkaggle submit {spec.name} --kernel {pushed.ref}{version.replace(' version', ' --version')}"
    console.print(
        f"[green]ok[/]: {escape(str(folder / 'output' / 'submission.csv'))} ({escape(done.checked)}); "
        f"submit it with `{escape(submit)}`",
        highlight=False,
        soft_wrap=True,
    )


def _print_tail(title: str, lines: list[str]) -> None:
    err_console.print(f"[bold]--- {escape(title)} (last {len(lines)} lines) ---[/]")
    for line in lines:
        err_console.print(escape(line), highlight=False, soft_wrap=True)
