"""Code competitions with the real kaggle client against the local server: push the notebook,
watch its run, download and check submission.csv, submit the version, read the score back; the
bundle as a Kaggle Model; and every refusal as one line with nothing half-recorded."""

from __future__ import annotations

import contextlib
import io
import json
import tempfile

import nbformat
import numpy as np
import pytest

from mtlkaggle.cli import app
from mtlkaggle.data import read_split
from mtlkaggle.errors import UserError
from mtlkaggle.kaggle_datasets import upload_bundle_model
from mtlkaggle.spec import load_spec
from mtlkaggle.submission import write_submissions

from .kaggle_server import KaggleState, start

SECRET = "5a5a5a5a-kernels-secret-key"
KERNEL = "alice/demo-mtlkaggle-inference"  # the default id: the bundle's owner / COMP-mtlkaggle-inference


@pytest.fixture(scope="module")
def kaggle_server(tmp_path_factory):
    state = KaggleState()
    server, _ = start(state)
    yield state, server.server_address[1], tmp_path_factory.mktemp("kaggle-config")
    server.shutdown()


@pytest.fixture
def kaggle(kaggle_server, monkeypatch, tmp_path):
    """Env for the real client: local API through our proxy, credentials in the environment."""
    state, port, config_dir = kaggle_server
    state.__init__()
    for name in ("NO_PROXY", "no_proxy", "KAGGLE_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KAGGLE_API_ENVIRONMENT", "LOCALHOST")
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(config_dir))
    monkeypatch.setenv("KAGGLE_USERNAME", "alice")
    monkeypatch.setenv("KAGGLE_KEY", SECRET)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the client's resumable-upload notes
    with contextlib.redirect_stdout(io.StringIO()):
        from kaggle.api.kaggle_api_extended import KaggleApi
    assert "--local" in KaggleApi.args  # the client read KAGGLE_API_ENVIRONMENT at its first import
    return state


@pytest.fixture
def output_csv(workspace) -> bytes:
    """What a correct notebook leaves: the spec's first submission file for the test ids."""
    spec = load_spec("demo")
    test = read_split(spec, "test", labelled=False)
    rng = np.random.default_rng(1)
    predictions = {
        "category": rng.integers(0, 10, len(test)),
        "attribute": (rng.random((len(test), 15)) < 0.3).astype(np.float32),
    }
    out = workspace / "made-by-kernel"
    write_submissions(spec, test.ids, predictions, test.ids, out)
    return (out / "category.csv").read_bytes()


def _posts(state: KaggleState) -> list[str]:
    return [c.removeprefix("POST ") for c in state.calls if c.startswith("POST")]


def _request(state: KaggleState, call: str) -> dict:
    return next(r for r in state.requests if r["call"] == call)


PUSH = ["notebook", "demo", "--bundle-dataset", "alice/demo-bundle", "--push"]


def test_dry_run_writes_a_complete_push_folder_and_sends_nothing(kaggle, workspace, runner):
    result = runner.invoke(app, [*PUSH, "--dry-run", "--out-dir", "push"])
    assert result.exit_code == 0, result.output
    assert "nothing sent" in result.output and kaggle.calls == []
    metadata = json.loads((workspace / "push/kernel-metadata.json").read_text())
    assert metadata == {
        "id": KERNEL,
        "title": "demo mtlkaggle inference",
        "code_file": "demo-mtlkaggle-inference.ipynb",
        "language": "python",
        "kernel_type": "notebook",
        "is_private": True,
        "enable_gpu": False,
        "enable_tpu": False,
        "enable_internet": False,
        "dataset_sources": ["alice/demo-bundle"],
        "competition_sources": ["deepfashion-category-prediction"],
        "kernel_sources": [],
        "model_sources": [],
    }
    nbformat.validate(nbformat.read(workspace / "push/demo-mtlkaggle-inference.ipynb", as_version=4))
    args = ["--bundle-model", "alice/demo-bundle/pyTorch/main/3", "--push", "--dry-run", "--out-dir", "m"]
    args += ["--gpu", "--machine-shape", "NvidiaTeslaT4", "--public", "--kernel", "alice/my-notebook"]
    result = runner.invoke(app, ["notebook", "demo", *args])
    assert result.exit_code == 0, result.output
    metadata = json.loads((workspace / "m/kernel-metadata.json").read_text())
    assert (
        metadata["model_sources"] == ["alice/demo-bundle/pyTorch/main/3"]
        and metadata["dataset_sources"] == []
    )
    assert (metadata["id"], metadata["title"], metadata["code_file"]) == (
        "alice/my-notebook",
        "my notebook",
        "my-notebook.ipynb",
    )
    assert metadata["enable_gpu"] is True and metadata["machine_shape"] == "NvidiaTeslaT4"
    assert metadata["is_private"] is False and metadata["enable_internet"] is False
    assert kaggle.calls == []


