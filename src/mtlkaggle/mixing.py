"""Mixup and CutMix for multi-task batches: the images and every task's target are mixed alike.

Each mixed batch pairs row ``i`` with row ``perm[i]`` and draws ``lam ~ Beta(alpha, alpha)``:

- ``mixup``: ``x = lam * x_i + (1 - lam) * x_perm[i]`` (Zhang et al. 2018).
- ``cutmix``: a box of about ``1 - lam`` of the image comes from ``x_perm[i]``; ``lam`` is then
  recomputed from the box actually pasted (after clipping at the border) (Yun et al. 2019).

Targets, with the same ``lam`` for every task: a multiclass label becomes the distribution
``lam * onehot(y_i) + (1 - lam) * onehot(y_perm[i])`` (label smoothing is applied to it by the
loss, see :class:`mtlkaggle.losses.TaskLoss`); multi-label 0/1 vectors and (standardized)
regression values mix linearly. The draws come from a NumPy generator the caller seeds from
(seed, epoch, rank, batch), so a resumed run mixes exactly as an uninterrupted one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from mtlkaggle.spec import AugmentSpec, TaskSpec


@dataclass
class MixedBatch:
    """A batch after mixing: images, per-task targets, and the draw that made them."""

    images: torch.Tensor
    targets: dict[str, torch.Tensor]
    lam: float  # share of each row's own image (1.0: not mixed)
    perm: torch.Tensor | None  # row i was mixed with row perm[i]; None when not mixed


def mixing_active(augment: AugmentSpec, epoch: int, epochs: int) -> bool:
    """Whether batches of ``epoch`` (0-based) are mixed: a mix is chosen and it is not one of the last
    ``mix_off_epochs`` epochs."""
    return augment.mix != "none" and epoch < epochs - augment.mix_off_epochs


def mix_seed(seed: int, epoch: int, rank: int, batch: int) -> np.random.Generator:
    """The generator of one batch's mixing draw (independent of worker count, order and resumes)."""
    return np.random.default_rng([seed, epoch, rank, batch, 0x6D6978])  # 'mix': apart from other streams


def mix_batch(
    images: torch.Tensor,
    targets: dict[str, torch.Tensor],
    tasks: list[TaskSpec],
    augment: AugmentSpec,
    rng: np.random.Generator,
) -> MixedBatch:
    """Mix a batch (with probability ``augment.mix_prob``) by ``augment.mix``.

    Args:
        images: (N, C, H, W), uint8 or float 0-255, on any device.
        targets: Per task: class indices (N,) for multiclass (or already soft (N, C)), 0/1
            (N, L) for multi-label, values (N,) for regression.
        tasks: The spec's tasks (their kinds and sizes).
        augment: ``mix``, ``mix_prob`` and ``mix_alpha``.
        rng: This batch's generator (see :func:`mix_seed`).

    Returns:
        Mixed float images and targets: multiclass targets become (N, C) probabilities.
    """
    n = images.shape[0]
    if augment.mix == "none" or n < 2 or rng.random() >= augment.mix_prob:
        return MixedBatch(images, targets, 1.0, None)
    alpha = augment.resolved_mix_alpha
    lam = float(rng.beta(alpha, alpha))
    perm = torch.from_numpy(rng.permutation(n)).to(images.device)
    if augment.mix == "mixup":
        mixed = lam * images.float() + (1.0 - lam) * images[perm].float()
    else:
        mixed, lam = _cutmix(images, perm, lam, rng)
    return MixedBatch(mixed, mix_targets(targets, tasks, perm, lam), lam, perm)


def _cutmix(
    images: torch.Tensor, perm: torch.Tensor, lam: float, rng: np.random.Generator
) -> tuple[torch.Tensor, float]:
    """Paste a box of ``images[perm]`` into every image; returns them and the kept share."""
    h, w = images.shape[-2:]
    ratio = math.sqrt(1.0 - lam)
    cut_h, cut_w = int(h * ratio), int(w * ratio)
    cy, cx = int(rng.integers(h)), int(rng.integers(w))
    top, bottom = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, h)
    left, right = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, w)
    mixed = images.float().clone()
    mixed[..., top:bottom, left:right] = images[perm][..., top:bottom, left:right].float()
    return mixed, 1.0 - (bottom - top) * (right - left) / (h * w)


def mix_targets(
    targets: dict[str, torch.Tensor], tasks: list[TaskSpec], perm: torch.Tensor, lam: float
) -> dict[str, torch.Tensor]:
    """Every task's target mixed by ``lam`` with its ``perm`` partner (see the module's docstring)."""
    out = {}
    for task in tasks:
        y = targets[task.name]
        if task.kind == "multiclass" and not y.is_floating_point():
            y = torch.nn.functional.one_hot(y.long(), task.size)
        y = y.float()
        out[task.name] = lam * y + (1.0 - lam) * y[perm]
    return out


def mix_for_epoch(
    spec, images: torch.Tensor, targets: dict[str, torch.Tensor], epoch: int, rank: int, batch: int
):
    """Mixup/CutMix of one training batch when the spec asks for it this epoch, else the batch as
    it is; the draws are seeded by (seed, epoch, rank, batch), so a resumed run mixes alike."""
    t = spec.train
    if not mixing_active(spec.augment, epoch, t.epochs):
        return images, targets
    mixed = mix_batch(images, targets, spec.tasks, spec.augment, mix_seed(t.seed, epoch, rank, batch))
    return mixed.images, mixed.targets
