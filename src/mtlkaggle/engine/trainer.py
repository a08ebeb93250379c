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

import numpy as np
import pandas as pd
import torch
from torch import nn

from mtlkaggle.data.device import DevicePipeline, resolve_augment_on
from mtlkaggle.data.labels import LabelTable
from mtlkaggle.data.loading import LoaderConfig, default_workers, make_loader
from mtlkaggle.engine import distributed as dist
from mtlkaggle.engine.checkpoint import load_checkpoint, save_checkpoint
from mtlkaggle.engine.freeze import freeze_task, stalled_tasks
from mtlkaggle.engine.optim import LRSchedule, param_groups
from mtlkaggle.engine.runtime import Runtime, autocast_for, epoch_seed, rng_state, set_rng_state
from mtlkaggle.errors import UserError
from mtlkaggle.io import write_csv_atomic, write_text_atomic
from mtlkaggle.losses import MultiTaskLoss
from mtlkaggle.metrics import monitor_score, score_all
from mtlkaggle.model import MultiTaskNet, build_model
from mtlkaggle.paths import FoldLayout
from mtlkaggle.probabilities import probability_frame
from mtlkaggle.spec import Spec


@dataclass(frozen=True)
class TrainOptions:
    """How to run (not what to learn: that is ``spec.train``)."""

    run_dir: Path
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


