"""Checkpoints as safetensors files, written atomically; nothing is ever unpickled.

A checkpoint is one ``.safetensors`` file. Every tensor of the trainer's state
(weights, optimiser moments, RNG states, the epoch's data order) is a tensor in
the file under a dotted name; the shape of the state around them (nested dicts,
lists, numbers, strings) is JSON in the file's metadata, with ``{"$tensor": name}``
where a tensor goes. Loading reads a JSON header and raw tensor bytes: a hostile
file can be wrong, but it cannot run code.

Writes go to a temporary file in the same folder, are flushed and fsync'ed, and
then renamed over the final name, so a crash at any moment leaves either the old
file or the new one under that name, never half of one.
"""

from __future__ import annotations

import json
import os
import re
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from safetensors import SafetensorError

from . import failpoints
from .errors import CheckpointError, first_line

FORMAT = "advnets.checkpoint/1"
SUFFIX = ".safetensors"
NAME_PATTERN = re.compile(r"^step-(\d+)\.safetensors$")
BEST_NAME = "best.safetensors"
MAX_HEADER_BYTES = 100 * 1024 * 1024  # safetensors' own limit


# --- encoding a nested state into tensors + JSON --------------------------------


def encode_state(tree: Any, tensors: dict[str, torch.Tensor], prefix: str = "") -> Any:
    """Replace every tensor in ``tree`` by a reference and collect it into ``tensors``."""
    if isinstance(tree, torch.Tensor):
        name = prefix or "tensor"
        # A private CPU copy: safetensors refuses tensors that share memory.
        tensors[name] = tree.detach().to("cpu", copy=True).contiguous()
        return {"$tensor": name}
    if isinstance(tree, Mapping):
        if all(isinstance(key, str) for key in tree):
            return {key: encode_state(value, tensors, f"{prefix}.{key}" if prefix else key) for key, value in tree.items()}
        # Optimiser states are keyed by parameter index: keep the keys' types.
        return {
            "$items": [
                [key, encode_state(value, tensors, f"{prefix}.{key}" if prefix else str(key))]
                for key, value in tree.items()
            ]
        }
    if isinstance(tree, (list, tuple)):
        return [encode_state(value, tensors, f"{prefix}.{i}") for i, value in enumerate(tree)]
    if tree is None or isinstance(tree, (bool, int, float, str)):
        return tree
    raise TypeError(f"cannot store a {type(tree).__name__} in a checkpoint (at {prefix or 'top level'})")


def decode_state(tree: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    if isinstance(tree, dict):
        if set(tree) == {"$tensor"}:
            return tensors[tree["$tensor"]]
        if set(tree) == {"$items"}:
            return {key: decode_state(value, tensors) for key, value in tree["$items"]}
        return {key: decode_state(value, tensors) for key, value in tree.items()}
    if isinstance(tree, list):
        return [decode_state(value, tensors) for value in tree]
    return tree


# --- atomic writes ----------------------------------------------------------------


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # some file systems cannot open folders; the rename is still atomic
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash leaves the old file or the new one, never a mix."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        _write_and_rename(tmp, path, data)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot write ({exc.strerror or exc}); the previous file, if any, is untouched") from None
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


def write_json_atomic(path: Path, obj: Any) -> None:
    write_atomic(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


# --- checkpoints -------------------------------------------------------------------


def save_checkpoint(path: Path, state: Mapping[str, Any], metadata: Mapping[str, Any]) -> None:
    """Write ``state`` (nested, with tensors) and JSON-able ``metadata`` as one safetensors file."""
    tensors: dict[str, torch.Tensor] = {}
    skeleton = encode_state(dict(state), tensors)
    header = {"format": FORMAT, "state": json.dumps(skeleton)}
    header.update({key: json.dumps(value) for key, value in metadata.items()})
    write_atomic(Path(path), safetensors.torch.save(tensors, metadata=header))


def _read_header(path: Path, data: bytes) -> dict[str, Any]:
    """The safetensors JSON header, checked before any tensor is read, for clear messages."""
    if len(data) < 9:
        raise CheckpointError(f"{path}: file is truncated ({len(data)} bytes)")
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > MAX_HEADER_BYTES or data[8:9] != b"{":
        raise CheckpointError(f"{path}: not a safetensors file (no valid header; a pickle or another format?)")
    if header_len + 8 > len(data):
        raise CheckpointError(f"{path}: file is truncated (header says {header_len} bytes, file has {len(data) - 8})")
    try:
        header = json.loads(data[8 : 8 + header_len])
    except ValueError:
        raise CheckpointError(f"{path}: not a safetensors file (header is not JSON)") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: not a safetensors file (header is not a JSON object)")
    return header


def load_checkpoint(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read a checkpoint: (state with tensors on the CPU, metadata). Raises CheckpointError."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint file") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read ({exc.strerror})") from None
    raw_meta = _read_header(path, data).get("__metadata__") or {}
    if raw_meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an advnets checkpoint (metadata format {raw_meta.get('format')!r})")
    try:
        tensors = safetensors.torch.load(data)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        reason = first_line(exc)
        raise CheckpointError(f"{path}: damaged safetensors file ({reason})") from None
    try:
        metadata = {key: json.loads(value) for key, value in raw_meta.items() if key != "format"}
        state = decode_state(metadata.pop("state"), tensors)
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: damaged checkpoint metadata ({type(exc).__name__}: {exc})") from None
    return state, metadata


def checkpoint_name(step: int) -> str:
    return f"step-{step:09d}{SUFFIX}"


def step_checkpoints(folder: Path) -> list[Path]:
    """``step-*.safetensors`` files in ``folder``, newest (highest step) first."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := NAME_PATTERN.match(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


def remove_unfinished_writes(folder: Path) -> list[str]:
    """Delete temporary files a crash left mid-write (never a finished checkpoint); say which."""
    notes = []
    if folder.is_dir():
        for path in folder.glob(".*.tmp-*"):
            path.unlink(missing_ok=True)
            notes.append(f"{path}: removed an unfinished write left by a crash")
    return notes


def newest_loadable(folder: Path) -> tuple[Path, dict[str, Any], dict[str, Any], list[str]]:
    """The newest step checkpoint that loads, and a note for each newer one skipped."""
    skipped: list[str] = []
    for path in step_checkpoints(folder):
        try:
            state, metadata = load_checkpoint(path)
        except CheckpointError as exc:
            skipped.append(f"skipped {exc}")
            continue
        return path, state, metadata, skipped
    detail = f" ({'; '.join(skipped)})" if skipped else ""
    raise CheckpointError(f"{folder}: no loadable checkpoint{detail}")
