"""``mtlkaggle submit`` and ``mtlkaggle download``: the official ``kaggle`` client, used carefully.

``import kaggle`` authenticates at import time, prints help and creates config folders, so it is
imported only here, only when needed, with its output captured. kaggle 2.2.4 does not raise when
an upload fails: the response's ``message``/``ref`` are checked. No credential is ever printed.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

from mtlkaggle.errors import UserError
from mtlkaggle.io import write_json_atomic
from mtlkaggle.paths import submitted_log
from mtlkaggle.spec import Spec, SubmissionSpec
from mtlkaggle.submission import check_file

CREDENTIAL_HELP = (
    "set KAGGLE_USERNAME and KAGGLE_KEY, or KAGGLE_API_TOKEN, or save kaggle.json from "
    "https://www.kaggle.com/settings/api to ~/.kaggle/ (or $KAGGLE_CONFIG_DIR)"
)


@dataclass(frozen=True)
class Upload:
    """One file sent to one competition, and Kaggle's answer."""

    file: Path
    competition: str
    ref: str
    message: str


@dataclass(frozen=True)
class KaggleSubmission:
    """One submission as Kaggle lists it: ``status`` is PENDING, COMPLETE or ERROR."""

    competition: str
    ref: str
    date: str
    file: str
    message: str
    status: str
    public_score: str | None
    private_score: str | None
    error: str

    @property
    def pending(self) -> bool:
        """Not scored yet (and not failed)."""
        return self.status not in ("COMPLETE", "ERROR")

    def to_json(self) -> dict:
        """A JSON-ready dict."""
        return asdict(self)


def _config_dirs() -> list[Path]:
    if os.environ.get("KAGGLE_CONFIG_DIR"):
        return [Path(os.environ["KAGGLE_CONFIG_DIR"])]
    home = Path.home()
    xdg = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")
    return [home / ".kaggle", xdg / "kaggle"]


def has_credentials() -> bool:
    """Whether any credential the kaggle client accepts is present (without importing it)."""
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        return True
    if os.environ.get("KAGGLE_API_TOKEN"):
        return True
    files = ("kaggle.json", "access_token", "access_token.txt", "credentials.json")
    return any((d / f).is_file() for d in _config_dirs() for f in files)


def kaggle_api():
    """An authenticated ``KaggleApi``, imported lazily and quietly.

    Raises:
        UserError: when no credentials are found or the client refuses them.
    """
    if not has_credentials():
        raise UserError(f"no Kaggle credentials: {CREDENTIAL_HELP}")
    quiet = io.StringIO()
    try:
        with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
            from kaggle.api.kaggle_api_extended import KaggleApi

            api = KaggleApi()
            # the client reads KAGGLE_CONFIG_DIR once, at import; honour the current setting
            if os.environ.get("KAGGLE_CONFIG_DIR"):
                api.config_dir = os.environ["KAGGLE_CONFIG_DIR"]
                api.config = os.path.join(api.config_dir, api.config_file)
            api.authenticate()
    except SystemExit:
        raise UserError(f"Kaggle did not accept the credentials found: {CREDENTIAL_HELP}") from None
    return api


def _explain(error: Exception, what: str, competition: str) -> UserError:
    """One clear line for an HTTP or network failure of the kaggle client."""
    import requests

    response = getattr(error, "response", None)
    status = getattr(response, "status_code", None)
    if status == 401:
        return UserError(f"{what}: Kaggle rejected the credentials (401 Unauthorized); {CREDENTIAL_HELP}")
    if status == 403:
        return UserError(
            f"{what}: forbidden (403): accept the rules of '{competition}' at "
            f"https://www.kaggle.com/competitions/{competition}/rules, then try again"
        )
    if status == 404:
        return UserError(f"{what}: competition '{competition}' not found (404); check `kaggle` in the spec")
    if status is not None and status >= 500:
        nothing = "; nothing was submitted" if what.startswith("submitting") else ""
        return UserError(f"{what}: Kaggle's server failed ({status}){nothing}; try again later")
    if isinstance(error, requests.exceptions.ConnectionError):
        return UserError(f"{what}: cannot reach Kaggle ({type(error).__name__}); check the network or proxy")
    return UserError(f"{what}: {type(error).__name__}: {str(error)[:200]}")


