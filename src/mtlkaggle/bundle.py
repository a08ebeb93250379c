"""Offline bundles: load one written by ``mtlkaggle export`` and predict any images with it.

A bundle is a folder: ``bundle.json`` (the resolved spec, tasks and class names, thresholds,
preprocessing, TTA views, versions), one ``fold{K}.safetensors`` per fold (no pickle), optionally
``fold{K}.onnx``, and the mtlkaggle wheel (``mtlkaggle-*.whl``). Nothing else is needed: no
``competition/`` folder, no ``runs/``, no internet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from mtlkaggle.data.labels import LabelTable
from mtlkaggle.data.loading import ImageDataset, build_transforms, collate, default_workers
from mtlkaggle.engine.checkpoint import model_from_state
from mtlkaggle.engine.runtime import resolve_device
from mtlkaggle.errors import UserError
from mtlkaggle.model import MultiTaskNet
from mtlkaggle.predict import Ensemble, average_predictions, decide_all, tta_views
from mtlkaggle.probabilities import probability_columns
from mtlkaggle.spec import Spec

BUNDLE_JSON = "bundle.json"
FORMAT = 1
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")
PATH_COLUMNS = ("path", "image", "image_path", "file", "filename", "file_path")


@dataclass
class Bundle:
    """A loaded bundle: the spec, every fold's model (eval mode) and the tuned thresholds."""

    dir: Path
    spec: Spec
    folds: list[str]
    models: list[MultiTaskNet]
    thresholds: dict[str, np.ndarray]
    meta: dict = field(default_factory=dict)


@dataclass(frozen=True)
class BundlePredictOptions:
    """How to predict with a bundle."""

    tta: bool = False
    views: list[str] | None = None
    folds: list[str] | None = None
    device: str | None = None
    num_workers: int | None = 0  # None: default_workers()
    batch_size: int | None = None


def read_bundle_meta(bundle_dir: Path) -> dict:
    """``bundle.json`` of ``bundle_dir``, checked for the fields this version reads.

    Raises:
        UserError: no bundle there, a damaged file (empty, not UTF-8, not JSON, not an object),
            or a format this version does not know.
    """
    from mtlkaggle.readback import read_json_object

    path = Path(bundle_dir) / BUNDLE_JSON
    fix = "export it again with `mtlkaggle export COMP --out DIR`"
    if not path.is_file():
        raise UserError(f"--bundle {bundle_dir}: no {BUNDLE_JSON} there; {fix}")
    meta = read_json_object(path, fix, "bundle description")
    missing = [k for k in ("format", "spec", "folds", "thresholds") if k not in meta]
    if missing:
        raise UserError(f"{path}: not an mtlkaggle bundle (no {', '.join(missing)}); {fix}")
    if meta["format"] != FORMAT:
        raise UserError(f"{path}: bundle format {meta['format']}, this mtlkaggle reads {FORMAT}; {fix}")
    if not isinstance(meta["folds"], list) or not all(
        isinstance(f, dict) and "name" in f for f in meta["folds"]
    ):
        raise UserError(f"{path}: 'folds' must list the folds with their names and weight files; {fix}")
    return meta


def load_bundle(
    bundle_dir: Path, device: torch.device | str = "cpu", folds: list[str] | None = None
) -> Bundle:
    """Rebuild every fold's network from ``bundle.json`` and load its safetensors weights.

    Args:
        bundle_dir: The folder ``mtlkaggle export`` wrote.
        device: Where the models go.
        folds: A subset of the bundle's folds (default: all of them).

    Raises:
        UserError: a missing or damaged file, or a fold the bundle does not hold.
    """
    from pydantic import ValidationError
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    bundle_dir = Path(bundle_dir)
    meta = read_bundle_meta(bundle_dir)
    try:
        spec = Spec.model_validate(meta["spec"])
    except ValidationError as e:
        raise UserError(
            f"{bundle_dir / BUNDLE_JSON}: the spec is not valid ({e.errors()[0]['msg']})"
        ) from None
    available = {f["name"]: f for f in meta["folds"]}
    chosen = folds or list(available)
    unknown = [f for f in chosen if f not in available]
    if unknown:
        raise UserError(
            f"--folds {','.join(unknown)}: not in the bundle {bundle_dir} (it holds {', '.join(available)})"
        )
    models = []
    for name in chosen:
        path = bundle_dir / available[name]["weights"]
        try:
            state = load_file(path)
        except (OSError, SafetensorError) as e:
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UserError(f"{path}: cannot load fold {name}'s weights ({reason}); export again") from None
        where = f"{path}: fold {name}'s weights do not fit the spec in {bundle_dir / BUNDLE_JSON}"
        model = model_from_state(spec, state, where, "export the bundle again (`mtlkaggle export`)")
        models.append(model.to(device).eval())
    thresholds = {k: np.asarray(v, dtype=np.float64) for k, v in meta["thresholds"].items()}
    return Bundle(bundle_dir, spec, chosen, models, thresholds, meta)


