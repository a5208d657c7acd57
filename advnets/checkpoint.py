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

import dataclasses
import json
import os
import re
import stat
import struct
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

import safetensors.torch
import torch
from safetensors import SafetensorError

from .errors import CheckpointError, first_line
from .files import write_atomic
from .registry import nesting_depth

FORMAT = "advnets.checkpoint/1"
SUFFIX = ".safetensors"
NAME_PATTERN = re.compile(r"^step-(\d+)\.safetensors$")
BEST_NAME = "best.safetensors"
MAX_HEADER_BYTES = 100 * 1024 * 1024  # safetensors' own limit
CHECKSUM_KEY = "checksum"
"""The header entry holding a CRC-32 of the checkpoint's tensors and metadata (checked when loaded)."""
MAX_METADATA_DEPTH = 64  # a trainer's state nests about 6 deep; deeper is damage (or an attack on the decoder)


# --- encoding a nested state into tensors + JSON --------------------------------


def encode_state(tree: Any, tensors: dict[str, torch.Tensor], prefix: str = "") -> Any:
    """Replace every tensor in ``tree`` by a reference and collect it into ``tensors``."""
    if isinstance(tree, torch.Tensor):
        name = prefix or "tensor"
        tensors[name] = tree.detach()  # made writable by _for_safetensors
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
    kind = type(tree).__name__
    raise TypeError(f"cannot store {'an' if kind[0] in 'aeiouAEIOU' else 'a'} {kind} in a checkpoint (at {prefix or 'top level'})")


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


# --- checkpoints -------------------------------------------------------------------


def save_checkpoint(path: Path, state: Mapping[str, Any], metadata: Mapping[str, Any]) -> None:
    """Write ``state`` (nested, with tensors) and JSON-able ``metadata`` as one safetensors file."""
    tensors: dict[str, torch.Tensor] = {}
    skeleton = encode_state(dict(state), tensors)
    header = {"format": FORMAT, "state": json.dumps(skeleton)}
    header.update({key: json.dumps(value) for key, value in metadata.items()})
    tensors = _for_safetensors(tensors)
    header[CHECKSUM_KEY] = json.dumps(checksum(tensors, header))
    write_atomic(Path(path), safetensors.torch.save(tensors, metadata=header))


def checksum(tensors: Mapping[str, torch.Tensor], header: Mapping[str, str]) -> str:
    """A CRC-32 of every tensor (name, dtype, shape, bytes) and every header entry, in name order.

    safetensors keeps no checksum: a byte changed on disk inside a tensor that no other
    check reads (an RNG state, a counter, a callback's state) would resume quietly wrong.
    About 10 ms for 35 MiB of tensors.
    """
    crc = 0
    for key in sorted(header):
        if key != CHECKSUM_KEY:
            crc = zlib.crc32(json.dumps([key, header[key]]).encode(), crc)
    for name in sorted(tensors):
        tensor = tensors[name]
        crc = zlib.crc32(json.dumps([name, str(tensor.dtype), list(tensor.shape)]).encode(), crc)
        crc = zlib.crc32(tensor.detach().reshape(-1).view(torch.uint8).numpy(), crc)
    return f"crc32:{crc:08x}"