def validate_files(spec: Spec, submission_dir: Path) -> list[tuple[SubmissionSpec, Path, int]]:
    """Check every submission file as Kaggle will read it: header, ids (those of the sample
    submission where the spec names one, else the test file's), row count and every cell's kind
    (:func:`mtlkaggle.submission.check_file`)."""
    from mtlkaggle.data import read_split

    test_ids = list(read_split(spec, "test", labelled=False).ids)
    return [
        (sub, submission_dir / sub.file, check_file(spec, sub, submission_dir / sub.file, test_ids))
        for sub in spec.submissions
    ]


def submit_files(spec: Spec, submission_dir: Path, message: str, dry_run: bool = False) -> list[Upload]:
    """Validate every submission file, then upload each to its own competition.

    A dry run checks the files only: it needs no Kaggle slug and no credentials.

    Returns:
        One :class:`Upload` per file (``ref`` empty on a dry run).

    Raises:
        UserError: a file fails validation, a spec names no competition, or Kaggle refuses.
    """
    if not spec.submissions:
        raise UserError(f"competition '{spec.name}' names no submission files ([[submissions]])")
    checked = validate_files(spec, submission_dir)
    read_record(spec.name)  # a damaged record stops the upload before anything is sent
    if dry_run:
        return [
            Upload(path, sub.kaggle or "-", "", f"would submit {rows} rows") for sub, path, rows in checked
        ]
    missing = [sub.file for sub, _, _ in checked if not sub.kaggle]
    if missing:
        raise UserError(
            f'submission {missing[0]} names no Kaggle competition (`kaggle = "slug"` in the spec)'
        )
    api = kaggle_api()
    uploads = []
    for sub, path, _ in checked:
        what = f"submitting {path.name} to '{sub.kaggle}'"
        try:
            response = api.competition_submit(str(path), message, sub.kaggle, quiet=True)
        except Exception as e:  # noqa: BLE001 - the client raises requests errors of many kinds
            raise _explain(e, what, sub.kaggle) from None
        ref = str(getattr(response, "ref", "") or "")
        text = str(getattr(response, "message", "") or "")
        if not ref or ref == "0":
            done = f"; already uploaded: {', '.join(u.file.name for u in uploads)}" if uploads else ""
            _record_uploads(spec.name, submission_dir, message, uploads)
            raise UserError(
                f"{what}: Kaggle did not accept it: {text or 'no submission reference returned'}{done}"
            )
        uploads.append(Upload(path, sub.kaggle, ref, text))
    _record_uploads(spec.name, submission_dir, message, uploads)
    return uploads


RECORD_FIX = "move it aside (it records the earlier submissions) or delete it to start a new record"


def read_record(comp: str) -> list[dict]:
    """``submissions/COMP/submitted.json``: what ``submit`` sent and, once known, the scores.

    Raises:
        UserError: a damaged record (empty, not UTF-8, not JSON, not a list of objects): it is
            never overwritten, so no history is lost.
    """
    from mtlkaggle.readback import read_json

    path = submitted_log(comp)
    if not path.is_file():
        return []
    records = read_json(path, RECORD_FIX, "submissions record")
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise UserError(f"{path}: expected a JSON list of submissions; {RECORD_FIX}")
    return records


