"""Files written atomically: a crash or a full disk leaves the old file or the new one, never half.

Every file a run writes goes through here: checkpoints and JSON (:func:`write_atomic`,
:func:`write_json_atomic`), pictures (:func:`write_rendered`) and the lines of the
metrics logs (:func:`append_line`). No torch: ``advnets plot`` and ``compare`` use it.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from . import failpoints
from .errors import ConfigError, WriteError


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # some file systems cannot open folders; the rename is still atomic
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def no_run_folder(path: Path, command: str) -> str:
    """Why ``path`` is not a run folder, in one line: missing, or a file (a checkpoint: which folder it is in)."""
    path = Path(path)
    if not path.exists():
        return f"{path}: no such run folder"
    if path.suffix == ".safetensors" and path.parent.name == "checkpoints":
        return f"{path}: a checkpoint file, not a run folder; {command} takes the run folder {path.parent.parent}"
    return f"{path}: not a run folder (a {'file' if path.is_file() else 'special file'})"


def plain_file_name(name: str) -> bool:
    """A file name of the run folder itself: no folder part, not . or .., not empty."""
    return bool(name) and name not in (".", "..") and "/" not in name and "\\" not in name and "\0" not in name


def jsonl_log_name(name: Any) -> bool:
    """A name the jsonl log may have: a .jsonl file of the run folder itself, not hidden (so never
    config.json, a plot or the checkpoints' folder)."""
    return isinstance(name, str) and plain_file_name(name) and name.endswith(".jsonl") and not name.startswith(".")


def write_atomic(path: Path, data: bytes, what: str = "") -> None:
    """Write ``data`` to ``path`` so that a crash leaves the old file or the new one, never a mix;
    a failure is a :class:`WriteError` naming the path and ``what`` it holds."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        _write_and_rename(tmp, path, data)
    except OSError as exc:
        what = f" {what}" if what else ""
        raise WriteError(f"{path}: cannot write{what} ({exc.strerror or exc}); the previous file, if any, is untouched") from None
    _fsync_dir(path.parent)


def _write_and_rename(tmp: Path, path: Path, data: bytes) -> None:
    try:
        with open(tmp, "wb") as f:
            view, half = memoryview(data), len(data) // 2
            f.write(view[:half])
            f.flush()
            failpoints.hit("checkpoint-write")  # tests kill the process here, mid-file
            f.write(view[half:])
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_rendered(path: Path, render: Callable[[BinaryIO, str], Any], what: str = "") -> None:
    """Write a picture atomically: ``render(buffer, format)`` draws it into memory (PIL, matplotlib
    and torchvision all take a file object and a format), then :func:`write_atomic` puts it in place,
    so a crash or a full disk never leaves a PNG cut short under the final name."""
    buffer = io.BytesIO()
    render(buffer, Path(path).suffix.lstrip(".").lower() or "png")
    write_atomic(path, buffer.getvalue(), what)


def to_json(obj: Any, indent: int | None = None) -> str:
    """Standard JSON of ``obj``: a NaN or infinite number (a metric that failed) is written as null.

    Python's own ``NaN`` and ``Infinity`` are not JSON: ``jq``, JavaScript and many
    readers refuse a line that holds one.
    """
    return json.dumps(_finite(obj), indent=indent, allow_nan=False)


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {key: _finite(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(value) for value in obj]
    return obj


def write_json_atomic(path: Path, obj: Any) -> None:
    write_atomic(path, (to_json(obj, indent=2) + "\n").encode())


def open_log(path: Path) -> int:
    """Open a log for appending (made if missing); a last line cut short by a crash is ended first,
    so the next record starts on a line of its own instead of joining the damaged one."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size:
            with open(path, "rb") as f:
                f.seek(size - 1)
                if f.read(1) != b"\n":
                    append_line(fd, "\n")
    except BaseException:
        os.close(fd)
        raise
    return fd


def append_line(fd: int, text: str) -> None:
    """Append ``text`` (whole lines) to a log opened by :func:`open_log`, in one write where the
    system allows; if the disk takes only part of it, the file is cut back to where it was, so a
    full disk leaves no half record behind."""
    data = text.encode("utf-8")
    size = os.fstat(fd).st_size
    try:
        written = os.write(fd, data)
        while written < len(data):
            written += os.write(fd, data[written:])
    except OSError:
        try:
            os.ftruncate(fd, size)
        except OSError:
            pass
        raise


def check_file_slot(path: Path, what: str) -> None:
    """Before a run writes anything: refuse a path where it will write ``what`` that holds
    something other than a file (a folder, a pipe, a dangling link), in one line."""
    path = Path(path)
    if (path.exists() or path.is_symlink()) and not path.is_file():
        raise ConfigError(f"{path}: {what} is written here, but this is {_kind(path)}; move it away and run again")


def check_folder_slot(path: Path, what: str) -> None:
    """Before a run writes anything: refuse a path where it keeps ``what`` that is not a folder."""
    path = Path(path)
    if (path.exists() or path.is_symlink()) and not path.is_dir():
        raise ConfigError(f"{path}: {what} are kept here, but this is {_kind(path)}, not a folder; move it away and run again")


def _kind(path: Path) -> str:
    if path.is_dir():
        return "a folder"
    if path.is_file():
        return "a file"
    return "a link to nothing" if path.is_symlink() and not path.exists() else "not a regular file"
