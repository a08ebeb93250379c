"""``mtlkaggle export``: a run's folds as a self-contained offline bundle (see :mod:`mtlkaggle.bundle`).

Weights travel as safetensors (plain tensors, nothing unpickled), ``bundle.json`` says everything
needed to rebuild and use the models, and the mtlkaggle wheel lets an offline machine (a Kaggle
notebook with the internet off) ``pip install --no-index`` it. With ``onnx``, each fold is also
written as ONNX (dynamic batch; uint8 images in, probabilities out) and checked against torch.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mtlkaggle.bundle import BUNDLE_JSON, FORMAT
from mtlkaggle.engine.checkpoint import load_fold_model, read_best
from mtlkaggle.errors import UserError
from mtlkaggle.io import atomic_path, write_json_atomic
from mtlkaggle.model import MultiTaskNet
from mtlkaggle.paths import FoldLayout, RunLayout
from mtlkaggle.provenance import versions
from mtlkaggle.spec import Spec

ONNX_OPSET = 17
ONNX_CHECK_BATCH = 3  # not the export batch (2): the check also proves the batch axis is dynamic


@dataclass(frozen=True)
class ExportOptions:
    """Which run and folds to export, where, and what to add."""

    run: RunLayout
    out_dir: Path
    folds: list[str] | None = None
    onnx: bool = False
    wheel: bool = True


@dataclass
class ExportResult:
    """What was written, and how closely each ONNX file matches torch."""

    out_dir: Path
    folds: list[str]
    files: list[Path] = field(default_factory=list)
    onnx_max_diff: dict[str, float] = field(default_factory=dict)
    wheel: Path | None = None


def export_bundle(spec: Spec, options: ExportOptions) -> ExportResult:
    """Write the bundle of ``options.run``'s folds into ``options.out_dir``.

    Args:
        spec: The competition as it is now (its TTA views, data layout and submission files go
            into the bundle; the recipe comes from the folds' checkpoints).
        options: Run, folds, output folder, ONNX and wheel.

    Raises:
        UserError: no trained fold, folds of different recipes, an ONNX file that disagrees
            with torch, a wheel that cannot be built.
    """
    if options.out_dir.exists() and not options.out_dir.is_dir():
        raise UserError(f"--out {options.out_dir}: is a file, not a folder; pass a folder for the bundle")
    folds = options.run.chosen_folds(options.folds)
    best = [read_best(fold) for fold in folds]
    loaded = [load_fold_model(fold, "cpu", b) for fold, b in zip(folds, best, strict=True)]
    trained = _same_architecture(folds, [s for _, s in loaded])
    thresholds = _thresholds(spec, options.run)
    out = options.out_dir
    _clear_previous_bundle(out)
    result = ExportResult(out, [f.name for f in folds])
    entries = []
    for fold, b, (model, _) in zip(folds, best, loaded, strict=True):
        entry = {"name": fold.name, "weights": f"fold{fold.name}.safetensors", "epoch": b.epoch + 1}
        entry["scores"] = b.scores
        _save_safetensors(model, out / entry["weights"], fold.name)
        result.files.append(out / entry["weights"])
        if options.onnx:
            entry["onnx"] = f"fold{fold.name}.onnx"
            diff = export_onnx(model, trained.train.img_size, out / entry["onnx"])
            entry["onnx_max_abs_diff"] = result.onnx_max_diff[fold.name] = diff
            result.files.append(out / entry["onnx"])
        entries.append(entry)
    if options.wheel:
        result.wheel = build_wheel(out)  # top level: Kaggle datasets skip folders
        result.files.append(result.wheel)
    bundled = trained.model_copy(
        update={
            "data_dir": spec.data_dir,
            "data": spec.data,
            "predict": spec.predict,
            "submissions": spec.submissions,
        }
    )
    meta = _bundle_meta(bundled, entries, thresholds, result)
    write_json_atomic(out / BUNDLE_JSON, meta)
    result.files.insert(0, out / BUNDLE_JSON)
    return result


def _clear_previous_bundle(out: Path) -> None:
    """Remove an earlier bundle's files from ``out``, so no stale fold travels with the new one."""
    out.mkdir(parents=True, exist_ok=True)
    if not (out / BUNDLE_JSON).is_file():
        return
    for pattern in (BUNDLE_JSON, "fold*.safetensors", "fold*.onnx", "mtlkaggle-*.whl"):
        for path in out.glob(pattern):
            path.unlink()


def _same_architecture(folds: list[FoldLayout], specs: list[Spec]) -> Spec:
    """The first fold's spec, once every fold is known to share its network and preprocessing.

    Folds may differ in their recipe otherwise (a full-data fit runs other epochs).
    """

    def key(s: Spec) -> tuple:
        return (s.train.backbone, s.train.img_size, s.train.neck, s.augment.eval_resize, s.tasks)

    for fold, spec in zip(folds[1:], specs[1:], strict=True):
        if key(spec) != key(specs[0]):
            raise UserError(
                f"{fold.dir}: another backbone, image size, neck, resize or tasks than fold "
                f"{folds[0].name}; export them into separate bundles (--folds)"
            )
    return specs[0]


def _save_safetensors(model: MultiTaskNet, path: Path, fold: str) -> None:
    from safetensors.torch import save

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        tmp.write_bytes(save(state, metadata={"format": "pt", "fold": fold}))


def _thresholds(spec: Spec, run: RunLayout) -> dict[str, list[float]]:
    from mtlkaggle.thresholds import load_thresholds

    return {k: [round(float(t), 6) for t in v] for k, v in load_thresholds(spec, run).items()}


def _bundle_meta(spec: Spec, folds: list[dict], thresholds: dict, result: ExportResult) -> dict:
    """``bundle.json``: the spec plus the facts a reader of the bundle needs without mtlkaggle."""
    model = MultiTaskNet(spec, spec.train)  # random weights: only the normalization constants are read
    tasks = []
    for task in spec.tasks:
        entry = {
            "name": task.name,
            "kind": task.kind,
            "classes": task.label_names if task.kind != "regression" else [],
        }
        if task.kind == "regression":
            entry["units"] = (
                f"original units of column '{task.column}' (the heads predict standardized values)"
            )
        if task.kind == "multilabel":
            entry["thresholds"] = thresholds.get(task.name, [0.5] * task.size)
            entry["at_least_one"] = task.at_least_one
        if task.kind == "binary":
            entry["positive"] = task.label_names[0]
            entry["threshold"] = thresholds.get(task.name, [0.5])[0]
        if task.resolved_metrics[0] == "qwk" and task.name in thresholds:
            entry["cut_points"] = thresholds[task.name]  # class = number of cut points exceeded
        tasks.append(entry)
    return {
        "format": FORMAT,
        "name": spec.name,
        "tasks": tasks,
        "thresholds": thresholds,
        "folds": folds,
        "backbone": spec.train.backbone,
        "img_size": spec.train.img_size,
        "preprocessing": {
            "input": "RGB uint8, NCHW, values 0-255 (normalized inside the model)",
            "resize": spec.augment.eval_resize,
            "mean": [round(float(v), 6) for v in model.mean.flatten()],
            "std": [round(float(v), 6) for v in model.std.flatten()],
        },
        "tta": list(spec.predict.tta),
        "onnx": {"opset": ONNX_OPSET, "input": "images", "outputs": [t.name for t in spec.tasks]}
        if result.onnx_max_diff
        else None,
        "wheel": result.wheel.name if result.wheel else None,
        "versions": versions(bool(result.onnx_max_diff)),
        "spec": spec.model_dump(mode="json"),
    }


class _Probabilities(torch.nn.Module):
    """uint8 images -> a tuple of per-task probabilities (softmax, sigmoid, original units)."""

    def __init__(self, model: MultiTaskNet):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor):
        probs = self.model.probabilities(self.model(images))
        return tuple(probs[t.name] for t in self.model.tasks)