def _for_safetensors(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The tensors in a form safetensors writes: on the CPU, contiguous, no two sharing memory.

    Only those that are not are copied: safetensors copies every tensor into the file's
    bytes anyway, so a CPU run's checkpoint costs one copy of its state, not two.
    """
    seen: set[int] = set()
    found = {}
    for name, tensor in tensors.items():
        tensor = tensor.resolve_conj().resolve_neg()  # a lazily negated or conjugated view, materialised
        storage = tensor.untyped_storage().data_ptr() if tensor.device.type == "cpu" else None
        if storage is None or storage in seen or not tensor.is_contiguous():
            tensor = tensor.to("cpu", copy=True).contiguous()
            storage = tensor.untyped_storage().data_ptr()
        seen.add(storage)
        found[name] = tensor
    return found


def _open_regular_file(path: Path) -> BinaryIO:
    """Open ``path`` for reading only if it is a regular file (after following links).

    A FIFO would block ``open`` forever and a device (``/dev/zero``) never ends: both
    are refused from ``stat`` before opening, and ``O_NONBLOCK`` keeps a FIFO swapped
    in since then from blocking; ``fstat`` on what was opened has the last word.
    """
    try:
        kind = _file_kind(os.stat(path).st_mode)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint file") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read ({exc.strerror})") from None
    if kind is not None:
        raise CheckpointError(f"{path}: not a regular file ({kind})")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read ({exc.strerror})") from None
    kind = _file_kind(os.fstat(fd).st_mode)
    if kind is not None:
        os.close(fd)
        raise CheckpointError(f"{path}: not a regular file ({kind})")
    return os.fdopen(fd, "rb")


def _file_kind(mode: int) -> str | None:
    """What a file that is not a regular file is, in words; None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    kinds = {stat.S_ISDIR: "a folder", stat.S_ISFIFO: "a named pipe", stat.S_ISCHR: "a device", stat.S_ISBLK: "a device", stat.S_ISSOCK: "a socket"}
    return next((name for test, name in kinds.items() if test(mode)), "not a plain file")


def _read_header(path: Path, file: BinaryIO, size: int) -> tuple[dict[str, Any], int]:
    """The safetensors JSON header and the file size it implies, read with bounded reads.

    The header's tensor offsets say how long the file must be: a file of another
    length (truncated, or padded into a huge sparse file) is refused before a
    single tensor byte is read.
    """
    if size < 9:
        raise CheckpointError(f"{path}: file is truncated ({size} bytes)")
    (header_len,) = struct.unpack("<Q", file.read(8))
    first = file.read(1)
    if header_len > MAX_HEADER_BYTES or first != b"{":
        raise CheckpointError(f"{path}: not a safetensors file (no valid header; a pickle or another format?)")
    if header_len + 8 > size:
        raise CheckpointError(f"{path}: file is truncated (header says {header_len} bytes, file has {size - 8})")
    try:
        header = json.loads(first + file.read(header_len - 1))
    except RecursionError:
        raise CheckpointError(f"{path}: not a safetensors file (header nested too deep)") from None
    except ValueError:
        raise CheckpointError(f"{path}: not a safetensors file (header is not JSON)") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: not a safetensors file (header is not a JSON object)")
    expected = 8 + header_len + _tensor_bytes(path, header)
    if size < expected:
        raise CheckpointError(f"{path}: file is truncated (its header needs {expected} bytes, the file has {size})")
    if size > expected:
        raise CheckpointError(f"{path}: damaged safetensors file ({size - expected} bytes after the last tensor)")
    return header, expected


def _tensor_bytes(path: Path, header: Mapping[str, Any]) -> int:
    """Where the last tensor ends, from the header's ``data_offsets``."""
    end = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if not (
            isinstance(offsets, list)
            and len(offsets) == 2
            and all(type(o) is int for o in offsets)
            and 0 <= offsets[0] <= offsets[1]
        ):
            raise CheckpointError(f"{path}: damaged safetensors file (tensor {name!r} has no valid data_offsets)")
        end = max(end, offsets[1])
    return end


def _advnets_metadata(path: Path, header: Mapping[str, Any]) -> dict[str, str]:
    raw_meta = header.get("__metadata__") or {}
    if not isinstance(raw_meta, dict) or raw_meta.get("format") != FORMAT:
        found = raw_meta.get("format") if isinstance(raw_meta, dict) else None
        raise CheckpointError(f"{path}: not an advnets checkpoint (metadata format {found!r})")
    return raw_meta


def _decode_metadata(path: Path, raw_meta: Mapping[str, str]) -> dict[str, Any]:
    try:
        metadata = {key: json.loads(value) for key, value in raw_meta.items() if key not in ("format", CHECKSUM_KEY)}
        if nesting_depth(metadata, MAX_METADATA_DEPTH) > MAX_METADATA_DEPTH:
            raise RecursionError
        return metadata
    except RecursionError:
        raise CheckpointError(f"{path}: damaged checkpoint metadata (nested too deep)") from None
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: damaged checkpoint metadata ({type(exc).__name__}: {exc})") from None


def read_metadata(path: Path) -> dict[str, Any]:
    """A checkpoint's metadata (without the state's layout), from its header alone; the length is checked too."""
    path = Path(path)
    with _open_regular_file(path) as file:
        header, _ = _read_header(path, file, os.fstat(file.fileno()).st_size)
    raw_meta = _advnets_metadata(path, header)
    return _decode_metadata(path, {key: value for key, value in raw_meta.items() if key != "state"})


def load_checkpoint(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read a checkpoint: (state with tensors on the CPU, metadata). Raises CheckpointError."""
    path = Path(path)
    with _open_regular_file(path) as file:
        header, length = _read_header(path, file, os.fstat(file.fileno()).st_size)
        raw_meta = _advnets_metadata(path, header)
        file.seek(0)
        data = file.read(length)
    if len(data) != length:
        raise CheckpointError(f"{path}: file is truncated (it shrank while being read)")
    try:
        tensors = safetensors.torch.load(data)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        reason = first_line(exc)
        raise CheckpointError(f"{path}: damaged safetensors file ({reason})") from None
    if CHECKSUM_KEY in raw_meta:  # checkpoints of releases before it have none
        try:
            expected = json.loads(raw_meta[CHECKSUM_KEY])
        except ValueError:
            expected = None
        if expected != checksum(tensors, raw_meta):
            raise CheckpointError(f"{path}: damaged checkpoint (its contents do not match their checksum: the file changed after it was written)")
    metadata = _decode_metadata(path, raw_meta)
    try:
        state = decode_state(metadata.pop("state"), tensors)
    except RecursionError:
        raise CheckpointError(f"{path}: damaged checkpoint metadata (the state is nested too deep)") from None
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: damaged checkpoint metadata ({type(exc).__name__}: {exc})") from None
    return state, metadata


def checkpoint_name(step: int) -> str:
    return f"step-{step:09d}{SUFFIX}"


def step_checkpoints(folder: Path) -> list[Path]:
    """``step-*.safetensors`` files in ``folder``, newest (highest step) first."""
    if not folder.is_dir():
        return []
    found = [(step_of(p), p) for p in folder.iterdir() if NAME_PATTERN.match(p.name)]
    return [p for _, p in sorted(found, reverse=True)]


def step_of(path: Path) -> int:
    """The step in a step checkpoint's name."""
    match = NAME_PATTERN.match(path.name)
    if match is None:
        raise ValueError(f"{path.name} is not a step checkpoint's name")
    return int(match.group(1))


def remove_unfinished_writes(folder: Path) -> list[str]:
    """Delete temporary files a crash left mid-write (never a finished checkpoint); say which."""
    notes = []
    if folder.is_dir():
        for path in folder.glob(".*.tmp-*"):
            path.unlink(missing_ok=True)
            notes.append(f"{path}: removed an unfinished write left by a crash")
    return notes


# --- which run a checkpoint belongs to ---------------------------------------------

ANY_RUN: Any = object()
"""For :func:`newest_of_run`: take a checkpoint of any run (for a run folder that records no id)."""


def run_id_of(metadata: Mapping[str, Any]) -> str | None:
    """The id of the run that wrote a checkpoint (its config's ``run_id``); None for runs made before ids."""
    config = metadata.get("config")
    run_id = config.get("run_id") if isinstance(config, dict) else None
    return run_id if isinstance(run_id, str) else None


@dataclasses.dataclass(frozen=True)
class Unusable:
    """A step checkpoint that resume passed over, and why."""

    path: Path
    reason: str  # one line naming the file
    damaged: bool  # False: whole, but another run's


def newest_of_run(folder: Path, run_id: str | None = ANY_RUN) -> tuple[Path, dict[str, Any], dict[str, Any], list[Unusable]]:
    """The newest step checkpoint of run ``run_id`` that loads, and each newer one passed over."""
    unusable: list[Unusable] = []
    for path in step_checkpoints(folder):
        try:
            if run_id is not ANY_RUN and (owner := run_id_of(read_metadata(path))) != run_id:
                reason = f"{path}: a checkpoint of another run ({owner or 'one without an id'}, not {run_id or 'this one'})"
                unusable.append(Unusable(path, reason, damaged=False))
                continue
            state, metadata = load_checkpoint(path)
        except CheckpointError as exc:
            unusable.append(Unusable(path, str(exc), damaged=True))
            continue
        return path, state, metadata, unusable
    detail = f" ({'; '.join(u.reason for u in unusable)})" if unusable else ""
    whose = "" if run_id is ANY_RUN else " of this run"
    raise CheckpointError(f"{folder}: no loadable checkpoint{whose}{detail}")


def newest_loadable(folder: Path) -> tuple[Path, dict[str, Any], dict[str, Any], list[str]]:
    """The newest step checkpoint that loads, of any run, and a note for each newer one skipped."""
    path, state, metadata, unusable = newest_of_run(folder)
    return path, state, metadata, [f"skipped {u.reason}" for u in unusable]


def set_aside(item: Unusable) -> str:
    """Rename a checkpoint that resume passed over out of the way, never deleting it; say so.

    A damaged file becomes ``NAME.damaged``, another run's ``NAME.other-run``: the
    name is then free for this run's own checkpoint of that step, and pruning, which
    looks only at ``step-*.safetensors``, can never count or delete it.
    """
    suffix = ".damaged" if item.damaged else ".other-run"
    target, n = item.path.with_name(item.path.name + suffix), 1
    while target.exists() or target.is_symlink():
        n += 1
        target = item.path.with_name(f"{item.path.name}{suffix}-{n}")
    try:
        os.rename(item.path, target)
    except OSError as exc:
        raise CheckpointError(f"{item.reason}; cannot move it aside ({exc.strerror or exc})") from None
    return f"{item.reason}; moved it aside to {target.name}"


def prune_step_checkpoints(folder: Path, newest: Path, keep: int, run_id: str | None) -> None:
    """Delete run ``run_id``'s step checkpoints older than its newest ``keep``, counted from ``newest``.

    Only a file whose header names this run and whose length is whole counts or goes:
    a damaged file, one of another run, and one newer than ``newest`` are never
    counted and never deleted.
    """
    ours = [p for p in step_checkpoints(folder) if step_of(p) <= step_of(newest) and _is_whole_and_of(p, run_id)]
    for old in ours[keep:]:
        old.unlink(missing_ok=True)


def _is_whole_and_of(path: Path, run_id: str | None) -> bool:
    try:
        return run_id_of(read_metadata(path)) == run_id
    except CheckpointError:
        return False