def _record_uploads(comp: str, submission_dir: Path, message: str, uploads: list[Upload]) -> None:
    """Append what was sent to ``submissions/COMP/submitted.json`` (which run made it, when)."""
    if not uploads:
        return
    run = None
    with contextlib.suppress(OSError, ValueError, AttributeError):
        run = json.loads((submission_dir / "config.json").read_text(encoding="utf-8")).get("run")
    date = datetime.now(timezone.utc).isoformat(timespec="seconds")
    records = read_record(comp) + [
        {
            "ref": u.ref,
            "competition": u.competition,
            "file": u.file.name,
            "message": message,
            "run": run,
            "submission_dir": str(submission_dir),
            "date": date,
            "status": "PENDING",
            "public_score": None,
            "private_score": None,
        }
        for u in uploads
    ]
    write_json_atomic(submitted_log(comp), records)


def record_code_submission(
    comp: str, upload: Upload, message: str, kernel: str, version: int | None, run: str | None
) -> None:
    """Append a notebook's submission (``submit --kernel``) to ``submissions/COMP/submitted.json``,
    as file submissions are: the same fields, plus the notebook and its version."""
    date = datetime.now(timezone.utc).isoformat(timespec="seconds")
    record = {
        "ref": upload.ref,
        "competition": upload.competition,
        "file": upload.file.name,
        "message": message,
        "run": run,
        "submission_dir": None,
        "date": date,
        "status": "PENDING",
        "public_score": None,
        "private_score": None,
        "kernel": kernel,
        "kernel_version": version,
    }
    write_json_atomic(submitted_log(comp), read_record(comp) + [record])


def _update_record(comp: str, listed: list[KaggleSubmission]) -> None:
    """Copy Kaggle's status and scores onto the submissions this project recorded."""
    records = read_record(comp)
    by_ref = {s.ref: s for s in listed}
    changed = False
    for record in records:
        found = by_ref.get(str(record.get("ref")))
        if found is not None:
            record.update(
                status=found.status, public_score=found.public_score, private_score=found.private_score
            )
            changed = True
    if changed:
        write_json_atomic(submitted_log(comp), records)


def _as_submission(competition: str, item) -> KaggleSubmission:
    status = getattr(item.status, "name", str(item.status))
    date = item.date.isoformat(sep=" ", timespec="seconds") if item.date else ""
    return KaggleSubmission(
        competition=competition,
        ref=str(item.ref),
        date=date,
        file=item.file_name or "",
        message=item.description or "",
        status=status,
        public_score=item.public_score or None,
        private_score=item.private_score or None,
        error=item.error_description or "",
    )


def is_transient(error: Exception) -> bool:
    """A server failure (5xx) or a network hiccup: worth asking again, unlike 401/403/404."""
    import requests

    status = getattr(getattr(error, "response", None), "status_code", None)
    if status is not None:
        return status >= 500
    return isinstance(error, requests.exceptions.ConnectionError | requests.exceptions.Timeout)


def _list_one(api, competition: str, limit: int, tolerate: bool = False) -> list[KaggleSubmission] | None:
    """Kaggle's list for one competition; ``None`` on a transient failure when ``tolerate``."""
    try:
        items = api.competition_submissions(competition, page_size=limit) or []
    except Exception as e:  # noqa: BLE001 - the client raises requests errors of many kinds
        if tolerate and is_transient(e):
            return None
        raise _explain(e, f"listing submissions of '{competition}'", competition) from None
    return [_as_submission(competition, item) for item in items if item is not None]


def list_submissions(spec: Spec, limit: int = 20, api=None) -> list[KaggleSubmission]:
    """The most recent submissions to each of the spec's Kaggle competitions, newest first.

    Also copies their status and scores into ``submissions/COMP/submitted.json``.

    Raises:
        UserError: no competition in the spec, no credentials, or Kaggle refuses.
    """
    # data.kaggle too: a code competition's notebook submits there (`submit --kernel`)
    slugs = list(dict.fromkeys([*(s.kaggle for s in spec.submissions if s.kaggle), spec.data.kaggle]))
    slugs = [s for s in slugs if s]
    if not slugs:
        raise UserError(
            f"competition '{spec.name}' names no Kaggle competition (`kaggle = \"slug\"` in the spec)"
        )
    api = api or kaggle_api()
    listed = [item for slug in slugs for item in _list_one(api, slug, limit)]
    _update_record(spec.name, listed)
    return sorted(listed, key=lambda s: s.date, reverse=True)


