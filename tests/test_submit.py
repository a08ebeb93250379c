"""submit/download with the real kaggle client against a local server playing Kaggle's API."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

from mtlkaggle.cli import app
from mtlkaggle.data import read_split
from mtlkaggle.errors import UserError
from mtlkaggle.spec import load_spec
from mtlkaggle.submission import write_submissions
from mtlkaggle.submit import download_competition, safe_extract, submit_files

from .kaggle_server import KaggleState, start

SECRET = "0123456789abcdef-secret-key"


@pytest.fixture(scope="session")
def kaggle_server(tmp_path_factory):
    state = KaggleState()
    server, _ = start(state)
    config_dir = tmp_path_factory.mktemp("kaggle-config")
    yield state, server.server_address[1], config_dir
    server.shutdown()


@pytest.fixture
def kaggle(kaggle_server, monkeypatch):
    """Env for the real client: local API through our proxy, credentials in the environment."""
    state, port, config_dir = kaggle_server
    state.__init__()  # fresh recordings and scenario for each test
    for name in ("NO_PROXY", "no_proxy", "KAGGLE_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KAGGLE_API_ENVIRONMENT", "LOCALHOST")
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(config_dir))
    monkeypatch.setenv("KAGGLE_USERNAME", "tester")
    monkeypatch.setenv("KAGGLE_KEY", SECRET)
    import contextlib

    with contextlib.redirect_stdout(io.StringIO()):
        from kaggle.api.kaggle_api_extended import KaggleApi
    # the client reads KAGGLE_API_ENVIRONMENT once, at its first import: it must be this one
    assert "--local" in KaggleApi.args
    return state


@pytest.fixture
def submission_dir(workspace):
    spec = load_spec("demo")
    test = read_split(spec, "test", labelled=False)
    rng = np.random.default_rng(0)
    predictions = {
        "category": rng.integers(0, 10, len(test)),
        "attribute": (rng.random((len(test), 15)) < 0.3).astype(np.float32),
    }
    out = workspace / "submissions/demo"
    write_submissions(spec, test.ids, predictions, test.ids, out)
    return out


def test_submit_uploads_each_file_to_its_competition(kaggle, submission_dir, capsys):
    spec = load_spec("demo")
    uploads = submit_files(spec, submission_dir, "fold ensemble x hflip")
    assert [u.competition for u in uploads] == [s.kaggle for s in spec.submissions]
    assert all(u.ref for u in uploads) and uploads[0].message == "Successfully submitted"
    calls = [c.split("/")[0] if c.startswith("POST") else c.split(" ")[0] for c in kaggle.calls]
    assert calls == ["POST StartSubmissionUpload", "PUT", "POST CreateSubmission"] * 2
    starts = [r for r in kaggle.requests if r["call"] == "StartSubmissionUpload"]
    creates = [r for r in kaggle.requests if r["call"] == "CreateSubmission"]
    assert [r["competitionName"] for r in starts] == [s.kaggle for s in spec.submissions]
    assert [r["fileName"] for r in starts] == ["category.csv", "attribute.csv"]
    assert all(r["submissionDescription"] == "fold ensemble x hflip" for r in creates)
    for start_req, create in zip(starts, creates, strict=True):
        uploaded = kaggle.uploads[create["blobFileTokens"]]
        assert uploaded == (submission_dir / start_req["fileName"]).read_bytes()
    assert all(h.startswith("Basic ") for h in kaggle.auth_headers)
    assert SECRET not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("scenario", "expected"),
    [
        ("401", r"rejected the credentials \(401 Unauthorized\)"),
        ("403", r"forbidden \(403\): accept the rules of 'deepfashion-category-prediction'"),
        ("500", r"Kaggle's server failed \(500\)"),
        ("noref", r"did not accept it: Submission limit reached for today"),
        ("put500", r"did not accept it: Could not submit to competition"),
    ],
)
def test_submit_failures_are_one_clear_line(kaggle, submission_dir, scenario, expected, capsys):
    kaggle.scenario = scenario
    with pytest.raises(UserError, match=expected) as info:
        submit_files(load_spec("demo"), submission_dir, "m")
    assert "\n" not in str(info.value) and SECRET not in str(info.value)
    captured = capsys.readouterr()
    assert SECRET not in captured.out + captured.err


def test_missing_credentials(kaggle, submission_dir, monkeypatch):
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    with pytest.raises(UserError, match="no Kaggle credentials: set KAGGLE_USERNAME and KAGGLE_KEY"):
        submit_files(load_spec("demo"), submission_dir, "m")
    assert kaggle.calls == []


def test_kaggle_json_credentials(kaggle, submission_dir, monkeypatch, kaggle_server):
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    config = kaggle_server[2] / "kaggle.json"
    config.write_text(json.dumps({"username": "fromfile", "key": SECRET}))
    config.chmod(0o600)
    try:
        uploads = submit_files(load_spec("demo"), submission_dir, "m")
    finally:
        config.unlink()
    assert len(uploads) == 2


def test_api_token_credentials(kaggle, submission_dir, monkeypatch, capsys):
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    monkeypatch.setenv("KAGGLE_API_TOKEN", kaggle.valid_token)
    uploads = submit_files(load_spec("demo"), submission_dir, "m")
    assert len(uploads) == 2
    assert "Bearer kgat-valid-token" in kaggle.auth_headers
    monkeypatch.setenv("KAGGLE_API_TOKEN", "kgat-expired")
    with pytest.raises(UserError, match="Kaggle did not accept the credentials found: set KAGGLE_USERNAME"):
        submit_files(load_spec("demo"), submission_dir, "m")
    captured = capsys.readouterr()
    assert "kgat-expired" not in captured.out + captured.err


def test_invalid_file_is_refused_before_any_upload(kaggle, submission_dir):
    path = submission_dir / "category.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n")  # one test row missing
    with pytest.raises(UserError, match=r"1 id\(s\) of the test file are missing"):
        submit_files(load_spec("demo"), submission_dir, "m")
    assert kaggle.calls == []


def test_cli_submit_and_dry_run(kaggle, submission_dir, runner):
    result = runner.invoke(app, ["submit", "demo", "--dry-run"])
    assert result.exit_code == 0 and "would submit 24 rows" in result.output and kaggle.calls == []
    result = runner.invoke(app, ["submit", "demo", "--message", "cli"])
    assert result.exit_code == 0, result.output
    kaggle.scenario = "403"
    result = runner.invoke(app, ["submit", "demo"])
    assert result.exit_code == 2 and "accept the rules" in result.output and "Traceback" not in result.output


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def test_download_unzips_into_data_dir(kaggle, workspace):
    kaggle.zip_bytes = _zip({"train.csv": b"a,b\n", "img/0001.jpg": b"\xff\xd8"})
    spec = load_spec("demo", data_dir=workspace / "fresh")
    names = download_competition(spec, spec.data_path)
    assert sorted(names) == ["img/0001.jpg", "train.csv"]
    assert (workspace / "fresh/train.csv").read_bytes() == b"a,b\n"
    assert any(c.endswith("DownloadDataFiles") for c in kaggle.calls)


@pytest.mark.parametrize("bad", ["../escape.txt", "/abs/escape.txt", "ok/../../escape.txt"])
def test_download_refuses_members_outside_data_dir(kaggle, workspace, bad):
    kaggle.zip_bytes = _zip({"good.csv": b"x", bad: b"evil"})
    spec = load_spec("demo", data_dir=workspace / "fresh")
    with pytest.raises(UserError, match="would land outside"):
        download_competition(spec, spec.data_path)
    assert not (workspace / "fresh/good.csv").exists()  # nothing extracted
    assert not list(workspace.rglob("escape.txt"))


def test_safe_extract_refuses_symlinks(tmp_path):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("link")
        info.external_attr = 0o120777 << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(UserError, match="member 'link' would land outside"):
        safe_extract(archive, tmp_path / "out")


def _submit_from_run(submission_dir, run="runs/demo/a"):
    """Mark the files as made from ``run``, as ``predict`` does in its config.json."""
    (submission_dir / "config.json").write_text(json.dumps({"run": run}))


def test_submit_wait_prints_scores_and_records_them(kaggle, submission_dir, runner):
    _submit_from_run(submission_dir)
    kaggle.scores = {"category.csv": "0.91250", "attribute.csv": "0.64150"}
    kaggle.list_failures = 1  # a server hiccup while polling only skips that look
    args = ["submit", "demo", "--message", "fold ensemble", "--wait", "--poll-interval", "0.01"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    scored = [line for line in result.output.splitlines() if "COMPLETE" in line]
    assert len(scored) == 2
    assert "category.csv" in scored[0] and "0.91250" in scored[0]
    assert "attribute.csv" in scored[1] and "0.64150" in scored[1]
    lists = [c for c in kaggle.calls if c.endswith("ListSubmissions")]
    assert len(lists) == 1 + 2 * (kaggle.pending_polls + 1)  # polled until both were scored, no longer
    record = json.loads((submission_dir / "submitted.json").read_text())
    assert [(r["file"], r["status"], r["public_score"]) for r in record] == [
        ("category.csv", "COMPLETE", "0.91250"),
        ("attribute.csv", "COMPLETE", "0.64150"),
    ]
    assert all(r["run"] == "runs/demo/a" and r["message"] == "fold ensemble" for r in record)
    assert SECRET not in result.output


def test_submit_wait_scoring_error_and_timeout_exit_1(kaggle, submission_dir, runner):
    kaggle.scenario = "scoreerror"
    result = runner.invoke(app, ["submit", "demo", "--wait", "--poll-interval", "0.01"])
    assert result.exit_code == 1
    assert "Kaggle could not score category.csv (deepfashion-category-prediction): Evaluation failed" in (
        result.output
    )
    kaggle.__init__()
    kaggle.pending_polls = 10**6
    result = runner.invoke(app, ["submit", "demo", "--wait", "--timeout", "0.2", "--poll-interval", "0.05"])
    assert result.exit_code == 1
    assert "still pending after 0.2 s: category.csv, attribute.csv" in result.output
    assert "mtlkaggle submissions demo" in result.output


def test_submissions_lists_scores_newest_first(kaggle, submission_dir, runner):
    kaggle.pending_polls = 0
    kaggle.scores = {"category.csv": "0.90000", "attribute.csv": "0.60000"}
    assert runner.invoke(app, ["submit", "demo", "--message", "first"]).exit_code == 0
    result = runner.invoke(app, ["submissions", "demo", "--json"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)["submissions"]
    assert [(s["file"], s["public_score"], s["message"]) for s in listed] == [
        ("attribute.csv", "0.60000", "first"),
        ("category.csv", "0.90000", "first"),
    ]
    record = json.loads((submission_dir / "submitted.json").read_text())
    assert {r["public_score"] for r in record} == {"0.90000", "0.60000"}  # copied into the record
    table = runner.invoke(app, ["submissions", "demo"])
    assert "deepfashion-category-prediction" in table.output and "0.90000" in table.output
    kaggle.scenario = "401"
    result = runner.invoke(app, ["submissions", "demo"])
    assert result.exit_code == 2 and "rejected the credentials (401 Unauthorized)" in result.output
    assert SECRET not in result.output
    kaggle.scenario, kaggle.list_failures = "ok", 1
    result = runner.invoke(app, ["submissions", "demo"])
    assert result.exit_code == 2
    assert "listing submissions of 'deepfashion-category-prediction': Kaggle's server failed (503); try" in (
        result.output
    )
