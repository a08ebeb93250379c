"""``mtlkaggle train``: fine-tune one model per fold, with checkpoints and out-of-fold predictions.

A fold's folder (``runs/COMP/RUN/fold{K}/``) holds ``config.json`` (the resolved spec),
``best.pt`` (the best epoch's weights), ``last.pt`` (everything needed to resume), ``metrics.csv``
(one row per epoch) and ``oof.csv`` (the best epoch's validation probabilities, keyed by id).

Every epoch's randomness (data order, augmentation, dropout) is derived from (seed, epoch), so a
run resumed from ``last.pt`` ends exactly where an uninterrupted run ends.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Sampler

from mtlkaggle.data import ImageDataset, ImageReadError, LabelTable, build_transforms, collate, read_split
from mtlkaggle.errors import UserError
from mtlkaggle.folds import read_folds
from mtlkaggle.io import atomic_path, write_csv_atomic, write_json_atomic
from mtlkaggle.losses import MultiTaskLoss
from mtlkaggle.metrics import monitor_score, score_all
from mtlkaggle.model import MultiTaskNet, build_model
from mtlkaggle.progress import make_progress
from mtlkaggle.spec import Spec


@dataclass(frozen=True)
class TrainOptions:
    """How to run (not what to learn: that is ``spec.train``)."""

    run_dir: Path
    device: str | None = None
    resume: bool = False
    overwrite: bool = False
    skip_bad_images: bool = False
    on_epoch_end: Callable[[Any, dict[str, Any]], None] | None = None  # (fold run, metrics row)


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
class _State:
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


class SeededSampler(Sampler):
    """Yields ``(index, seed)``: a shuffled order and a per-sample augmentation seed for an epoch."""

    def __init__(self, n: int, seed: int, shuffle: bool):
        self.n, self.seed, self.shuffle, self.epoch = n, seed, shuffle, 0

    def set_epoch(self, epoch: int) -> None:
        """Use ``epoch``'s order and seeds on the next iteration."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[tuple[int, int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(self.n) if self.shuffle else np.arange(self.n)
        seeds = rng.integers(0, 2**31 - 1, size=self.n)
        return iter((int(i), int(seeds[i])) for i in order)


def resolve_device(name: str | None) -> torch.device:
    """``cuda`` when available unless a device is named."""
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def fold_names(spec: Spec, fold: str) -> list[str]:
    """Expand ``--fold``: ``all``, a number, or ``val`` (the spec's fixed train/val split)."""
    if fold == "all":
        return [str(k) for k in range(spec.train.n_splits)]
    if fold == "val":
        if not spec.data.val:
            raise UserError(f"competition '{spec.name}' has no val file; use --fold K or --fold all")
        return ["val"]
    if fold.isdigit() and int(fold) < spec.train.n_splits:
        return [fold]
    raise UserError(f"--fold {fold}: expected 'all', 'val' or 0..{spec.train.n_splits - 1}")


def split_fold(spec: Spec, fold: str) -> tuple[LabelTable, LabelTable]:
    """The training and validation rows of a fold."""
    train = read_split(spec, "train")
    if fold == "val":
        return train, read_split(spec, "val")
    assignment = read_folds(spec, train)
    if assignment.max() + 1 != spec.train.n_splits:
        raise UserError(
            f"folds/{spec.name}.csv has {assignment.max() + 1} folds but train.n_splits is "
            f"{spec.train.n_splits}; rerun `mtlkaggle folds {spec.name} --n-splits {spec.train.n_splits}`"
        )
    k = int(fold)
    return train.subset(np.flatnonzero(assignment != k)), train.subset(np.flatnonzero(assignment == k))


def _loader(spec: Spec, table: LabelTable, train: bool, device: torch.device, skip_bad: bool) -> DataLoader:
    t = spec.train
    transform = build_transforms(spec, t.img_size, train)
    dataset = ImageDataset(table, transform, t.img_size, skip_bad=skip_bad)
    sampler = SeededSampler(len(table), t.seed, shuffle=train)
    workers = t.num_workers
    return DataLoader(
        dataset,
        batch_size=t.batch_size if train else t.batch_size * 2,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=device.type == "cuda",
        drop_last=train and len(table) > t.batch_size,
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
        worker_init_fn=_init_worker if workers > 0 else None,
    )


