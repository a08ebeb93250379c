"""``mtlkaggle notebook``: a Kaggle notebook for a code competition, and the folder that pushes it.

In a code competition the test images exist only inside Kaggle, with the internet off. The
notebook finds the attached bundle (a Kaggle dataset or a Kaggle Model version) and the
competition's data under ``/kaggle/input``, installs the mtlkaggle wheel from the bundle (``pip
install --no-index --no-deps``: Kaggle's image already has torch, timm, pandas...), runs
``mtlkaggle predict --bundle --competition-files`` and leaves ``submission.csv`` in the working
folder. Its first code cell holds every path, so a local run (:mod:`mtlkaggle.notebook_run`)
executes the same cells against a folder laid out like ``/kaggle/input``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

from mtlkaggle.errors import UserError
from mtlkaggle.io import write_json_atomic, write_text_atomic
from mtlkaggle.spec import Spec

KAGGLE_INPUT = "/kaggle/input"
KAGGLE_WORKING = "/kaggle/working"
KERNEL_METADATA = "kernel-metadata.json"
SUBMISSION = "submission.csv"
_SLUG = r"[a-z0-9]+(?:-[a-z0-9]+)*"
_MODEL = re.compile(rf"^([A-Za-z0-9][A-Za-z0-9_-]*)/({_SLUG})/([A-Za-z0-9]+)/({_SLUG})(?:/([0-9]+))?$")
_KERNEL = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_-]*)/([a-z0-9][a-z0-9-]{3,48}[a-z0-9])$")


@dataclass(frozen=True)
class BundleSource:
    """The bundle as Kaggle attaches it: a dataset ``OWNER/SLUG`` or a Kaggle Model variation
    ``OWNER/MODEL/FRAMEWORK/VARIATION[/VERSION]``."""

    kind: str  # "dataset" or "model"
    ref: str

    @classmethod
    def parse(cls, dataset: str | None, model: str | None) -> BundleSource:
        """The one source given.

        Raises:
            UserError: none or both given, or a reference of the wrong shape.
        """
        if (dataset is None) == (model is None):
            raise UserError("name the bundle: exactly one of --bundle-dataset OWNER/SLUG or --bundle-model")
        if dataset is not None:
            from mtlkaggle.kaggle_datasets import check_dataset_ref

            check_dataset_ref(dataset, "--bundle-dataset")
            return cls("dataset", dataset)
        if not _MODEL.match(model):
            raise UserError(
                f"--bundle-model {model}: expected OWNER/MODEL/FRAMEWORK/VARIATION[/VERSION], slugs of "
                "a-z, 0-9 and '-' (e.g. alice/demo-bundle/pyTorch/main/1)"
            )
        return cls("model", model)

    @property
    def parts(self) -> list[str]:
        """The reference split at its slashes."""
        return self.ref.split("/")

    @property
    def version(self) -> int | None:
        """A model's version number (None: not given; datasets always attach their latest)."""
        return int(self.parts[4]) if self.kind == "model" and len(self.parts) == 5 else None

    def with_version(self, version: int) -> BundleSource:
        """The same model variation at ``version``."""
        return replace(self, ref="/".join([*self.parts[:4], str(version)]))

    def mounts(self) -> list[str]:
        """Where Kaggle may mount it under ``/kaggle/input``, the usual place first (the notebook
        searches further when none of these holds ``bundle.json``)."""
        if self.kind == "dataset":
            owner, slug = self.parts
            return [slug, f"datasets/{owner}/{slug}"]
        owner, model, framework, variation = self.parts[:4]
        tail = f"{model}/{framework.lower()}/{variation}" + (f"/{self.version}" if self.version else "")
        return [tail, f"models/{owner}/{tail}"]


@dataclass(frozen=True)
class NotebookOptions:
    """The bundle, where to write the notebook, TTA, and the paths of its first cell."""

    bundle: BundleSource | str  # a str is a dataset OWNER/SLUG
    out: Path
    tta: bool = True
    input_root: str = KAGGLE_INPUT
    working: str = KAGGLE_WORKING
    pip_target: str | None = None  # a local run installs the wheel here, never into its own Python

    @property
    def source(self) -> BundleSource:
        """The bundle as a :class:`BundleSource`."""
        return self.bundle if isinstance(self.bundle, BundleSource) else BundleSource.parse(self.bundle, None)


def competition_slug(spec: Spec, required: bool = False) -> str:
    """The Kaggle competition of the notebook: ``data.kaggle``, else the first submission's ``kaggle``.

    Raises:
        UserError: ``required`` and the spec names none.
    """
    slug = spec.data.kaggle or next((s.kaggle for s in spec.submissions if s.kaggle), None)
    if slug is None and required:
        raise UserError(
            f"competition '{spec.name}' names no Kaggle competition: set `kaggle = \"slug\"` under [data]"
        )
    return slug or spec.name


