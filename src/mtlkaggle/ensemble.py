"""Seed and run ensembles: several trained runs averaged, scored and thresholded as one.

``train --seeds 0,1,2 --run R`` trains one complete run per seed under ``runs/COMP/R/seed{S}/``
(each with its folds, ``summary.csv`` and thresholds: ``--run R/seed1`` still names one alone),
then averages the seeds' out-of-fold probabilities and writes, in ``runs/COMP/R/``,
``ensemble.csv`` (every seed's CV and the ensemble's) and ``thresholds.json`` (tuned on the
averaged probabilities). ``predict --run R`` then averages every fold of every seed, and
``predict --runs A,B --run-weights 2,1`` any trained runs (other backbones and image sizes too).

An ensemble member is one run with folds; a ``--seeds`` run given to ``--runs`` counts once, its
weight shared evenly among its seeds. Out-of-fold scores are pooled: every row scored once, by the
model that did not train on it, averaged over members; multi-label tasks use thresholds tuned on
the same probabilities (for members and ensemble alike, so the rows compare like with like).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from mtlkaggle.errors import UserError
from mtlkaggle.io import write_csv_atomic, write_json_atomic
from mtlkaggle.metrics import monitor_score, score_all
from mtlkaggle.paths import RunLayout
from mtlkaggle.provenance import write_run_config
from mtlkaggle.spec import Spec


@dataclass(frozen=True)
class Member:
    """One trained run in an ensemble and its share of the average."""

    run: RunLayout
    weight: float

    @property
    def label(self) -> str:
        """``RUN`` or ``RUN/seedS``."""
        if self.run.name.startswith("seed"):
            return f"{self.run.dir.parent.name}/{self.run.name}"
        return self.run.name


def resolve_members(comp: str, runs: list[str], weights: list[float] | None = None) -> list[Member]:
    """The runs of an ensemble, ``--seeds`` runs expanded into their seeds, weights summing to 1.

    Raises:
        UserError: a run with nothing trained, or weights that do not match the runs.
    """
    if weights is not None and len(weights) != len(runs):
        raise UserError(
            f"--run-weights has {len(weights)} value(s) for {len(runs)} run(s) ({', '.join(runs)}); "
            "give one weight per run"
        )
    weights = weights or [1.0] * len(runs)
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise UserError(f"--run-weights {weights}: weights must be >= 0 and not all 0")
    members = []
    for run, weight in zip(runs, weights, strict=True):
        layout = RunLayout.of(comp, run)
        parts = layout.seed_runs() or ([layout] if layout.trained_folds() else [])
        if not parts:
            raise UserError(
                f"{layout.dir}: no trained folds and no seed runs; train it first "
                f"(`mtlkaggle train {comp} --run {run}`)"
            )
        members += [Member(part, weight / len(parts)) for part in parts]
    total = sum(m.weight for m in members)
    return [replace(m, weight=m.weight / total) for m in members]


def members_for(comp: str, run: str, runs: list[str] | None, weights: list[float] | None) -> list[Member]:
    """The runs ``predict``/``report`` average: ``--runs`` (weighted by ``--run-weights``), or the
    seeds of a ``train --seeds`` run; empty when ``run`` alone is meant.

    Raises:
        UserError: weights without runs, or see :func:`resolve_members`.
    """
    if weights and not runs:
        raise UserError("--run-weights weighs the runs of --runs; pass --runs A,B too")
    if not runs and not RunLayout.of(comp, run).seed_runs():
        return []
    return resolve_members(comp, runs or [run], weights)


@dataclass
class OofEnsemble:
    """The members' out-of-fold probabilities averaged on the rows they share, with the scores."""

    ids: np.ndarray
    targets: dict[str, np.ndarray]
    probs: dict[str, np.ndarray]
    thresholds: dict  # task -> ThresholdResult, tuned on ``probs``
    table: pd.DataFrame  # one row per member and one for the ensemble


