"""``notebook --push`` and ``submit --kernel``: a code competition's notebook on Kaggle.

Uses the official kaggle client (imported lazily, quietly; see :mod:`mtlkaggle.submit`):
``kernels_push`` sends the push folder (the notebook and ``kernel-metadata.json``, written by
:func:`mtlkaggle.notebook.write_push_folder`), ``kernels_status`` is polled until the run ends,
``kernels_logs`` gives a failed run's log, ``kernels_output`` downloads what the notebook left,
and ``competition_submit_code`` submits a version. The client reports some refusals in the
response (``error``, ``invalidDatasetSources``, a missing ``ref``) instead of raising: each is
checked and turned into one line, and nothing is recorded unless Kaggle accepted it.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mtlkaggle.errors import UserError
from mtlkaggle.submit import CREDENTIAL_HELP, Upload, kaggle_api

if TYPE_CHECKING:
    from mtlkaggle.notebook import KernelOptions, NotebookOptions
    from mtlkaggle.spec import Spec

DONE = ("COMPLETE", "ERROR", "CANCEL_REQUESTED", "CANCEL_ACKNOWLEDGED")
_QUOTA_WORDS = ("quota", "submission limit", "daily limit", "allowance")  # Kaggle's wording varies


@dataclass(frozen=True)
class PushedKernel:
    """A notebook version Kaggle accepted: ``OWNER/SLUG``, its version number and address."""

    ref: str
    version: int | None
    url: str


@dataclass(frozen=True)
class KernelStatus:
    """Where a notebook's run stands: QUEUED, RUNNING, COMPLETE, ERROR, CANCEL_*."""

    status: str
    failure: str = ""
    seconds: float = 0.0

    @property
    def done(self) -> bool:
        """The run has ended, well or not."""
        return self.status in DONE


def _quiet():
    """Silence the client's own printing (progress, hints) for the block."""
    sink = io.StringIO()
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(sink))
    stack.enter_context(contextlib.redirect_stderr(sink))
    return stack


def _explain(error: Exception, what: str, fix: str = "") -> UserError:
    """One line for an HTTP, network or client failure, with what to do."""
    import requests

    status = getattr(getattr(error, "response", None), "status_code", None)
    text = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
    if status == 401:
        return UserError(f"{what}: Kaggle rejected the credentials (401 Unauthorized); {CREDENTIAL_HELP}")
    if status == 429 or any(w in text.lower() for w in _QUOTA_WORDS):
        return UserError(
            f"{what}: quota exhausted ({text}); wait for Kaggle's quota to reset, then try again"
        )
    if status is not None and status >= 500:
        return UserError(f"{what}: Kaggle's server failed ({status}); try again later")
    if isinstance(error, requests.exceptions.ConnectionError):
        return UserError(f"{what}: cannot reach Kaggle ({type(error).__name__}); check the network or proxy")
    if status is not None:
        return UserError(f"{what}: Kaggle refused it ({status}: {text}){'; ' + fix if fix else ''}")
    return UserError(f"{what}: {text}{'; ' + fix if fix else ''}")


def check_sources(metadata: dict, api=None) -> None:
    """Check that every dataset and model version the notebook attaches exists and is processed.

    Kaggle attaches only processed versions; a push made earlier would run without them.

    Raises:
        UserError: a dataset or model version that is missing, still processing, or failed.
    """
    from requests.exceptions import HTTPError

    api = api or kaggle_api()
    for ref in metadata.get("dataset_sources", []):
        what = f"checking dataset '{ref}'"
        try:
            with _quiet():
                status = str(api.dataset_status(ref)).lower()
        except HTTPError as e:
            if getattr(e.response, "status_code", None) == 404:
                raise UserError(
                    f"{what}: not found; upload the bundle with `mtlkaggle export COMP --upload {ref}`"
                ) from None
            raise _explain(e, what) from None
        except Exception as e:  # noqa: BLE001 - requests and client errors of many kinds
            raise _explain(e, what) from None
        if status == "failed":
            raise UserError(f"{what}: Kaggle failed to process it; upload it again (`export --upload {ref}`)")
        if status != "ready":
            raise UserError(f"{what}: Kaggle is still processing it ({status}); push again in a few minutes")
    for ref in metadata.get("model_sources", []):
        _check_model_version(ref, api)


def _check_model_version(ref: str, api) -> None:
    """A model source ``OWNER/MODEL/FRAMEWORK/VARIATION/N`` whose version Kaggle lists already."""
    from mtlkaggle.kaggle_datasets import model_version

    variation, version = ref.rsplit("/", 1)
    latest = model_version(variation, api)
    if latest is None or latest < int(version):
        raise UserError(
            f"checking model '{ref}': Kaggle lists version {latest or 'none'} so far (still processing, "
            "or not uploaded); push again in a few minutes"
        )


