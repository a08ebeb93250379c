"""Benchmark: `make_folds` on DeepFashion's shape (55,845 rows x 10 classes + 15 labels, 5 folds).

Target: at most 10 s on a 2-core CPU. Prints the figure; not a timed test.
Run: python bench/bench_folds.py
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from mtlkaggle.data import LabelTable
from mtlkaggle.folds import FoldConfig, make_folds
from mtlkaggle.spec import load_spec


def main() -> None:
    n = 55_845
    rng = np.random.default_rng(0)
    category = rng.choice(10, size=n, p=np.linspace(1, 4, 10) / np.linspace(1, 4, 10).sum())
    attribute = (rng.random((n, 15)) < np.linspace(0.02, 0.45, 15)).astype(np.float32)
    ids = np.array([f"img/{i:06d}.jpg" for i in range(n)], dtype=object)
    table = LabelTable("train", Path("train.csv"), ids, [], {"category": category, "attribute": attribute})
    spec = load_spec(Path(__file__).resolve().parents[1] / "competition" / "deepfashion.toml")
    times = []
    for _ in range(3):
        start = time.perf_counter()
        folds = make_folds(spec, table, FoldConfig(n_splits=5, seed=0))
        times.append(time.perf_counter() - start)
    assert folds["fold"].nunique() == 5
    print(
        f"make_folds: {n:,} rows x 25 labels, 5 folds: best {min(times):.2f} s, "
        f"median {sorted(times)[1]:.2f} s (target <= 10 s)"
    )


if __name__ == "__main__":
    main()
