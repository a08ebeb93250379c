"""The foundation commands end to end through Typer's CliRunner."""

import pandas as pd

from mtlkaggle.cli import app


def test_help_lists_commands(runner):
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("demo", "check", "folds"):
        assert command in result.output


def test_spec_sections_in_option_help_survive_rich_markup(runner, monkeypatch):
    """`[predict] tta` in a command's or option's help prints as written, not vanishing as a rich tag."""
    import re

    import typer

    monkeypatch.setenv("COLUMNS", "250")
    group = typer.main.get_command(app)
    checked = 0
    for name, command in group.commands.items():
        sections = {
            m.replace("\\", "")
            for text in [command.help, *(getattr(p, "help", None) for p in command.params)]
            for m in re.findall(r"\\?\[[a-z][a-z_.]*\]", text or "")
        }
        if not sections:
            continue
        output = runner.invoke(app, [name, "--help"], terminal_width=250).output
        for section in sections:
            assert section in output, (name, section)
            checked += 1
    assert checked >= 2


def test_a_long_title_over_narrow_columns_stays_on_one_line_in_a_pipe(capsys):
    from mtlkaggle.cli.tables import files_table
    from mtlkaggle.console import make_console

    title = "rsna-intracranial-hemorrhage-detection: run 'x', best epoch of each fold"
    make_console().print(files_table(title, [("a.csv", 6)]))
    lines = capsys.readouterr().out.splitlines()
    assert any(line.strip() == title for line in lines), lines


def test_demo_check_folds(runner, tmp_path, monkeypatch):
    from .conftest import REPO

    monkeypatch.chdir(tmp_path)
    (tmp_path / "competition").mkdir()
    (tmp_path / "competition/demo.toml").write_text((REPO / "competition/demo.toml").read_text())
    result = runner.invoke(app, ["demo", "--n-train", "40", "--n-test", "8", "--image-size", "32"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["check", "demo"])
    assert result.exit_code == 0, result.output
    assert "48 images opened, no problems" in result.output
    result = runner.invoke(app, ["folds", "demo", "--n-splits", "4", "--seed", "1"])
    assert result.exit_code == 0, result.output
    folds = pd.read_csv(tmp_path / "folds/demo.csv")
    assert list(folds.columns) == ["file_path", "fold"] and sorted(folds["fold"].unique()) == [0, 1, 2, 3]
    assert "category:hat" in result.output


def test_check_reports_bad_rows_and_exits_1(runner, workspace):
    (workspace / "data/demo/images/train_00002.jpg").unlink()
    result = runner.invoke(app, ["check", "demo"])
    assert result.exit_code == 1
    assert "train.csv:4" in result.output and "image not found" in result.output
    assert "1 problem(s)" in result.output


def test_user_errors_are_one_line_without_traceback(runner, workspace):
    result = runner.invoke(app, ["folds", "nope"])
    assert result.exit_code == 2
    assert "error: unknown competition 'nope'" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(app, ["check", "demo", "--data-dir", str(workspace / "missing")])
    assert result.exit_code == 2 and "label file not found" in result.output
    assert "Traceback" not in result.output


def test_folds_with_group_column_errors_clearly(runner, workspace):
    result = runner.invoke(app, ["folds", "demo", "--group-column", "nope"])
    assert result.exit_code == 2
    assert "no column 'nope' for --group-column" in result.output


def test_train_command_writes_run_and_refuses_to_clobber(runner, tiny_spec, workspace):
    args = [
        "train",
        "demo",
        "--fold",
        "0",
        "--epochs",
        "1",
        "--backbone",
        "test_efficientnet",
        "--no-pretrained",
        "--img-size",
        "32",
        "--batch-size",
        "16",
        "--num-workers",
        "0",
    ]
    # the tiny_spec fixture wrote 3 folds; the demo spec asks for 3 too
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "│ attribute/mean_f1" in result.output  # the per-fold score table
    assert (workspace / "runs/demo/main/fold0/best.pt").is_file()
    config = (workspace / "runs/demo/main/fold0/config.json").read_text()
    assert '"backbone": "test_efficientnet"' in config and '"img_size": 32' in config
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "pass --resume to continue it or --overwrite" in again.output
    resumed = runner.invoke(app, [*args, "--resume"])
    assert resumed.exit_code == 0, resumed.output


def test_train_rejects_bad_options(runner, tiny_spec):
    result = runner.invoke(app, ["train", "demo", "--fold", "7"])
    assert result.exit_code == 2 and "--fold 7: expected 'all', 'val', 'full' or 0..2" in result.output
    result = runner.invoke(app, ["train", "demo", "--epochs", "0"])
    assert result.exit_code == 2 and "--epochs" in result.output
    result = runner.invoke(app, ["train", "demo", "--fold", "val"])
    assert result.exit_code == 2 and "has no val file" in result.output