def test_push_wait_downloads_and_checks_submission_csv(kaggle, workspace, runner, output_csv):
    kaggle.dataset_status["alice/demo-bundle"] = "READY"
    kaggle.kernel_outputs = {"submission.csv": output_csv, "category.csv": output_csv}
    kaggle.status_failures = 1  # a server hiccup while polling only skips that look
    result = runner.invoke(app, [*PUSH, "--wait", "--poll-interval", "0.01"])
    assert result.exit_code == 0, result.output
    assert f"pushed: {KERNEL} version 1" in result.output
    assert "24 rows, ids as in test.csv" in result.output
    assert f"mtlkaggle submit demo --kernel {KERNEL} --version 1" in result.output
    assert (workspace / "notebooks/demo/kernel/output/submission.csv").read_bytes() == output_csv
    running = ["GetKernelSessionStatus"] * (1 + kaggle.running_polls + 1)
    expected = ["GetDatasetStatus", "SaveKernel", *running, "ListKernelSessionOutput"]
    assert _posts(kaggle) == expected
    assert "GET /kernel-output/submission.csv" in kaggle.calls
    save = _request(kaggle, "SaveKernel")
    assert save["enableInternet"] is False and save["isPrivate"] is True and save["enableGpu"] is False
    assert save["datasetDataSources"] == ["alice/demo-bundle"]
    assert save["competitionDataSources"] == ["deepfashion-category-prediction"]
    pushed = json.loads(save["text"])  # the notebook the client sent is the one written
    written = nbformat.read(workspace / "notebooks/demo/kernel/demo-mtlkaggle-inference.ipynb", as_version=4)
    assert [c["source"] for c in pushed["cells"]] == [c.source for c in written.cells]
    assert all(h.startswith("Basic ") for h in kaggle.auth_headers)
    assert SECRET not in result.output


def test_failing_kernel_prints_the_log_tail_and_exits_1(kaggle, workspace, runner):
    kaggle.dataset_status["alice/demo-bundle"] = "READY"
    kaggle.kernel_run = "error"
    result = runner.invoke(app, [*PUSH, "--wait", "--poll-interval", "0.01"])
    assert result.exit_code == 1, result.output
    assert "FileNotFoundError: no test.csv under /kaggle/input" in result.output  # the log's last line
    assert "Traceback (most recent call last):" in result.output
    assert "the notebook's run ended ERROR: Your notebook hit an error" in result.output
    assert "Traceback" not in result.output.split("ended ERROR")[1]  # our own error is one line
    assert not (workspace / "notebooks/demo/kernel/output").exists()


def test_kernel_still_running_at_the_timeout_exits_1(kaggle, workspace, runner):
    kaggle.dataset_status["alice/demo-bundle"] = "READY"
    kaggle.kernel_run = "running"
    result = runner.invoke(app, [*PUSH, "--wait", "--timeout", "1", "--poll-interval", "0.05"])
    assert result.exit_code == 1, result.output
    assert f"still RUNNING after 1 s; follow it at https://www.kaggle.com/code/{KERNEL}" in result.output


@pytest.mark.parametrize(
    ("setup", "expected", "pushed"),
    [
        ({"dataset_status": {}}, "checking dataset 'alice/demo-bundle': not found; upload the bundle", False),
        (
            {"dataset_status": {"alice/demo-bundle": "BLOBS_RECEIVED"}},
            r"Kaggle is still processing it \(blobs_received\); push again in a few minutes",
            False,
        ),
        (
            {"dataset_status": {"alice/demo-bundle": "READY"}, "push_error": "Weekly GPU quota exceeded"},
            r"pushing notebook '[^']+': quota exhausted \(Weekly GPU quota exceeded\)",
            True,
        ),
        ({"scenario": "401"}, r"rejected the credentials \(401 Unauthorized\)", False),
    ],
)
def test_push_refusals_are_one_line(kaggle, workspace, runner, setup, expected, pushed):
    for key, value in setup.items():
        setattr(kaggle, key, value)
    result = runner.invoke(app, [*PUSH, "--wait"])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output
    assert __import__("re").search(expected, lines[0]), lines[0]
    assert ("SaveKernel" in _posts(kaggle)) is pushed
    assert SECRET not in result.output