def _paths_cell(spec: Spec, options: NotebookOptions) -> str:
    source, competition = options.source, competition_slug(spec)
    test = spec.data.test
    return (
        f"INPUT = {options.input_root!r}  # where Kaggle mounts the attached data\n"
        f"WORKING = {options.working!r}  # what the notebook leaves here is its output\n"
        f"PIP_TARGET = {options.pip_target!r}  # None: install into Kaggle's Python; a folder: a local run\n"
        f"BUNDLE_AT = {source.mounts()!r}  # the bundle {source.kind} {source.ref}\n"
        f"DATA_AT = {[competition, f'competitions/{competition}']!r}  # the competition's data\n"
        f"TEST_FILE = {test!r}  # the spec's test file, relative to the data folder"
    )


_FIND_CELL = '''from pathlib import Path


def find(candidates, marker, what):
    """The first candidate under INPUT holding `marker`, else the shallowest folder that does
    (Kaggle's mount paths have changed over time)."""
    for folder in candidates:
        if marker is None or (Path(INPUT) / folder / marker).is_file():
            return str(Path(INPUT) / folder)
    for depth in range(1, 7):
        hits = sorted(Path(INPUT).glob("*/" * depth + marker))
        if hits:
            return str(hits[0].parents[len(Path(marker).parts) - 1])
    raise FileNotFoundError(f"no {marker} under {INPUT}: attach the {what} to the notebook")


BUNDLE = find(BUNDLE_AT, "bundle.json", "bundle")
DATA = find(DATA_AT, TEST_FILE, "competition")
print("bundle:", BUNDLE, "| data:", DATA)'''

_INSTALL_CELL = """import glob, subprocess, sys

wheel = sorted(glob.glob(f"{BUNDLE}/mtlkaggle-*.whl"))[-1]
# offline: no index, and Kaggle's image already has torch, timm, pandas, ...
install = [sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "-q", wheel]
if PIP_TARGET:  # a local run: leave the Python that runs the notebook as it is
    install += ["--target", PIP_TARGET]
subprocess.run(install, check=True)"""


def notebook_cells(spec: Spec, options: NotebookOptions) -> list[tuple[str, str]]:
    """The notebook's cells as ``(kind, source)``; the first code cell holds every path."""
    source = options.source
    if not spec.submissions:
        raise UserError(f"competition '{spec.name}' names no submission files ([[submissions]])")
    first = spec.submissions[0].file
    tta = ', "--tta"' if options.tta else ""
    return [
        (
            "markdown",
            f"# {spec.name}: inference with mtlkaggle\n\n"
            f"Attach the {source.kind} `{source.ref}` (the bundle of `mtlkaggle export`) and the "
            f"competition's data; the internet may stay off. Writes `{SUBMISSION}`.",
        ),
        ("code", _paths_cell(spec, options)),
        ("code", _FIND_CELL),
        ("code", _INSTALL_CELL),
        (
            "code",
            "import os, subprocess, sys\n\n"
            "env = dict(os.environ)\n"
            'for name in ("FORCE_COLOR", "CLICOLOR_FORCE"):  # ipykernel sets them; a log wants no bars\n'
            "    env.pop(name, None)\n"
            "if PIP_TARGET:  # import the wheel just installed, not whatever the kernel's Python has\n"
            '    env["PYTHONPATH"] = os.pathsep.join(p for p in (PIP_TARGET, env.get("PYTHONPATH")) if p)\n'
            'command = [sys.executable, "-m", "mtlkaggle", "predict", "--bundle", BUNDLE,\n'
            f'           "--competition-files", "--data-dir", DATA, "--out-dir", WORKING{tta}]\n'
            "subprocess.run(command, check=True, env=env)",
        ),
        (
            "code",
            "import shutil\nfrom pathlib import Path\n\n"
            f'first = Path(WORKING) / "{first}"  # the spec\'s first submission file\n'
            f'if first.name != "{SUBMISSION}":\n'
            f'    shutil.copy(first, Path(WORKING) / "{SUBMISSION}")\n'
            f'print(open(Path(WORKING) / "{SUBMISSION}").read()[:500])',
        ),
    ]


