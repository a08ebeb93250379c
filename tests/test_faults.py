"""Fault injection through the CLI: every bad input or damaged artefact is one clear line.

Each case damages a copy of a small trained project (the tiny demo, fold 0 trained for one epoch,
its submissions written), runs one command as a user would, and asserts: the exit code, an error
line naming the file (or option) and the fix, no traceback, and no file changed, added or left
half-written.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from PIL import Image

from mtlkaggle.cli import app

from .conftest import REPO, TINY_TRAIN, tiny_cli

TINY = tiny_cli(batch_size=16)
DATA = Path("data/demo")
RUN = Path("runs/demo/main")
SRC = REPO / "src"


@pytest.fixture(scope="module")
def _trained_template(_tiny_demo_template, tmp_path_factory) -> Path:
    """The tiny demo with folds, fold 0 trained one epoch, thresholds and submissions written."""
    from typer.testing import CliRunner

    root = tmp_path_factory.mktemp("faults") / "ws"
    shutil.copytree(_tiny_demo_template, root)
    before = Path.cwd()
    os.chdir(root)
    try:
        runner = CliRunner()
        for args in (
            ["folds", "demo", "--n-splits", str(TINY_TRAIN["n_splits"]), "--seed", "0"],
            ["train", "demo", "--fold", "0", *TINY],
            ["predict", "demo", "--num-workers", "0"],
            ["export", "demo", "--no-wheel", "--onnx"],
        ):
            result = runner.invoke(app, args)
            assert result.exit_code == 0, (args, result.output)
    finally:
        os.chdir(before)
    return root


@pytest.fixture
def project(_trained_template, tmp_path, monkeypatch) -> Path:
    root = tmp_path / "ws"
    shutil.copytree(_trained_template, root)
    monkeypatch.chdir(root)
    return root


def _snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _replace_line(path: Path, number: int, text: str) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[number - 1] = text
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _append_latin1(path: Path, line: str) -> None:
    with open(path, "ab") as f:
        f.write(line.encode("latin-1"))


def _bomb(path: Path) -> None:
    Image.new("1", (10_000, 10_000)).save(path, format="PNG")  # 100 Mpx over PIL's limit, 12 kB


def _first_train_image() -> Path:
    return DATA / (DATA / "train.csv").read_text(encoding="utf-8").splitlines()[1].split(",")[0]


@dataclass(frozen=True)
class Case:
    """A damage, the command that meets it, and what its one error line must say."""

    id: str
    damage: Callable[[Path], None]
    args: list[str]
    expect: list[str]
    code: int = 2


def _dup_row(root: Path) -> None:
    path = root / "submissions/demo/category.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join([lines[0], *lines[1:-1], lines[1]]) + "\n", encoding="utf-8")


def _extra_row(root: Path) -> None:
    path = root / "submissions/demo/category.csv"
    path.write_text(path.read_text(encoding="utf-8") + "img/not-a-test-image.jpg,3\n", encoding="utf-8")


def _missing_row(root: Path) -> None:
    path = root / "submissions/demo/category.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")


def _write(relative: str | Path, data: bytes) -> Callable[[Path], None]:
    return lambda root: (root / relative).write_bytes(data)


def _latin1(relative: str | Path, line: str) -> Callable[[Path], None]:
    return lambda root: _append_latin1(root / relative, line)


def _header_only(relative: str | Path) -> Callable[[Path], None]:
    def damage(root: Path) -> None:
        path = root / relative
        path.write_text(path.read_text(encoding="utf-8").splitlines()[0] + "\n", encoding="utf-8")

    return damage


def _line(relative: str | Path, number: int, text: str | None = None) -> Callable[[Path], None]:
    """Replace line ``number`` with ``text`` (default: a copy of line 2, the first data row)."""

    def damage(root: Path) -> None:
        path = root / relative
        _replace_line(path, number, text if text is not None else path.read_text().splitlines()[1])

    return damage


def _nothing(root: Path) -> None:
    pass


BEST, LAST = RUN / "fold0/best.pt", RUN / "fold0/last.pt"
BUNDLE = Path("bundles/demo/main")
BUNDLE_JSON, WEIGHTS = BUNDLE / "bundle.json", BUNDLE / "fold0.safetensors"
PREDICT_BUNDLE = ["predict", "--bundle", str(BUNDLE), "--competition-files", "--out-dir", "bsub"]
RECORD = Path("submissions/demo/submitted.json")
THRESHOLDS, FOLD_CONFIG = RUN / "thresholds.json", RUN / "fold0/config.json"
CATEGORY = "submissions/demo/category.csv"
EVALUATE = ["evaluate", "demo", "submissions/demo"]
RESUME = ["train", "demo", "--fold", "0", "--resume", *TINY]
NAN_THRESHOLDS = ('{"attribute": {"thresholds": [NaN' + ", 0.5" * 14 + "]}}").encode()


def _drop_task_from_bundle(root: Path) -> None:
    """Edit bundle.json by hand as a user might: the attribute task and its file removed."""
    path = root / BUNDLE_JSON
    meta = json.loads(path.read_text(encoding="utf-8"))
    meta["spec"]["tasks"] = [t for t in meta["spec"]["tasks"] if t["name"] != "attribute"]
    meta["spec"]["submissions"] = [
        s for s in meta["spec"]["submissions"] if "attribute" not in s["columns"].values()
    ]
    path.write_text(json.dumps(meta), encoding="utf-8")


def _truncate(relative: str | Path, keep: int) -> Callable[[Path], None]:
    def damage(root: Path) -> None:
        path = root / relative
        path.write_bytes(path.read_bytes()[:keep])

    return damage


CASES = [
    # 1. submissions against the ids
    Case(
        "evaluate-duplicated-id",
        _dup_row,
        EVALUATE,
        ["category.csv", "1 id(s) appear more than once", "1 id(s) of the labels are missing"],
    ),
    Case(
        "evaluate-extra-id", _extra_row, EVALUATE, ["category.csv", "1 id(s) are not in the labels ('img/not"]
    ),
    Case(
        "evaluate-missing-id", _missing_row, EVALUATE, ["category.csv", "1 id(s) of the labels are missing"]
    ),
    Case("submit-duplicated-id", _dup_row, ["submit", "demo", "--dry-run"], ["category.csv", "appear more"]),
    Case("evaluate-non-utf8", _latin1(CATEGORY, "\u00e9,1\n"), EVALUATE, ["category.csv:26: not UTF-8"]),
    # 4. artefacts read back
    Case("empty-thresholds", _write(THRESHOLDS, b""), ["predict", "demo"], ["thresholds.json: empty file"]),
    Case(
        "truncated-thresholds",
        _write(THRESHOLDS, b'{"attribute": {"thr'),
        ["predict", "demo"],
        ["thresholds.json:1: not valid JSON", "mtlkaggle tune demo --run main"],
    ),
    Case(
        "wrong-thresholds",
        _write(THRESHOLDS, b'{"attribute": {"thresholds": [0.5]}}'),
        ["predict", "demo"],
        ["thresholds.json: task 'attribute' needs 15 thresholds, found 1 values"],
    ),
    Case(
        "nan-threshold",
        _write(THRESHOLDS, NAN_THRESHOLDS),
        ["predict", "demo"],
        ["task 'attribute': threshold nan is not a number in [0, 1]"],
    ),
    Case(
        "non-utf8-thresholds",
        _latin1(THRESHOLDS, "\u00e9"),
        ["predict", "demo"],
        ["thresholds.json:", "not UTF-8 (byte 0xe9 at column 1)"],  # its last line + 1: the file grows
    ),
    Case(
        "empty-best", _write(BEST, b""), ["predict", "demo"], ["best.pt: empty file (0 bytes)", "--overwrite"]
    ),
    Case(
        "pickled-best",
        lambda r: torch.save({"model": object}, r / BEST),
        ["predict", "demo"],
        ["best.pt: not a readable checkpoint", "refused"],
    ),
    Case(
        "garbage-last", _write(LAST, b"PK\x03\x04 not a zip"), RESUME, ["last.pt: not a readable checkpoint"]
    ),
    Case(
        "non-utf8-fold-config", _write(FOLD_CONFIG, b'{"spec": "\xff"}'), RESUME, ["config.json:1: not UTF-8"]
    ),
    Case(
        "list-fold-config", _write(FOLD_CONFIG, b"[1, 2]"), RESUME, ["expected a JSON object, found a list"]
    ),
    Case(
        "bad-run-config",
        _write(RUN / "config.json", b'{"name": "demo"'),
        ["report", "demo"],
        ["runs/demo/main/config.json:1: not valid JSON", "train again"],
    ),
    Case(
        "invalid-run-config",
        _write(RUN / "config.json", b'{"name": 3}'),
        ["report", "demo"],
        ["runs/demo/main/config.json: field", "train again"],
    ),
    Case(
        "empty-metrics",
        _write(RUN / "fold0/metrics.csv", b""),
        ["report", "demo"],
        ["metrics.csv: empty file", "--fold 0 --overwrite"],
    ),
    Case(
        "metrics-without-score",
        _write(RUN / "fold0/metrics.csv", b"epoch,lr\n1,0.1\n"),
        ["report", "demo"],
        ["metrics.csv:1: no column(s) 'score'"],
    ),
    Case(
        "oof-text-probability",
        _line(RUN / "fold0/oof.csv", 3, "x," + ",".join(["abc"] * 25)),
        ["tune", "demo"],
        ["oof.csv:3 [category:tshirt]: 'abc' is not a finite number in [0.0, 1.0]", "--fold 0"],
    ),
    Case(
        "oof-header-only",
        _header_only(RUN / "fold0/oof.csv"),
        ["tune", "demo"],
        ["oof.csv: no rows after the header", "--fold 0 --overwrite"],
    ),
    Case(
        "folds-duplicate-id",
        _line("folds/demo.csv", 3),
        ["train", "demo", "--fold", "1", *TINY],
        ["folds/demo.csv:3: id", "has a second fold", "mtlkaggle folds demo"],
    ),
    Case(
        "folds-non-utf8",
        _latin1("folds/demo.csv", "\u00e9.jpg,1\n"),
        ["train", "demo", "--fold", "1", *TINY],
        ["folds/demo.csv:", "not UTF-8"],
    ),
    # 7. text files
    Case(
        "non-utf8-competition-file",
        _latin1("competition/demo.toml", "# caf\u00e9\n"),
        ["check", "demo"],
        ["competition/demo.toml:", "not UTF-8 (byte 0xe9", "save the file as UTF-8"],
    ),
    Case(
        "non-utf8-label-file",
        _latin1(DATA / "train.csv", "img/\u00e9.jpg,1,2\n"),
        ["folds", "demo"],
        ["train.csv:92: not UTF-8 (byte 0xe9 at column 5)", "save the file as UTF-8"],
    ),
    Case(
        "short-row",
        _line(DATA / "train.csv", 5, "img/short.jpg,3"),
        ["folds", "demo"],
        ["train.csv:5: expected 3 fields", "found 2: missing value(s)"],
    ),
    Case(
        "long-row",
        _line(DATA / "train.csv", 7, "img/long.jpg,3,1 2,extra"),
        ["folds", "demo"],
        ["train.csv:7: expected 3 fields", "found 4: extra value(s)"],
    ),
    Case(
        "header-only-train",
        _header_only(DATA / "train.csv"),
        ["folds", "demo"],
        ["train.csv: no data rows (an empty or header-only file)"],
    ),
    Case(
        "header-only-labels",
        _header_only(DATA / "test_labels.csv"),
        EVALUATE,
        ["test_labels.csv: no data rows"],
    ),
    Case(
        "duplicate-test-id",
        _line(DATA / "test.csv", 3),
        ["predict", "demo"],
        ["test.csv:3 [file_path]: duplicate id", "(first on line 2)"],
    ),
    # 8. options, checked before any model loads (best.pt is damaged to prove it)
    Case(
        "unknown-view",
        _write(BEST, b""),
        ["predict", "demo", "--tta", "--views", "foo"],
        ["--views: unknown view 'foo'", "valid views: identity, hflip, vflip"],
    ),
    Case(
        "views-without-tta",
        _write(BEST, b""),
        ["predict", "demo", "--views", "hflip"],
        ["--views hflip: views are used only with --tta; add --tta"],
    ),
    Case("bad-zoom", _write(BEST, b""), ["predict", "demo", "--tta", "--views", "zoom:0"], ["view 'zoom:0'"]),
    Case(
        "fold-twice",
        _write(BEST, b""),
        ["predict", "demo", "--folds", "0,0"],
        ["--folds 0,0: fold 0 named twice"],
    ),
    Case("unknown-fold", _nothing, ["predict", "demo", "--folds", "0,7"], ["no trained fold 7; trained: 0"]),
    Case(
        "predict-device-gpu",
        _write(BEST, b""),
        ["predict", "demo", "--device", "gpu"],
        ["--device gpu: not a"],
    ),
    Case("train-device-gpu", _nothing, ["train", "demo", "--device", "gpu"], ["--device gpu: not a device"]),
    Case(
        "out-dir-is-a-file",
        _nothing,
        ["predict", "demo", "--out-dir", "competition/demo.toml"],
        ["--out-dir competition/demo.toml: is a file"],
    ),
    Case(
        "missing-labels-file",
        _nothing,
        [*EVALUATE, "--labels", "nowhere.csv"],
        ["nowhere.csv: label file not found"],
    ),
    Case(
        "missing-submission-folder",
        _nothing,
        ["evaluate", "demo", "nowhere"],
        ["nowhere/category.csv: submission file not found", "mtlkaggle predict demo"],
    ),
    Case(
        "missing-data-dir",
        _nothing,
        ["folds", "demo", "--data-dir", "nowhere"],
        ["nowhere/train.csv: label file not found", "--data-dir"],
    ),
    Case(
        "train-unknown-fold", _nothing, ["train", "demo", "--fold", "9", *TINY], ["--fold 9: expected 'all'"]
    ),
    # 9. the newer commands (export, bundles, notebook, submit's record): issue 24
    Case(
        "export-out-is-a-file",
        _nothing,
        ["export", "demo", "--no-wheel", "--out", "competition/demo.toml"],
        ["--out competition/demo.toml: is a file, not a folder"],
    ),
    Case(
        "export-fold-twice",
        _nothing,
        ["export", "demo", "--no-wheel", "--folds", "0,0", "--out", "elsewhere"],
        ["--folds 0,0: fold 0 named twice"],
    ),
    Case(
        "seed-twice",
        _nothing,
        ["train", "demo", "--seeds", "0,0", *TINY],
        ["--seeds 0,0: seed 0 named twice"],
    ),
    Case(
        "run-twice",
        _nothing,
        ["predict", "demo", "--runs", "main,main"],
        ["--runs main,main: run main named twice"],
    ),
    Case(
        "view-twice",
        _write(BEST, b""),
        ["predict", "demo", "--tta", "--views", "hflip,hflip"],
        ["--views hflip,hflip: view hflip named twice"],
    ),
    Case(
        "bundle-fold-twice",
        _nothing,
        [*PREDICT_BUNDLE, "--folds", "0,0"],
        ["--folds 0,0: fold 0 named twice"],
    ),
    Case(
        "bundle-json-task-removed",
        _drop_task_from_bundle,
        PREDICT_BUNDLE,
        ["fold0.safetensors", "bundle.json", "weights of task(s) attribute that the spec does not name"],
    ),
    Case(
        "notebook-ref-without-slash",
        _nothing,
        ["notebook", "demo", "--bundle-dataset", "alicedemo"],
        ["--bundle-dataset alicedemo: expected OWNER/SLUG"],
    ),
    Case(
        "notebook-ref-with-space",
        _nothing,
        ["notebook", "demo", "--bundle-dataset", "alice/demo bundle"],
        ["--bundle-dataset alice/demo bundle: expected OWNER/SLUG"],
    ),
    Case(
        "empty-bundle-json",
        _write(BUNDLE_JSON, b""),
        PREDICT_BUNDLE,
        ["bundle.json: empty file", "export it"],
    ),
    Case(
        "truncated-bundle-json",
        _truncate(BUNDLE_JSON, 40),
        PREDICT_BUNDLE,
        ["bundle.json:", "not valid JSON", "export it again"],
    ),
    Case(
        "non-utf8-bundle-json", _latin1(BUNDLE_JSON, "\u00e9"), PREDICT_BUNDLE, ["bundle.json:", "not UTF-8"]
    ),
    Case(
        "list-bundle-json",
        _write(BUNDLE_JSON, b"[1, 2]"),
        PREDICT_BUNDLE,
        ["bundle.json: expected a JSON object, found a list"],
    ),
    Case(
        "bundle-json-without-folds",
        _write(BUNDLE_JSON, b'{"format": 1, "spec": {}, "thresholds": {}}'),
        PREDICT_BUNDLE,
        ["bundle.json: not an mtlkaggle bundle (no folds)"],
    ),
    Case(
        "empty-safetensors",
        _write(WEIGHTS, b""),
        PREDICT_BUNDLE,
        ["fold0.safetensors: cannot load fold 0's weights", "export again"],
    ),
    Case(
        "truncated-safetensors",
        _truncate(WEIGHTS, 1000),
        PREDICT_BUNDLE,
        ["fold0.safetensors: cannot load fold 0's weights"],
    ),
    Case(
        "garbage-safetensors",
        _write(WEIGHTS, b"\x08\x00\x00\x00\x00\x00\x00\x00{garbage"),
        PREDICT_BUNDLE,
        ["fold0.safetensors: cannot load fold 0's weights"],
    ),
    Case(
        "damaged-record-stops-submit",
        _write(RECORD, b'[{"ref": "1", "fi'),
        ["submit", "demo", "--dry-run"],
        ["submitted.json:1: not valid JSON", "move it aside"],
    ),
    Case(
        "record-not-a-list",
        _write(RECORD, b'{"ref": "1"}'),
        ["submit", "demo", "--dry-run"],
        ["submitted.json: expected a JSON list of submissions"],
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_fault_gives_one_line_and_changes_nothing(project, runner, case):
    case.damage(project)
    before = _snapshot(project)
    result = runner.invoke(app, case.args)
    assert result.exit_code == case.code, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for text in case.expect:
        assert text in lines[0], (text, lines[0])
    assert "score" not in result.stdout
    assert _snapshot(project) == before  # nothing changed, added, or left half-written


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_fails_before_loading(project, runner):
    (project / RUN / "fold0/best.pt").write_bytes(b"")
    for command in (["predict", "demo"], ["train", "demo", "--fold", "0"]):
        result = runner.invoke(app, [*command, "--device", "cuda"])
        assert result.exit_code == 2
        expected = "error: --device cuda: CUDA is not available on this machine; use --device cpu"
        assert result.stderr.strip() == expected


def test_negative_workers_is_a_usage_error(project, runner):
    result = runner.invoke(app, ["train", "demo", "--num-workers", "-1"])
    assert result.exit_code == 2
    assert "Invalid value for '--num-workers'" in result.output and "Traceback" not in result.output


def test_check_lists_bad_rows_and_never_opens_an_escaping_path(project, runner):
    """A path outside the data folder is reported and never opened (the file there is garbage)."""
    (project / "outside.jpg").write_bytes(b"not a jpeg")
    train = project / DATA / "train.csv"
    _replace_line(train, 3, "../../outside.jpg,1,2")
    _replace_line(train, 6, "img/short.jpg,3")
    _bomb(project / DATA / "images" / "bomb.png")
    _replace_line(train, 8, "images/bomb.png,1,2")
    before = _snapshot(project)
    result = runner.invoke(app, ["check", "demo"])
    assert result.exit_code == 1, result.output
    err = result.stderr
    assert "train.csv:3" in err and "image path '../../outside.jpg' escapes the data folder" in err
    assert "train.csv:6: expected 3 fields (file_path, category_label, attribute_label), found 2" in err
    assert "train.csv:8: " in err and "bomb.png: refused as a possible decompression bomb: 10000x10000" in err
    assert "not a jpeg" not in err and "outside.jpg: unreadable" not in err
    assert "Traceback" not in result.output
    assert _snapshot(project) == before


def _cli(*args: str) -> subprocess.CompletedProcess:
    """The CLI in a fresh process: forking DataLoader workers from a pytest process whose torch
    already ran can deadlock in OpenMP, which a user's process never meets."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-m", "mtlkaggle", *args], capture_output=True, text=True, env=env, timeout=500
    )