def _init_worker(_: int) -> None:
    """One thread per worker: OpenCV's own pool in every worker would oversubscribe the CPU."""
    import cv2

    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def _param_groups(spec: Spec, model: MultiTaskNet, criterion: MultiTaskLoss) -> list[dict]:
    """Backbone at a lower LR; no weight decay on biases, norms and loss weights."""
    t = spec.train
    groups = []
    for params, lr in (
        (model.backbone.named_parameters(), t.lr * t.backbone_lr_mult),
        ([*model.neck.named_parameters(), *model.heads.named_parameters()], t.lr),
    ):
        decay, no_decay = [], []
        for _, p in params:
            (decay if p.ndim >= 2 else no_decay).append(p)
        groups += [
            {"params": decay, "lr": lr, "weight_decay": t.weight_decay},
            {"params": no_decay, "lr": lr, "weight_decay": 0.0},
        ]
    groups.append({"params": list(criterion.parameters()), "lr": t.lr, "weight_decay": 0.0})
    return [g for g in groups if g["params"]]


def _scheduler(spec: Spec, optimizer: torch.optim.Optimizer, steps_per_epoch: int):
    t = spec.train
    if t.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=0.1, patience=1)
    total = max(1, t.epochs * steps_per_epoch)
    warmup = int(t.warmup_epochs * steps_per_epoch)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def autocast_for(
    device: torch.device, amp: bool, dtype: str = "auto"
) -> tuple[Callable[[], Any], torch.amp.GradScaler | None]:
    """bf16 autocast where supported, fp16 with a GradScaler otherwise; fp32 on CPU."""
    if device.type != "cuda" or not amp:
        return contextlib.nullcontext, None
    if dtype == "bf16" or (dtype == "auto" and torch.cuda.is_bf16_supported()):
        return (lambda: torch.autocast("cuda", dtype=torch.bfloat16)), None
    return (lambda: torch.autocast("cuda", dtype=torch.float16)), torch.amp.GradScaler("cuda")


def _epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.default_rng([seed, epoch, 7]).integers(0, 2**31 - 1))