def export_onnx(model: MultiTaskNet, img_size: int, path: Path) -> float:
    """Write ``model`` as ONNX (dynamic batch) and return the max abs difference to torch.

    The check runs onnxruntime (CPU, fp32) and torch on the same random uint8 batch.

    Raises:
        UserError: onnx/onnxruntime missing (``pip install mtlkaggle[onnx]``), or a difference
            over 1e-4.
    """
    try:
        import onnxruntime as ort
    except ImportError:
        raise UserError("--onnx needs onnx and onnxruntime: pip install 'mtlkaggle[onnx]'") from None
    wrapper = _Probabilities(model.cpu().eval()).eval()
    names = [t.name for t in model.tasks]
    example = torch.zeros((2, model.in_chans, img_size, img_size), dtype=torch.uint8)
    dynamic = {"images": {0: "batch"}, **{n: {0: "batch"} for n in names}}
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            wrapper,
            (example,),
            str(tmp),
            input_names=["images"],
            output_names=names,
            dynamic_axes=dynamic,
            opset_version=ONNX_OPSET,
            dynamo=False,
        )
    images = torch.from_numpy(
        np.random.default_rng(0).integers(
            0, 256, (ONNX_CHECK_BATCH, model.in_chans, img_size, img_size), dtype=np.uint8
        )
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"images": images.numpy()})
    with torch.no_grad():
        expected = wrapper(images)
    diff = max(float(np.abs(g - e.numpy()).max()) for g, e in zip(got, expected, strict=True))
    if not diff <= 1e-4:
        raise UserError(
            f"{path}: ONNX output differs from torch by {diff:.2e} (> 1e-4); export without --onnx"
        )
    return diff


