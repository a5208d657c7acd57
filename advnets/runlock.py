"""One owner per run folder: a lock on ``RUN/.lock``, held for the life of the process.

A new run folder is claimed by ``fcntl.flock`` on its ``.lock`` file the moment it
is made; ``--resume`` claims it before reading it where the lock file is there
already, and in any case before changing anything in it (so a resume that fails
on bad input leaves a folder without a lock file as it was). The lock
belongs to the open file, so the OS lets go of it when the process ends, however
it ends (SIGKILL included): a killed run can always be resumed, and a live run's
folder can never be claimed by a second ``run --out`` or ``--resume``. Under
torchrun only rank 0 claims the folder. The file holds the owner's process id,
for the message a second process gets.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from .errors import ConfigError

LOCK_NAME = ".lock"

_held: dict[Path, int] = {}  # run folder -> the open lock file: never closed, so held until exit


def claim(run_dir: Path) -> None:
    """Lock ``run_dir`` for this process (a no-op if it holds it already); a one-line error if another does."""
    _lock(run_dir, create=True)


def claim_existing(run_dir: Path) -> None:
    """:func:`claim` ``run_dir`` if it has a lock file already; else do nothing (and write nothing)."""
    _lock(run_dir, create=False)


def _lock(run_dir: Path, create: bool) -> None:
    key = Path(run_dir).resolve()
    if key in _held:
        return
    path = key / LOCK_NAME
    if not create and not path.exists():
        return
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise ConfigError(f"{run_dir}: cannot lock the run folder ({exc.strerror or exc})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        message = _in_use(run_dir, fd)
        os.close(fd)
        raise ConfigError(message) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    _held[key] = fd


def check_free(run_dir: Path) -> None:
    """A one-line error if a live process holds ``run_dir``; takes nothing and writes nothing."""
    path = Path(run_dir) / LOCK_NAME
    if Path(run_dir).resolve() in _held or not path.is_file():
        return
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # refused while anyone holds it; closing lets go
    except OSError:
        raise ConfigError(_in_use(run_dir, fd)) from None
    finally:
        os.close(fd)


def _in_use(run_dir: Path, fd: int) -> str:
    text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    owner = f" (pid {text})" if text.isdigit() else ""
    return f"{run_dir} is in use by a running advnets process{owner}; wait for it to end or stop it"
