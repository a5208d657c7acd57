"""Batches and where they come from.

A :class:`Batch` is what an objective gets from the data: the samples, already
in the model's value range, and their class labels when the dataset has them.

A *source* hands out the batches of an epoch in a random order and can say how
many are left, so that the trainer can end an epoch before a step would run
short. :class:`TensorSource` is the fast path for data that fits on the device:
the whole training set lives there in its compact storage type, each epoch is
one ``randperm`` on the device, and a batch is an ``index_select``. There is no
per-sample Python work and no host-device copy in the hot loop.

Under torchrun every rank draws the same permutation and takes its own slice of
each global batch of ``world_size * batch_size`` samples, so every sample is
seen once per epoch across the ranks.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import Tensor

from .data import Data
from .errors import ConfigError


@dataclasses.dataclass
class Batch:
    """Samples (model space) and, for labelled data, their class labels (int64, one per sample)."""

    x: Tensor
    labels: Tensor | None = None

    def __len__(self) -> int:
        return len(self.x)


class TensorSource:
    """Batches drawn by index from a training set that lives on the device."""

    def __init__(
        self,
        data: Data,
        batch_size: int,
        device: torch.device,
        rng: torch.Generator,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.data = data
        self.batch_size, self.rank, self.world_size = batch_size, rank, world_size
        self.device = device
        self._rng = rng
        self._train = data.train.to(device)
        self._labels = None if data.train_labels is None else data.train_labels.to(device)
        self.batches_per_epoch = len(self._train) // (batch_size * world_size)
        if self.batches_per_epoch == 0:
            raise ConfigError(
                f"the training set has {len(self._train)} samples, fewer than one batch needs "
                f"(batch_size * processes = {batch_size * world_size})"
            )
        self.cursor = 0  # batches drawn in this epoch
        self.order: Tensor | None = None  # this epoch's permutation, drawn at its first batch

    def remaining(self) -> int:
        """Batches left in this epoch."""
        return self.batches_per_epoch - self.cursor

    def next(self) -> Batch:
        """x(1..m) ~ p_data: the next batch of this epoch's random order."""
        if self.cursor >= self.batches_per_epoch:
            raise ConfigError(
                f"the step drew more than the {self.batches_per_epoch} batches of an epoch; "
                "an objective must draw no more batches than its batches_per_step says"
            )
        if self.order is None:
            self.order = torch.randperm(len(self._train), generator=self._rng, device=self.device)
        start = (self.cursor * self.world_size + self.rank) * self.batch_size
        self.cursor += 1
        index = self.order[start : start + self.batch_size]
        x = self.data.decode(torch.index_select(self._train, 0, index))
        labels = None if self._labels is None else torch.index_select(self._labels, 0, index)
        return Batch(x, labels)

    def new_epoch(self) -> None:
        """The leftover batches wait for the next order."""
        self.cursor = 0
        self.order = None

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"cursor": self.cursor}
        if self.order is not None:
            state["order"] = self.order
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.cursor = state["cursor"]
        order = state.get("order")
        self.order = None if order is None else order.to(self.device)
