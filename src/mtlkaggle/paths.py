"""Where every artefact lives: one place spells ``runs/COMP/RUN/...``, ``submissions/`` and ``reports/``.

All paths are relative to the working directory, like the ``competition/`` and ``folds/`` folders.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mtlkaggle.errors import UserError

RUNS = Path("runs")
SUBMISSIONS = Path("submissions")
REPORTS = Path("reports")
BUNDLES = Path("bundles")
NOTEBOOKS = Path("notebooks")


@dataclass(frozen=True)
class FoldLayout:
    """The files of one fold: ``runs/COMP/RUN/fold{K}/``."""

    dir: Path

    @property
    def name(self) -> str:
        """The fold's name (``0``, ``val``, ``full``)."""
        return self.dir.name.removeprefix("fold")

    @property
    def best(self) -> Path:
        """The best epoch's weights and scores."""
        return self.dir / "best.pt"

    @property
    def last(self) -> Path:
        """Everything needed to resume."""
        return self.dir / "last.pt"

    @property
    def metrics(self) -> Path:
        """One row per epoch."""
        return self.dir / "metrics.csv"

    @property
    def oof(self) -> Path:
        """The best epoch's validation probabilities, keyed by id."""
        return self.dir / "oof.csv"

    @property
    def config(self) -> Path:
        """The resolved spec and how the fold was started."""
        return self.dir / "config.json"

    @property
    def skipped(self) -> Path:
        """The unreadable images training skipped (``--skip-bad-images``), one line each."""
        return self.dir / "skipped.txt"

    @property
    def trackers(self) -> Path:
        """The fold's experiment-tracker run ids and last logged epoch (``--log``)."""
        return self.dir / "trackers.json"

    @property
    def outputs(self) -> tuple[Path, ...]:
        """The files a fresh start removes first."""
        return (self.best, self.last, self.oof, self.metrics, self.skipped, self.trackers)


@dataclass(frozen=True)
class RunLayout:
    """The files of one run: ``runs/COMP/RUN/``."""

    dir: Path

    @classmethod
    def of(cls, comp: str, run: str) -> RunLayout:
        """The layout of run ``run`` of competition ``comp`` under the working directory."""
        return cls(RUNS / comp / run)

    @property
    def name(self) -> str:
        """The run's name."""
        return self.dir.name

    def fold(self, name: str) -> FoldLayout:
        """Fold ``name``'s files."""
        return FoldLayout(self.dir / f"fold{name}")

    def trained_folds(self) -> list[FoldLayout]:
        """Folds that hold a best checkpoint, in fold order (numbers first, then ``val``, ``full``)."""
        found = [FoldLayout(p.parent) for p in self.dir.glob("fold*/best.pt")]
        return sorted(
            found, key=lambda f: (not f.name.isdigit(), int(f.name) if f.name.isdigit() else 0, f.name)
        )

    def chosen_folds(self, names: list[str] | None = None) -> list[FoldLayout]:
        """The trained folds called ``names`` (default: every trained fold), in that order.

        Raises:
            UserError: a fold that is not trained, or no trained fold at all.
        """
        available = {f.name: f for f in self.trained_folds()}
        chosen = names or list(available)
        missing = [f for f in chosen if f not in available]
        if not chosen or missing:
            raise UserError(
                f"{self.dir}: no trained fold {', '.join(missing) if missing else '(none at all)'}; "
                f"trained: {', '.join(available) or 'none'}. Run `mtlkaggle train` first"
            )
        return [available[f] for f in chosen]

    def seed(self, seed: int) -> RunLayout:
        """The sub-run of one seed of ``train --seeds``: ``runs/COMP/RUN/seed{S}/``."""
        return RunLayout(self.dir / f"seed{seed}")

    def seed_runs(self) -> list[RunLayout]:
        """Sub-runs of ``train --seeds`` that hold a trained fold, in seed order."""
        found = {p.parent.parent for p in self.dir.glob("seed*/fold*/best.pt")}
        runs = [RunLayout(p) for p in found if p.name.removeprefix("seed").lstrip("-").isdigit()]
        return sorted(runs, key=lambda r: int(r.name.removeprefix("seed")))

    @property
    def summary(self) -> Path:
        """One row per fold plus the mean."""
        return self.dir / "summary.csv"

    @property
    def ensemble(self) -> Path:
        """Of a ``--seeds`` run: the out-of-fold scores of each seed and of their average."""
        return self.dir / "ensemble.csv"

    @property
    def config(self) -> Path:
        """The resolved spec of the last ``train`` call."""
        return self.dir / "config.json"

    @property
    def thresholds(self) -> Path:
        """Tuned thresholds of multi-label tasks."""
        return self.dir / "thresholds.json"

    @property
    def trackers(self) -> Path:
        """The run's experiment-tracker run ids: the MLflow parent, the W&B ``cv`` run (``--log``)."""
        return self.dir / "trackers.json"

    @property
    def lock(self) -> Path:
        """Held by the process that trains this run."""
        return self.dir / ".lock"


def submissions_dir(comp: str) -> Path:
    """Where ``predict`` writes and ``submit`` reads by default."""
    return SUBMISSIONS / comp


def submitted_log(comp: str) -> Path:
    """What ``submit`` sent to Kaggle and, once known, the scores (``submit --wait``, ``submissions``)."""
    return SUBMISSIONS / comp / "submitted.json"


def report_dir(comp: str, run: str) -> Path:
    """Where ``report`` writes by default."""
    return REPORTS / comp / run


def bundle_dir(comp: str, run: str) -> Path:
    """Where ``export`` writes a run's bundle by default."""
    return BUNDLES / comp / run


def notebook_path(comp: str) -> Path:
    """Where ``notebook`` writes the Kaggle inference notebook by default."""
    return Path(f"{comp}-inference.ipynb")


def notebook_run_dir(comp: str) -> Path:
    """Where ``notebook --run-local`` lays out its ``/kaggle/input``-like folder and runs."""
    return NOTEBOOKS / comp / "local"


def kernel_push_dir(comp: str) -> Path:
    """Where ``notebook --push`` writes the notebook and ``kernel-metadata.json`` (output in ``output/``)."""
    return NOTEBOOKS / comp / "kernel"
