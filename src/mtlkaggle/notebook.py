"""``mtlkaggle notebook``: a Kaggle notebook for a code competition, built from a bundle dataset.

In a code competition the test images exist only inside Kaggle, with the internet off. The
notebook installs the mtlkaggle wheel from the attached bundle dataset (``pip install --no-index
--no-deps``: Kaggle's image already has torch, timm, pandas...), runs ``mtlkaggle predict --bundle
--competition-files`` on the competition's data and leaves ``submission.csv`` in the working folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mtlkaggle.errors import UserError
from mtlkaggle.io import write_text_atomic
from mtlkaggle.spec import Spec

KAGGLE_INPUT = "/kaggle/input"
KAGGLE_WORKING = "/kaggle/working"


@dataclass(frozen=True)
class NotebookOptions:
    """The bundle dataset, where to write the notebook, and whether to predict with TTA."""

    bundle_dataset: str
    out: Path
    tta: bool = True


def notebook_cells(spec: Spec, options: NotebookOptions) -> list[tuple[str, str]]:
    """The notebook's cells as ``(kind, source)``; the first code cell holds every path."""
    from mtlkaggle.kaggle_datasets import check_dataset_ref

    _, slug = check_dataset_ref(options.bundle_dataset, "--bundle-dataset")
    competition = (
        spec.data.kaggle or next((s.kaggle for s in spec.submissions if s.kaggle), None) or spec.name
    )
    if not spec.submissions:
        raise UserError(f"competition '{spec.name}' names no submission files ([[submissions]])")
    first = spec.submissions[0].file
    tta = ', "--tta"' if options.tta else ""
    return [
        (
            "markdown",
            f"# {spec.name}: inference with mtlkaggle\n\n"
            f"Attach the dataset `{options.bundle_dataset}` (the bundle of `mtlkaggle export --upload`) and "
            f"the competition's data; the internet may stay off. Writes `submission.csv`.",
        ),
        (
            "code",
            f'BUNDLE = "{KAGGLE_INPUT}/{slug}"  # the attached bundle dataset\n'
            f'DATA = "{KAGGLE_INPUT}/{competition}"  # the competition\'s data\n'
            f'WORKING = "{KAGGLE_WORKING}"',
        ),
        (
            "code",
            "import glob, subprocess, sys\n\n"
            'wheel = sorted(glob.glob(f"{BUNDLE}/mtlkaggle-*.whl"))[-1]\n'
            "# offline: no index, and Kaggle's image already has torch, timm, pandas, ...\n"
            'install = [sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "-q", wheel]\n'
            "subprocess.run(install, check=True)",
        ),
        (
            "code",
            "import subprocess, sys\n\n"
            'command = [sys.executable, "-m", "mtlkaggle", "predict", "--bundle", BUNDLE,\n'
            f'           "--competition-files", "--data-dir", DATA, "--out-dir", WORKING{tta}]\n'
            "subprocess.run(command, check=True)",
        ),
        (
            "code",
            "import shutil\nfrom pathlib import Path\n\n"
            f'first = Path(WORKING) / "{first}"  # the spec\'s first submission file\n'
            'if first.name != "submission.csv":\n'
            '    shutil.copy(first, Path(WORKING) / "submission.csv")\n'
            'print(open(Path(WORKING) / "submission.csv").read()[:500])',
        ),
    ]


def write_notebook(spec: Spec, options: NotebookOptions) -> Path:
    """Write the ``.ipynb`` (nbformat 4, validated) and return its path."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    make = {"markdown": new_markdown_cell, "code": new_code_cell}
    notebook = new_notebook(cells=[make[kind](source) for kind, source in notebook_cells(spec, options)])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.metadata["language_info"] = {"name": "python"}
    nbformat.validate(notebook)
    write_text_atomic(options.out, nbformat.writes(notebook))
    return options.out
