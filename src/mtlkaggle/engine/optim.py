"""The optimizer's parameter groups and the learning-rate schedule."""

from __future__ import annotations

import math

import torch
from torch import nn

from mtlkaggle.spec import TrainSpec


def param_groups(train: TrainSpec, model: nn.Module, criterion: nn.Module) -> list[dict]:
    """Backbone at ``lr * backbone_lr_mult``; no weight decay on biases, norms and loss weights."""
    groups = []
    for params, lr in (
        (model.backbone.named_parameters(), train.lr * train.backbone_lr_mult),
        ([*model.neck.named_parameters(), *model.heads.named_parameters()], train.lr),
    ):
        decay, no_decay = [], []
        for _, p in params:
            (decay if p.ndim >= 2 else no_decay).append(p)
        groups += [
            {"params": decay, "lr": lr, "weight_decay": train.weight_decay},
            {"params": no_decay, "lr": lr, "weight_decay": 0.0},
        ]
    groups.append({"params": list(criterion.parameters()), "lr": train.lr, "weight_decay": 0.0})
    return [g for g in groups if g["params"]]


class LRSchedule:
    """The spec's schedule, stepped from one place each: per optimizer step or per epoch.

    ``cosine``: linear warmup over ``warmup_epochs``, then cosine decay to 1% of the peak,
    advanced after every optimizer step. ``plateau``: /10 when the monitored score stalls for an
    epoch, advanced once per epoch with the score.
    """

    def __init__(self, train: TrainSpec, optimizer: torch.optim.Optimizer, steps_per_epoch: int):
        self.kind = train.scheduler
        if self.kind == "plateau":
            self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode="max", factor=0.1, patience=1
            )
            return
        total = max(1, train.epochs * steps_per_epoch)
        warmup = int(train.warmup_epochs * steps_per_epoch)

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = (step - warmup) / max(1, total - warmup)
            return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

        self.scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

    def after_step(self) -> None:
        """Called after every optimizer step."""
        if self.kind == "cosine":
            self.scheduler.step()

    def after_epoch(self, score: float) -> None:
        """Called once per epoch with the monitored validation score."""
        if self.kind == "plateau":
            self.scheduler.step(score)

    def state_dict(self) -> dict:
        """For the resume checkpoint."""
        return self.scheduler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        """From the resume checkpoint."""
        self.scheduler.load_state_dict(state)
