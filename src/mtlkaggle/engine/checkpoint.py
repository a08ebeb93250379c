"""Checkpoints: written atomically, read back with one clear error per kind of damage.

Checkpoints are plain tensors, numbers and strings, loaded with ``weights_only=True``: nothing in
them is ever unpickled as code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from mtlkaggle.errors import UserError
from mtlkaggle.io import atomic_path
from mtlkaggle.paths import FoldLayout


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


def load_fold_model(fold: FoldLayout, device: torch.device | str = "cpu"):
    """A fold's best model (eval mode) and the spec it was trained with.

    Returns:
        ``(MultiTaskNet, Spec)``.
    """
    from pydantic import ValidationError

    from mtlkaggle.model import MultiTaskNet
    from mtlkaggle.spec import Spec

    fix = "train this fold again (`mtlkaggle train ... --fold K --overwrite`)"
    payload = load_checkpoint(fold.best, ("model", "config"), fix)
    try:
        spec = Spec.model_validate(payload["config"])
    except ValidationError as e:
        raise UserError(
            f"{fold.best}: the saved config is not valid ({e.errors()[0]['msg']}); {fix}"
        ) from None
    model = MultiTaskNet(spec, spec.train)
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise UserError(f"{fold.best}: weights do not fit the saved config ({first}); {fix}") from None
    return model.to(device).eval(), spec
