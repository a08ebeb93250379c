"""What a fold leaves after each epoch: ``metrics.csv``, ``skipped.txt``, the epoch's line, and a
one-time hint when training waits on data. Rank 0 writes and prints; every rank takes part in the
gathers."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd
from rich.markup import escape

from mtlkaggle.engine import distributed as dist
from mtlkaggle.engine.runtime import Runtime
from mtlkaggle.io import write_csv_atomic, write_text_atomic
from mtlkaggle.paths import FoldLayout
from mtlkaggle.readback import numeric_columns, read_table
from mtlkaggle.spec import Spec

DATA_WAIT_WARNING = 0.3  # share of an epoch spent waiting for batches that earns a hint


class EpochLog:
    """The per-epoch files and lines of one fold."""

    def __init__(self, fold: str, files: FoldLayout, runtime: Runtime):
        self.fold, self.files, self.runtime = fold, files, runtime
        self._data_warned = False

    def row(self, trainer, train_stats: dict, val, train_seconds: float, seconds: float) -> dict[str, Any]:
        """The epoch's row of ``metrics.csv``: learning rate, losses, scores, loss weights, speed."""
        weights = trainer.criterion.weighting.weights().tolist()
        skipped = sum(dist.gather_objects(len(trainer.skipped), self.runtime))
        return {
            "epoch": trainer.state.epoch + 1,
            "lr": trainer.optimizer.param_groups[-1]["lr"],
            **{f"train/{k}": v for k, v in train_stats.items()},
            "val/loss": sum(val.losses.values()),
            **{f"val/loss/{k}": v for k, v in val.losses.items()},
            **{f"val/{k}": v for k, v in val.scores.items()},
            "score": val.score,
            **{f"weight/{t.name}": w for t, w in zip(trainer.spec.tasks, weights, strict=True)},
            "img_per_s": len(trainer.train_table) / max(train_seconds, 1e-9),
            "data_wait": round(trainer.data_wait, 4),
            "seconds": seconds,
            "frozen": " ".join(trainer.state.frozen),
            "skipped_images": skipped,
        }

    def write(self, history: list[dict[str, Any]], skipped: list[str]) -> None:
        """``metrics.csv`` (one row per epoch so far) and ``skipped.txt`` (every image skipped so
        far, each once; gathered from every rank)."""
        if self.runtime.is_main and history:
            write_csv_atomic(self.files.metrics, pd.DataFrame(history))
        parts = dist.gather_objects(skipped, self.runtime)
        found = [m.encode("utf-8", "backslashreplace").decode() for part in parts for m in part]
        if self.runtime.is_main and found:
            path = self.files.skipped
            old = path.read_text(encoding="utf-8", errors="replace").splitlines() if path.is_file() else []
            write_text_atomic(path, "".join(f"{m}\n" for m in dict.fromkeys(old + found)))

    def print(self, line: str, progress) -> None:
        """A line above the progress bars (rank 0 only)."""
        if self.runtime.is_main:
            progress.console.print(line, highlight=False)

    def epoch(self, row: dict[str, Any], improved: bool, frozen_now: list[str], skipped: list[str], progress):
        """The epoch's summary line."""
        self.print(epoch_line(self.fold, row, improved, frozen_now, skipped), progress)

    def warn_data_wait(self, data_wait: float, hint: str, progress) -> None:
        """Say once, with the option that would help, when training waits on data too long."""
        if self._data_warned or data_wait <= DATA_WAIT_WARNING:
            return
        self._data_warned = True
        share = f"{data_wait:.0%}"
        self.print(
            f"[yellow]fold {escape(self.fold)}: training waited on data {share} of the time;[/] {hint}",
            progress,
        )


def data_wait_hint(augment_on: str, device_type: str, workers: int | None, usable: int) -> str:
    """The option that would cut the wait: device decoding on a GPU, more workers, or smaller images."""
    if augment_on == "cpu" and device_type == "cuda":
        return "decode and augment on the GPU with --augment-on device"
    if workers is not None and workers < usable:
        return f"use more loader processes: --num-workers {usable}"
    return "every CPU is busy: images stored near the training size (or a smaller --img-size) help"


class Timed:
    """An iterator that adds up the seconds spent waiting in ``next()``."""

    def __init__(self, batches):
        self.batches, self.waited = iter(batches), 0.0

    def __iter__(self):
        return self

    def __next__(self):
        start = time.perf_counter()
        try:
            return next(self.batches)
        finally:
            self.waited += time.perf_counter() - start


def epoch_line(
    fold: str, row: dict[str, Any], improved: bool, frozen_now: list[str], skipped: list[str]
) -> str:
    """One epoch in one line: losses, validation scores, loss weights, speed, best and frozen marks."""
    scores = "  ".join(f"{k[4:]} {v:.4f}" for k, v in row.items() if k.startswith("val/") and "loss" not in k)
    weights = " ".join(f"{k[7:]}={v:.2f}" for k, v in row.items() if k.startswith("weight/"))
    mark = " [green]* best[/]" if improved else ""
    freeze = f" [yellow]froze {escape(', '.join(frozen_now))}[/]" if frozen_now else ""
    line = (
        f"fold {escape(fold)} epoch {row['epoch']}: train loss {row['train/loss']:.4f}  val loss "
        f"{row['val/loss']:.4f}  {escape(scores)}  weights {escape(weights)}  "
        f"{row['img_per_s']:.0f} img/s{mark}{freeze}"
    )
    if row["skipped_images"]:
        shown = "; ".join(skipped[:3]) + (" ..." if len(skipped) > 3 else "")
        line += (
            f"\n[yellow]skipped {row['skipped_images']} unreadable image(s) this epoch:[/] {escape(shown)}"
        )
    return line


def read_metrics(spec: Spec, path: Path) -> pd.DataFrame:
    """A fold's ``metrics.csv`` with the columns the report draws, each numeric.

    Raises:
        UserError: a missing, damaged or incomplete file (naming the file and the fix).
    """
    fold = path.parent.name.removeprefix("fold")
    fix = f"train that fold again (`mtlkaggle train {spec.name} --fold {fold} --overwrite`)"
    columns = ["epoch", "score", "train/loss", "val/loss"]
    for task in spec.tasks:
        columns += [f"train/loss/{task.name}", f"val/loss/{task.name}", f"weight/{task.name}"]
        columns += [f"val/{task.name}/{metric}" for metric in task.resolved_metrics]
    frame = read_table(path, fix, columns, "metrics file")
    numeric_columns(frame, path, columns, fix, allow_nan=True)  # a metric may be undefined (NaN)
    return frame
