"""The ``mtlkaggle`` command line. Each command parses, calls one stage function and prints.

The table of contents, in the order ``mtlkaggle --help`` lists the commands (each module holds
one command family; torch, timm and kaggle are imported inside command bodies so ``--help`` is fast):

- :mod:`.data`: ``demo``, ``check``, ``folds``, ``init``, ``download``
- :mod:`.spec`: ``spec`` (``--reference``: every field of the competition file)
- :mod:`.train`: ``train``, ``tune``
- :mod:`.predict`: ``predict``, ``export``
- :mod:`.notebook`: ``notebook`` (write, ``--run-local``, ``--push --wait``)
- :mod:`.results`: ``evaluate``, ``runs``, ``report``
- :mod:`.kaggle`: ``submit``, ``submissions``
- :mod:`.options` and :mod:`.tables`: what the commands share.
"""

from __future__ import annotations

import typer

from mtlkaggle.cli import data, kaggle, notebook, predict, results, spec, train

app = typer.Typer(
    name="mtlkaggle",
    help="Multi-task image pipeline for Kaggle: folds, multi-head training, TTA ensembles, submissions.\n\n"
    "COMP is a competition name under competition/ (e.g. deepfashion, demo) or a path to a .toml.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

COMMANDS = (
    data.demo,
    data.check,
    data.folds,
    train.train,
    train.tune,
    predict.predict,
    predict.export,
    notebook.notebook,
    data.init,
    spec.spec,
    results.evaluate,
    kaggle.submit,
    kaggle.submissions,
    results.runs,
    data.download,
    results.report,
)
for _command in COMMANDS:
    app.command()(_command)


def main() -> None:  # pragma: no cover - console-script entry point
    """Entry point for ``python -m mtlkaggle``."""
    app()
