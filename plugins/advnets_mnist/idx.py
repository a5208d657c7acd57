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
    """The array in an IDX file as a uint8 tensor; a clear error if it is not one.

    The data is read straight into the tensor's memory: no intermediate copies.
    """
    what = "image" if magic == IMAGES_MAGIC else "label"
    try:
        with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as f:
            head = f.read(4)
            if len(head) < 4:
                raise ConfigError(f"{path}: too short to be an IDX file ({len(head)} bytes)")
            (found,) = struct.unpack(">I", head)
            if found != magic:
                other = {IMAGES_MAGIC: "an image file", LABELS_MAGIC: "a label file"}.get(found, "not an IDX file")
                raise ConfigError(f"{path}: expected an IDX {what} file (magic {magic}), found magic {found} ({other})")
            ndim = head[3]
            sizes = f.read(4 * ndim)
            if len(sizes) < 4 * ndim:
                raise ConfigError(f"{path}: truncated IDX header")
            dims = struct.unpack(f">{ndim}I", sizes)
            count = math.prod(dims)
            array = torch.empty(count, dtype=torch.uint8)
            got = f.readinto(memoryview(array.numpy()))
            extra = len(f.read(1))
    except (OSError, EOFError, zlib.error) as exc:
        raise ConfigError(f"{path}: cannot read ({exc}); the file is truncated or not gzip") from None
    if got != count or extra:
        raise ConfigError(
            f"{path}: IDX {what} file is truncated or padded: header says {'x'.join(map(str, dims))} "
            f"({count} bytes of data), file holds {got}{'+' if extra else ''}"
        )
    return array.reshape(dims)
