"""Reading MNIST-format IDX files (gzipped or not), checked, into uint8 tensors.

Format (LeCun et al.): two zero bytes, a type byte (0x08 = unsigned byte), the
number of dimensions, then each dimension as a big-endian int32, then the data.
Image files have magic 0x00000803 (2051), label files 0x00000801 (2049).
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import torch

from advnets.errors import ConfigError

IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049


def read_idx(path: Path, magic: int) -> torch.Tensor:
    """The array in an IDX file as a uint8 tensor; a clear error if it is not one."""
    what = "image" if magic == IMAGES_MAGIC else "label"
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise ConfigError(f"{path}: cannot read ({exc}); the file is truncated or not gzip") from None
    if len(raw) < 4:
        raise ConfigError(f"{path}: too short to be an IDX file ({len(raw)} bytes)")
    (found,) = struct.unpack(">I", raw[:4])
    if found != magic:
        other = {IMAGES_MAGIC: "an image file", LABELS_MAGIC: "a label file"}.get(found, "not an IDX file")
        raise ConfigError(f"{path}: expected an IDX {what} file (magic {magic}), found magic {found} ({other})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ConfigError(f"{path}: truncated IDX header")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    count = math.prod(dims)
    if len(raw) != header + count:
        raise ConfigError(
            f"{path}: IDX {what} file is truncated or padded: header says {'x'.join(map(str, dims))} "
            f"({count} bytes of data), file holds {len(raw) - header}"
        )
    return torch.frombuffer(bytearray(raw[header:]), dtype=torch.uint8).reshape(dims)
