"""Packaged specs: the competition files ship inside the wheel; `demo` and `init` work anywhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from mtlkaggle.cli import app
from mtlkaggle.spec import load_spec, packaged_specs

REPO = Path(__file__).resolve().parents[1]


def test_in_a_checkout_the_packaged_specs_are_the_competition_folder():
    assert [p.resolve() for p in packaged_specs()] == sorted((REPO / "competition").glob("*.toml"))


@pytest.mark.slow
def test_the_wheel_ships_every_competition_file_unchanged(exported_demo):
    meta = json.loads((exported_demo.bundle / "bundle.json").read_text())
    wheel = zipfile.ZipFile(exported_demo.bundle / meta["wheel"])
    shipped = {n.removeprefix("mtlkaggle/competitions/") for n in wheel.namelist() if n.endswith(".toml")}
    assert shipped == {p.name for p in (REPO / "competition").glob("*.toml")}
    for name in shipped:
        assert wheel.read(f"mtlkaggle/competitions/{name}") == (REPO / "competition" / name).read_bytes()


def test_demo_works_in_an_empty_directory(tmp_path, monkeypatch, runner):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["demo", "--n-train", "12", "--n-test", "3", "--image-size", "24"])
    assert result.exit_code == 0, result.output
    assert len((tmp_path / "data/demo/train.csv").read_text().splitlines()) == 13
    assert not (tmp_path / "competition").exists()
    assert load_spec("demo").name == "demo"  # the packaged copy, found without competition/


def test_a_local_competition_file_wins_over_the_packaged_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = (REPO / "competition/demo.toml").read_text().replace('data_dir = "data/demo"', 'data_dir = "mine"')
    (tmp_path / "competition").mkdir()
    (tmp_path / "competition/demo.toml").write_text(text)
    assert load_spec("demo").data_dir == "mine"


def test_init_copies_a_template_for_editing(tmp_path, monkeypatch, runner):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["init", "deepfashion", "my-shop"])
    assert result.exit_code == 0, result.output
    written = tmp_path / "competition/my-shop.toml"
    spec = load_spec("my-shop")
    assert spec.name == "my-shop" and [t.name for t in spec.tasks] == ["category", "attribute"]
    assert written.read_text().count('name = "my-shop"') == 1  # task names untouched
    result = runner.invoke(app, ["init", "deepfashion", "my-shop"])
    assert result.exit_code == 2 and "already exists" in result.output and "--force" in result.output
    result = runner.invoke(app, ["init", "nope"])
    assert result.exit_code == 2
    assert "unknown template 'nope'; packaged: aptos2019-blindness-detection," in result.output
    result = runner.invoke(app, ["init", "--list"])
    assert result.exit_code == 0 and "utkface" in result.output.split()


@pytest.mark.slow
def test_the_wheel_alone_runs_demo_in_an_empty_directory(exported_demo, tmp_path):
    """Unpack the exported wheel (a pure-Python install) and run it with no source tree on the path."""
    meta = json.loads((exported_demo.bundle / "bundle.json").read_text())
    site = tmp_path / "site"
    zipfile.ZipFile(exported_demo.bundle / meta["wheel"]).extractall(site)
    cwd = tmp_path / "empty"
    cwd.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    command = [
        sys.executable,
        "-m",
        "mtlkaggle",
        "demo",
        "--n-train",
        "10",
        "--n-test",
        "2",
        "--image-size",
        "24",
    ]
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (cwd / "data/demo/test.csv").is_file()
    probe = [sys.executable, "-c", "import mtlkaggle; print(mtlkaggle.__file__)"]
    where = subprocess.run(probe, cwd=cwd, env=env, capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(site))  # the unpacked wheel ran, not the checkout


@pytest.mark.slow
def test_an_installed_wheel_without_source_tree_repacks_itself(exported_demo, tmp_path):
    """Export from a `pip install`ed mtlkaggle: the installed files become the bundle's wheel."""
    meta = json.loads((exported_demo.bundle / "bundle.json").read_text())
    original = zipfile.ZipFile(exported_demo.bundle / meta["wheel"])
    site = tmp_path / "site"
    original.extractall(site)
    code = (
        "from pathlib import Path; from mtlkaggle.export import build_wheel; print(build_wheel(Path('out')))"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    repacked = zipfile.ZipFile(tmp_path / done.stdout.strip())  # printed relative to tmp_path
    assert sorted(repacked.namelist()) == sorted(original.namelist())
    for name in original.namelist():
        if not name.endswith("/RECORD"):
            assert repacked.read(name) == original.read(name), name


@pytest.mark.slow
def test_without_setuptools_the_checkout_is_packed_directly(exported_demo, tmp_path):
    """pack_checkout (pip's build needs setuptools) ships the same files, and its wheel runs."""
    from mtlkaggle.export import pack_checkout

    meta = json.loads((exported_demo.bundle / "bundle.json").read_text())
    built = zipfile.ZipFile(exported_demo.bundle / meta["wheel"])
    packed = zipfile.ZipFile(pack_checkout(REPO, tmp_path / "wheel"))
    assert {n for n in packed.namelist() if n.startswith("mtlkaggle/")} == {
        n for n in built.namelist() if n.startswith("mtlkaggle/")
    }
    info = next(n for n in packed.namelist() if n.endswith(".dist-info/entry_points.txt"))
    assert "mtlkaggle = mtlkaggle.cli:app" in packed.read(info).decode()
    site = tmp_path / "site"
    packed.extractall(site)
    code = "from mtlkaggle.spec import packaged_specs; print(len(packaged_specs()))"
    env = {**os.environ, "PYTHONPATH": str(site)}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0 and int(done.stdout) == len(list((REPO / "competition").glob("*.toml")))