@dataclass
class Validation:
    """One validation pass: per-task losses, every metric, and the rows' probabilities."""

    losses: dict[str, float]
    scores: dict[str, float]
    probs: dict[str, np.ndarray]
    rows: LabelTable
    score: float


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
        self.model, self.weights_origin = self._build_model()
        self.criterion = MultiTaskLoss(spec, self.train_table.targets).to(self.device)
        self.augment_on = resolve_augment_on(spec.augment.on, self.device)
        self.train_prepare, self.val_prepare = (
            (DevicePipeline(spec, t.img_size, train, self.device, t.channels_last) for train in (True, False))
            if self.augment_on == "device"
            else (None, None)
        )
        self.data_wait = 0.0  # share of the last training epoch spent waiting for batches
        self._data_warned = False
        self.train_loader = self._loader(self.train_table, train=True)
        self.val_loader = self._loader(self.val_table, train=False)
        self.steps_per_epoch = math.ceil(len(self.train_loader) / t.accumulate)
        self.optimizer = torch.optim.AdamW(param_groups(t, self.model, self.criterion))
        self.schedule = LRSchedule(t, self.optimizer, self.steps_per_epoch)
        self.autocast, self.scaler = autocast_for(self.device, t.amp, t.amp_dtype)
        self.ema = self._make_ema()
        forward = torch.compile(self.model) if t.compile else self.model
        self.step_module = TrainStep(self.model, self.criterion, forward, self.autocast)
        self.step_fn = dist.wrap(self.step_module, runtime)
        self.state = TrainState()
        self.task_best_state: dict[str, dict[str, torch.Tensor]] = {}
        self.skipped: list[str] = []

    def _build_model(self) -> tuple[MultiTaskNet, str]:
        # the init depends on the seed alone; the global RNG is left as it was
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.spec.train.seed)
            model, origin = build_model(self.spec)
        model.set_target_stats(self.train_table.targets)
        model = dist.prepare_module(model, self.runtime).to(self.device)
        if self.spec.train.channels_last:
            model = model.to(memory_format=torch.channels_last)
        return model, origin

    def _loader(self, table: LabelTable, train: bool):
        t, rt = self.spec.train, self.runtime
        if t.batch_size % rt.world_size:
            raise UserError(
                f"--batch-size {t.batch_size} is the batch of all {rt.world_size} processes together; "
                f"use a multiple of {rt.world_size}"
            )
        per_rank = t.batch_size // rt.world_size
        config = LoaderConfig(
            img_size=t.img_size,
            batch_size=per_rank if train else per_rank * 2,
            num_workers=t.num_workers,
            seed=t.seed,
            train=train,
            pin_memory=self.device.type == "cuda",
            rank=rt.rank,
            world_size=rt.world_size,
            on_device=self.augment_on == "device",
        )
        return make_loader(self.spec, table, config)

    def _make_ema(self):
        if not self.spec.train.ema:
            return None
        from timm.utils import ModelEmaV3

        return ModelEmaV3(self.model, decay=self.spec.train.ema_decay, use_warmup=True)

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
        while not self.done:
            started = time.perf_counter()
            train_stats, train_seconds = self.train_epoch(progress)
            val = self.validate(progress)
            improved = self.keep_best(val)
            frozen_now = self.early_freeze(val.losses)
            if len(self.val_table):  # a full-data fit has no score to plateau on
                self.schedule.after_epoch(val.score)
            row = self._epoch_row(train_stats, val, train_seconds, time.perf_counter() - started)
            self.state.history.append(row)
            self.state.epoch += 1
            self.state.stopped = self._stop_reason()
            self.save_last()
            self.write_metrics()
            self.write_skipped()
            self._print(_epoch_line(self.fold, row, improved, frozen_now, self.skipped), progress)
            self._warn_data_wait(progress)
            if self.options.on_epoch_end:
                self.options.on_epoch_end(self, row)
        s = self.state
        return FoldResult(self.fold, s.best_epoch + 1, s.best_score, s.best_scores, s.epoch, self.files.dir)

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
        self._set_train_mode()
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
        timed = _Timed(self._batches(self.train_loader, self.train_prepare))
        for i, batch in enumerate(timed):
            if "image" in batch:
                images, targets = self._mix(*self._to_device(batch), i)
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

    def _batches(self, loader, prepare: DevicePipeline | None = None):
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

    def _to_device(self, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        memory = torch.channels_last if self.spec.train.channels_last else torch.contiguous_format
        images = batch["image"].to(self.device, non_blocking=True).contiguous(memory_format=memory)
        targets = {}
        for task in self.spec.tasks:
            y = batch[task.name].to(self.device, non_blocking=True)
            targets[task.name] = self.model.standardize(task.name, y) if task.kind == "regression" else y
        return images, targets

    def _mix(self, images: torch.Tensor, targets: dict[str, torch.Tensor], batch: int):
        """Mixup/CutMix when the spec asks for it this epoch (draws seeded by seed, epoch, rank, batch)."""
        from mtlkaggle.mixing import mix_batch, mix_seed, mixing_active

        t, epoch = self.spec.train, self.state.epoch
        if not mixing_active(self.spec.augment, epoch, t.epochs):
            return images, targets
        rng = mix_seed(t.seed, epoch, self.runtime.rank, batch)
        mixed = mix_batch(images, targets, self.spec.tasks, self.spec.augment, rng)
        return mixed.images, mixed.targets

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
        images, targets = self._to_device(batch)
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

    def _set_train_mode(self) -> None:
        self.model.train()
        if self.state.frozen:  # frozen parts keep their BatchNorm statistics
            self.model.backbone.eval()
            self.model.neck.eval()
            for name in self.state.frozen:
                self.model.heads[name].eval()

    # ------------------------------------------------------------------ validation

    @torch.no_grad()
    def validate(self, progress) -> Validation:
        """Validation losses, scores and probabilities over every validation row (all ranks').

        A full-data fit (no validation rows) gets an empty Validation with a NaN score.
        """
        if not len(self.val_table):
            return Validation({}, {}, {}, self.val_table, math.nan)
        model = self.eval_model
        dist.sync_buffers(model, self.runtime)
        model.eval()
        names = [t.name for t in self.spec.tasks]
        loss_sum = torch.zeros(len(names) + 1, device=self.device)
        outputs: dict[str, list[torch.Tensor]] = {n: [] for n in names}
        indices: list[torch.Tensor] = []
        bar = progress.add_task(
            f"fold {self.fold} validating", total=len(self.val_table), unit="img", status=""
        )
        for batch in self._batches(self.val_loader, self.val_prepare):
            progress.advance(bar, (len(batch.get("index", [])) + batch["skipped"]) * self.runtime.world_size)
            if "image" not in batch:
                continue
            images, targets = self._to_device(batch)
            with self.autocast():
                raw = model(images)
            n = images.shape[0]
            loss_sum += torch.cat([self.criterion.per_task(raw, targets), loss_sum.new_ones(1)]) * n
            for name, p in model.probabilities(raw).items():
                outputs[name].append(p.float())
            indices.append(batch["index"])
        progress.remove_task(bar)
        loss_sum = dist.sum_across(loss_sum, self.runtime)
        order, probs = dist.gather_rows(indices, outputs, self.runtime)
        rows = self.val_table.subset(order)
        scores = score_all(self.spec, rows.targets, probs) if len(order) else {}
        losses = dict(zip(names, (loss_sum[:-1] / max(float(loss_sum[-1]), 1.0)).tolist(), strict=True))
        return Validation(losses, scores, probs, rows, monitor_score(self.spec, scores))

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
        if self.runtime.is_main:
            payload = {
                "model": self.eval_model.state_dict(),
                "epoch": state.epoch,
                "scores": val.scores,
                "config": self.spec.model_dump(mode="json"),
            }
            save_checkpoint(payload, self.files.best)
            if not full_fit:
                write_csv_atomic(self.files.oof, probability_frame(self.spec, val.rows.ids, val.probs))
        return not full_fit

    # ------------------------------------------------------------------ early freeze

    def early_freeze(self, val_losses: dict[str, float]) -> list[str]:
        """Track each task's validation loss; freeze the tasks that stopped improving.

        See :mod:`mtlkaggle.engine.freeze`. Every rank sees the same gathered losses, so every
        rank freezes the same tasks. Returns the tasks frozen this epoch.
        """
        patience = self.spec.train.early_freeze
        if not patience:
            return []
        newly = stalled_tasks(self.state, self.task_best_state, val_losses, patience, self.eval_model)
        for name in newly:
            self.freeze(name)
        return newly

    def freeze(self, name: str) -> None:
        """Restore task ``name``'s best backbone, neck and head, and freeze them."""
        models = list({id(self.model): self.model, id(self.eval_model): self.eval_model}.values())
        freeze_task(name, self.task_best_state[name], models, self.criterion)
        self.state.frozen.append(name)
        self.step_fn = dist.wrap(self.step_module, self.runtime)  # DDP reduces only trainable parameters

    # ------------------------------------------------------------------ checkpoints and logs

    def save_last(self) -> None:
        """Everything needed to resume, written atomically by rank 0."""
        if not self.runtime.is_main:
            return
        payload = {
            "model": self.model.state_dict(),
            "criterion": self.criterion.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler else None,
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "state": self.state.__dict__,
            "task_best_state": self.task_best_state,
            "rng": rng_state(),
        }
        save_checkpoint(payload, self.files.last)

    def resume(self) -> None:
        """Continue from ``last.pt`` (every rank reads the same file)."""
        fix = "start the fold again with --overwrite"
        payload = load_checkpoint(self.files.last, ("model", "optimizer", "state", "rng"), fix)
        try:
            self.model.load_state_dict(payload["model"])
            self.criterion.load_state_dict(payload["criterion"])
            self.optimizer.load_state_dict(payload["optimizer"])
            self.schedule.load_state_dict(payload["scheduler"])
        except (RuntimeError, ValueError, KeyError) as e:
            raise UserError(
                f"{self.files.last}: does not fit this model ({str(e).splitlines()[0]}); {fix}"
            ) from None
        if self.scaler and payload["scaler"]:
            self.scaler.load_state_dict(payload["scaler"])
        if self.ema is not None and payload["ema"]:
            self.ema.load_state_dict(payload["ema"])
        self.state = TrainState(**payload["state"])
        self.task_best_state = payload["task_best_state"]
        for name in list(self.state.frozen):
            self.state.frozen.remove(name)
            self.freeze(name)
        set_rng_state(payload["rng"])

    def write_metrics(self) -> None:
        """``metrics.csv``: one row per epoch so far (rank 0)."""
        if self.runtime.is_main and self.state.history:
            write_csv_atomic(self.files.metrics, pd.DataFrame(self.state.history))

    def write_skipped(self) -> None:
        """``skipped.txt``: every image skipped so far, each once (rank 0; the report lists them)."""
        parts = dist.gather_objects(self.skipped, self.runtime)
        skipped = [m.encode("utf-8", "backslashreplace").decode() for part in parts for m in part]
        if self.runtime.is_main and skipped:
            path = self.files.skipped
            old = path.read_text(encoding="utf-8", errors="replace").splitlines() if path.is_file() else []
            write_text_atomic(path, "".join(f"{m}\n" for m in dict.fromkeys(old + skipped)))

    def _epoch_row(self, train_stats: dict, val: Validation, train_seconds: float, seconds: float) -> dict:
        weights = self.criterion.weighting.weights().tolist()
        skipped = sum(dist.gather_objects(len(self.skipped), self.runtime))
        return {
            "epoch": self.state.epoch + 1,
            "lr": self.optimizer.param_groups[-1]["lr"],
            **{f"train/{k}": v for k, v in train_stats.items()},
            "val/loss": sum(val.losses.values()),
            **{f"val/loss/{k}": v for k, v in val.losses.items()},
            **{f"val/{k}": v for k, v in val.scores.items()},
            "score": val.score,
            **{f"weight/{t.name}": w for t, w in zip(self.spec.tasks, weights, strict=True)},
            "img_per_s": len(self.train_table) / max(train_seconds, 1e-9),
            "data_wait": round(self.data_wait, 4),
            "seconds": seconds,
            "frozen": " ".join(self.state.frozen),
            "skipped_images": skipped,
        }

    def _warn_data_wait(self, progress) -> None:
        """Say once, with the option that would help, when training waits on data over 30% of the time."""
        if self._data_warned or self.data_wait <= 0.3:
            return
        self._data_warned = True
        workers = self.spec.train.num_workers
        if self.augment_on == "cpu" and self.device.type == "cuda":
            hint = "decode and augment on the GPU with --augment-on device"
        elif workers is not None and workers < default_workers():
            hint = f"use more loader processes: --num-workers {default_workers()}"
        else:
            hint = "every CPU is busy: images stored near the training size (or a smaller --img-size) help"
        self._print(
            f"[yellow]fold {self.fold}: training waited on data {self.data_wait:.0%} of the time;[/] {hint}",
            progress,
        )

    def _print(self, line: str, progress) -> None:
        if self.runtime.is_main:
            progress.console.print(line, highlight=False)


class _Timed:
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


def _epoch_line(
    fold: str, row: dict[str, Any], improved: bool, frozen_now: list[str], skipped: list[str]
) -> str:
    from rich.markup import escape

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