def _source_root() -> Path | None:
    import mtlkaggle

    root = Path(mtlkaggle.__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() and (root / "src" / "mtlkaggle").is_dir() else None


def build_wheel(dest: Path) -> Path:
    """Build the mtlkaggle wheel offline (no build isolation, no index) into ``dest``.

    The source tree is copied to a temporary folder first, so the build leaves nothing behind in
    it. Without a source tree (mtlkaggle installed from a wheel), the installed files are packed
    back into one (:func:`repack_installed`).

    When pip cannot build (no setuptools in this environment), :func:`pack_checkout` writes the
    same files as a wheel directly.
    """
    root = _source_root()
    if root is None:
        return repack_installed(dest)
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "src-tree"
        ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
        shutil.copytree(root / "src", copy / "src", ignore=ignore)
        shutil.copytree(root / "competition", copy / "competition", ignore=ignore)  # setup.py packs them
        for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "LICENSE"):
            if (root / name).is_file():
                shutil.copy2(root / name, copy / name)
        built = Path(tmp) / "dist"
        command = [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--quiet",
            "-w",
            str(built),
            str(copy),
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        wheels = sorted(built.glob("mtlkaggle-*.whl"))
        if done.returncode != 0 or not wheels:  # e.g. no setuptools here (Python >= 3.12 venvs)
            return pack_checkout(root, dest)
        dest.mkdir(parents=True, exist_ok=True)
        for old in dest.glob("mtlkaggle-*.whl"):
            old.unlink()
        return Path(shutil.copy2(wheels[0], dest / wheels[0].name))


def pack_checkout(root: Path, dest: Path) -> Path:
    """The checkout's package as a pure-Python wheel, written directly (no build backend needed).

    The same files as a setuptools build: ``src/mtlkaggle/**`` and ``competition/*.toml`` (as
    ``mtlkaggle/competitions/``), with metadata and the console script from pyproject.toml.
    """
    import tomllib

    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    name, version = project["name"], project["version"]
    members = {
        f"mtlkaggle/{p.relative_to(root / 'src' / 'mtlkaggle').as_posix()}": p.read_bytes()
        for p in sorted((root / "src" / "mtlkaggle").rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }
    for toml in sorted((root / "competition").glob("*.toml")):
        members[f"mtlkaggle/competitions/{toml.name}"] = toml.read_bytes()
    info = f"{name}-{version}.dist-info"
    requires = "".join(f"Requires-Dist: {d}\n" for d in project.get("dependencies", []))
    members[f"{info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        f"Summary: {project.get('description', '')}\n"
        f"Requires-Python: {project.get('requires-python', '>=3.10')}\n{requires}"
    ).encode()
    members[f"{info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: mtlkaggle\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    scripts = "".join(f"{k} = {v}\n" for k, v in project.get("scripts", {}).items())
    members[f"{info}/entry_points.txt"] = f"[console_scripts]\n{scripts}".encode()
    members[f"{info}/top_level.txt"] = b"mtlkaggle\n"
    return _write_wheel(dest / f"{name}-{version}-py3-none-any.whl", info, members)


def _write_wheel(target: Path, info: str, members: dict[str, bytes]) -> Path:
    """A wheel at ``target`` holding ``members``, with the RECORD (sha256 of each file) it needs."""
    import base64
    import hashlib
    import zipfile

    target.parent.mkdir(parents=True, exist_ok=True)
    record = []
    with atomic_path(target) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as wheel:
        for arcname, data in members.items():
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            wheel.writestr(arcname, data)
            record.append(f"{arcname},sha256={digest},{len(data)}")
        wheel.writestr(f"{info}/RECORD", "\n".join([*record, f"{info}/RECORD,,"]) + "\n")
    return target


_NOT_REPACKED = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}


def repack_installed(dest: Path) -> Path:
    """The installed mtlkaggle distribution (package files and metadata) as a wheel in ``dest``.

    Files outside site-packages (console scripts) and the installer's own notes are left out;
    ``RECORD`` is written anew with each file's hash, as the wheel format asks.

    Raises:
        UserError: mtlkaggle is not installed as a distribution with a file list.
    """
    from importlib import metadata

    try:
        dist = metadata.distribution("mtlkaggle")
    except metadata.PackageNotFoundError:
        dist = None
    files = [f for f in (dist.files or []) if ".." not in f.parts] if dist else []
    if not any(f.as_posix() == "mtlkaggle/__init__.py" for f in files):
        raise UserError(
            "cannot build the mtlkaggle wheel: no source tree and no installed file list; use --no-wheel"
        )
    info = f"mtlkaggle-{dist.version}.dist-info"
    keep = [
        f
        for f in files
        if f.suffix != ".pyc" and not (f.parts[0].endswith(".dist-info") and f.name in _NOT_REPACKED)
    ]
    members = {f.as_posix(): Path(dist.locate_file(f)).read_bytes() for f in keep}
    return _write_wheel(dest / f"mtlkaggle-{dist.version}-py3-none-any.whl", info, members)
