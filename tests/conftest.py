"""Shared fixtures: a tiny demo competition written into tmp_path, and the CLI runner."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mtlkaggle.demo import DemoConfig, make_demo
from mtlkaggle.paths import RunLayout
from mtlkaggle.spec import load_spec

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def _tiny_demo_template(tmp_path_factory) -> Path:
    """Draw the tiny demo once per session; tests get a private copy."""
    root = tmp_path_factory.mktemp("demo-template")
    (root / "competition").mkdir()
    shutil.copy(REPO / "competition" / "demo.toml", root / "competition" / "demo.toml")
    spec = load_spec(root / "competition" / "demo.toml", data_dir=root / "data" / "demo")
    make_demo(spec, DemoConfig(n_train=90, n_test=24, image_size=40, seed=3))
    return root


@pytest.fixture
def workspace(_tiny_demo_template, tmp_path, monkeypatch) -> Path:
    """A project folder with competition/demo.toml and 90+24 drawn images; the cwd is set to it."""
    root = tmp_path / "ws"
    shutil.copytree(_tiny_demo_template, root)
    monkeypatch.chdir(root)
    return root


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def write_toml(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def tiny_cli(batch_size: int = 8) -> list[str]:
    """`train` options of a tiny run on the command line: the test timm model, 32 px, one epoch."""
    return [
        "--backbone",
        "test_efficientnet",
        "--no-pretrained",
        "--img-size",
        "32",
        "--epochs",
        "1",
        "--batch-size",
        str(batch_size),
        "--num-workers",
        "0",
    ]


TINY_TRAIN = dict(
    backbone="test_efficientnet",
    pretrained=False,
    img_size=32,
    epochs=2,
    batch_size=16,
    num_workers=0,
    n_splits=3,
    warmup_epochs=0.5,
)


@pytest.fixture
def tiny_spec(workspace):
    """The tiny demo with a tiny timm model at 32 px, folds already written."""
    from mtlkaggle.data import read_split
    from mtlkaggle.folds import FoldConfig, folds_path, make_folds, write_folds
    from mtlkaggle.spec import with_train_overrides

    spec = with_train_overrides(load_spec("demo"), **TINY_TRAIN)
    table = read_split(spec, "train")
    write_folds(make_folds(spec, table, FoldConfig(3, seed=0)), folds_path(spec))
    return spec


@pytest.fixture(scope="session")
def exported_demo(_tiny_demo_template, tmp_path_factory):
    """Once per session: the tiny demo trained (folds 0 and 1 of 3, then a full-data fit), its
    run-based TTA prediction, and its bundle (with ONNX). Tests must not modify these files."""
    import contextlib
    from types import SimpleNamespace

    from mtlkaggle.data import read_split
    from mtlkaggle.export import ExportOptions, export_bundle
    from mtlkaggle.folds import FoldConfig, folds_path, make_folds, write_folds
    from mtlkaggle.predict import PredictOptions, run_predict
    from mtlkaggle.spec import with_train_overrides
    from mtlkaggle.train import TrainOptions, run_training

    root = tmp_path_factory.mktemp("exported") / "ws"
    shutil.copytree(_tiny_demo_template, root)
    with contextlib.chdir(root):
        spec = with_train_overrides(load_spec("demo"), **TINY_TRAIN)
        write_folds(make_folds(spec, read_split(spec, "train"), FoldConfig(3, seed=0)), folds_path(spec))
        run_dir = root / "runs/demo/main"
        options = TrainOptions(RunLayout(run_dir), device="cpu")
        for fold in ("0", "1", "full"):
            outcome = run_training(spec, fold, options)
        reference = run_predict(
            spec, PredictOptions(RunLayout(run_dir), root / "sub", tta=True, device="cpu", num_workers=0)
        )
        bundle = root / "bundle"
        export = export_bundle(spec, ExportOptions(RunLayout(run_dir), bundle, onnx=True))
    return SimpleNamespace(
        root=root,
        spec=spec,
        run_dir=run_dir,
        reference=reference[0],
        bundle=bundle,
        export=export,
        full_note=outcome.note,
    )