class _Fold:
    """One fold's training: model, optimizer, loaders and state, with the steps as methods."""

    def __init__(self, spec: Spec, fold: str, options: TrainOptions):
        self.spec, self.fold, self.options = spec, fold, options
        self.dir = options.run_dir / f"fold{fold}"
        self.device = resolve_device(options.device)
        self.train_table, self.val_table = split_fold(spec, fold)
        torch.manual_seed(spec.train.seed)
        model, self.weights_origin = build_model(spec)
        model.set_target_stats(self.train_table.targets)
        self.model = model.to(self.device)
        if spec.train.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.criterion = MultiTaskLoss(spec, self.train_table.targets).to(self.device)
        self.train_loader = _loader(spec, self.train_table, True, self.device, options.skip_bad_images)
        self.val_loader = _loader(spec, self.val_table, False, self.device, options.skip_bad_images)
        self.steps_per_epoch = math.ceil(len(self.train_loader) / spec.train.accumulate)
        self.optimizer = torch.optim.AdamW(_param_groups(spec, self.model, self.criterion))
        self.scheduler = _scheduler(spec, self.optimizer, self.steps_per_epoch)
        self.autocast, self.scaler = autocast_for(self.device, spec.train.amp, spec.train.amp_dtype)
        self.ema = self._make_ema()
        self.forward = torch.compile(self.model) if spec.train.compile else self.model
        self.state = _State()
        self.task_best_state: dict[str, dict[str, torch.Tensor]] = {}
        self.skipped = 0

    def _make_ema(self):
        if not self.spec.train.ema:
            return None
        from timm.utils import ModelEmaV3

        return ModelEmaV3(self.model, decay=self.spec.train.ema_decay, use_warmup=True)

    @property
    def eval_model(self) -> MultiTaskNet:
        """The weights that are validated and saved: the EMA copy when EMA is on."""
        return self.ema.module if self.ema is not None else self.model

    # ------------------------------------------------------------------ training

    def train_epoch(self, progress) -> dict[str, float]:
        """One pass over the training rows; returns mean losses and every metric on the rows seen.

        Training metrics score the predictions made during the pass (augmented images, weights
        still moving), as training curves usually do.
        """
        spec, epoch = self.spec, self.state.epoch
        torch.manual_seed(_epoch_seed(spec.train.seed, epoch))
        self.train_loader.sampler.set_epoch(epoch)
        self._set_train_mode()
        bar = progress.add_task(
            f"fold {self.fold} epoch {epoch + 1}/{spec.train.epochs}",
            total=len(self.train_loader.sampler),
            unit="img",
            status="",
        )
        names = [t.name for t in spec.tasks]
        sums = torch.zeros(len(names) + 1, device=self.device)
        seen, step = 0, 0
        kept: dict[str, list[torch.Tensor]] = {n: [] for n in names}
        rows: list[torch.Tensor] = []
        self.optimizer.zero_grad(set_to_none=True)
        for i, batch in enumerate(self._batches(self.train_loader)):
            if "image" not in batch:
                progress.advance(bar, batch["skipped"])
                continue
            images, targets = self._to_device(batch)
            with self.autocast():
                outputs = self.forward(images)
            total, losses = self.criterion(outputs, targets)
            self._backward(total / spec.train.accumulate)
            if (i + 1) % spec.train.accumulate == 0 or i + 1 == len(self.train_loader):
                step += 1
                self._step(epoch * self.steps_per_epoch + step)
            n = images.shape[0]
            with torch.no_grad():
                for name, p in self.model.probabilities(outputs).items():
                    kept[name].append(p.detach().float())
            rows.append(batch["index"])
            sums += torch.cat([total.detach()[None], losses]) * n
            seen += n
            if i % 10 == 0 or i + 1 == len(self.train_loader):
                self._check_finite(sums, epoch, i)
                progress.update(bar, status=f"loss {float(sums[0]) / seen:.4f}")
            progress.advance(bar, n + batch["skipped"])
        progress.remove_task(bar)
        means = (sums / max(seen, 1)).tolist()
        stats = {"loss": means[0], **{f"loss/{n}": v for n, v in zip(names, means[1:], strict=True)}}
        if rows:
            seen_rows = self.train_table.subset(torch.cat(rows).numpy())
            probs = {n: torch.cat(v).cpu().numpy() for n, v in kept.items()}
            stats.update(score_all(spec, seen_rows.targets, probs))
        return stats

    def _batches(self, loader: DataLoader):
        try:
            for batch in loader:
                self.skipped += batch["skipped"]
                yield batch
        except ImageReadError as e:
            raise UserError(f"{e}; fix or remove it (`mtlkaggle check`), or pass --skip-bad-images") from None

    def _to_device(self, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        memory = torch.channels_last if self.spec.train.channels_last else torch.contiguous_format
        images = batch["image"].to(self.device, non_blocking=True).contiguous(memory_format=memory)
        targets = {}
        for task in self.spec.tasks:
            y = batch[task.name].to(self.device, non_blocking=True)
            targets[task.name] = self.model.standardize(task.name, y) if task.kind == "regression" else y
        return images, targets

    def _backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler else loss).backward()

    def _step(self, global_step: int) -> None:
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
        if t.scheduler == "cosine":
            self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.model, step=global_step)

    def _check_finite(self, sums: torch.Tensor, epoch: int, batch: int) -> None:
        if not torch.isfinite(sums).all():
            kept = self.dir / "last.pt"
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
    def validate(self, progress) -> tuple[dict[str, float], dict[str, float], dict[str, np.ndarray]]:
        """Per-task validation losses, scores, and the probabilities of every validation row."""
        model = self.eval_model
        model.eval()
        names = [t.name for t in self.spec.tasks]
        loss_sum = torch.zeros(len(names), device=self.device)
        outputs: dict[str, list[torch.Tensor]] = {n: [] for n in names}
        indices: list[torch.Tensor] = []
        seen = 0
        bar = progress.add_task(
            f"fold {self.fold} validating", total=len(self.val_table), unit="img", status=""
        )
        for batch in self._batches(self.val_loader):
            progress.advance(
                bar, len(batch["index"]) + batch["skipped"] if "index" in batch else batch["skipped"]
            )
            if "image" not in batch:
                continue
            images, targets = self._to_device(batch)
            with self.autocast():
                raw = model(images)
            loss_sum += self.criterion.per_task(raw, targets) * images.shape[0]
            seen += images.shape[0]
            for name, p in model.probabilities(raw).items():
                outputs[name].append(p.float().cpu())
            indices.append(batch["index"])
        progress.remove_task(bar)
        order = torch.cat(indices).numpy()
        probs = {n: torch.cat(v).numpy() for n, v in outputs.items()}
        table = self.val_table.subset(order)
        scores = score_all(self.spec, table.targets, probs)
        losses = dict(zip(names, (loss_sum / max(seen, 1)).tolist(), strict=True))
        self._val_rows = table
        return losses, scores, probs

    # ------------------------------------------------------------------ early freeze

    def early_freeze(self, val_losses: dict[str, float]) -> list[str]:
        """Track each task's validation loss; freeze tasks that stopped improving.

        A task whose loss has not improved for ``early_freeze`` epochs gets the backbone, neck and
        its head restored from its best epoch; these are then frozen, and only the remaining
        tasks' heads keep training. Returns the tasks frozen this epoch.
        """
        patience = self.spec.train.early_freeze
        if not patience:
            return []
        newly = []
        for name, loss in val_losses.items():
            if name in self.state.frozen:
                continue
            if loss < self.state.task_best_loss.get(name, math.inf):
                self.state.task_best_loss[name] = loss
                self.state.task_bad[name] = 0
                self.task_best_state[name] = {
                    k: v.detach().cpu().clone() for k, v in self.eval_model.state_dict().items()
                }
            else:
                self.state.task_bad[name] = self.state.task_bad.get(name, 0) + 1
                if self.state.task_bad[name] >= patience:
                    newly.append(name)
        for name in newly:
            self._freeze(name)
        return newly

    def _freeze(self, name: str) -> None:
        best = self.task_best_state[name]
        restore = {
            k: v for k, v in best.items() if not k.startswith("heads.") or k.startswith(f"heads.{name}.")
        }
        for model in {id(self.model): self.model, id(self.eval_model): self.eval_model}.values():
            model.load_state_dict(restore, strict=False)
        for module in (self.model.backbone, self.model.neck, self.model.heads[name]):
            for p in module.parameters():
                p.requires_grad_(False)
        self.state.frozen.append(name)
        index = [t.name for t in self.spec.tasks].index(name)
        self.criterion.active[index] = 0.0

    # ------------------------------------------------------------------ checkpoints

    def save_last(self) -> None:
        """Everything needed to resume, written atomically."""
        payload = {
            "model": self.model.state_dict(),
            "criterion": self.criterion.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler else None,
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "state": self.state.__dict__,
            "task_best_state": self.task_best_state,
            "rng": _rng_state(),
        }
        _save(payload, self.dir / "last.pt")

    def load_last(self) -> None:
        """Restore a run from ``last.pt``."""
        payload = torch.load(self.dir / "last.pt", map_location="cpu", weights_only=True)
        self.model.load_state_dict(payload["model"])
        self.criterion.load_state_dict(payload["criterion"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scheduler.load_state_dict(payload["scheduler"])
        if self.scaler and payload["scaler"]:
            self.scaler.load_state_dict(payload["scaler"])
        if self.ema is not None and payload["ema"]:
            self.ema.load_state_dict(payload["ema"])
        self.state = _State(**payload["state"])
        self.task_best_state = payload["task_best_state"]
        for name in list(self.state.frozen):
            self.state.frozen.remove(name)
            self._freeze(name)
        _set_rng_state(payload["rng"])

    def save_best(self, scores: dict[str, float], probs: dict[str, np.ndarray]) -> None:
        """The best epoch's weights, and its out-of-fold probabilities."""
        payload = {
            "model": self.eval_model.state_dict(),
            "epoch": self.state.epoch,
            "scores": scores,
            "config": self.spec.model_dump(mode="json"),
        }
        _save(payload, self.dir / "best.pt")
        write_csv_atomic(self.dir / "oof.csv", oof_frame(self.spec, self._val_rows.ids, probs))


def oof_frame(spec: Spec, ids: np.ndarray, probs: dict[str, np.ndarray]) -> pd.DataFrame:
    """Id plus one column per class/label probability (``task:k``) or regression value (``task``)."""
    columns: dict[str, Any] = {spec.data.id_column: ids}
    for task in spec.tasks:
        p = probs[task.name]
        if task.kind == "regression":
            columns[task.name] = p
        else:
            for k in range(task.size):
                columns[f"{task.name}:{k}"] = p[:, k]
    return pd.DataFrame(columns)


def _save(payload: dict, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": list(random.getstate()[1]),
        "numpy": torch.from_numpy(np_state[1].astype(np.int64)),
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    random.setstate((3, tuple(state["python"]), None))
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), 0, 0, 0.0))


