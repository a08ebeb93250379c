"""``mtlkaggle export --upload OWNER/SLUG``: a bundle as a Kaggle dataset, created or versioned.

Uses the official kaggle client (imported lazily, quietly; see :mod:`mtlkaggle.submit`). The
client reads ``dataset-metadata.json`` from the folder; it is written here. kaggle 2.2.4 reports
some refusals in the response's ``error`` instead of raising: both are turned into one line.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

from mtlkaggle.errors import UserError
from mtlkaggle.io import write_json_atomic
from mtlkaggle.submit import CREDENTIAL_HELP, kaggle_api

METADATA = "dataset-metadata.json"
_SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*/[a-z0-9][a-z0-9-]{4,48}[a-z0-9]$")


def check_dataset_ref(ref: str, option: str = "--upload") -> tuple[str, str]:
    """``OWNER/SLUG`` split in two; ``option`` is the option the user gave it with.

    Raises:
        UserError: anything but an owner, a slash and a 6-50 character lowercase slug.
    """
    if not _SLUG.match(ref):
        raise UserError(
            f"{option} {ref}: expected OWNER/SLUG, the slug 6-50 characters of a-z, 0-9 and '-' "
            "(e.g. alice/demo-mtlkaggle-bundle)"
        )
    owner, slug = ref.split("/")
    return owner, slug


def upload_bundle(bundle_dir: Path, ref: str, message: str) -> str:
    """Create the private dataset ``ref`` from ``bundle_dir``, or add a version when it exists.

    Returns:
        What happened, with the dataset's address.

    Raises:
        UserError: a bad reference, no credentials, or Kaggle refusing (one line, no secret).
    """
    _, slug = check_dataset_ref(ref)
    bundle_dir = Path(bundle_dir)
    if not (bundle_dir / "bundle.json").is_file():
        raise UserError(f"{bundle_dir}: no bundle.json; run `mtlkaggle export` first")
    title = slug.replace("-", " ")[:50]
    write_json_atomic(
        bundle_dir / METADATA,
        {
            "id": ref,
            "title": title if len(title) >= 6 else f"{title} bundle",
            "licenses": [{"name": "CC0-1.0"}],
        },
    )
    api = kaggle_api()
    exists = _exists(api, ref)
    what = f"{'versioning' if exists else 'creating'} dataset '{ref}'"
    quiet = io.StringIO()
    try:
        with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
            if exists:
                response = api.dataset_create_version(str(bundle_dir), message, quiet=True, dir_mode="skip")
            else:
                response = api.dataset_create_new(str(bundle_dir), public=False, quiet=True, dir_mode="skip")
    except Exception as e:  # noqa: BLE001 - requests and client errors of many kinds
        raise _explain(e, what, ref) from None
    error = str(getattr(response, "error", "") or "")
    if error:
        raise UserError(f"{what}: Kaggle refused it: {error[:300]}")
    url = str(getattr(response, "url", "") or "") or f"https://www.kaggle.com/datasets/{ref}"
    return f"{'new version of' if exists else 'created'} {ref}: {url}"


def _exists(api, ref: str) -> bool:
    """Whether the dataset exists (404: it does not; other failures are errors)."""
    from requests.exceptions import HTTPError

    try:
        with contextlib.redirect_stdout(io.StringIO()):
            api.dataset_status(ref)
    except HTTPError as e:
        if getattr(e.response, "status_code", None) == 404:
            return False
        raise _explain(e, f"looking up dataset '{ref}'", ref) from None
    except Exception as e:  # noqa: BLE001
        raise _explain(e, f"looking up dataset '{ref}'", ref) from None
    return True


def _explain(error: Exception, what: str, ref: str) -> UserError:
    import requests

    status = getattr(getattr(error, "response", None), "status_code", None)
    if status == 401:
        return UserError(f"{what}: Kaggle rejected the credentials (401 Unauthorized); {CREDENTIAL_HELP}")
    if status == 403:
        return UserError(
            f"{what}: forbidden (403): '{ref.split('/')[0]}' must be your Kaggle user name or a team of yours"
        )
    if status is not None and status >= 500:
        return UserError(f"{what}: Kaggle's server failed ({status}); try again later")
    if isinstance(error, requests.exceptions.ConnectionError):
        return UserError(f"{what}: cannot reach Kaggle ({type(error).__name__}); check the network or proxy")
    if isinstance(error, ValueError):  # the client's own checks of the metadata
        return UserError(f"{what}: {str(error)[:200]}")
    return UserError(f"{what}: {type(error).__name__}: {str(error)[:200]}")


MODEL_INSTANCE_METADATA = "model-instance-metadata.json"
_MODEL_REF = re.compile(
    r"^([a-z0-9]+(?:[_-][a-z0-9]+)*)/([a-z0-9]+(?:-[a-z0-9]+)*)/([A-Za-z0-9]+)/([a-z0-9]+(?:-[a-z0-9]+)*)$"
)


def check_model_ref(ref: str, option: str = "--upload-model") -> tuple[str, str, str, str]:
    """``OWNER/MODEL/FRAMEWORK/VARIATION`` split in four.

    Raises:
        UserError: another shape (Kaggle's slugs: lowercase a-z, 0-9 and '-').
    """
    if not _MODEL_REF.match(ref):
        raise UserError(
            f"{option} {ref}: expected OWNER/MODEL/FRAMEWORK/VARIATION in lowercase slugs "
            "(e.g. alice/demo-bundle/pyTorch/main)"
        )
    owner, model, framework, variation = ref.split("/")
    return owner, model, framework, variation


def upload_bundle_model(bundle_dir: Path, ref: str, message: str) -> tuple[str, str]:
    """Put the bundle on Kaggle Models: create the private model ``OWNER/MODEL`` when it is new,
    then its variation ``FRAMEWORK/VARIATION`` (version 1) or a new version of it.

    Returns:
        What happened, and the model source with its version (``OWNER/MODEL/FRAMEWORK/VARIATION/N``)
        for ``notebook --bundle-model``.

    Raises:
        UserError: a bad reference, no credentials, or Kaggle refusing (one line, no secret).
    """
    owner, model, framework, variation = check_model_ref(ref)
    bundle_dir = Path(bundle_dir)
    if not (bundle_dir / "bundle.json").is_file():
        raise UserError(f"{bundle_dir}: no bundle.json; run `mtlkaggle export` first")
    api = kaggle_api()
    if not _model_exists(api, f"{owner}/{model}"):
        _create_model(api, owner, model)
    write_json_atomic(
        bundle_dir / MODEL_INSTANCE_METADATA,
        {
            "ownerSlug": owner,
            "modelSlug": model,
            "instanceSlug": variation,
            "framework": framework,
            "overview": "An mtlkaggle bundle: `mtlkaggle predict --bundle DIR` (see bundle.json).",
            "usage": "pip install --no-index --no-deps mtlkaggle-*.whl; mtlkaggle predict --bundle DIR ...",
            "licenseName": "Apache 2.0",
            "fineTunable": False,
            "trainingData": [],
            "modelInstanceType": "Unspecified",
        },
    )
    before = model_version(ref, api, missing_ok=True)
    what = f"{'versioning' if before else 'creating'} model variation '{ref}'"
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            if before:
                response = api.model_instance_version_create(ref, str(bundle_dir), message, quiet=True)
            else:
                response = api.model_instance_create(str(bundle_dir), quiet=True)
    except Exception as e:  # noqa: BLE001
        raise _explain(e, what, ref) from None
    if str(getattr(response, "error", "") or ""):
        raise UserError(f"{what}: Kaggle refused it: {str(response.error)[:300]}")
    version = model_version(ref, api)
    return f"{'new version of' if before else 'created'} {ref}: version {version}", f"{ref}/{version}"


def model_version(ref: str, api=None, missing_ok: bool = False) -> int | None:
    """The latest version number of the model variation ``ref`` (None when it does not exist and
    ``missing_ok``).

    Raises:
        UserError: not found (unless ``missing_ok``), no credentials, Kaggle failing.
    """
    from requests.exceptions import HTTPError

    api = api or kaggle_api()
    what = f"looking up model variation '{ref}'"
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            instance = api.model_instance_get(ref)
    except HTTPError as e:
        if getattr(e.response, "status_code", None) == 404:
            if missing_ok:
                return None
            raise UserError(
                f"{what}: not found; upload it with `mtlkaggle export COMP --upload-model {ref}`"
            ) from None
        raise _explain(e, what, ref) from None
    except Exception as e:  # noqa: BLE001
        raise _explain(e, what, ref) from None
    return int(getattr(instance, "version_number", 0) or 0) or None


def _model_exists(api, ref: str) -> bool:
    from requests.exceptions import HTTPError

    try:
        with contextlib.redirect_stdout(io.StringIO()):
            api.model_get(ref)
    except HTTPError as e:
        if getattr(e.response, "status_code", None) == 404:
            return False
        raise _explain(e, f"looking up model '{ref}'", ref) from None
    except Exception as e:  # noqa: BLE001
        raise _explain(e, f"looking up model '{ref}'", ref) from None
    return True


def _create_model(api, owner: str, model: str) -> None:
    """``model_create_new`` reads ``model-metadata.json`` from a folder: a temporary one."""
    import tempfile

    title = model.replace("-", " ")
    with tempfile.TemporaryDirectory() as folder:
        write_json_atomic(
            Path(folder) / "model-metadata.json",
            {
                "ownerSlug": owner,
                "slug": model,
                "title": title if len(title) >= 5 else f"{title} model",
                "subtitle": "",
                "isPrivate": True,
                "description": "mtlkaggle bundles: fold weights (safetensors), bundle.json and the wheel.",
                "publishTime": "",
                "provenanceSources": "",
            },
        )
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                response = api.model_create_new(folder)
        except Exception as e:  # noqa: BLE001
            raise _explain(e, f"creating model '{owner}/{model}'", f"{owner}/{model}") from None
    if str(getattr(response, "error", "") or ""):
        raise UserError(f"creating model '{owner}/{model}': Kaggle refused it: {str(response.error)[:300]}")
