"""What a dataset component gives the trainer: tensors, and how to read them.

Data lives on the training device as one tensor in its compact storage type
(60,000 images of 28x28 as uint8: 47 MB) and is batched by index there; each batch is
turned into the model's float range on the fly. No per-sample Python work.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

from .errors import ConfigError


@dataclasses.dataclass
class Data:
    """Training (and optionally test) samples of one shape.

    ``raw_range`` and ``model_range`` describe a linear map: stored values in
    ``raw_range`` (e.g. 0..255 pixels) become model inputs in ``model_range``
    (e.g. -1..1, to match a Tanh generator). Without them samples are used as
    stored, cast to float32. ``unit_range`` maps model space to [0, 1] for images
    and for metrics defined on that scale (the paper's kernel density estimate).
    """

    train: Tensor | torch.utils.data.Dataset
    """All training samples as one tensor (N, ...), or a map-style ``torch.utils.data.Dataset`` to
    stream from (items: a raw sample tensor, or ``(sample, label)``); see :mod:`advnets.sources`."""
    test: Tensor | None = None
    valid: Tensor | None = None
    """Held-out samples for choosing a metric's hyper-parameters (a kernel's width, say)."""
    train_labels: Tensor | None = None
    """Class labels of the training samples (integers in [0, num_classes)), for conditional models."""
    test_labels: Tensor | None = None
    valid_labels: Tensor | None = None
    num_classes: int | None = None
    """How many classes the labels name; required with labels."""
    raw_range: tuple[float, float] | None = None
    model_range: tuple[float, float] | None = None
    name: str = ""
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)
    """JSON-able facts about the data that metrics may need (the target's parameters, say)."""

    stream_workers: int = 0
    """For a streamed ``train``: DataLoader worker processes (0 loads in the training process)."""
    sample_size: tuple[int, ...] | None = None
    """For a streamed ``train``: the shape of one sample (read from the first item if not given)."""
    train_class_counts: Tensor | None = None
    """For a streamed, labelled ``train``: samples per class (what fake labels are drawn from)."""

    def __post_init__(self) -> None:
        if self.streamed:
            if len(self.train) == 0:
                raise ConfigError(f"dataset {self.name!r}: the training set is empty")
            if self.sample_size is None:
                first = self.train[0]
                self.sample_size = tuple((first[0] if isinstance(first, tuple) else first).shape)
        elif not isinstance(self.train, Tensor) or self.train.dim() < 2 or len(self.train) == 0:
            raise ConfigError(f"dataset {self.name!r}: train must be a non-empty tensor of shape (N, ...)")
        for split in ("test", "valid"):
            other = getattr(self, split)
            if other is not None and tuple(other.shape[1:]) != self.sample_shape:
                raise ConfigError(f"dataset {self.name!r}: {split} samples have another shape than train samples")
        if (self.raw_range is None) != (self.model_range is None):
            raise ConfigError(f"dataset {self.name!r}: give both raw_range and model_range, or neither")
        for key in ("raw_range", "model_range"):
            value = getattr(self, key)
            if value is None:
                continue
            if not (isinstance(value, (tuple, list)) and len(value) == 2 and all(is_finite_number(v) for v in value)):
                raise ConfigError(f"dataset {self.name!r}: {key} must be two finite numbers (low, high), got {value!r}")
            if value[0] == value[1]:
                raise ConfigError(f"dataset {self.name!r}: {key}'s two ends are the same ({value[0]}): no range to map")
        self._check_labels()

    def _check_labels(self) -> None:
        """Labels, where given, are integers in [0, num_classes), one per sample of their split."""
        splits = {split: getattr(self, f"{split}_labels") for split in ("train", "test", "valid")}
        if self.streamed and splits["train"] is not None:
            raise ConfigError(f"dataset {self.name!r}: a streamed training set brings its labels with its items")
        if not self.labelled and any(labels is not None for labels in splits.values()):
            raise ConfigError(f"dataset {self.name!r}: test or valid labels without training labels")
        if not self.labelled:
            if self.num_classes is not None:
                where = "train_class_counts (samples per class)" if self.streamed else "train_labels"
                raise ConfigError(f"dataset {self.name!r}: num_classes is set, but there are no labels: give {where}")
            return
        if not isinstance(self.num_classes, int) or isinstance(self.num_classes, bool) or self.num_classes < 1:
            raise ConfigError(f"dataset {self.name!r}: labelled data needs num_classes >= 1, got {self.num_classes!r}")
        if self.train_class_counts is not None and tuple(self.train_class_counts.shape) != (self.num_classes,):
            raise ConfigError(f"dataset {self.name!r}: train_class_counts must have num_classes entries")
        for split, labels in splits.items():
            if labels is None:
                continue
            samples = getattr(self, split)
            if samples is None or labels.shape != (len(samples),):
                raise ConfigError(f"dataset {self.name!r}: {split}_labels must have one label per {split} sample")
            if labels.dtype.is_floating_point or labels.dtype == torch.bool:
                raise ConfigError(f"dataset {self.name!r}: {split}_labels must be integers, got {labels.dtype}")
            if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
                raise ConfigError(
                    f"dataset {self.name!r}: a {split} label is out of range [0, {self.num_classes}): "
                    f"found {int(labels.min())}..{int(labels.max())}"
                )
            setattr(self, f"{split}_labels", labels.to(torch.int64))

    @property
    def streamed(self) -> bool:
        """True if batches are loaded as training goes (a Dataset), not drawn from a resident tensor."""
        return not isinstance(self.train, Tensor)

    @property
    def labelled(self) -> bool:
        return self.train_labels is not None or self.train_class_counts is not None

    def class_frequencies(self) -> Tensor:
        """The share of each class among the training labels (what fake labels are drawn from)."""
        if not self.labelled:
            raise ConfigError(f"dataset {self.name!r} has no labels")
        counts = self.train_class_counts
        if counts is None:
            counts = torch.bincount(self.train_labels.cpu(), minlength=self.num_classes)
        return counts.to(torch.float64) / counts.sum()

    def train_blocks(self, size: int) -> Iterator[tuple[int, Tensor]]:
        """The training samples as stored, in order, ``size`` at a time: (index of the first, block).

        A streamed training set is read through a DataLoader with its ``stream_workers``,
        so memory holds one block whatever the dataset's size.
        """
        if not self.streamed:
            for start in range(0, len(self.train), size):
                yield start, self.train[start : start + size]
            return
        start = 0
        for item in torch.utils.data.DataLoader(self.train, batch_size=size, num_workers=self.stream_workers):
            raw = item[0] if isinstance(item, (list, tuple)) else item
            yield start, raw
            start += len(raw)

    def train_samples(self, index: Tensor) -> Tensor:
        """The training samples at ``index``, as stored (one tensor, for streamed data too)."""
        if not self.streamed:
            return self.train[index]
        items = [self.train[int(i)] for i in index]
        return torch.stack([item[0] if isinstance(item, (list, tuple)) else item for item in items])

    @property
    def sample_shape(self) -> tuple[int, ...]:
        if self.streamed:
            return tuple(self.sample_size)
        return tuple(self.train.shape[1:])

    @property
    def is_image(self) -> bool:
        """(C, H, W) samples with a known value range can be shown as a grid."""
        return len(self.sample_shape) == 3 and self.model_range is not None

    def decode(self, raw: Tensor) -> Tensor:
        """Stored values to float32 model inputs."""
        x = raw.to(torch.float32, copy=True)  # never scale the caller's tensor in place
        if self.raw_range is None:
            return x
        (r0, r1), (m0, m1) = self.raw_range, self.model_range
        scale = (m1 - m0) / (r1 - r0)
        return x.mul_(scale).add_(m0 - r0 * scale)

    def info(self) -> dict[str, Any]:
        """What sampling needs without the data itself (stored in checkpoints)."""
        return {
            "name": self.name,
            "shape": list(self.sample_shape),
            "model_range": None if self.model_range is None else list(self.model_range),
            "num_classes": self.num_classes,
            "meta": self.meta,
        }


def to_unit(x: Tensor, model_range: tuple[float, float] | list[float] | None) -> Tensor:
    """Model-space samples to [0, 1] (clamped); unchanged without a known range."""
    if model_range is None:
        return x
    lo, hi = model_range
    return ((x - lo) / (hi - lo)).clamp_(0, 1)


def is_finite_number(value: Any) -> bool:
    """A finite int or float (not a bool): what a checked setting, range or saved number must be."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
