"""export --upload: the bundle as a Kaggle dataset, with the real kaggle client against a local server."""

from __future__ import annotations

import contextlib
import io
import json
import tempfile

import pytest

from mtlkaggle.cli import app
from mtlkaggle.errors import UserError
from mtlkaggle.kaggle_datasets import upload_bundle

from .kaggle_datasets_server import DatasetsState, start

SECRET = "fedcba9876543210-secret-key"


@pytest.fixture(scope="module")
def datasets_server(tmp_path_factory):
    state = DatasetsState()
    server, _ = start(state)
    yield state, server.server_address[1], tmp_path_factory.mktemp("kaggle-config")
    server.shutdown()


@pytest.fixture
def kaggle(datasets_server, monkeypatch, tmp_path):
    """Env for the real client: local API through our proxy, credentials in the environment."""
    state, port, config_dir = datasets_server
    state.__init__()
    for name in ("NO_PROXY", "no_proxy", "KAGGLE_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KAGGLE_API_ENVIRONMENT", "LOCALHOST")
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(config_dir))
    monkeypatch.setenv("KAGGLE_USERNAME", "tester")
    monkeypatch.setenv("KAGGLE_KEY", SECRET)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the client's resumable-upload notes
    with contextlib.redirect_stdout(io.StringIO()):
        from kaggle.api.kaggle_api_extended import KaggleApi
    assert "--local" in KaggleApi.args  # the client read KAGGLE_API_ENVIRONMENT at its first import
    return state


@pytest.fixture
def bundle(tmp_path):
    """A small stand-in bundle: upload only needs the folder's files."""
    out = tmp_path / "bundle"
    out.mkdir()
    (out / "bundle.json").write_text(json.dumps({"format": 1}))
    (out / "fold0.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    (out / "mtlkaggle-0.1.0-py3-none-any.whl").write_bytes(b"PK wheel bytes")
    return out


def test_upload_creates_the_dataset_then_adds_versions(kaggle, bundle, capsys):
    done = upload_bundle(bundle, "tester/demo-bundle", "first")
    assert done == "created tester/demo-bundle: https://www.kaggle.com/datasets/tester/demo-bundle"
    versions = kaggle.datasets["tester/demo-bundle"]
    expected = ["bundle.json", "fold0.safetensors", "mtlkaggle-0.1.0-py3-none-any.whl"]
    assert versions == [{"call": "CreateDataset", "files": expected}]
    uploaded = {b["name"]: b["data"] for b in kaggle.blobs.values()}
    assert all(uploaded[name] == (bundle / name).read_bytes() for name in expected)
    create = next(r for r in kaggle.requests if r["call"] == "CreateDataset")
    assert create.get("isPrivate") is True and create["licenseName"] == "CC0-1.0"
    (bundle / "fold0.safetensors").write_bytes(b"new weights")
    done = upload_bundle(bundle, "tester/demo-bundle", "retrained")
    assert done.startswith("new version of tester/demo-bundle")
    assert [v["call"] for v in versions] == ["CreateDataset", "CreateDatasetVersion"]
    version = next(r for r in kaggle.requests if r["call"] == "CreateDatasetVersion")
    assert version["body"]["versionNotes"] == "retrained"
    assert all(h.startswith("Basic ") for h in kaggle.auth_headers)
    captured = capsys.readouterr()
    assert SECRET not in captured.out + captured.err


@pytest.mark.parametrize(
    ("scenario", "expected"),
    [
        ("401", r"rejected the credentials \(401 Unauthorized\)"),
        ("403", r"forbidden \(403\): 'tester' must be your Kaggle user name"),
        (
            "refused",
            r"creating dataset 'tester/demo-bundle': Kaggle refused it: The dataset slug is reserved",
        ),
    ],
)
def test_upload_failures_are_one_line_without_the_secret(kaggle, bundle, scenario, expected, capsys):
    kaggle.scenario = scenario
    with pytest.raises(UserError, match=expected) as info:
        upload_bundle(bundle, "tester/demo-bundle", "m")
    assert "\n" not in str(info.value) and SECRET not in str(info.value)
    captured = capsys.readouterr()
    assert SECRET not in captured.out + captured.err


def test_bad_reference_or_folder_fails_before_any_request(kaggle, bundle, tmp_path):
    with pytest.raises(UserError, match="expected OWNER/SLUG"):
        upload_bundle(bundle, "no-slash", "m")
    with pytest.raises(UserError, match="expected OWNER/SLUG"):
        upload_bundle(bundle, "tester/short", "m")  # Kaggle wants 6-50 characters
    with pytest.raises(UserError, match="no bundle.json"):
        upload_bundle(tmp_path / "empty", "tester/demo-bundle", "m")
    assert kaggle.calls == []


def test_missing_credentials(kaggle, bundle, monkeypatch):
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    with pytest.raises(UserError, match="no Kaggle credentials"):
        upload_bundle(bundle, "tester/demo-bundle", "m")
    assert kaggle.calls == []


@pytest.mark.slow
def test_cli_export_upload(kaggle, exported_demo, tmp_path, monkeypatch, runner):
    monkeypatch.chdir(exported_demo.root)
    out = tmp_path / "b"
    args = [
        "export",
        "demo",
        "--folds",
        "0",
        "--no-wheel",
        "--out",
        str(out),
        "--upload",
        "tester/demo-bundle",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "created tester/demo-bundle" in result.output and SECRET not in result.output
    assert kaggle.datasets["tester/demo-bundle"][0]["files"] == ["bundle.json", "fold0.safetensors"]