def build_notebook(spec: Spec, options: NotebookOptions):
    """The notebook (nbformat 4, validated) as an ``nbformat.NotebookNode``."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    make = {"markdown": new_markdown_cell, "code": new_code_cell}
    notebook = new_notebook(cells=[make[kind](source) for kind, source in notebook_cells(spec, options)])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.metadata["language_info"] = {"name": "python"}
    nbformat.validate(notebook)
    return notebook


def write_notebook(spec: Spec, options: NotebookOptions) -> Path:
    """Write the ``.ipynb`` and return its path."""
    import nbformat

    write_text_atomic(options.out, nbformat.writes(build_notebook(spec, options)))
    return options.out


@dataclass(frozen=True)
class KernelOptions:
    """How the notebook runs on Kaggle: its id, accelerator and visibility."""

    kernel: str | None = None  # OWNER/SLUG; default: the bundle's owner / COMP-mtlkaggle-inference
    gpu: bool = False
    machine_shape: str | None = None  # e.g. NvidiaTeslaT4; overrides the client's default for gpu
    private: bool = True


def kernel_ref(spec: Spec, source: BundleSource, kernel: str | None) -> str:
    """``OWNER/SLUG`` of the notebook on Kaggle.

    Raises:
        UserError: a reference Kaggle would refuse (slug of 5-50 characters a-z, 0-9, '-').
    """
    if kernel is None:
        slug = re.sub(r"[^a-z0-9]+", "-", f"{spec.name} mtlkaggle inference".lower()).strip("-")
        kernel = f"{source.parts[0]}/{slug[:50].strip('-')}"
    return check_kernel_ref(kernel)


def check_kernel_ref(kernel: str) -> str:
    """``kernel`` when it is ``OWNER/SLUG`` as Kaggle accepts it.

    Raises:
        UserError: any other shape (the slug has 5-50 characters of a-z, 0-9 and '-').
    """
    if not _KERNEL.match(kernel):
        raise UserError(
            f"--kernel {kernel}: expected OWNER/SLUG, the slug 5-50 characters of a-z, 0-9 and '-' "
            "(as in kaggle.com/code/OWNER/SLUG)"
        )
    return kernel


def kernel_metadata(spec: Spec, source: BundleSource, options: KernelOptions, code_file: str) -> dict:
    """``kernel-metadata.json`` for ``kaggle kernels push``, every field written out.

    ``enable_internet`` is always false: the client reads a missing field as true, and code
    competitions refuse notebooks with the internet on.
    """
    ref = kernel_ref(spec, source, options.kernel)
    metadata = {
        "id": ref,
        "title": ref.split("/")[1].replace("-", " "),  # slugifies back to the id, as Kaggle wants
        "code_file": code_file,
        "language": "python",
        "kernel_type": "notebook",
        "is_private": options.private,
        "enable_gpu": options.gpu,
        "enable_tpu": False,
        "enable_internet": False,
        "dataset_sources": [source.ref] if source.kind == "dataset" else [],
        "competition_sources": [competition_slug(spec, required=True)],
        "kernel_sources": [],
        "model_sources": [source.ref] if source.kind == "model" else [],
    }
    if options.machine_shape:
        metadata["machine_shape"] = options.machine_shape
    return metadata


def write_push_folder(spec: Spec, options: NotebookOptions, kernel: KernelOptions, folder: Path) -> dict:
    """Write the notebook and ``kernel-metadata.json`` into ``folder``; return the metadata.

    Raises:
        UserError: a model source without a version (Kaggle attaches model versions only).
    """
    source = options.source
    if source.kind == "model" and source.version is None:
        raise UserError(f"--bundle-model {source.ref}: add the version (…/VARIATION/VERSION) to push")
    ref = kernel_ref(spec, source, kernel.kernel)
    code_file = f"{ref.split('/')[1]}.ipynb"
    metadata = kernel_metadata(spec, source, kernel, code_file)
    write_notebook(spec, replace(options, out=Path(folder) / code_file))
    write_json_atomic(Path(folder) / KERNEL_METADATA, metadata)
    return metadata


def check_submission_csv(spec: Spec, path: Path) -> str:
    """Check the notebook's ``submission.csv`` against the spec's first submission format and, when
    the test file is at hand (``spec.data_path``), against its ids in order.

    Returns:
        What was checked, for the user (``"24 rows, ids as in test.csv"``).

    Raises:
        UserError: missing file, a malformed row, wrong or missing ids.
    """
    from mtlkaggle.submission import check_file, read_submission

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: the notebook left no {SUBMISSION}; look at its log and what it printed")
    sub = spec.submissions[0]
    test = spec.data.test
    if not test or not (spec.data_path / test).is_file():
        missing = test or "test file"
        _, predictions = read_submission(spec, sub, path)
        rows = len(next(iter(predictions.values()))) if predictions else 0
        images = " (images)" if sub.long else ""
        return f"{rows} rows{images} in the format of {sub.file} (no local {missing}: ids not checked)"
    from mtlkaggle.data import read_split

    test_ids = list(read_split(spec, "test", labelled=False).ids)
    rows = check_file(spec, sub, path, test_ids)
    return f"{rows} rows, ids as in {sub.sample or test}"