def push_kernel(folder: Path, api=None) -> PushedKernel:
    """``kernels_push`` of the push folder; checks what the client does not.

    Raises:
        UserError: no credentials, a refusal (quota, a source Kaggle could not attach), a server error.
    """
    metadata = json.loads((Path(folder) / "kernel-metadata.json").read_text(encoding="utf-8"))
    ref = metadata["id"]
    if metadata.get("enable_internet") is not False:  # the client would read a missing field as true
        raise UserError(
            f"{folder}/kernel-metadata.json: enable_internet must be false for a code competition"
        )
    api = api or kaggle_api()
    what = f"pushing notebook '{ref}'"
    try:
        with _quiet():
            response = api.kernels_push(str(folder))
    except Exception as e:  # noqa: BLE001
        raise _explain(e, what) from None
    error = str(getattr(response, "error", "") or "")
    if error:
        raise _explain(ValueError(error), what, "see https://www.kaggle.com/code/" + ref)
    invalid = [
        *(getattr(response, "invalid_dataset_sources", None) or []),
        *(getattr(response, "invalid_model_sources", None) or []),
        *(getattr(response, "invalid_competition_sources", None) or []),
    ]
    if invalid:
        raise UserError(
            f"{what}: Kaggle could not attach {', '.join(map(str, invalid))} (not found, not yours, or "
            "still processing); check them on kaggle.com and push again"
        )
    version = getattr(response, "version_number", None)
    url = str(getattr(response, "url", "") or f"https://www.kaggle.com/code/{ref}")
    return PushedKernel(ref, int(version) if version else None, url)


def kernel_status(ref: str, api=None, tolerate: bool = False) -> KernelStatus | None:
    """The status of the notebook's latest run (None on a server or network hiccup when ``tolerate``)."""
    from mtlkaggle.submit import is_transient

    api = api or kaggle_api()
    try:
        with _quiet():
            response = api.kernels_status(ref)
    except Exception as e:  # noqa: BLE001
        if tolerate and is_transient(e):
            return None
        raise _explain(e, f"reading the status of '{ref}'", "check OWNER/SLUG") from None
    status = getattr(response.status, "name", str(response.status))
    return KernelStatus(status, str(getattr(response, "failure_message", "") or ""))


def wait_for_kernel(
    ref: str,
    timeout: float,
    interval: float,
    on_poll: Callable[[KernelStatus], None] | None = None,
    api=None,
) -> KernelStatus:
    """Poll ``kernels_status`` until the run ends or ``timeout`` seconds pass; a server error or
    network hiccup only skips that look (the run goes on without us).

    Returns:
        The last status (``done`` False at the timeout), with the seconds waited.
    """
    api = api or kaggle_api()
    start = time.monotonic()
    status = KernelStatus("QUEUED")
    while True:
        status = kernel_status(ref, api, tolerate=True) or status
        status = KernelStatus(status.status, status.failure, time.monotonic() - start)
        if on_poll is not None:
            on_poll(status)
        if status.done or status.seconds >= timeout:
            return status
        time.sleep(max(0.0, min(interval, timeout - status.seconds)))


def log_tail(ref: str, lines: int = 25, api=None) -> list[str]:
    """The last ``lines`` lines of the run's log (Kaggle sends JSON events; plain text is kept)."""
    api = api or kaggle_api()
    try:
        with _quiet():
            log = api.kernels_logs(ref) or ""
    except Exception as e:  # noqa: BLE001
        return [f"(no log: {_explain(e, 'reading the log').args[0]})"]
    try:
        events = json.loads(log)
        if isinstance(events, list):
            log = "".join(str(e.get("data", "")) for e in events if isinstance(e, dict))
    except ValueError:
        pass
    return [line.rstrip() for line in log.splitlines() if line.strip()][-lines:]


def download_output(ref: str, dest: Path, api=None) -> list[Path]:
    """Download every file the notebook's run left into ``dest`` (the client refuses names that
    would escape it)."""
    api = api or kaggle_api()
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with _quiet():
            files, _ = api.kernels_output(ref, str(dest), force=True, quiet=True)
    except Exception as e:  # noqa: BLE001
        raise _explain(e, f"downloading the output of '{ref}'") from None
    return [Path(f) for f in files]


@dataclass(frozen=True)
class PushOptions:
    """Whether to send, and how long to watch the run."""

    dry_run: bool = False
    wait: bool = False
    timeout: float = 9 * 3600.0  # Kaggle stops a notebook session after 9 hours (12 on CPU)
    interval: float = 30.0