def train_fold(spec: Spec, fold: str, options: TrainOptions) -> FoldResult:
    """Train one fold to the end (or resume it), keeping the best and last checkpoints.

    Args:
        spec: The competition, with the recipe in ``spec.train``.
        fold: A fold number as a string, or ``val`` for the spec's fixed train/val split.
        options: Where to write, which device, resume/overwrite.

    Raises:
        UserError: bad data, a non-finite loss (the last good checkpoint is kept), or an existing
            run that is neither resumed nor overwritten.
    """
    run = _Fold(spec, fold, options)
    _prepare_folder(run, options)
    progress = make_progress()
    with progress:
        while run.state.epoch < spec.train.epochs and run.state.stopped is None:
            _run_epoch(run, progress)
    _write_metrics(run)
    return FoldResult(
        fold, run.state.best_epoch + 1, run.state.best_score, run.state.best_scores, run.state.epoch, run.dir
    )


def _prepare_folder(run: _Fold, options: TrainOptions) -> None:
    last = run.dir / "last.pt"
    if last.exists() and options.resume:
        _check_same_recipe(run)
        run.load_last()
        return
    if last.exists() and not options.overwrite:
        raise UserError(
            f"{run.dir} already holds a run; pass --resume to continue it or --overwrite to start again"
        )
    run.dir.mkdir(parents=True, exist_ok=True)
    for name in ("best.pt", "last.pt", "oof.csv", "metrics.csv"):
        (run.dir / name).unlink(missing_ok=True)
    config = {
        "spec": run.spec.model_dump(mode="json"),
        "fold": run.fold,
        "weights": run.weights_origin,
        "device": str(run.device),
        "versions": _versions(),
        "train_rows": len(run.train_table),
        "val_rows": len(run.val_table),
    }
    write_json_atomic(run.dir / "config.json", config)


