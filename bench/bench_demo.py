"""Benchmark: the `just demo` pipeline, timed stage by stage, and what each stage adds to the score.

For every seed the commands of `just demo` run as subprocesses in a fresh folder (seed 0 is the
exact `just demo`; seed S adds `--seed S` to `demo`, `folds` and `train`, so the data, the folds
and the training all change). Then, untimed, the same run predicts the test set with fold 0's
model alone and with the fold ensemble without TTA, so the table shows each stage's share:

  chance, constant      no model (random labels at the train rates; majority class / the best
                        constant label set on train)
  one fold, val, 0.5    the mean over folds of the best epoch's validation scores
  OOF, tuned            out-of-fold Mean F1 with the thresholds tuned on it
  test: fold 0          one fold's model on the test set (tuned thresholds)
  test: ensemble        every fold's model, probabilities averaged
  test: ensemble x TTA  + horizontal-flip TTA: what `just demo` submits

Run: python bench/bench_demo.py [--seeds 0,1,2] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
STAGES = ["demo", "check", "folds", "train", "predict", "evaluate", "submit", "report"]


def _commands(seed: int) -> list[list[str]]:
    """The `just demo` recipe (see the justfile), with seed flags where seed != 0."""
    flag = [] if seed == 0 else ["--seed", str(seed)]
    return [
        ["demo", *flag],
        ["check", "demo"],
        ["folds", "demo", *flag],
        ["train", "demo", "--fold", "all", "--overwrite", *flag],
        ["predict", "demo", "--tta"],
        ["evaluate", "demo", "submissions/demo"],
        ["submit", "demo", "--dry-run"],
        ["report", "demo"],
    ]


def _mtlkaggle(args: list[str], cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "mtlkaggle", *args], cwd=cwd, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        sys.exit(f"`mtlkaggle {' '.join(args)}` failed in {cwd}:\n{done.stdout}{done.stderr}")
    return done.stdout


def _test_scores(cwd: Path, submissions: str) -> dict[str, float]:
    out = json.loads(_mtlkaggle(["evaluate", "demo", submissions, "--json"], cwd))
    return {f"{row['task']}/{row['metric']}": row["score"] for row in out["scores"]}


def _baselines(cwd: Path, seed: int) -> dict[str, dict[str, float]]:
    """Chance (labels drawn at the train rates, mean of 20 draws) and the best constant predictor."""
    from mtlkaggle.data import read_split
    from mtlkaggle.metrics import score_multiclass, score_multilabel
    from mtlkaggle.spec import load_spec

    os.chdir(cwd)
    spec = load_spec("demo")
    train, test = read_split(spec, "train"), read_split(spec, "test_labels")
    cat_train, cat_test = train.targets["category"], test.targets["category"]
    att_train, att_test = train.targets["attribute"], test.targets["attribute"]
    n_classes = len(spec.tasks[0].classes)
    rng = np.random.default_rng(seed)
    prior = np.bincount(cat_train, minlength=n_classes) / len(cat_train)
    rates = att_train.mean(axis=0)
    draws = []
    for _ in range(20):
        cat = rng.choice(n_classes, size=len(cat_test), p=prior)
        att = (rng.random(att_test.shape) < rates).astype(float)
        draws.append(
            [
                score_multiclass(cat_test, cat, n_classes, "accuracy"),
                score_multiclass(cat_test, cat, n_classes, "macro_f1"),
                score_multilabel(att_test, att, "mean_f1"),
                score_multilabel(att_test, att, "macro_f1"),
            ]
        )
    keys = ["category/accuracy", "category/macro_f1", "attribute/mean_f1", "attribute/macro_f1"]
    chance = dict(zip(keys, np.mean(draws, axis=0), strict=True))
    majority = np.full(len(cat_test), np.bincount(cat_train).argmax())
    labels = _best_constant_labels(att_train, score_multilabel)
    constant_att = np.tile(labels, (len(att_test), 1))
    constant = dict(
        zip(
            keys,
            [
                score_multiclass(cat_test, majority, n_classes, "accuracy"),
                score_multiclass(cat_test, majority, n_classes, "macro_f1"),
                score_multilabel(att_test, constant_att, "mean_f1"),
                score_multilabel(att_test, constant_att, "macro_f1"),
            ],
            strict=True,
        )
    )
    return {"chance": chance, "constant": constant}


def _best_constant_labels(train: np.ndarray, score) -> np.ndarray:
    """The label set a constant predictor would pick greedily by Mean F1 on train."""
    chosen = np.zeros(train.shape[1])
    best = score(train, np.tile(chosen, (len(train), 1)), "mean_f1")
    while True:
        trials = []
        for j in np.flatnonzero(chosen == 0):
            trial = chosen.copy()
            trial[j] = 1
            trials.append((score(train, np.tile(trial, (len(train), 1)), "mean_f1"), j))
        if not trials or max(trials)[0] <= best:
            return chosen
        best, j = max(trials)
        chosen[j] = 1


def run_seed(seed: int, root: Path) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Run the demo for one seed in ``root``; return stage times and the score of every row."""
    (root / "competition").mkdir(parents=True)
    shutil.copy(REPO / "competition/demo.toml", root / "competition/demo.toml")
    times = {}
    for stage, args in zip(STAGES, _commands(seed), strict=True):
        start = time.perf_counter()
        _mtlkaggle(args, root)
        times[stage] = time.perf_counter() - start
    times["pipeline"] = sum(times.values())
    rows = _baselines(root, seed)
    summary = pd.read_csv(root / "runs/demo/main/summary.csv").set_index("fold")
    rows["one fold, val, threshold 0.5"] = {k: float(v) for k, v in summary.loc["mean"].items() if "/" in k}
    tuned = json.loads((root / "runs/demo/main/thresholds.json").read_text())
    rows["out-of-fold, tuned thresholds"] = {"attribute/mean_f1": tuned["attribute"]["scores"]["per_label"]}
    _mtlkaggle(["predict", "demo", "--folds", "0", "--out-dir", "alone"], root)
    rows["test: fold 0 alone"] = _test_scores(root, "alone")
    _mtlkaggle(["predict", "demo", "--out-dir", "no_tta"], root)
    rows["test: fold ensemble"] = _test_scores(root, "no_tta")
    rows["test: fold ensemble x hflip TTA (just demo)"] = _test_scores(root, "submissions/demo")
    return times, rows


