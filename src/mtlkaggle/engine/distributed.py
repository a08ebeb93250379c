"""What a DDP run needs beyond one process: wrapping, SyncBatchNorm, agreeing and gathering.

Every helper is a no-op (or the identity) when the runtime is not distributed, so the trainer
reads the same for one process and for many.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from mtlkaggle.engine.runtime import Runtime


def prepare_module(module: nn.Module, runtime: Runtime) -> nn.Module:
    """SyncBatchNorm on CUDA when distributed (the neck's BatchNorm1d sees small per-GPU batches).

    On CPU (gloo) BatchNorm stays local: SyncBatchNorm needs CUDA.
    """
    if runtime.distributed and runtime.device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return module


def wrap(module: nn.Module, runtime: Runtime) -> nn.Module:
    """``module`` wrapped in DistributedDataParallel when distributed, else itself.

    Call again after parameters are frozen: DDP fixes the parameters it reduces when it is built.
    """
    if not runtime.distributed:
        return module
    from torch.nn.parallel import DistributedDataParallel

    ids = [runtime.device.index] if runtime.device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids)


def sync_buffers(module: nn.Module, runtime: Runtime) -> None:
    """Give every rank rank 0's buffers (BatchNorm statistics), so all validate the saved weights."""
    if not runtime.distributed:
        return
    import torch.distributed as dist

    for buffer in module.buffers():
        if runtime.device.type == "cuda":
            dist.broadcast(buffer, src=0)
        else:
            copy = buffer.detach().cpu()
            dist.broadcast(copy, src=0)
            buffer.copy_(copy)


def all_true(flag: bool, runtime: Runtime) -> bool:
    """Whether ``flag`` holds on every rank (so all ranks take the same branch)."""
    if not runtime.distributed:
        return flag
    import torch.distributed as dist

    value = torch.tensor([1 if flag else 0], device=_comm_device(runtime))
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return bool(value.item())


def sum_across(tensor: torch.Tensor, runtime: Runtime) -> torch.Tensor:
    """The element-wise sum of ``tensor`` over ranks (a new tensor; ``tensor`` is unchanged)."""
    if not runtime.distributed:
        return tensor
    import torch.distributed as dist

    total = tensor.detach().clone().to(_comm_device(runtime))
    dist.all_reduce(total)
    return total.to(tensor.device)


def gather_objects(obj: Any, runtime: Runtime) -> list[Any]:
    """Every rank's ``obj`` (picklable), in rank order, on every rank."""
    if not runtime.distributed:
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * runtime.world_size
    dist.all_gather_object(out, obj)
    return out


def gather_rows(
    rows: list[torch.Tensor], kept: dict[str, list[torch.Tensor]], runtime: Runtime
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Every rank's row indices and per-task outputs, each row once, in row order.

    Args:
        rows: This rank's batches of row indices.
        kept: This rank's batches of outputs per task, aligned with ``rows``.
        runtime: The process's place in the run.

    Returns:
        The sorted row indices of all ranks and the outputs of those rows (rows that training's
        padding repeated are kept once).
    """
    local = (
        torch.cat(rows).numpy() if rows else np.zeros(0, np.int64),
        {n: torch.cat(v).cpu().numpy() if v else None for n, v in kept.items()},
    )
    parts = [p for p in gather_objects(local, runtime) if len(p[0])]
    if not parts:
        return np.zeros(0, np.int64), {}
    index = np.concatenate([p[0] for p in parts])
    order, first = np.unique(index, return_index=True)
    return order, {n: np.concatenate([p[1][n] for p in parts])[first] for n in kept}


def barrier(runtime: Runtime) -> None:
    """Wait for every rank."""
    if runtime.distributed:
        import torch.distributed as dist

        dist.barrier()


def broadcast_object(obj: Any, runtime: Runtime) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not runtime.distributed:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def close() -> None:
    """Leave the process group, if this process joined one (NCCL warns when it is left open)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _comm_device(runtime: Runtime) -> torch.device:
    return runtime.device if runtime.device.type == "cuda" else torch.device("cpu")