# Fields that may change between an interrupted run and its resumption.
_RESUMABLE_CHANGES = {"num_workers", "compile"}


def _check_same_recipe(run: _Fold) -> None:
    """Refuse to resume under a different recipe: the result would match neither run."""
    config = run.dir / "config.json"
    if not config.is_file():
        return
    saved = json.loads(config.read_text(encoding="utf-8"))["spec"]["train"]
    current = run.spec.train.model_dump(mode="json")
    changed = sorted(k for k in current if k not in _RESUMABLE_CHANGES and saved.get(k) != current[k])
    if changed:
        details = ", ".join(f"{k}: {saved.get(k)} -> {current[k]}" for k in changed)
        raise UserError(
            f"{run.dir} was trained with other settings ({details}); resume with the same options, "
            "or pass --overwrite to start again"
        )


def _versions() -> dict[str, str]:
    import timm

    import mtlkaggle

    return {"mtlkaggle": mtlkaggle.__version__, "torch": torch.__version__, "timm": timm.__version__}


def _run_epoch(run: _Fold, progress) -> None:
    spec, state = run.spec, run.state
    started = time.perf_counter()
    train_stats = run.train_epoch(progress)
    train_seconds = time.perf_counter() - started
    val_losses, scores, probs = run.validate(progress)
    score = monitor_score(spec, scores)
    improved = score > state.best_score
    if improved:
        state.best_score, state.best_epoch, state.best_scores = score, state.epoch, scores
        state.bad_epochs = 0
        run.save_best(scores, probs)
    else:
        state.bad_epochs += 1
    frozen_now = run.early_freeze(val_losses)
    if spec.train.scheduler == "plateau":
        run.scheduler.step(score)
    weights = run.criterion.weighting.weights().tolist()
    row = {
        "epoch": state.epoch + 1,
        "lr": run.optimizer.param_groups[-1]["lr"],
        **{f"train/{k}": v for k, v in train_stats.items()},
        "val/loss": sum(val_losses.values()),
        **{f"val/loss/{k}": v for k, v in val_losses.items()},
        **{f"val/{k}": v for k, v in scores.items()},
        "score": score,
        **{f"weight/{t.name}": w for t, w in zip(spec.tasks, weights, strict=True)},
        "img_per_s": len(run.train_table) / max(train_seconds, 1e-9),
        "seconds": time.perf_counter() - started,
        "frozen": " ".join(state.frozen),
        "skipped_images": run.skipped,
    }
    state.history.append(row)
    state.epoch += 1
    if len(state.frozen) == len(spec.tasks):
        state.stopped = "every task frozen"
    elif spec.train.early_stopping and state.bad_epochs >= spec.train.early_stopping:
        state.stopped = f"no improvement for {state.bad_epochs} epochs"
    run.save_last()
    _write_metrics(run)
    progress.console.print(_epoch_line(run, row, improved, frozen_now))
    if run.options.on_epoch_end:
        run.options.on_epoch_end(run, row)