def ensemble_oof(spec: Spec, members: list[Member]) -> OofEnsemble:
    """Average the members' out-of-fold probabilities (weighted) and score members and ensemble.

    Raises:
        UserError: the members share no out-of-fold row (other folds files, other data).
    """
    from mtlkaggle.thresholds import collect_oof

    collected = [collect_oof(spec, m.run) for m in members]
    common = set(collected[0][0]).intersection(*(set(ids) for ids, _, _ in collected[1:]))
    ids = np.array([i for i in collected[0][0] if i in common], dtype=object)
    if not len(ids):
        raise UserError(
            f"{members[0].run.dir} and {members[-1].run.dir} share no out-of-fold row; ensemble runs "
            "trained on the same folds file"
        )
    aligned = [_align(ids, *c) for c in collected]
    targets = aligned[0][0]
    pairs = list(zip(members, (p for _, p in aligned), strict=True))
    probs = {t.name: sum(m.weight * p[t.name] for m, p in pairs) for t in spec.tasks}
    rows = [_scored_row(spec, m.label, targets, p)[0] for m, p in pairs]
    row, thresholds = _scored_row(spec, "ensemble", targets, probs)
    table = pd.DataFrame([*rows, row])
    table.insert(1, "weight", [round(m.weight, 6) for m in members] + [1.0])
    return OofEnsemble(ids, targets, probs, thresholds, table)


def _align(ids: np.ndarray, own_ids: np.ndarray, targets: dict, probs: dict) -> tuple[dict, dict]:
    position = {value: k for k, value in enumerate(own_ids)}
    index = np.array([position[i] for i in ids])
    return {k: v[index] for k, v in targets.items()}, {k: v[index] for k, v in probs.items()}


def _scored_row(spec: Spec, label: str, targets: dict, probs: dict) -> tuple[dict, dict]:
    from mtlkaggle.thresholds import tune_probabilities

    tuned = tune_probabilities(spec, targets, probs)
    scores = score_all(spec, targets, probs, {k: r.thresholds for k, r in tuned.items()})
    return {"run": label, "rows": len(next(iter(targets.values()))), **scores}, tuned


def write_ensemble(spec: Spec, layout: RunLayout, oof: OofEnsemble) -> None:
    """``ensemble.csv`` and ``thresholds.json`` (multi-label tasks) of an ensemble in ``layout``."""
    table = oof.table.copy()
    table["score"] = [monitor_score(spec, row) for row in table.to_dict("records")]
    write_csv_atomic(layout.ensemble, table)
    if oof.thresholds:
        write_json_atomic(layout.thresholds, {name: r.to_json() for name, r in oof.thresholds.items()})


def tune_run_thresholds(spec: Spec, run: RunLayout) -> dict:
    """``mtlkaggle tune``: thresholds tuned on a run's out-of-fold probabilities, written to its
    ``thresholds.json``; for a ``train --seeds`` run, on the seeds' averaged probabilities (and its
    ``ensemble.csv`` is written again).

    Returns:
        Task name -> :class:`~mtlkaggle.thresholds.ThresholdResult`.
    """
    from mtlkaggle.thresholds import tune_run

    seeds = run.seed_runs()
    if not seeds:
        return tune_run(spec, run)
    oof = ensemble_oof(spec, [Member(s, 1.0 / len(seeds)) for s in seeds])
    write_ensemble(spec, run, oof)
    return oof.thresholds


@dataclass
class SeedsOutcome:
    """What ``train --seeds`` prints: each seed's per-fold summary and the ensemble's CV."""

    summaries: dict[int, pd.DataFrame]
    ensemble: pd.DataFrame | None
    is_main: bool


def run_seeds(spec: Spec, fold: str, seeds: list[int], options, jobs: int = 1) -> SeedsOutcome:
    """Train every seed as its own run under ``options.run``, then ensemble their OOF.

    Raises:
        UserError: ``options.run`` already holds folds trained without ``--seeds``, or see
            :func:`mtlkaggle.train.run_training`.
    """
    from mtlkaggle.spec import with_train_overrides
    from mtlkaggle.train import run_training

    layout = options.run
    if layout.trained_folds():
        raise UserError(
            f"{layout.dir} holds folds trained without --seeds; pass another --run for the seed ensemble"
        )
    summaries, is_main = {}, True
    for seed in dict.fromkeys(seeds):
        seed_options = replace(options, run=layout.seed(seed))
        outcome = run_training(with_train_overrides(spec, seed=seed), fold, seed_options, jobs)
        summaries[seed], is_main = outcome.summary, outcome.is_main
    table = None
    if is_main and fold in ("all", "val") and len(summaries) > 1:
        members = [Member(layout.seed(s), 1.0 / len(summaries)) for s in summaries]
        oof = ensemble_oof(spec, members)
        write_ensemble(spec, layout, oof)
        write_run_config(layout.config, spec)
        table = oof.table
    return SeedsOutcome(summaries, table, is_main)
