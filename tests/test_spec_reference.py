"""The spec reference is generated from the models: every field documented, and README's copy
equal to what `mtlkaggle spec --reference` prints."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mtlkaggle.cli import app
from mtlkaggle.errors import UserError
from mtlkaggle.spec import DataSpec, Spec, TaskSpec
from mtlkaggle.spec.reference import (
    END,
    START,
    replace_reference,
    sections,
    spec_reference,
    undocumented_fields,
)

README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_field_has_a_description():
    assert undocumented_fields() == []


def test_readme_reference_matches_the_models():
    text = README.read_text(encoding="utf-8")
    assert START in text and END in text
    block = text[text.index(START) + len(START) : text.index(END)].strip()
    assert block == spec_reference().strip(), "README's spec reference is stale: run `just spec-reference`"


def test_every_section_and_field_is_listed():
    reference = spec_reference()
    names = [path for path, _ in sections()]
    assert names[:4] == ["", "data", "data.keep", "data.long"] and "tasks" in names and "submissions" in names
    assert "#### `[[tasks]]`" in reference and "#### `[data.long]`" in reference
    for path, model in sections():
        for name in model.model_fields:
            assert f"| `{name}` |" in reference, (path, name)
    row = next(line for line in reference.splitlines() if line.startswith("| `group_column` |"))
    expected = 'Train column whose groups stay in one fold, e.g. "PatientID" (default none).'
    assert row == f"| `group_column` | str or none | `unset` | {expected} |"
    row = next(line for line in reference.splitlines() if line.startswith("| `loss_weight` |"))
    assert "float (>= 0)" in row and "`1.0`" in row
    assert DataSpec.model_fields["id_column"].description in reference
    assert TaskSpec.model_fields["label_sep"].description.replace("|", "\\|") in reference
    assert Spec.model_fields["data_dir"].is_required() and "| `data_dir` | str | `required` |" in reference


def test_cli_prints_the_reference_and_updates_a_readme(tmp_path):
    result = CliRunner().invoke(app, ["spec", "--reference"])
    assert result.exit_code == 0 and result.output == spec_reference()
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{START}\nold table\n{END}\n\nafter\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["spec", "--reference", "--readme", str(readme)])
    assert result.exit_code == 0 and "updated" in result.output
    text = readme.read_text(encoding="utf-8")
    assert "old table" not in text and text.endswith(f"{END}\n\nafter\n") and spec_reference() in text
    readme.write_text("# no markers\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["spec", "--reference", "--readme", str(readme)])
    assert result.exit_code == 2 and "spec-reference:start" in result.output
    with pytest.raises(UserError, match="no '<!-- spec-reference:start"):
        replace_reference("text", "ref")


def test_cli_prints_a_competition_with_its_defaults(workspace):
    result = CliRunner().invoke(app, ["spec", "demo"])
    assert result.exit_code == 0, result.output
    assert '"ema_decay": 0.998' in result.output and '"group_column": null' in result.output  # defaults
    result = CliRunner().invoke(app, ["spec"])
    assert result.exit_code == 2 and "--reference" in result.output