def wait_for_scores(
    spec: Spec,
    uploads: list[Upload],
    timeout: float = 900.0,
    interval: float = 15.0,
    on_poll: Callable[[list[KaggleSubmission]], None] | None = None,
) -> list[KaggleSubmission]:
    """Poll Kaggle's submissions list until every upload is scored or failed, or ``timeout`` passes.

    A server error or network hiccup while polling only skips that look (the files are already
    sent); refused credentials or an unknown competition stop at once.

    Returns:
        One entry per upload, in upload order; entries still ``PENDING`` at the timeout stay so.

    Raises:
        UserError: Kaggle refuses the listing, or does not list an upload it acknowledged.
    """
    api = kaggle_api()
    deadline = time.monotonic() + timeout
    found = {(u.competition, u.ref): _pending(u) for u in uploads}
    while True:
        for slug in dict.fromkeys(c for (c, _), s in found.items() if s.pending):
            listed = _list_one(api, slug, 100, tolerate=True)
            if listed is not None:
                _take_listed(found, slug, {s.ref: s for s in listed})
        current = list(found.values())
        _update_record(spec.name, current)
        if on_poll is not None:
            on_poll(current)
        if not any(s.pending for s in current) or time.monotonic() >= deadline:
            return current
        time.sleep(max(0.0, min(interval, deadline - time.monotonic())))


def _pending(upload: Upload) -> KaggleSubmission:
    return KaggleSubmission(
        upload.competition, upload.ref, "", upload.file.name, "", "PENDING", None, None, ""
    )


def _take_listed(found: dict, slug: str, listed: dict[str, KaggleSubmission]) -> None:
    for competition, ref in found:
        if competition != slug:
            continue
        if ref not in listed:
            raise UserError(
                f"Kaggle does not list submission {ref} ({found[competition, ref].file}) of '{slug}'; "
                f"see https://www.kaggle.com/competitions/{slug}/submissions"
            )
        found[competition, ref] = listed[ref]


def safe_extract(archive: Path, dest: Path) -> list[str]:
    """Extract a zip into ``dest``, refusing (before writing anything) members that escape it."""
    dest = dest.resolve()
    with zipfile.ZipFile(archive) as zf:
        members = zf.infolist()
        for member in members:
            name = PurePosixPath(member.filename.replace("\\", "/"))
            is_link = (member.external_attr >> 16) & 0o170000 == 0o120000
            target = (dest / name).resolve()
            if name.is_absolute() or ".." in name.parts or is_link or not target.is_relative_to(dest):
                raise UserError(
                    f"{archive}: member '{member.filename}' would land outside {dest}; nothing was extracted"
                )
        dest.mkdir(parents=True, exist_ok=True)
        zf.extractall(dest)
    return [m.filename for m in members if not m.is_dir()]


def download_competition(spec: Spec, dest: Path) -> list[str]:
    """Download the competition's files with the kaggle client and unzip them into ``dest``."""
    slug = spec.data.kaggle or next((s.kaggle for s in spec.submissions if s.kaggle), None)
    if not slug:
        raise UserError(f"competition '{spec.name}' names no Kaggle competition (data.kaggle in the spec)")
    api = kaggle_api()
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest) as tmp:
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                api.competition_download_files(slug, path=tmp, force=True, quiet=True)
        except Exception as e:  # noqa: BLE001
            raise _explain(e, f"downloading '{slug}'", slug) from None
        archives = sorted(Path(tmp).glob("*.zip"))
        if not archives:
            raise UserError(f"downloading '{slug}': Kaggle sent no zip archive")
        names = []
        for archive in archives:
            names += safe_extract(archive, dest)
        shutil.rmtree(tmp, ignore_errors=True)
    return names
