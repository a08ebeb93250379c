"""Where and how a process computes: device, mixed precision, its rank, seeds and RNG state.

Ranks come from the variables torchrun sets (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``); without
them the process is rank 0 of 1.
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mtlkaggle.errors import UserError

if TYPE_CHECKING:  # torch loads when a function needs it: the CLI's error path reads ranks without it
    import torch


@dataclass(frozen=True)
class Runtime:
    """One process's place in a run."""

    device: torch.device
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def distributed(self) -> bool:
        """Whether this process is one of several training one model."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes files and prints."""
        return self.rank == 0


def env_rank() -> tuple[int, int, int]:
    """(rank, local rank, world size) from torchrun's variables; (0, 0, 1) without them."""
    try:
        return (
            int(os.environ.get("RANK", 0)),
            int(os.environ.get("LOCAL_RANK", 0)),
            int(os.environ.get("WORLD_SIZE", 1)),
        )
    except ValueError as e:
        raise UserError(f"torchrun's RANK/LOCAL_RANK/WORLD_SIZE must be integers ({e})") from None


def resolve_device(name: str | None, local_rank: int = 0) -> torch.device:
    """The device to use: ``name`` if given, else ``cuda:LOCAL_RANK`` when CUDA exists, else CPU.

    Raises:
        UserError: a name torch does not know, or CUDA named where there is none (checked before
            any heavy work, with the valid choices).
    """
    import torch

    if not name:
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"--device {name}: not a device; use cpu, cuda, cuda:N (or mps on a Mac)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
        if device.index is None:
            device = torch.device("cuda", local_rank)
        if device.index >= torch.cuda.device_count():
            raise UserError(
                f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s) "
                f"(cuda:0..cuda:{torch.cuda.device_count() - 1})"
            )
    return device


def make_runtime(device: str | None) -> Runtime:
    """This process's runtime; under torchrun it joins the process group (NCCL on CUDA, gloo on CPU)."""
    import torch

    rank, local_rank, world = env_rank()
    resolved = resolve_device(device, local_rank)
    if world > 1:
        import torch.distributed as dist

        if resolved.type == "cuda":
            torch.cuda.set_device(resolved)
        if not dist.is_initialized():
            dist.init_process_group(
                backend="nccl" if resolved.type == "cuda" else "gloo",
                device_id=resolved if resolved.type == "cuda" else None,
            )
    return Runtime(resolved, rank, local_rank, world)


def autocast_for(
    device: torch.device, amp: bool, dtype: str = "auto"
) -> tuple[Callable[[], Any], torch.amp.GradScaler | None]:
    """bf16 autocast where supported, fp16 with a GradScaler otherwise; fp32 on CPU."""
    import torch

    if device.type != "cuda" or not amp:
        return contextlib.nullcontext, None
    if dtype == "bf16" or (dtype == "auto" and torch.cuda.is_bf16_supported()):
        return (lambda: torch.autocast("cuda", dtype=torch.bfloat16)), None
    return (lambda: torch.autocast("cuda", dtype=torch.float16)), torch.amp.GradScaler("cuda")


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """The torch seed of one epoch of one rank (dropout and other in-model randomness)."""
    return int(np.random.default_rng([seed, epoch, 7]).integers(0, 2**31 - 1)) + rank


def rng_state() -> dict[str, Any]:
    """Every RNG's state, as tensors and lists (loadable with ``weights_only=True``)."""
    import torch

    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": list(random.getstate()[1]),
        "numpy": torch.from_numpy(np_state[1].astype(np.int64)),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    import torch

    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    random.setstate((3, tuple(state["python"]), None))
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), 0, 0, 0.0))