def _mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} +- {statistics.stdev(values):.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0", help="comma-separated; 0 is the exact `just demo`")
    parser.add_argument("--keep", type=Path, default=None, help="run in this folder and keep it")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    base = args.keep or Path(tempfile.mkdtemp(prefix="bench_demo_"))
    times, rows = [], []
    try:
        for seed in seeds:
            t, r = run_seed(seed, base / f"seed{seed}")
            times.append(t)
            rows.append(r)
            print(f"seed {seed}: " + "  ".join(f"{k} {v:.1f}s" for k, v in t.items()), flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    print(f"\nstage times over {len(seeds)} run(s), {os.cpu_count()} CPUs (mean +- std, seconds)")
    for stage in [*STAGES, "pipeline"]:
        print(f"  {stage:<10} {_mean_std([t[stage] for t in times])}")
    keys = ["category/accuracy", "category/macro_f1", "attribute/mean_f1", "attribute/macro_f1"]
    print(f"\nscores over seeds {args.seeds} (mean +- std)")
    print(f"| predictor | {' | '.join(keys)} |")
    print(f"|---|{'---|' * len(keys)}")
    for name in rows[0]:
        cells = [_mean_std([r[name][k] for r in rows]) if k in rows[0][name] else "-" for k in keys]
        print(f"| {name} | {' | '.join(cells)} |")
    if len(seeds) > 1:
        for name in rows[0]:
            for k in keys:
                if k in rows[0][name]:
                    print(f"  {name:<45} {k:<20} " + " ".join(f"{r[name][k]:.4f}" for r in rows))


if __name__ == "__main__":
    main()
