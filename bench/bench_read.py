"""Benchmark: reading label files at Kaggle scale, this tree against a reference revision.

Writes synthetic label files in three published layouts into a temporary folder:
RSNA long format (``ID_{image}_{class},Label``, six rows an image, DICOM paths by
``image_pattern``; the .dcm files are not needed to read labels), a plain CSV located by
``image_pattern`` (APTOS-like) and Digit-Recognizer pixels. Then times ``read_split`` and
``check_dataset(open_images=False)`` on each, once with this tree's ``src`` and once with the
reference revision's (``git archive REV src``, default ``main``), each in its own process, and
prints the best of ``--repeat`` alternated runs and the ratios. Figures, not a timed test.

Run: python bench/bench_read.py [--images 75000] [--ref main] [--layouts rsna,csv,pixels] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ["epidural", "intraparenchymal", "intraventricular", "subarachnoid", "subdural", "any"]

RSNA = """name = "bench-rsna"
data_dir = "{data}"
[data]
format = "csv"
train = "train.csv"
id_column = "image"
image_source = "dicom"
image_pattern = "stage_2_train/ID_{{image}}.dcm"
[data.long]
column = "ID"
template = "ID_{{image}}_{{class}}"
value_column = "Label"
[[tasks]]
name = "hemorrhage"
kind = "multilabel"
encoding = "columns"
columns = {classes}
"""

PLAIN = """name = "bench-csv"
data_dir = "{data}"
[data]
format = "csv"
train = "train.csv"
id_column = "id_code"
image_pattern = "train_images/{{id_code}}.png"
[[tasks]]
name = "diagnosis"
kind = "multiclass"
column = "diagnosis"
num_classes = 5
"""

PIXELS = """name = "bench-pixels"
data_dir = "{data}"
[data]
format = "csv"
train = "train.csv"
id_column = "ImageId"
id_from_row = true
image_source = "pixels"
pixels_prefix = "pixel"
pixels_shape = [28, 28]
[[tasks]]
name = "digit"
kind = "multiclass"
column = "label"
num_classes = 10
"""


def write_layout(layout: str, folder: Path, images: int) -> Path:
    """Write one layout's train file and spec under ``folder``; return the spec's path."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    names = np.array([f"{i:09x}" for i in rng.permutation(16 * images)[:images]], dtype=object)
    if layout == "rsna":
        values = (rng.random((images, len(CLASSES))) < 0.1).astype(int)
        with open(folder / "train.csv", "w") as f:
            f.write("ID,Label\n")
            for name, row in zip(names, values, strict=True):
                f.writelines(f"ID_{name}_{c},{v}\n" for c, v in zip(CLASSES, row, strict=True))
        text = RSNA.format(data=folder, classes=json.dumps(CLASSES))
    elif layout == "csv":
        labels = rng.integers(0, 5, images)
        with open(folder / "train.csv", "w") as f:
            f.write("id_code,diagnosis\n")
            f.writelines(f"{n},{v}\n" for n, v in zip(names, labels, strict=True))
        text = PLAIN.format(data=folder)
    else:
        pixels = rng.integers(0, 256, (images, 784))
        labels = rng.integers(0, 10, images)
        with open(folder / "train.csv", "w") as f:
            f.write("label," + ",".join(f"pixel{k}" for k in range(784)) + "\n")
            for label, row in zip(labels, pixels, strict=True):
                f.write(f"{label}," + ",".join(map(str, row)) + "\n")
        text = PIXELS.format(data=folder)
    spec = folder / "spec.toml"
    spec.write_text(text)
    return spec


def time_one(spec_path: str) -> dict[str, float]:
    """Seconds for ``read_split`` and ``check_dataset(open_images=False)`` (run in a child)."""
    from mtlkaggle.check import check_dataset
    from mtlkaggle.data import read_split
    from mtlkaggle.spec import load_spec

    spec = load_spec(Path(spec_path))
    start = time.perf_counter()
    table = read_split(spec, "train")
    read = time.perf_counter() - start
    start = time.perf_counter()
    report = check_dataset(spec, open_images=False)
    check = time.perf_counter() - start
    return {"read_split": read, "check": check, "rows": len(table.ids), "problems": len(report.problems)}


def run_child(src: Path, spec: Path) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    code = f"import json, sys; sys.path.insert(0, {str(ROOT / 'bench')!r}); import bench_read; "
    code += f"print(json.dumps(bench_read.time_one({str(spec)!r})))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=75_000)
    parser.add_argument("--ref", default="main", help="git revision to compare with")
    parser.add_argument("--layouts", default="rsna,csv,pixels")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each, alternated; best kept")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ref_src = Path(tmp) / "ref"
        archive = Path(tmp) / "ref.tar"
        subprocess.run(["git", "-C", str(ROOT), "archive", "-o", str(archive), args.ref, "src"], check=True)
        with tarfile.open(archive) as tar:
            tar.extractall(ref_src, filter="data")
        for layout in args.layouts.split(","):
            images = args.images if layout != "pixels" else min(args.images, 42_000)
            spec = write_layout(layout, Path(tmp) / layout, images)
            runs = [
                (run_child(ref_src / "src", spec), run_child(ROOT / "src", spec)) for _ in range(args.repeat)
            ]
            before = {k: min(r[0][k] for r in runs) for k in runs[0][0]}
            after = {k: min(r[1][k] for r in runs) for k in runs[0][1]}
            assert before["rows"] == after["rows"] == images, (before, after)
            for key in ("read_split", "check"):
                print(
                    f"{layout:7s} {images:>9,} images  {key:10s} {args.ref}: {before[key]:7.2f} s  "
                    f"this tree: {after[key]:7.2f} s  ratio {before[key] / max(after[key], 1e-9):5.1f}x"
                )


if __name__ == "__main__":
    main()
