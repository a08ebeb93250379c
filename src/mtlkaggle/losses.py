"""Per-task losses and the ways of weighting them into one training loss.

Weighting schemes (``WEIGHTINGS``):

- ``fixed``: ``sum_t w_t L_t`` with the spec's ``loss_weight`` per task.
- ``uncertainty``: homoscedastic uncertainty weighting (Kendall, Gal & Cipolla 2018). Each task
  learns ``s_t = log sigma_t^2``; a classification task adds ``exp(-s_t) L_t + s_t / 2``, a
  regression task ``exp(-s_t) L_t / 2 + s_t / 2``.
- ``learned``: a loss-weight layer (the face-attribute MTL thesis): weights ``w = softmax(z)``
  sum to 1, and the loss is ``sum_t w_t L_t + lambda * ||w||^2``; the L2 term keeps the weights
  from collapsing onto the easiest task.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mtlkaggle.spec import Spec, TaskSpec


def balanced_class_weights(y: np.ndarray, n_classes: int) -> torch.Tensor:
    """``n / (C * count_c)`` per class (scikit-learn's 'balanced'); unseen classes get weight 1."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    weights = np.where(counts > 0, len(y) / (n_classes * np.maximum(counts, 1)), 1.0)
    return torch.tensor(weights, dtype=torch.float32)


def balanced_pos_weight(y: np.ndarray, cap: float = 50.0) -> torch.Tensor:
    """``negatives / positives`` per label for BCE, capped so a rare label cannot dominate."""
    pos = y.sum(axis=0)
    neg = len(y) - pos
    weights = np.clip(np.where(pos > 0, neg / np.maximum(pos, 1), 1.0), 1.0 / cap, cap)
    return torch.tensor(weights, dtype=torch.float32)


def soft_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None, smoothing: float
) -> torch.Tensor:
    """Cross-entropy against class distributions (N, C), e.g. mixup's mixed one-hot targets.

    Label smoothing turns each target ``t`` into ``(1 - e) t + e / C``; with class weights ``w``
    the mean divides by ``sum_i w . t_i``. For one-hot targets this equals
    ``F.cross_entropy(logits, labels, weight, label_smoothing=e)`` exactly, and without class
    weights the loss of ``lam a + (1 - lam) b`` is ``lam L(a) + (1 - lam) L(b)``.
    """
    n_classes = logits.shape[1]
    smoothed = target * (1.0 - smoothing) + smoothing / n_classes
    log_p = F.log_softmax(logits, dim=1)
    if weight is None:
        return -(smoothed * log_p).sum(dim=1).mean()
    return -(weight * smoothed * log_p).sum() / (target * weight).sum().clamp_min(1e-12)


class TaskLoss(nn.Module):
    """The loss of one task, on logits (classification) or standardized values (regression).

    Multiclass targets are class indices (N,) or, after mixing, class distributions (N, C);
    multi-label and binary (N, 1) targets may be fractional (mixed), regression targets any value.
    BCE weighs positives by ``pos_weight`` when the task sets it (else by ``class_weights``).
    """

    def __init__(self, task: TaskSpec, train_targets: np.ndarray):
        super().__init__()
        self.task = task
        weight = None
        if task.class_weights == "balanced":
            if task.kind == "multiclass":
                weight = balanced_class_weights(train_targets, task.size)
            elif task.kind in ("multilabel", "binary"):
                weight = balanced_pos_weight(train_targets)
        if task.pos_weight is not None:
            weight = torch.full((task.size,), float(task.pos_weight))
        self.register_buffer("weight", weight if weight is not None else torch.empty(0))

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        output = output.float()
        weight = self.weight if self.weight.numel() else None
        kind, name = self.task.kind, self.task.resolved_loss
        if kind == "multiclass" and target.is_floating_point():
            return soft_cross_entropy(output, target.float(), weight, self.task.label_smoothing)
        if kind == "multiclass":
            return F.cross_entropy(output, target, weight=weight, label_smoothing=self.task.label_smoothing)
        if kind in ("multilabel", "binary"):
            return F.binary_cross_entropy_with_logits(output, target.float(), pos_weight=weight)
        target = target.float()
        if name == "l1":
            return F.l1_loss(output, target)
        if name == "mse":
            return F.mse_loss(output, target)
        return F.smooth_l1_loss(output, target)


class FixedWeighting(nn.Module):
    """``sum_t w_t L_t`` with constant weights."""

    def __init__(self, spec: Spec):
        super().__init__()
        self.register_buffer("w", torch.tensor([t.loss_weight for t in spec.tasks], dtype=torch.float32))

    def forward(self, losses: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
        return torch.where(active > 0, self.w * losses, 0.0).sum()

    def weights(self) -> torch.Tensor:
        """The current multiplier of each task's loss."""
        return self.w.detach().clone()


class UncertaintyWeighting(nn.Module):
    """Kendall et al. (2018): learn ``s_t = log sigma_t^2`` per task."""

    def __init__(self, spec: Spec):
        super().__init__()
        self.log_var = nn.Parameter(torch.zeros(len(spec.tasks)))
        half = [0.5 if t.kind == "regression" else 1.0 for t in spec.tasks]
        self.register_buffer("scale", torch.tensor(half, dtype=torch.float32))

    def forward(self, losses: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
        terms = self.scale * torch.exp(-self.log_var) * losses + 0.5 * self.log_var
        return torch.where(active > 0, terms, 0.0).sum()

    def weights(self) -> torch.Tensor:
        """The current multiplier of each task's loss."""
        return (self.scale * torch.exp(-self.log_var)).detach().clone()


class LearnedWeighting(nn.Module):
    """A loss-weight layer: ``w = softmax(z)`` (sums to 1), plus ``lambda * ||w||^2``."""

    def __init__(self, spec: Spec, lam: float):
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(len(spec.tasks)))
        self.lam = lam

    def forward(self, losses: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
        w = torch.softmax(self.logits.masked_fill(active == 0, float("-inf")), dim=0)
        return torch.where(active > 0, w * losses, 0.0).sum() + self.lam * (w**2).sum()

    def weights(self) -> torch.Tensor:
        """The current multiplier of each task's loss."""
        return torch.softmax(self.logits, dim=0).detach().clone()


WEIGHTINGS = {
    "fixed": lambda spec: FixedWeighting(spec),
    "uncertainty": lambda spec: UncertaintyWeighting(spec),
    "learned": lambda spec: LearnedWeighting(spec, spec.train.learned_lambda),
}


class MultiTaskLoss(nn.Module):
    """Every task's loss, combined by the spec's weighting.

    ``forward`` returns the total and the detached per-task losses. Frozen tasks (early freeze)
    drop out of the total (and, for learned weights, out of the softmax).
    """

    def __init__(self, spec: Spec, train_targets: dict[str, np.ndarray]):
        super().__init__()
        self.names = [t.name for t in spec.tasks]
        self.task_losses = nn.ModuleDict({t.name: TaskLoss(t, train_targets[t.name]) for t in spec.tasks})
        self.weighting = WEIGHTINGS[spec.train.weighting](spec)
        self.register_buffer("active", torch.ones(len(spec.tasks)))

    def forward(
        self, outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        losses = torch.stack([self.task_losses[n](outputs[n], targets[n]) for n in self.names])
        total = self.weighting(losses, self.active)
        return total, losses.detach()

    def per_task(self, outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> torch.Tensor:
        """Each task's unweighted loss (for validation)."""
        return torch.stack([self.task_losses[n](outputs[n], targets[n]) for n in self.names]).detach()
