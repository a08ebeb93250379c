"""Output for people and for scripts: full tables through a pipe, JSON, progress on stderr, escaping."""

from __future__ import annotations

import io
import json

import numpy as np
from rich.console import Console

from mtlkaggle.cli import app
from mtlkaggle.console import PIPE_WIDTH, make_console
from mtlkaggle.data import read_split
from mtlkaggle.progress import make_progress
from mtlkaggle.spec import load_spec
from mtlkaggle.submission import write_submissions


def write_random_submission(workspace, seed: int = 0):
    spec = load_spec("demo")
    test = read_split(spec, "test", labelled=False)
    rng = np.random.default_rng(seed)
    predictions = {
        "category": rng.integers(0, 10, len(test)),
        "attribute": (rng.random((len(test), 15)) < 0.3).astype(np.float32),
    }
    out = workspace / "submissions/demo"
    write_submissions(spec, test.ids, predictions, test.ids, out)
    return out


def test_piped_console_is_wide_and_terminal_console_fits_the_window():
    piped = make_console()
    piped.file = io.StringIO()
    assert not piped.is_terminal and piped.width == PIPE_WIDTH
    terminal = Console(file=io.StringIO(), force_terminal=True, width=60)
    assert terminal.width == 60


def test_submit_dry_run_through_a_pipe_shows_full_names(runner, workspace):
    write_random_submission(workspace)
    result = runner.invoke(app, ["submit", "demo", "--dry-run"])  # CliRunner's stdout is not a TTY
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if "would submit 24 rows" in line]
    assert len(rows) == 2  # one line per file: nothing folded or cut at 80 columns
    assert "submissions/demo/category.csv" in rows[0] and "deepfashion-category-prediction" in rows[0]
    assert "submissions/demo/attribute.csv" in rows[1] and "deepfashion-attribute-prediction" in rows[1]
    assert "…" not in result.output


def test_progress_goes_to_stderr_and_stays_off_without_a_terminal():
    default = make_progress()
    assert default.console.stderr and default.disable  # pytest's stderr is no terminal
    buffer = io.StringIO()
    piped = make_progress(Console(file=buffer))
    with piped:
        task = piped.add_task("work", total=3, unit="img", status="")
        piped.advance(task, 3)
    assert piped.disable and buffer.getvalue() == ""
    drawn = io.StringIO()
    with make_progress(Console(file=drawn, force_terminal=True, width=120)) as shown:
        task = shown.add_task("fold [b]x", total=3, unit="img", status="loss [red]")
        shown.advance(task, 3)
    assert not shown.disable and "3/3" in drawn.getvalue()
    assert "fold [b]x" in drawn.getvalue() and "loss [red]" in drawn.getvalue()  # printed as written


def test_check_json_is_one_object_on_stdout(runner, workspace):
    result = runner.invoke(app, ["check", "demo", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)  # nothing else on stdout: no table, no progress bar
    assert report["ok"] is True and report["images_checked"] == 90 + 24
    assert report["splits"]["train"]["rows"] == 90
    train = read_split(load_spec("demo"), "train")
    counts = np.bincount(train.targets["category"], minlength=10)
    assert list(report["splits"]["train"]["targets"]["category"].values()) == counts.tolist()
    (workspace / "data/demo/images/train_00002.jpg").unlink()
    result = runner.invoke(app, ["check", "demo", "--json"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert report["problems"] == [
        {
            "file": report["splits"]["train"]["file"],
            "line": 4,
            "column": None,
            "message": f"{workspace / 'data/demo/images/train_00002.jpg'}: image not found",
            "fatal": True,
        }
    ]


def test_evaluate_json_matches_the_table(runner, workspace):
    write_random_submission(workspace)
    result = runner.invoke(app, ["evaluate", "demo", "submissions/demo", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    scores = {(s["task"], s["metric"]): s["score"] for s in report["scores"]}
    assert set(scores) == {
        ("category", "accuracy"),
        ("category", "macro_f1"),
        ("attribute", "mean_f1"),
        ("attribute", "macro_f1"),
    }
    mean, count = report["task_means"]["macro_f1"]["mean"], report["task_means"]["macro_f1"]["tasks"]
    assert count == 2 and mean == (scores["category", "macro_f1"] + scores["attribute", "macro_f1"]) / 2
    table = runner.invoke(app, ["evaluate", "demo", "submissions/demo"])
    assert f"{scores['category', 'accuracy']:.4f}" in table.output
    assert f"mean macro_f1 over 2 tasks: {mean:.4f}" in table.output


def test_strings_from_data_and_users_are_printed_verbatim(runner, workspace):
    toml = workspace / "competition/demo.toml"
    toml.write_text(toml.read_text().replace('"tshirt"', '"[bold]tshirt"').replace('"red"', '"[red]"'))
    lines = (workspace / "data/demo/train.csv").read_text().splitlines()
    cells = lines[3].split(",")
    lines[3] = ",".join([cells[0], "99", *cells[2:]])  # line 4: a category index out of range
    (workspace / "data/demo/train.csv").write_text("\n".join(lines) + "\n")
    result = runner.invoke(app, ["check", "demo", "--no-images"])
    assert result.exit_code == 1
    assert "train.csv:4 [category_label]: class 99 out of range 0..9" in result.output
    assert "[bold]tshirt=" in result.output and "[red]=" in result.output


def test_help_shows_brackets(runner):
    result = runner.invoke(app, ["train", "--help"])
    assert result.exit_code == 0 and "[train]" in result.output
