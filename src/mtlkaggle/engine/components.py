"""A fold's parts, built from the spec: the model (seeded, on its device, DDP-ready), the data
loaders (each rank's share of the global batch) and the EMA copy of the weights."""

from __future__ import annotations

import torch

from mtlkaggle.data.labels import LabelTable
from mtlkaggle.data.loading import LoaderConfig, make_loader
from mtlkaggle.engine import distributed as dist
from mtlkaggle.engine.runtime import Runtime
from mtlkaggle.errors import UserError
from mtlkaggle.model import MultiTaskNet, build_model
from mtlkaggle.spec import Spec


def fold_model(spec: Spec, train_targets: dict, runtime: Runtime) -> tuple[MultiTaskNet, str]:
    """The network to train and where its weights came from.

    The init depends on the seed alone (the global RNG is left as it was); regression heads learn
    standardized targets (statistics from ``train_targets``).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.train.seed)
        model, origin = build_model(spec)
    model.set_target_stats(train_targets)
    model = dist.prepare_module(model, runtime).to(runtime.device)
    if spec.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model, origin


def fold_loader(spec: Spec, table: LabelTable, runtime: Runtime, train: bool, on_device: bool):
    """This rank's loader over ``table``: ``batch_size`` is the batch of all ranks together.

    Raises:
        UserError: a batch size the ranks cannot share evenly.
    """
    t = spec.train
    if t.batch_size % runtime.world_size:
        raise UserError(
            f"--batch-size {t.batch_size} is the batch of all {runtime.world_size} processes together; "
            f"use a multiple of {runtime.world_size}"
        )
    per_rank = t.batch_size // runtime.world_size
    config = LoaderConfig(
        img_size=t.img_size,
        batch_size=per_rank if train else per_rank * 2,
        num_workers=t.num_workers,
        seed=t.seed,
        train=train,
        pin_memory=runtime.device.type == "cuda",
        rank=runtime.rank,
        world_size=runtime.world_size,
        on_device=on_device,
    )
    return make_loader(spec, table, config)


def fold_ema(spec: Spec, model: MultiTaskNet):
    """timm's EMA of ``model``'s weights when the recipe asks for one, else None."""
    if not spec.train.ema:
        return None
    from timm.utils import ModelEmaV3

    return ModelEmaV3(model, decay=spec.train.ema_decay, use_warmup=True)