@dataclass
class PushResult:
    """What ``notebook --push`` did: the folder, Kaggle's answer and, with ``wait``, the run's end."""

    folder: Path
    metadata: dict
    pushed: PushedKernel | None = None
    status: KernelStatus | None = None
    log_tail: list[str] | None = None
    files: list[Path] | None = None
    checked: str = ""

    @property
    def failed(self) -> bool:
        """The run ended in an error, was cancelled, or was still going at the timeout."""
        return self.status is not None and self.status.status != "COMPLETE"


def push_notebook(
    spec: Spec,
    notebook: NotebookOptions,
    kernel: KernelOptions,
    folder: Path,
    options: PushOptions,
    on_poll: Callable[[KernelStatus], None] | None = None,
) -> PushResult:
    """Write the push folder; unless a dry run, push it, and with ``wait`` watch the run, then
    download its output and check ``submission.csv`` (or fetch the log tail of a failed run).

    Args:
        spec: The competition.
        notebook: The bundle source and TTA.
        kernel: The notebook's id, accelerator and visibility.
        folder: The push folder; the run's output goes to ``folder/output``.
        options: Dry run, wait, timeout and poll interval.
        on_poll: Called with each status while waiting (progress display).

    Raises:
        UserError: no credentials, an unprocessed dataset, a refused push, a bad ``submission.csv``.
    """
    from mtlkaggle.notebook import SUBMISSION, check_submission_csv, write_push_folder

    result = PushResult(Path(folder), write_push_folder(spec, notebook, kernel, folder))
    if options.dry_run:
        return result
    api = kaggle_api()
    check_sources(result.metadata, api)
    result.pushed = push_kernel(result.folder, api)
    if not options.wait:
        return result
    ref = result.pushed.ref
    result.status = wait_for_kernel(ref, options.timeout, options.interval, on_poll, api)
    if result.status.status == "COMPLETE":
        result.files = download_output(ref, result.folder / "output", api)
        result.checked = check_submission_csv(spec, result.folder / "output" / SUBMISSION)
    elif result.status.done:
        result.log_tail = log_tail(ref, api=api)
    return result


def check_code_competition(slug: str, api) -> None:
    """Refuse a competition Kaggle lists as taking files rather than notebooks (one it does not
    list is left for Kaggle to judge).

    Raises:
        UserError: not a code competition.
    """
    try:
        with _quiet():
            response = api.competitions_list(search=slug)
    except Exception as e:  # noqa: BLE001
        raise _explain(e, f"looking up competition '{slug}'") from None
    for competition in getattr(response, "competitions", None) or []:
        if str(getattr(competition, "ref", "")).rstrip("/").rsplit("/", 1)[-1] == slug:
            if not getattr(competition, "is_kernels_submissions_only", False):
                raise UserError(
                    f"'{slug}' is not a code competition (it takes submission files): "
                    "submit the files with `mtlkaggle submit COMP` instead"
                )
            return


def submit_kernel(spec: Spec, kernel: str, version: int | None, message: str, run: str | None) -> Upload:
    """Submit a notebook version's ``submission.csv`` to the spec's competition and record it in
    ``submissions/COMP/submitted.json``.

    Raises:
        UserError: a bad reference, no credentials, not a code competition, a refusal (quota,
            rules not accepted, an unknown version); nothing is recorded then.
    """
    from mtlkaggle.notebook import SUBMISSION, check_kernel_ref, competition_slug
    from mtlkaggle.submit import read_record, record_code_submission

    check_kernel_ref(kernel)
    slug = competition_slug(spec, required=True)
    read_record(spec.name)  # a damaged record stops the submission before anything is sent
    api = kaggle_api()
    check_code_competition(slug, api)
    what = f"submitting notebook '{kernel}'{f' version {version}' if version else ''} to '{slug}'"
    try:
        with _quiet():
            response = api.competition_submit_code(SUBMISSION, message, slug, kernel, version, quiet=True)
    except Exception as e:  # noqa: BLE001
        if getattr(getattr(e, "response", None), "status_code", None) == 403:
            raise UserError(
                f"{what}: forbidden (403): accept the rules at https://www.kaggle.com/competitions/{slug}/rules"
            ) from None
        raise _explain(e, what, "check the notebook and its version on kaggle.com") from None
    ref = str(getattr(response, "ref", "") or "")
    text = str(getattr(response, "message", "") or "")
    if not ref or ref == "0":
        refusal = ValueError(text or "no submission reference returned")
        raise _explain(refusal, f"{what}: Kaggle did not accept it")
    upload = Upload(Path(SUBMISSION), slug, ref, text)
    record_code_submission(spec.name, upload, message, kernel, version, run)
    return upload
