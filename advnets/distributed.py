"""Distributed data parallel through torchrun: one process per device, on one machine or several.

``torchrun --nproc-per-node N -m advnets run PRESET ...`` starts N processes with
RANK, LOCAL_RANK and WORLD_SIZE set; each calls :func:`init_from_env`, which joins
the process group (``nccl`` on CUDA, ``gloo`` on the CPU) with a timeout, so that a
rank that dies makes the others fail instead of hang (torchrun also ends them). ``advnets run --nproc N``
launches torchrun for the local machine.

What every rank does alike and what it does alone is decided in the trainer:
each rank draws its own shard of every epoch's shared data order and its own
slice of the global batch's noise; DDP averages the gradients; only rank 0
writes logs, grids and checkpoints; every rank resumes from the same checkpoint.
"""

from __future__ import annotations

import datetime as _dt
import gc
import os
import re
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import torch
import torch.distributed as dist

from .errors import ConfigError

TIMEOUT_VAR = "ADVNETS_DIST_TIMEOUT"
DEFAULT_TIMEOUT_S = 900  # long enough for rank 0's evaluations, short enough to end a hung job


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


def init_from_env() -> None:
    """Join the process group torchrun describes (gloo for CPU tensors, nccl for CUDA ones)."""
    if not dist.is_available():
        raise ConfigError("this torch was built without torch.distributed")
    timeout = _dt.timedelta(seconds=float(os.environ.get(TIMEOUT_VAR, DEFAULT_TIMEOUT_S)))
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        backend = "cpu:gloo,cuda:nccl"
    else:
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=timeout)


def shutdown(wait: bool) -> None:
    """Leave the process group; ``wait`` first for every rank to get here (rank 0 writes last)."""
    if dist.is_available() and dist.is_initialized():
        # Free the DDP wrappers (and the communication state they hold) while the group is
        # still alive, not at interpreter exit: a run's objects can sit in reference cycles.
        gc.collect()
        if wait:
            dist.barrier()
        dist.destroy_process_group()


def leave(code: int) -> NoReturn:
    """End a torchrun worker with ``code`` once its work is written, skipping interpreter teardown.

    At teardown, gloo's C++ threads can still be destructed after the interpreter has
    begun to finalise, and now and then that aborts the worker (SIGABRT, "terminate
    called without an active exception") after a run that finished well, which turns
    the whole job into a failure. Everything a run writes is closed and flushed by
    then (checkpoints are fsynced, loggers closed at the end of the fit), so the
    worker flushes its streams and exits at once.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def describe(batch_size: int) -> dict:
    """What config.json records about the job's shape."""
    size = world_size()
    return {
        "world_size": size,
        "backend": str(dist.get_backend()) if size > 1 else None,
        "global_batch_size": batch_size * size,
        "learning_rate": "unscaled: each rank takes batch_size samples and DDP averages the gradients, "
        "so the global batch is batch_size x world_size at the configured learning rates",
    }


def launch_local(nproc: int, argv: Sequence[str]) -> int:
    """Run ``advnets ARGV`` under torchrun with ``nproc`` processes on this machine; its exit code."""
    if nproc < 1:
        raise ConfigError(f"--nproc must be >= 1, got {nproc}")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", "-m", "advnets", *argv]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, errors="replace", bufsize=1)
    # Ctrl-C reaches torchrun too (same process group), and torchrun stops its workers at a
    # step boundary: wait for that instead of dying first; pass SIGTERM on.
    previous = {
        signal.SIGINT: signal.signal(signal.SIGINT, signal.SIG_IGN),
        signal.SIGTERM: signal.signal(signal.SIGTERM, lambda signum, frame: process.send_signal(signum)),
    }
    try:
        return _relay_stderr(process)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


AGENT_LOG = re.compile(r"^[EW]\d{4} \d\d:\d\d:\d\d")  # torchrun's log lines: E1201 07:24:10.311000 ...


def _relay_stderr(process: subprocess.Popen) -> int:
    """Pass torchrun's stderr (its workers' too) through as it comes; its exit code.

    When a worker ends the job with advnets' one-line ``error:`` (a failed write, a fault),
    torchrun follows it with its own report of the failed worker: a Python traceback of the
    launcher and some thirty lines that say only that a rank exited with that code. That
    report is left out; for any other failure (a crash without advnets' line) it is passed on.
    """
    said, held = False, []
    assert process.stderr is not None
    for line in process.stderr:
        if held or line.startswith("Traceback (most recent call last):"):
            held.append(line)
            continue
        if said and AGENT_LOG.match(line):
            continue  # the agent's own line on the same failure ("failed (exitcode: 1) local_rank: 0 ...")
        said = said or line.startswith("error: ")
        sys.stderr.write(line)
        sys.stderr.flush()
    code = process.wait()
    if held and not (code != 0 and said):
        sys.stderr.writelines(held)
    return code


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
    encoded = torch.tensor(list(str(path).encode()), dtype=torch.uint8)  # CPU tensors: gloo carries them
    length = torch.tensor([len(encoded)], dtype=torch.int64)
    dist.broadcast(length, src=0)
    buffer = encoded if rank() == 0 else torch.zeros(int(length.item()), dtype=torch.uint8)
    dist.broadcast(buffer, src=0)
    return Path(bytes(buffer.cpu().tolist()).decode())


def all_agree(flag: bool, device: torch.device, require_all: bool = False) -> bool:
    """The same answer on every rank: is ``flag`` true on any rank (or, with ``require_all``, on all)?"""
    if world_size() == 1:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MIN if require_all else dist.ReduceOp.MAX)
    return bool(value.item())


def all_true(flag: torch.Tensor) -> torch.Tensor:
    """A 0-d bool tensor that is true on every rank if ``flag`` is true on all of them.

    An all-reduce on the device: the host does not wait for it (with nccl).
    """
    if world_size() == 1:
        return flag
    value = flag.to(torch.float32).reshape(1)
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return value.reshape(()) > 0


def mean_over_ranks(tensor: torch.Tensor) -> torch.Tensor:
    if world_size() > 1:
        dist.all_reduce(tensor)
        tensor /= world_size()
    return tensor