@pytest.mark.slow
def test_bad_images_in_worker_processes(project):
    """With 2 DataLoader workers: a bad image stops training with the main process's one line;
    with --skip-bad-images the bomb and the corrupt file are skipped, printed, listed in the report."""
    bad = _first_train_image()
    (project / bad).write_bytes(b"\xff\xd8 truncated")
    workers = [*TINY, "--num-workers", "2", "--batch-size", "15"]  # 60 rows: no batch is dropped
    result = _cli("train", "demo", "--fold", "1", *workers)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and f"{bad}: unreadable image" in lines[0], result.stderr
    assert "--skip-bad-images" in lines[0]
    assert "Caught" not in result.stderr and "Traceback" not in result.stderr

    second = (project / DATA / "train.csv").read_text(encoding="utf-8").splitlines()[2].split(",")[0]
    _bomb(project / DATA / second)
    result = _cli("train", "demo", "--fold", "1", "--overwrite", "--skip-bad-images", *workers)
    assert result.returncode == 0, result.stderr
    assert "unreadable image(s) this epoch" in result.stdout + result.stderr
    skipped = (project / RUN / "fold1/skipped.txt").read_text(encoding="utf-8").splitlines()
    assert len(skipped) == 2 and any("decompression bomb" in s for s in skipped), skipped
    result = _cli("report", "demo")
    assert result.returncode == 0, result.stderr
    report = (project / "reports/demo/main/report.md").read_text(encoding="utf-8")
    assert "## Skipped images (2" in report and "decompression bomb" in report


