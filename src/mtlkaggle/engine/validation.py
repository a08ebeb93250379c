"""One validation pass of a fold: per-task losses, every metric, and the rows' probabilities,
gathered from every rank so each validation row counts exactly once."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from mtlkaggle.data.labels import LabelTable
from mtlkaggle.engine import distributed as dist
from mtlkaggle.metrics import monitor_score, score_all


@dataclass
class Validation:
    """One validation pass: per-task losses, every metric, and the rows' probabilities."""

    losses: dict[str, float]
    scores: dict[str, float]
    probs: dict[str, np.ndarray]
    rows: LabelTable
    score: float


@torch.no_grad()
def validate(trainer, progress) -> Validation:
    """Validation losses, scores and probabilities of ``trainer``'s weights to evaluate (the EMA
    copy when EMA is on) over every validation row (all ranks').

    A full-data fit (no validation rows) gets an empty Validation with a NaN score.
    """
    spec, runtime, table = trainer.spec, trainer.runtime, trainer.val_table
    if not len(table):
        return Validation({}, {}, {}, table, math.nan)
    model = trainer.eval_model
    dist.sync_buffers(model, runtime)
    model.eval()
    names = [t.name for t in spec.tasks]
    loss_sum = torch.zeros(len(names) + 1, device=trainer.device)
    outputs: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    indices: list[torch.Tensor] = []
    bar = progress.add_task(f"fold {trainer.fold} validating", total=len(table), unit="img", status="")
    for batch in trainer.batches(trainer.val_loader, trainer.val_prepare):
        progress.advance(bar, (len(batch.get("index", [])) + batch["skipped"]) * runtime.world_size)
        if "image" not in batch:
            continue
        images, targets = trainer.to_device(batch)
        with trainer.autocast():
            raw = model(images)
        n = images.shape[0]
        loss_sum += torch.cat([trainer.criterion.per_task(raw, targets), loss_sum.new_ones(1)]) * n
        for name, p in model.probabilities(raw).items():
            outputs[name].append(p.float())
        indices.append(batch["index"])
    progress.remove_task(bar)
    loss_sum = dist.sum_across(loss_sum, runtime)
    order, probs = dist.gather_rows(indices, outputs, runtime)
    rows = table.subset(order)
    scores = score_all(spec, rows.targets, probs) if len(order) else {}
    losses = dict(zip(names, (loss_sum[:-1] / max(float(loss_sum[-1]), 1.0)).tolist(), strict=True))
    return Validation(losses, scores, probs, rows, monitor_score(spec, scores))
