"""Benchmark: per-label threshold tuning at DeepFashion's size (55,845 rows x 15 labels, 99 candidates),
for Mean F1 and macro F1 and for F-beta at beta 2 (samples, micro, macro averaging); and QWK cut
points at APTOS 2019's size (3,662 rows, 5 classes).

Target: at most 1 s here. Beside it, the straightforward search (one sklearn f1_score call per
candidate and label) is timed on one label and scaled to a pass over 15 labels, or timed for a
whole pass with --full-reference (about a minute).

Run: python bench/bench_thresholds.py [--full-reference]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.metrics import f1_score

from mtlkaggle.cut_points import tune_cuts
from mtlkaggle.thresholds import candidate_grid, tune_thresholds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--full-reference", action="store_true")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n, labels = 55_845, 15
    y = (rng.random((n, labels)) < np.linspace(0.03, 0.45, labels)).astype(np.float32)
    probs = np.clip(0.4 * y + 0.6 * rng.random((n, labels)), 0, 1).astype(np.float32)
    grid = candidate_grid(99)
    for metric in ("mean_f1", "macro_f1"):
        times = []
        for _ in range(3):
            start = time.perf_counter()
            result = tune_thresholds(y, probs, metric, grid)
            times.append(time.perf_counter() - start)
        print(
            f"tune_thresholds {metric}: best {min(times):.3f} s (target <= 1 s); "
            f"OOF {metric} 0.5 -> {result.scores['0.5']:.4f}, global -> {result.scores['global']:.4f}, "
            f"per-label -> {result.scores['per_label']:.4f}"
        )
    for average in ("samples", "micro", "macro"):
        times = []
        for _ in range(3):
            start = time.perf_counter()
            result = tune_thresholds(y, probs, "fbeta", grid, beta=2.0, average=average)
            times.append(time.perf_counter() - start)
        print(
            f"tune_thresholds fbeta beta=2 {average}: best {min(times):.3f} s; OOF F2 0.5 -> "
            f"{result.scores['0.5']:.4f}, per-label -> {result.scores['per_label']:.4f}"
        )
    grades = rng.integers(0, 5, 3_662)
    values = 0.7 * grades + 0.6 + rng.normal(0, 0.7, len(grades))
    start = time.perf_counter()
    cuts = tune_cuts(grades, values, 5)
    seconds = time.perf_counter() - start
    print(f"tune_cuts QWK, 3,662 rows x 5 classes: {seconds:.3f} s, cuts {np.round(cuts, 3)}")
    thresholds = np.full(labels, 0.5)
    reference_labels = labels if args.full_reference else 1
    start = time.perf_counter()
    for j in range(reference_labels):
        for t in grid:
            trial = thresholds.copy()
            trial[j] = t
            f1_score(y, probs > trial, average="samples", zero_division=0)
    seconds = (time.perf_counter() - start) * labels / reference_labels
    how = "measured" if args.full_reference else f"measured on 1 label x {len(grid)} candidates, x{labels}"
    print(f"straightforward sklearn loop, one pass over {labels} labels (mean_f1): {seconds:.1f} s ({how})")


if __name__ == "__main__":
    main()