def test_push_checks_what_the_client_does_not(kaggle, workspace, runner):
    from mtlkaggle.kaggle_kernels import push_kernel

    assert runner.invoke(app, [*PUSH, "--dry-run", "--out-dir", "push"]).exit_code == 0
    with pytest.raises(UserError, match=r"Kaggle could not attach alice/demo-bundle \(not found"):
        push_kernel(workspace / "push")  # Kaggle lists the unknown dataset among invalid sources
    metadata = json.loads((workspace / "push/kernel-metadata.json").read_text())
    del metadata["enable_internet"]  # the client would push with the internet on
    (workspace / "push/kernel-metadata.json").write_text(json.dumps(metadata))
    calls = len(kaggle.calls)
    with pytest.raises(UserError, match="enable_internet must be false for a code competition"):
        push_kernel(workspace / "push")
    assert len(kaggle.calls) == calls


def test_missing_credentials_send_nothing(kaggle, workspace, runner, monkeypatch):
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    for args in (PUSH, ["submit", "demo", "--kernel", KERNEL]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and "no Kaggle credentials: set KAGGLE_USERNAME" in result.output
    assert kaggle.calls == []
    assert not (workspace / "submissions/demo/submitted.json").exists()


def _fake_run(workspace) -> None:
    """A run folder `runs` can list: one fold's metrics (what `train` writes)."""
    fold = workspace / "runs/demo/main/fold0"
    fold.mkdir(parents=True)
    columns = "epoch,score,seconds,img_per_s,val/category/accuracy,val/category/macro_f1,"
    columns += "val/attribute/mean_f1,val/attribute/macro_f1"
    (fold / "metrics.csv").write_text(f"{columns}\n1,0.5,3.0,10.0,0.6,0.5,0.4,0.3\n")


def test_submit_kernel_wait_records_the_score_for_submissions_and_runs(kaggle, workspace, runner):
    _fake_run(workspace)
    kaggle.kernels[KERNEL] = {"versions": 2, "polls": 0}
    kaggle.scores = {"submission.csv": "0.73125"}
    args = ["submit", "demo", "--kernel", KERNEL, "--version", "2", "--run", "main", "--message", "nb v2"]
    result = runner.invoke(app, [*args, "--wait", "--poll-interval", "0.01"])
    assert result.exit_code == 0, result.output
    assert "0.73125" in next(line for line in result.output.splitlines() if "COMPLETE" in line)
    create = _request(kaggle, "CreateCodeSubmission")
    assert create == {
        "call": "CreateCodeSubmission",
        "competitionName": "deepfashion-category-prediction",
        "kernelOwner": "alice",
        "kernelSlug": "demo-mtlkaggle-inference",
        "kernelVersion": 2,
        "fileName": "submission.csv",
        "submissionDescription": "nb v2",
    }
    record = json.loads((workspace / "submissions/demo/submitted.json").read_text())
    assert len(record) == 1
    assert {
        k: record[0][k] for k in ("file", "kernel", "kernel_version", "run", "status", "public_score")
    } == {
        "file": "submission.csv",
        "kernel": KERNEL,
        "kernel_version": 2,
        "run": "runs/demo/main",
        "status": "COMPLETE",
        "public_score": "0.73125",
    }
    listed = json.loads(runner.invoke(app, ["submissions", "demo", "--json"]).stdout)["submissions"]
    assert [(s["file"], s["public_score"], s["message"]) for s in listed] == [
        ("submission.csv", "0.73125", "nb v2")
    ]
    runs = json.loads(runner.invoke(app, ["runs", "demo", "--json"]).stdout)["runs"]
    assert runs[0]["submission"] == "nb v2" and runs[0]["kaggle"] == {"submission.csv": "0.73125"}


@pytest.mark.parametrize(
    ("setup", "args", "expected"),
    [
        (
            {"scenario": "noref"},
            [],
            r"Kaggle did not accept it: quota exhausted \(Submission limit reached for today\)",
        ),
        (
            {"code_competitions": set()},
            [],
            r"'deepfashion-category-prediction' is not a code competition \(it takes submission files\)",
        ),
        ({}, ["--version", "9"], r"Kaggle refused it \(404: Notebook version not found\)"),
        ({"scenario": "rules"}, [], r"forbidden \(403\): accept the rules at https://www.kaggle.com/compe"),
    ],
)
def test_refused_code_submissions_record_nothing(kaggle, workspace, runner, setup, args, expected):
    kaggle.kernels[KERNEL] = {"versions": 2, "polls": 0}
    for key, value in setup.items():
        setattr(kaggle, key, value)
    result = runner.invoke(app, ["submit", "demo", "--kernel", KERNEL, *args, "--wait"])
    assert result.exit_code == 2, result.output
    assert __import__("re").search(expected, result.output), result.output
    assert "Traceback" not in result.output and SECRET not in result.output
    assert not (workspace / "submissions/demo/submitted.json").exists()
    assert "ListSubmissions" not in _posts(kaggle)


def test_a_damaged_record_stops_the_code_submission_before_it_is_sent(kaggle, workspace, runner):
    kaggle.kernels[KERNEL] = {"versions": 2, "polls": 0}
    record = workspace / "submissions/demo/submitted.json"
    record.parent.mkdir(parents=True)
    record.write_text('[{"ref": "1"')  # a write that never finished
    result = runner.invoke(app, ["submit", "demo", "--kernel", KERNEL])
    assert result.exit_code == 2 and "submitted.json:1: not valid JSON" in result.output
    assert "CreateCodeSubmission" not in _posts(kaggle)
    assert record.read_text() == '[{"ref": "1"'


def test_bad_references_fail_before_any_request(kaggle, workspace, runner):
    cases = [
        (["submit", "demo", "--kernel", "alice"], "expected OWNER/SLUG"),
        (["submit", "demo", "--version", "2"], "--version and --run go with --kernel"),
        (["notebook", "demo", "--bundle-model", "alice/m"], "expected OWNER/MODEL/FRAMEWORK/VARIATION"),
        (["notebook", "demo"], "exactly one of --bundle-dataset OWNER/SLUG or --bundle-model"),
        ([*PUSH[:4], "--wait"], "--dry-run, --wait and --kernel go with --push"),
        ([*PUSH, "--kernel", "alice/x"], "the slug 5-50 characters"),
        (["export", "demo", "--upload-model", "alice/m/pyTorch"], "expected OWNER/MODEL/FRAMEWORK/VARIATION"),
    ]
    for args, expected in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and expected in result.output, (args, result.output)
    assert kaggle.calls == []


@pytest.fixture
def bundle(tmp_path):
    """A small stand-in bundle: uploads only need the folder's files."""
    out = tmp_path / "bundle"
    out.mkdir()
    (out / "bundle.json").write_text(json.dumps({"format": 1}))
    (out / "fold0.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    (out / "mtlkaggle-0.1.0-py3-none-any.whl").write_bytes(b"PK wheel bytes")
    return out


def test_bundle_as_a_kaggle_model_then_pushed_with_its_version(kaggle, bundle, workspace, runner):
    ref = "alice/demo-bundle/pyTorch/main"
    done, source = upload_bundle_model(bundle, ref, "first")
    assert (done, source) == (f"created {ref}: version 1", f"{ref}/1")
    files = ["bundle.json", "fold0.safetensors", "mtlkaggle-0.1.0-py3-none-any.whl"]  # no metadata file
    assert kaggle.model_versions[ref] == [files]
    create = _request(kaggle, "CreateModel")
    assert create["isPrivate"] is True and (create["ownerSlug"], create["slug"]) == ("alice", "demo-bundle")
    instance = _request(kaggle, "CreateModelInstance")["body"]
    assert instance["framework"] == "MODEL_FRAMEWORK_PY_TORCH" and instance["instanceSlug"] == "main"
    done, source = upload_bundle_model(bundle, ref, "retrained")
    assert (done, source) == (f"new version of {ref}: version 2", f"{ref}/2")
    assert _request(kaggle, "CreateModelInstanceVersion")["body"]["versionNotes"] == "retrained"
    assert _posts(kaggle).count("CreateModel") == 1  # the model is created once

    result = runner.invoke(app, ["notebook", "demo", "--bundle-model", ref, "--push"])  # latest version
    assert result.exit_code == 0, result.output
    save = _request(kaggle, "SaveKernel")
    assert save["modelDataSources"] == [f"{ref}/2"] and save.get("datasetDataSources", []) == []
    result = runner.invoke(app, ["notebook", "demo", "--bundle-model", f"{ref}/5", "--push"])
    assert result.exit_code == 2
    assert f"checking model '{ref}/5': Kaggle lists version 2 so far (still processing" in result.output


def test_model_upload_refusals(kaggle, bundle, tmp_path):
    with pytest.raises(UserError, match="no bundle.json"):
        upload_bundle_model(tmp_path / "empty", "alice/demo-bundle/pyTorch/main", "m")
    assert kaggle.calls == []
    kaggle.scenario = "403"
    with pytest.raises(UserError, match=r"forbidden \(403\): 'alice' must be your Kaggle user name") as info:
        upload_bundle_model(bundle, "alice/demo-bundle/pyTorch/main", "m")
    assert "\n" not in str(info.value) and SECRET not in str(info.value)