@pytest.mark.slow
def test_runs_flags_a_damaged_run_and_lists_the_others(project, runner):
    """A truncated metrics.csv in one run, a damaged summary.csv and submissions record: the other
    runs are listed, the damaged one is flagged with its file, and nothing is written."""
    shutil.copytree(project / RUN, project / "runs/demo/other")
    metrics = project / "runs/demo/other/fold0/metrics.csv"
    metrics.write_bytes(metrics.read_bytes()[:30])  # cut inside the header
    (project / RUN / "summary.csv").write_bytes(b"\xff\xfe garbage")  # no command reads it back
    (project / RECORD).write_bytes(b'[{"ref": ')
    before = _snapshot(project)
    result = runner.invoke(app, ["runs", "demo"])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    rows = {line.split()[1] for line in result.stdout.splitlines() if line.startswith("│")}
    assert {"main", "other"} <= rows, result.stdout
    assert "damaged: see below" in result.stdout
    assert "run 'other' not scored:" in result.stderr and "other/fold0/metrics.csv" in result.stderr
    assert (
        "submitted.json:1: not valid JSON" in result.stderr and "Kaggle columns are left out" in result.stderr
    )
    data = json.loads(runner.invoke(app, ["runs", "demo", "--json"]).stdout)
    by_name = {r["name"]: r for r in data["runs"]}
    assert by_name["main"]["problem"] is None
    assert "metrics.csv" in by_name["other"]["problem"]
    assert _snapshot(project) == before


@pytest.mark.slow
def test_runs_lists_a_run_that_holds_only_a_full_data_fit(project, runner):
    result = runner.invoke(app, ["train", "demo", "--fold", "full", "--run", "fit", *TINY])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["runs", "demo"])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output and "not scored" not in result.stderr
    names = [line.split()[1] for line in result.stdout.splitlines() if line.startswith("│")]
    assert "fit" in names and "main" in names


@pytest.mark.slow
def test_predict_bundle_reads_safetensors_not_the_onnx_files(project, runner):
    """ONNX files are for other runtimes: a damaged one changes nothing that predict --bundle does."""
    (project / BUNDLE / "fold0.onnx").write_bytes(b"not onnx")
    result = runner.invoke(app, PREDICT_BUNDLE)
    assert result.exit_code == 0, result.output
    assert (project / "bsub/category.csv").read_bytes() == (
        project / "submissions/demo/category.csv"
    ).read_bytes()
