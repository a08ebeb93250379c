"""Early freeze: once a task's validation loss stalls, keep the shared layers where they served it best.

A task whose loss has not improved for ``patience`` epochs gets the backbone, the neck and its own
head restored from its best epoch; these are then frozen and the task leaves the loss, while the
other tasks' heads keep training. The bookkeeping (each task's best loss and epochs without
improvement) lives in the trainer's state, so it survives a resume.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from mtlkaggle.engine import distributed as dist


def stalled_tasks(
    state: Any,
    best_states: dict[str, dict[str, torch.Tensor]],
    val_losses: dict[str, float],
    patience: int,
    model: nn.Module,
) -> list[str]:
    """Record each unfrozen task's validation loss; return those that stalled for ``patience`` epochs.

    Args:
        state: The trainer's state (``frozen``, ``task_best_loss``, ``task_bad`` are updated).
        best_states: Per task, a CPU copy of ``model``'s weights at its best loss (updated).
        val_losses: This epoch's validation loss per task.
        patience: Epochs without improvement before a task freezes.
        model: The model being validated (the EMA copy when EMA is on).
    """
    stalled = []
    for name, loss in val_losses.items():
        if name in state.frozen:
            continue
        if loss < state.task_best_loss.get(name, math.inf):
            state.task_best_loss[name] = loss
            state.task_bad[name] = 0
            best_states[name] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        else:
            state.task_bad[name] = state.task_bad.get(name, 0) + 1
            if state.task_bad[name] >= patience:
                stalled.append(name)
    return stalled


def freeze_task(
    name: str, best: dict[str, torch.Tensor], models: list[nn.Module], criterion: nn.Module
) -> None:
    """Restore ``best``'s backbone, neck and head ``name`` into every model, freeze them in the first.

    The other heads keep their current weights; task ``name`` drops out of ``criterion``'s total.
    """
    restore = {k: v for k, v in best.items() if not k.startswith("heads.") or k.startswith(f"heads.{name}.")}
    for model in models:
        model.load_state_dict(restore, strict=False)
    trained = models[0]
    for module in (trained.backbone, trained.neck, trained.heads[name]):
        for p in module.parameters():
            p.requires_grad_(False)
    criterion.active[criterion.names.index(name)] = 0.0


def early_freeze(trainer, val_losses: dict[str, float]) -> list[str]:
    """Track each task's validation loss; freeze the tasks that stopped improving.

    Every rank sees the same gathered losses, so every rank freezes the same tasks. Returns the
    tasks frozen this epoch.
    """
    patience = trainer.spec.train.early_freeze
    if not patience:
        return []
    newly = stalled_tasks(trainer.state, trainer.task_best_state, val_losses, patience, trainer.eval_model)
    for name in newly:
        freeze(trainer, name)
    return newly


def freeze(trainer, name: str) -> None:
    """Restore task ``name``'s best backbone, neck and head in ``trainer``, and freeze them."""
    models = list({id(trainer.model): trainer.model, id(trainer.eval_model): trainer.eval_model}.values())
    freeze_task(name, trainer.task_best_state[name], models, trainer.criterion)
    trainer.state.frozen.append(name)
    trainer.step_fn = dist.wrap(trainer.step_module, trainer.runtime)  # DDP reduces only trainable parameters


def train_mode(model: nn.Module, frozen: list[str]) -> None:
    """Training mode, except the frozen parts, which keep their BatchNorm statistics."""
    model.train()
    if frozen:
        model.backbone.eval()
        model.neck.eval()
        for name in frozen:
            model.heads[name].eval()
