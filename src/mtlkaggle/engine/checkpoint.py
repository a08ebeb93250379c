"""Checkpoints: the one writer and the one reader of ``best.pt`` and ``last.pt``.

Both are written atomically and read back with one clear error per kind of damage. They hold plain
tensors, numbers and strings, loaded with ``weights_only=True``: nothing in them is ever unpickled
as code. :class:`FoldCheckpoints` is the policy a fold trains under (keep the best epoch, save the
last, resume from it; timm's ``CheckpointSaver`` plays the same part); :func:`read_best` and
:func:`load_fold_model` are how every other stage reads a fold's best epoch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from mtlkaggle.errors import UserError
from mtlkaggle.io import atomic_path
from mtlkaggle.paths import FoldLayout

if TYPE_CHECKING:
    from mtlkaggle.model import MultiTaskNet
    from mtlkaggle.spec import Spec

RETRAIN = "train this fold again (`mtlkaggle train ... --fold K --overwrite`)"
RESTART = "start the fold again with --overwrite"


def save_checkpoint(payload: dict[str, Any], path: Path) -> None:
    """Write ``payload`` to ``path`` atomically: a reader sees the old file or the new, never half."""
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: Path, needs: tuple[str, ...], fix: str) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Args:
        path: The file.
        needs: Keys the payload must have.
        fix: What the user should do when the file is missing or damaged (ends the error line).

    Raises:
        UserError: missing, empty, truncated or corrupt file, a payload that holds anything but
            tensors and plain values, or one without the needed keys.
    """
    if not path.is_file():
        raise UserError(f"{path}: no checkpoint there; {fix}")
    size = path.stat().st_size
    if size == 0:
        raise UserError(f"{path}: empty file (0 bytes), the write never finished; {fix}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - zip, pickle and torch errors all mean a damaged file
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if "weights_only" in str(e) or "Unsupported global" in str(e):
            reason = "it holds Python objects, not only tensors (refused: loading them would run code)"
        raise UserError(f"{path}: not a readable checkpoint ({size} bytes): {reason}; {fix}") from None
    missing = [k for k in needs if not isinstance(payload, dict) or k not in payload]
    if missing:
        raise UserError(f"{path}: not an mtlkaggle checkpoint (no {', '.join(missing)}); {fix}")
    return payload


@dataclass(frozen=True)
class BestCheckpoint:
    """A fold's best epoch as ``best.pt`` holds it."""

    path: Path
    state: dict[str, torch.Tensor]  # the weights (the EMA copy when EMA was on)
    epoch: int  # 0-based
    scores: dict[str, float]
    config: dict  # the resolved spec the fold was trained with, as JSON

    def spec(self) -> Spec:
        """The saved spec, validated."""
        from pydantic import ValidationError

        from mtlkaggle.spec import Spec

        try:
            return Spec.model_validate(self.config)
        except ValidationError as e:
            raise UserError(
                f"{self.path}: the saved config is not valid ({e.errors()[0]['msg']}); {RETRAIN}"
            ) from None


def read_best(fold: FoldLayout) -> BestCheckpoint:
    """Read ``fold``'s ``best.pt``.

    Raises:
        UserError: a missing or damaged file (see :func:`load_checkpoint`).
    """
    payload = load_checkpoint(fold.best, ("model", "epoch", "config"), RETRAIN)
    scores = {k: float(v) for k, v in (payload.get("scores") or {}).items()}
    return BestCheckpoint(fold.best, payload["model"], int(payload["epoch"]), scores, payload["config"])


def model_from_state(spec: Spec, state: dict[str, torch.Tensor], source: Path, fix: str) -> MultiTaskNet:
    """The network ``spec`` describes, with ``state`` loaded (``source`` and ``fix`` word the error).

    Raises:
        UserError: weights that do not fit the spec, naming the task whose head is missing or
            unexpected where that is the cause.
    """
    from mtlkaggle.model import MultiTaskNet

    model = MultiTaskNet(spec, spec.train)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        reason = _mismatch(model, state, e)
        raise UserError(f"{source}: weights do not fit the saved config ({reason}); {fix}") from None
    return model


def _mismatch(model: torch.nn.Module, state: dict[str, torch.Tensor], error: Exception) -> str:
    """What does not fit, in the spec's words: a task without weights, weights of an unknown task."""
    heads = {k.split(".")[1] for k in state if k.startswith("heads.")}
    tasks = {k.split(".")[1] for k in model.state_dict() if k.startswith("heads.")}
    if tasks - heads:
        return f"no weights for task(s) {', '.join(sorted(tasks - heads))}"
    if heads - tasks:
        return f"weights of task(s) {', '.join(sorted(heads - tasks))} that the spec does not name"
    return str(error).strip().splitlines()[0]


def load_fold_model(fold: FoldLayout, device: torch.device | str = "cpu", best: BestCheckpoint | None = None):
    """A fold's best model (eval mode) and the spec it was trained with.

    Returns:
        ``(MultiTaskNet, Spec)``.
    """
    best = best or read_best(fold)
    spec = best.spec()
    return model_from_state(spec, best.state, fold.best, RETRAIN).to(device).eval(), spec


class FoldCheckpoints:
    """A fold's checkpoint policy: keep the best epoch, save the last, resume from it.

    Only rank 0 writes (``is_main``); every rank reads the same ``last.pt`` to resume.
    """

    def __init__(self, files: FoldLayout, is_main: bool):
        self.files, self.is_main = files, is_main

    def save_best(self, model: torch.nn.Module, epoch: int, scores: dict[str, float], spec: Spec) -> None:
        """``best.pt``: the weights to predict with, the epoch, its scores and the resolved spec."""
        if self.is_main:
            payload = {
                "model": model.state_dict(),
                "epoch": epoch,
                "scores": scores,
                "config": spec.model_dump(mode="json"),
            }
            save_checkpoint(payload, self.files.best)

    def save_last(self, trainer) -> None:
        """``last.pt``: everything a :class:`~mtlkaggle.engine.trainer.Trainer` needs to go on."""
        if not self.is_main:
            return
        from mtlkaggle.engine.runtime import rng_state

        payload = {
            "model": trainer.model.state_dict(),
            "criterion": trainer.criterion.state_dict(),
            "optimizer": trainer.optimizer.state_dict(),
            "scheduler": trainer.schedule.state_dict(),
            "scaler": trainer.scaler.state_dict() if trainer.scaler else None,
            "ema": trainer.ema.state_dict() if trainer.ema is not None else None,
            "state": trainer.state.__dict__,
            "task_best_state": trainer.task_best_state,
            "rng": rng_state(),
        }
        save_checkpoint(payload, self.files.last)

    def resume(self, trainer) -> None:
        """Restore ``trainer`` from ``last.pt``: weights, optimizer, schedule, state, RNG."""
        from mtlkaggle.engine.runtime import set_rng_state

        payload = load_checkpoint(self.files.last, ("model", "optimizer", "state", "rng"), RESTART)
        try:
            trainer.model.load_state_dict(payload["model"])
            trainer.criterion.load_state_dict(payload["criterion"])
            trainer.optimizer.load_state_dict(payload["optimizer"])
            trainer.schedule.load_state_dict(payload["scheduler"])
        except (RuntimeError, ValueError, KeyError) as e:
            raise UserError(
                f"{self.files.last}: does not fit this model ({str(e).splitlines()[0]}); {RESTART}"
            ) from None
        if trainer.scaler and payload["scaler"]:
            trainer.scaler.load_state_dict(payload["scaler"])
        if trainer.ema is not None and payload["ema"]:
            trainer.ema.load_state_dict(payload["ema"])
        trainer.restore_state(payload["state"], payload["task_best_state"])
        set_rng_state(payload["rng"])