def list_inputs(
    path: Path, column: str | None = None, spec: Spec | None = None
) -> tuple[np.ndarray, list[Path]]:
    """The images to predict: ids (as the user will recognise them) and paths, in a stable order.

    ``path`` is a folder (searched recursively for common image extensions; ids are paths
    relative to it), one image (its file name), or a CSV with a path column (``column``, else the
    first of ``path``, ``image``, ``file``..., or the spec's image column; relative paths are
    relative to the CSV's folder; ids are the cells as written).

    Raises:
        UserError: a missing path, an empty folder, a CSV without a path column.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise UserError(f"--input {path}: no images ({', '.join(IMAGE_EXTENSIONS)}) in this folder")
        return np.array([p.relative_to(path).as_posix() for p in files], dtype=object), files
    if not path.is_file():
        raise UserError(f"--input {path}: no such file or folder")
    if path.suffix.lower() == ".csv":
        return _csv_inputs(path, column, spec)
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return np.array([path.name], dtype=object), [path]
    raise UserError(
        f"--input {path}: expected a folder, an image ({', '.join(IMAGE_EXTENSIONS)}) or a .csv of paths"
    )


def _csv_inputs(path: Path, column: str | None, spec: Spec | None) -> tuple[np.ndarray, list[Path]]:
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise UserError(f"--input {path}: not a readable CSV ({str(e).splitlines()[0]})") from None
    candidates = [column] if column else [*PATH_COLUMNS, *([spec.data.image_column] if spec else [])]
    found = next((c for c in candidates if c in frame.columns), None)
    if found is None:
        raise UserError(
            f"--input {path}: no path column ({' or '.join(candidates)}); columns are "
            f"{list(frame.columns)}; name it with --path-column"
        )
    ids = frame[found].to_numpy(dtype=object)
    return ids, [p if (p := Path(v)).is_absolute() else path.parent / p for v in ids]


def predict_table(
    bundle: Bundle, table: LabelTable, options: BundlePredictOptions
) -> tuple[dict[str, np.ndarray], list[str], np.ndarray]:
    """Average every fold's probabilities over every view of each image of ``table``.

    The same loop as ``predict COMP`` (:func:`mtlkaggle.predict.average_predictions`): same
    evaluation transform, batch size, memory format, autocast and arithmetic.

    Returns:
        Probabilities per task (regression: values in original units; rows of unreadable images
        are NaN), one message per unreadable image, and a mask of the rows that were read.
    """
    spec, device = bundle.spec, next(bundle.models[0].parameters()).device
    img_size = spec.train.img_size
    loader = DataLoader(
        ImageDataset(table, build_transforms(spec, img_size, train=False), img_size),
        batch_size=options.batch_size or spec.predict.batch_size,
        num_workers=default_workers() if options.num_workers is None else options.num_workers,
        collate_fn=collate,
        pin_memory=device.type == "cuda",
    )
    weights = [1.0 / len(bundle.models)] * len(bundle.models)
    views = tta_views(spec, options.tta, options.views)
    return average_predictions(
        spec, spec, bundle.models, weights, views, loader, None, len(table), stop_at_bad=False
    )


def decide_rows(bundle: Bundle, probs: dict[str, np.ndarray], read: np.ndarray) -> dict[str, np.ndarray]:
    """Final predictions of the rows that were read (argmax, tuned thresholds, values)."""
    ensemble = Ensemble(
        np.arange(int(read.sum())),
        {k: v[read] for k, v in probs.items()},
        bundle.folds,
        [],
        bundle.thresholds,
    )
    return decide_all(bundle.spec, ensemble)


def prediction_frame(
    spec: Spec,
    ids: np.ndarray,
    probs: dict[str, np.ndarray],
    decided: dict[str, np.ndarray],
    read: np.ndarray,
    errors: dict[int, str],
) -> pd.DataFrame:
    """One row per input: each task's prediction by name (and index), then ``task:class`` probabilities.

    Multi-label tasks list the chosen labels separated by spaces; regression tasks give the
    value in the target's original units. Unreadable images keep their row, with ``error`` set.
    """
    columns: dict[str, object] = {"path": ids}
    for task in spec.tasks:
        names, index = np.full(len(ids), "", dtype=object), np.full(len(ids), "", dtype=object)
        d = decided[task.name]
        if task.kind == "multiclass":
            names[read] = [task.label_names[int(k)] for k in d]
            index[read] = [str(int(k)) for k in d]
        elif task.kind == "multilabel":
            names[read] = [" ".join(task.label_names[k] for k in np.flatnonzero(row)) for row in d]
            index[read] = [" ".join(str(k) for k in np.flatnonzero(row)) for row in d]
        elif task.kind == "binary":  # d: 0/1 decisions, or P(positive) when the metric scores those
            positive = np.asarray(d) > 0.5 if np.asarray(d).dtype.kind == "f" else np.asarray(d) == 1
            names[read] = [task.label_names[0] if v else "" for v in positive]
            index[read] = [str(int(v)) for v in positive]
        if task.kind == "regression":
            columns[task.name] = probs[task.name]
            continue
        columns[task.name], columns[f"{task.name}_index"] = names, index
    for task in spec.tasks:
        if task.kind != "regression":
            p = np.asarray(probs[task.name]).reshape(len(ids), -1)
            for k, column in enumerate(probability_columns(task)):
                columns[column] = p[:, k]
    columns["error"] = [errors.get(i, "") for i in range(len(ids))]
    return pd.DataFrame(columns)


@dataclass
class BundlePrediction:
    """What ``predict --bundle`` did: the rows, the unreadable images, the files written."""

    bundle: Bundle
    views: list[str]
    rows: int
    bad: list[str]
    written: list[Path]


def predict_images(
    bundle_dir: Path, inputs: Path, out: Path, options: BundlePredictOptions, column: str | None = None
) -> BundlePrediction:
    """``predict --bundle DIR --input PATH``: one CSV row per image, unreadable images included.

    Raises:
        UserError: a bad bundle or input; nothing at all readable.
    """
    bundle = load_bundle(bundle_dir, resolve_device(options.device), options.folds)
    if bundle.spec.data.image_source != "files":
        raise UserError(
            f"--input reads image files, and the bundle's spec reads its images from "
            f"image_source '{bundle.spec.data.image_source}'; use --competition-files --data-dir FOLDER"
        )
    ids, paths = list_inputs(inputs, column, bundle.spec)
    table = LabelTable("input", Path(inputs), ids, paths)
    probs, bad, read = predict_table(bundle, table, options)
    if not read.any():
        raise UserError(f"--input {inputs}: none of the {len(ids)} image(s) could be read (first: {bad[0]})")
    errors = dict(zip(np.flatnonzero(~read).tolist(), bad, strict=True))  # the loader keeps file order
    decided = decide_rows(bundle, probs, read)
    from mtlkaggle.io import write_csv_atomic

    write_csv_atomic(out, prediction_frame(bundle.spec, ids, probs, decided, read, errors))
    return BundlePrediction(
        bundle, tta_views(bundle.spec, options.tta, options.views), len(ids), bad, [Path(out)]
    )


def predict_competition(
    bundle_dir: Path, data_dir: Path | None, out_dir: Path, options: BundlePredictOptions
) -> BundlePrediction:
    """``predict --bundle DIR --competition-files``: the spec's submission files for the test set found.

    The test file is read as the spec in the bundle describes it, under ``data_dir`` (default:
    the spec's ``data_dir``); every file is validated against it before it is written.

    Raises:
        UserError: no test file, an unreadable test image (every row needs a prediction).
    """
    from mtlkaggle.data.labels import read_split
    from mtlkaggle.io import write_csv_atomic
    from mtlkaggle.probabilities import probability_frame
    from mtlkaggle.submission import write_submissions

    bundle = load_bundle(bundle_dir, resolve_device(options.device), options.folds)
    spec = bundle.spec
    if data_dir is not None:
        spec = spec.model_copy(update={"data_dir": str(data_dir)})
        bundle.spec = spec
    if not spec.data.test:
        raise UserError(f"the bundle's spec '{spec.name}' names no test file (data.test)")
    table = read_split(spec, "test", labelled=False)
    probs, bad, read = predict_table(bundle, table, options)
    if bad:
        raise UserError(f"{bad[0]}; every test image needs a prediction ({len(bad)} unreadable)")
    decided = decide_rows(bundle, probs, read)
    written = write_submissions(spec, table.ids, decided, table.ids, out_dir, probs)
    write_csv_atomic(out_dir / "probabilities.csv", probability_frame(spec, table.ids, probs))
    return BundlePrediction(bundle, tta_views(spec, options.tta, options.views), len(table), [], written)
