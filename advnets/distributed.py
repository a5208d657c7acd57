"""Distributed data parallel through torchrun: one process per device, on one machine or several.

``torchrun --nproc-per-node N -m advnets run PRESET ...`` starts N processes with
RANK, LOCAL_RANK and WORLD_SIZE set; each calls :func:`init_from_env`, which joins
the process group (``nccl`` on CUDA, ``gloo`` on the CPU) with a timeout, so that a
rank that dies makes the others fail instead of hang. ``advnets run --nproc N``
launches torchrun for the local machine.

What every rank does alike and what it does alone is decided in the trainer:
each rank draws its own shard of every epoch's shared data order and its own
slice of the global batch's noise; DDP averages the gradients; only rank 0
writes logs, grids and checkpoints; every rank resumes from the same checkpoint.
"""

from __future__ import annotations

import datetime as _dt
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.distributed as dist

from .errors import ConfigError

TIMEOUT_VAR = "ADVNETS_DIST_TIMEOUT"
DEFAULT_TIMEOUT_S = 300


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if world_size() > 1 else 0


def is_main() -> bool:
    return rank() == 0


def launched() -> bool:
    """True inside a process that torchrun started for a job of several processes."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def local_device(device: str) -> str:
    """This rank's device: ``cuda:LOCAL_RANK`` for a CUDA job under torchrun, else ``device``."""
    if world_size() > 1 and (device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())):
        return f"cuda:{os.environ.get('LOCAL_RANK', '0')}"
    return device


def init_from_env(device: str) -> str:
    """Join the process group torchrun describes; return this rank's device string."""
    if not dist.is_available():
        raise ConfigError("this torch was built without torch.distributed")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    wants_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if wants_cuda:
        if not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} asked for, but CUDA is not available here")
        torch.cuda.set_device(local_rank)
        device = f"cuda:{local_rank}"
    elif device == "auto":
        device = "cpu"
    timeout = _dt.timedelta(seconds=float(os.environ.get(TIMEOUT_VAR, DEFAULT_TIMEOUT_S)))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if wants_cuda else "gloo", timeout=timeout)
    return device


def shutdown(wait: bool) -> None:
    """Leave the process group; ``wait`` first for every rank to get here (rank 0 writes last)."""
    if dist.is_available() and dist.is_initialized():
        if wait:
            dist.barrier()
        dist.destroy_process_group()


def describe(batch_size: int) -> dict:
    """What config.json records about the job's shape."""
    size = world_size()
    return {
        "world_size": size,
        "backend": dist.get_backend() if size > 1 else None,
        "global_batch_size": batch_size * size,
        "learning_rate": "unscaled: each rank takes batch_size samples and DDP averages the gradients, "
        "so the global batch is batch_size x world_size at the configured learning rates",
    }


def launch_local(nproc: int, argv: Sequence[str]) -> int:
    """Run ``advnets ARGV`` under torchrun with ``nproc`` processes on this machine; its exit code."""
    if nproc < 1:
        raise ConfigError(f"--nproc must be >= 1, got {nproc}")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", "-m", "advnets", *argv]
    return subprocess.call(command)


def without_option(argv: Sequence[str], option: str) -> list[str]:
    """``argv`` without ``--option VALUE`` or ``--option=VALUE``."""
    out, skip = [], False
    for token in argv:
        if skip:
            skip = False
        elif token == option:
            skip = True
        elif not token.startswith(option + "="):
            out.append(token)
    return out


def broadcast_path(path: os.PathLike[str] | str) -> Path:
    """Rank 0's path on every rank (a timestamped run folder must not differ by a second)."""
    if world_size() == 1:
        return Path(path)
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    encoded = torch.tensor(list(str(path).encode()), dtype=torch.uint8, device=device)
    length = torch.tensor([len(encoded)], dtype=torch.int64, device=device)
    dist.broadcast(length, src=0)
    buffer = encoded if rank() == 0 else torch.zeros(int(length.item()), dtype=torch.uint8, device=device)
    dist.broadcast(buffer, src=0)
    return Path(bytes(buffer.cpu().tolist()).decode())


def all_agree(flag: bool, device: torch.device) -> bool:
    """True on every rank if ``flag`` is true on any rank (a stop request, say)."""
    if world_size() == 1:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def mean_over_ranks(tensor: torch.Tensor) -> torch.Tensor:
    if world_size() > 1:
        dist.all_reduce(tensor)
        tensor /= world_size()
    return tensor