def _epoch_line(run: _Fold, row: dict[str, Any], improved: bool, frozen_now: list[str]) -> str:
    scores = "  ".join(f"{k[4:]} {v:.4f}" for k, v in row.items() if k.startswith("val/") and "loss" not in k)
    weights = " ".join(f"{k[7:]}={v:.2f}" for k, v in row.items() if k.startswith("weight/"))
    mark = " [green]* best[/]" if improved else ""
    freeze = f" [yellow]froze {', '.join(frozen_now)}[/]" if frozen_now else ""
    return (
        f"fold {run.fold} epoch {row['epoch']}: train loss {row['train/loss']:.4f}  val loss "
        f"{row['val/loss']:.4f}  {scores}  weights {weights}  {row['img_per_s']:.0f} img/s{mark}{freeze}"
    )


def _write_metrics(run: _Fold) -> None:
    if run.state.history:
        write_csv_atomic(run.dir / "metrics.csv", pd.DataFrame(run.state.history))


def train_folds(spec: Spec, folds: list[str], options: TrainOptions) -> pd.DataFrame:
    """Train several folds; returns (and writes ``summary.csv``) one row per fold plus the mean."""
    results = [train_fold(spec, fold, options) for fold in folds]
    rows = [{"fold": r.fold, "best_epoch": r.best_epoch, "score": r.best_score, **r.scores} for r in results]
    summary = pd.DataFrame(rows)
    if len(results) > 1:
        mean = summary.drop(columns=["fold", "best_epoch"]).mean().to_dict()
        summary = pd.concat([summary, pd.DataFrame([{"fold": "mean", "best_epoch": "", **mean}])])
    write_csv_atomic(options.run_dir / "summary.csv", summary)
    write_json_atomic(options.run_dir / "config.json", spec.model_dump(mode="json"))
    return summary


def load_fold_model(folder: Path, device: torch.device | str = "cpu") -> tuple[MultiTaskNet, Spec]:
    """A fold's best model (eval mode) and the spec it was trained with."""
    path = folder / "best.pt"
    if not path.is_file():
        raise UserError(f"{path}: no checkpoint; train this fold first (`mtlkaggle train`)")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    spec = Spec.model_validate(payload["config"])
    model = MultiTaskNet(spec, spec.train)
    model.load_state_dict(payload["model"])
    return model.to(device).eval(), spec
