"""The :class:`Trainer`: one fold's model, optimizer and loaders, and the epoch loop.

``fit()`` reads top to bottom as the loop: train an epoch, validate, keep the best, early freeze,
step the schedule, log, checkpoint, decide whether to stop. The same code runs in one process
and under torchrun: rank-dependent steps go through :mod:`mtlkaggle.engine.distributed`, and only
rank 0 writes files or prints.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mtlkaggle.data.device import DevicePipeline, resolve_augment_on
from mtlkaggle.data.labels import LabelTable
from mtlkaggle.data.loading import default_workers
from mtlkaggle.engine import distributed as dist
from mtlkaggle.engine.checkpoint import FoldCheckpoints
from mtlkaggle.engine.components import fold_ema, fold_loader, fold_model
from mtlkaggle.engine.epoch_log import EpochLog, Timed, data_wait_hint
from mtlkaggle.engine.freeze import early_freeze, freeze, train_mode
from mtlkaggle.engine.optim import LRSchedule, param_groups
from mtlkaggle.engine.runtime import Runtime, autocast_for, epoch_seed
from mtlkaggle.engine.validation import Validation, validate
from mtlkaggle.errors import UserError
from mtlkaggle.io import write_csv_atomic
from mtlkaggle.losses import MultiTaskLoss
from mtlkaggle.metrics import score_all
from mtlkaggle.mixing import mix_for_epoch
from mtlkaggle.model import MultiTaskNet
from mtlkaggle.paths import FoldLayout, RunLayout
from mtlkaggle.probabilities import probability_frame
from mtlkaggle.spec import Spec
from mtlkaggle.trackers import NO_TRACKERS, Trackers


@dataclass(frozen=True)
class TrainOptions:
    """How to run (not what to learn: that is ``spec.train``)."""

    run: RunLayout
    device: str | None = None
    resume: bool = False
    overwrite: bool = False
    skip_bad_images: bool = False
    on_epoch_end: Callable[[Any, dict[str, Any]], None] | None = None  # (trainer, metrics row)


@dataclass
class FoldResult:
    """What a finished fold reports."""

    fold: str
    best_epoch: int
    best_score: float
    scores: dict[str, float]
    epochs_run: int
    folder: Path


@dataclass
class TrainState:
    """Everything that changes during a fold and must survive a resume."""

    epoch: int = 0
    best_score: float = -math.inf
    best_epoch: int = -1
    best_scores: dict[str, float] = field(default_factory=dict)
    bad_epochs: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    task_best_loss: dict[str, float] = field(default_factory=dict)
    task_bad: dict[str, int] = field(default_factory=dict)
    frozen: list[str] = field(default_factory=list)
    stopped: str | None = None


class TrainStep(nn.Module):
    """Model and loss in one module, so DDP also averages the gradients of learned loss weights."""

    def __init__(self, model: MultiTaskNet, criterion: MultiTaskLoss, forward: Callable, autocast: Callable):
        super().__init__()
        self.model, self.criterion = model, criterion
        object.__setattr__(self, "_forward", forward)  # a compiled model is not a submodule here
        object.__setattr__(self, "_autocast", autocast)

    def forward(self, images: torch.Tensor, targets: dict[str, torch.Tensor]):
        with self._autocast():
            outputs = self._forward(images)
        total, losses = self.criterion(outputs, targets)
        return total, losses, outputs


class Trainer:
    """One fold's training. Build it, optionally :meth:`resume`, then :meth:`fit`.

    Args:
        spec: The competition, with the recipe in ``spec.train``.
        fold: The fold's name (for messages).
        tables: ``(train rows, validation rows)``.
        runtime: Device and rank (see :func:`mtlkaggle.engine.runtime.make_runtime`).
        layout: Where the fold's files go.
        options: Skipping bad images, the per-epoch hook.
    """

    def __init__(
        self,
        spec: Spec,
        fold: str,
        tables: tuple[LabelTable, LabelTable],
        runtime: Runtime,
        layout: FoldLayout,
        options: TrainOptions,
    ):
        self.spec, self.fold, self.runtime, self.files, self.options = spec, fold, runtime, layout, options
        self.train_table, self.val_table = tables
        t = spec.train
        self.device = runtime.device
        self.model, self.weights_origin = fold_model(spec, self.train_table.targets, runtime)
        self.criterion = MultiTaskLoss(spec, self.train_table.targets).to(self.device)
        self.augment_on = resolve_augment_on(spec.augment.on, self.device)
        self.train_prepare, self.val_prepare = (
            (DevicePipeline(spec, t.img_size, train, self.device, t.channels_last) for train in (True, False))
            if self.augment_on == "device"
            else (None, None)
        )
        self.data_wait = 0.0  # share of the last training epoch spent waiting for batches
        self.checkpoints = FoldCheckpoints(layout, runtime.is_main)
        self.log = EpochLog(fold, layout, runtime)
        on_device = self.augment_on == "device"
        self.train_loader = fold_loader(spec, self.train_table, runtime, True, on_device)
        self.val_loader = fold_loader(spec, self.val_table, runtime, False, on_device)
        self.steps_per_epoch = math.ceil(len(self.train_loader) / t.accumulate)
        self.optimizer = torch.optim.AdamW(param_groups(t, self.model, self.criterion))
        self.schedule = LRSchedule(t, self.optimizer, self.steps_per_epoch)
        self.autocast, self.scaler = autocast_for(self.device, t.amp, t.amp_dtype)
        self.ema = fold_ema(spec, self.model)
        forward = torch.compile(self.model) if t.compile else self.model
        self.step_module = TrainStep(self.model, self.criterion, forward, self.autocast)
        self.step_fn = dist.wrap(self.step_module, runtime)
        self.state = TrainState()
        self.task_best_state: dict[str, dict[str, torch.Tensor]] = {}
        self.skipped: list[str] = []
        self.trackers: Trackers = NO_TRACKERS  # set by engine.fold.build_trainer when --log asks

    @property
    def eval_model(self) -> MultiTaskNet:
        """The weights that are validated and saved: the EMA copy when EMA is on."""
        return self.ema.module if self.ema is not None else self.model

    @property
    def done(self) -> bool:
        """Whether the fold has run its epochs or stopped early."""
        return self.state.epoch >= self.spec.train.epochs or self.state.stopped is not None

    # ------------------------------------------------------------------ the loop

    def fit(self, progress) -> FoldResult:
        """Train until the last epoch or an early stop; returns the best epoch's scores."""
        try:
            self._loop(progress)
        except BaseException:
            self.trackers.finish(failed=True)
            raise
        self.trackers.files([self.files.metrics, self.files.config])
        self.trackers.finish()
        s = self.state
        return FoldResult(self.fold, s.best_epoch + 1, s.best_score, s.best_scores, s.epoch, self.files.dir)

    def _loop(self, progress) -> None:
        while not self.done:
            started = time.perf_counter()
            train_stats, train_seconds = self.train_epoch(progress)
            val = self.validate(progress)
            improved = self.keep_best(val)
            frozen_now = self.early_freeze(val.losses)
            if len(self.val_table):  # a full-data fit has no score to plateau on
                self.schedule.after_epoch(val.score)
            row = self.log.row(self, train_stats, val, train_seconds, time.perf_counter() - started)
            self.state.history.append(row)
            self.state.epoch += 1
            self.state.stopped = self._stop_reason()
            self.checkpoints.save_last(self)
            self.log.write(self.state.history, self.skipped)
            self.trackers.epoch(row)
            self.log.epoch(row, improved, frozen_now, self.skipped, progress)
            self._warn_data_wait(progress)
            if self.options.on_epoch_end:
                self.options.on_epoch_end(self, row)

    def _stop_reason(self) -> str | None:
        if len(self.state.frozen) == len(self.spec.tasks):
            return "every task frozen"
        patience = self.spec.train.early_stopping
        if patience and self.state.bad_epochs >= patience:
            return f"no improvement for {self.state.bad_epochs} epochs"
        return None

    # ------------------------------------------------------------------ training

    def train_epoch(self, progress) -> tuple[dict[str, float], float]:
        """One pass over this rank's training rows.

        Returns:
            Mean losses and every metric over the rows seen by all ranks (scored on the
            predictions made during the pass, as training curves usually are), and the
            epoch's seconds.
        """
        spec, epoch, rt = self.spec, self.state.epoch, self.runtime
        torch.manual_seed(epoch_seed(spec.train.seed, epoch, rt.rank))
        self.train_loader.sampler.set_epoch(epoch)
        train_mode(self.model, self.state.frozen)
        total_rows = len(self.train_loader.sampler) * rt.world_size
        bar = progress.add_task(
            f"fold {self.fold} epoch {epoch + 1}/{spec.train.epochs}", total=total_rows, unit="img", status=""
        )
        names = [t.name for t in spec.tasks]
        sums = torch.zeros(len(names) + 2, device=self.device)  # total, per task, rows
        kept: dict[str, list[torch.Tensor]] = {n: [] for n in names}
        rows: list[torch.Tensor] = []
        self.skipped = []
        started = time.perf_counter()
        n_batches = len(self.train_loader)
        first_step = epoch * self.steps_per_epoch
        step = 0
        self.optimizer.zero_grad(set_to_none=True)
        timed = Timed(self.batches(self.train_loader, self.train_prepare))
        for i, batch in enumerate(timed):
            if "image" in batch:
                images, targets = mix_for_epoch(
                    self.spec, *self.to_device(batch), self.state.epoch, rt.rank, i
                )
                last_micro = (i + 1) % spec.train.accumulate == 0 or i + 1 == n_batches
                with self._maybe_no_sync(last_micro):
                    total, losses, outputs = self.step_fn(images, targets)
                    self._backward(total / spec.train.accumulate)
                if last_micro:
                    step += 1
                    self.optimizer_step(first_step + step)
                n = images.shape[0]
                with torch.no_grad():
                    for name, p in self.model.probabilities(outputs).items():
                        kept[name].append(p.detach().float())
                rows.append(batch["index"])
                sums += torch.cat([total.detach()[None], losses, sums.new_ones(1)]) * n
            if i % 10 == 0 or i + 1 == n_batches:
                self._check_finite(sums, epoch, i)
                seen, elapsed = max(float(sums[-1]), 1.0), time.perf_counter() - started
                progress.update(
                    bar,
                    status=f"loss {float(sums[0]) / seen:.4f}  {seen / max(elapsed, 1e-9):.0f} img/s  "
                    f"data wait {timed.waited / max(elapsed, 1e-9):.0%}",
                )
            progress.advance(bar, (len(batch.get("index", [])) + batch["skipped"]) * rt.world_size)
        progress.remove_task(bar)
        seconds = time.perf_counter() - started
        self.data_wait = timed.waited / max(seconds, 1e-9)
        sums = dist.sum_across(sums, rt)
        means = (sums[:-1] / max(float(sums[-1]), 1.0)).tolist()
        stats = {"loss": means[0], **{f"loss/{n}": v for n, v in zip(names, means[1:], strict=True)}}
        index, probs = dist.gather_rows(rows, kept, self.runtime)
        if len(index):
            stats.update(score_all(spec, self.train_table.subset(index).targets, probs))
        return stats, seconds

    def batches(self, loader, prepare: DevicePipeline | None = None):
        """The loader's batches (decoded on the device by ``prepare`` if given); an unreadable image
        stops the fold with its name, or is skipped."""
        for batch in loader:
            if prepare is not None:
                batch = prepare(batch)
            if batch["bad"]:
                if not self.options.skip_bad_images:
                    raise UserError(
                        f"{batch['bad'][0]}; fix or remove it (`mtlkaggle check`), or pass --skip-bad-images"
                    )
                self.skipped += batch["bad"]
            yield batch

    def to_device(self, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        memory = torch.channels_last if self.spec.train.channels_last else torch.contiguous_format
        images = batch["image"].to(self.device, non_blocking=True).contiguous(memory_format=memory)
        targets = {}
        for task in self.spec.tasks:
            y = batch[task.name].to(self.device, non_blocking=True)
            targets[task.name] = self.model.standardize(task.name, y) if task.kind == "regression" else y
        return images, targets

    def _maybe_no_sync(self, sync: bool):
        """Skip DDP's gradient all-reduce on accumulation micro-batches before the last."""
        if sync or not hasattr(self.step_fn, "no_sync"):
            return contextlib.nullcontext()
        return self.step_fn.no_sync()

    def _backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler else loss).backward()

    def optimizer_step(self, global_step: int) -> None:
        """Clip (if asked), step, advance the schedule and the EMA (``global_step`` counts from 1)."""
        t = self.spec.train
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        if t.grad_clip:
            params = [p for g in self.optimizer.param_groups for p in g["params"] if p.grad is not None]
            torch.nn.utils.clip_grad_norm_(params, t.grad_clip)
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.schedule.after_step()
        if self.ema is not None:
            self.ema.update(self.model, step=global_step)

    def train_batch(self, batch: dict, global_step: int) -> torch.Tensor:
        """Forward, backward and an optimizer step on one batch; returns the total loss (for benches)."""
        images, targets = self.to_device(batch)
        total, _, _ = self.step_fn(images, targets)
        self._backward(total)
        self.optimizer_step(global_step)
        return total.detach()

    def _check_finite(self, sums: torch.Tensor, epoch: int, batch: int) -> None:
        # every rank takes part, so a NaN on one rank stops them all at the same batch
        if not dist.all_true(bool(torch.isfinite(sums).all()), self.runtime):
            kept = self.files.last
            keep = f"the last good checkpoint is {kept}" if kept.exists() else "no checkpoint was written"
            raise UserError(
                f"fold {self.fold} epoch {epoch + 1} batch {batch + 1}: loss is not finite; training "
                f"stopped and {keep}. Lower --lr, check the labels with `mtlkaggle check`, or try --no-amp"
            )

    # ------------------------------------------------------------------ validation

    def validate(self, progress) -> Validation:
        """Validation losses, scores and probabilities over every validation row (all ranks')."""
        return validate(self, progress)

    def keep_best(self, val: Validation) -> bool:
        """Record a new best epoch and write its weights and out-of-fold file; whether it improved.

        Without validation rows (``--fold full``) every epoch is kept: ``best.pt`` holds the last
        epoch's weights and no out-of-fold file is written.
        """
        state = self.state
        full_fit = not len(val.rows)
        if not full_fit and not val.score > state.best_score:
            state.bad_epochs += 1
            return False
        state.best_score, state.best_epoch, state.best_scores = val.score, state.epoch, val.scores
        state.bad_epochs = 0
        self.checkpoints.save_best(self.eval_model, state.epoch, val.scores, self.spec)
        if self.runtime.is_main and not full_fit:
            write_csv_atomic(self.files.oof, probability_frame(self.spec, val.rows.ids, val.probs))
        return not full_fit

    # ------------------------------------------------------------------ early freeze

    def early_freeze(self, val_losses: dict[str, float]) -> list[str]:
        """Freeze the tasks whose validation loss stopped improving (see :mod:`.freeze`); returns them."""
        return early_freeze(self, val_losses)

    # ------------------------------------------------------------------ checkpoints and logs

    def resume(self) -> None:
        """Continue from ``last.pt`` (every rank reads the same file)."""
        self.checkpoints.resume(self)

    def restore_state(self, state: dict[str, Any], task_best_state: dict) -> None:
        """Take back the loop's state saved in ``last.pt``, refreezing the tasks frozen then."""
        self.state = TrainState(**state)
        self.task_best_state = task_best_state
        for name in list(self.state.frozen):
            self.state.frozen.remove(name)
            freeze(self, name)

    def _warn_data_wait(self, progress) -> None:
        workers = self.spec.train.num_workers
        hint = data_wait_hint(self.augment_on, self.device.type, workers, default_workers())
        self.log.warn_data_wait(self.data_wait, hint, progress)
