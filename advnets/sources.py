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


def _drew_past_the_epoch(batches: int) -> ConfigError:
    return ConfigError(
        f"the step drew more than the {batches} batches of an epoch; "
        "an objective must draw no more batches than its batches_per_step says"
    )


def _too_few_samples(samples: int, batch_size: int, world_size: int) -> ConfigError:
    return ConfigError(
        f"the training set has {samples} samples, fewer than one batch needs "
        f"(batch_size * processes = {batch_size * world_size})"
    )


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
            raise _too_few_samples(len(self._train), batch_size, world_size)
        self.cursor = 0  # batches drawn in this epoch
        self.order: Tensor | None = None  # this epoch's permutation, drawn at its first batch
        # For a captured step (advnets.graphs): the cursor as a device tensor, refilled
        # before each replay, and the order in one buffer that every epoch overwrites.
        self._static: tuple[Tensor, Tensor, Tensor] | None = None  # (cursor, offsets 0..batch_size-1, order)
        self.reading_static = False  # batches found through the device cursor (while a step is captured)

    def remaining(self) -> int:
        """Batches left in this epoch."""
        return self.batches_per_epoch - self.cursor

    def next(self) -> Batch:
        """x(1..m) ~ p_data: the next batch of this epoch's random order."""
        if self.cursor >= self.batches_per_epoch:
            raise _drew_past_the_epoch(self.batches_per_epoch)
        if self.order is None:
            self._draw_order()
        assert self.order is not None
        if not self.reading_static or self._static is None:
            start = (self.cursor * self.world_size + self.rank) * self.batch_size
            index = self.order[start : start + self.batch_size]
        else:  # the same slice, found on the device: a replay reads the cursor from memory
            cursor, offsets, _ = self._static
            index = torch.index_select(self.order, 0, (cursor * self.world_size + self.rank) * self.batch_size + offsets)
            cursor += 1
        self.cursor += 1
        x = self.data.decode(torch.index_select(self._train, 0, index))
        labels = None if self._labels is None else torch.index_select(self._labels, 0, index)
        return Batch(x, labels)

    def _draw_order(self) -> None:
        self._keep_order(torch.randperm(len(self._train), generator=self._rng, device=self.device))

    def _keep_order(self, order: Tensor) -> None:
        """This epoch's order; with static batches, in the buffer a replay reads."""
        self.order = order if self._static is None else self._static[2].copy_(order)

    def new_epoch(self) -> None:
        """The leftover batches wait for the next order."""
        self.cursor = 0
        self.order = None

    # --- for a captured step (advnets.graphs) -------------------------------------------

    capturable = True
    """Batches can come from fixed device memory: see :meth:`set_static`."""

    def set_static(self, static: bool) -> None:
        """Keep the epoch's order in one buffer, and a cursor on the device, for captured steps.

        With ``reading_static`` set, :meth:`next` finds its batch through the device
        cursor instead of a Python slice: the same batch, in a form a CUDA graph can
        capture, because its inputs (the cursor, the order buffer) stay at fixed
        addresses and :meth:`feed` fills them before each replay.
        """
        if not static:
            self._static = None
            self.reading_static = False
            return
        if self._static is None:
            cursor = torch.zeros((), dtype=torch.int64, device=self.device)
            order = torch.empty(len(self._train), dtype=torch.int64, device=self.device)
            self._static = (cursor, torch.arange(self.batch_size, device=self.device), order)
        if self.order is not None:
            self._keep_order(self.order)

    def feed(self) -> None:
        """Before a replay: this epoch's order drawn into its buffer, the cursor written to the device."""
        assert self._static is not None, "feed() needs set_static(True)"
        if self.order is None:
            self._draw_order()
        self._static[0].fill_(self.cursor)

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"cursor": self.cursor}
        if self.order is not None:
            state["order"] = self.order
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.cursor = state["cursor"]
        order = state.get("order")
        # a copy: an in-memory state may hold another source's order buffer, which its next epoch overwrites
        self.order = None
        if order is not None:
            self._keep_order(order.to(self.device, copy=True))


class _EpochBatches(torch.utils.data.Sampler):
    """The index lists of this rank's remaining batches of the current epoch (a DataLoader batch_sampler)."""

    def __init__(self, source: StreamSource) -> None:
        self.source = source

    def __iter__(self):
        return iter(self.source.pending_batches())

    def __len__(self) -> int:
        return self.source.remaining()


class StreamSource:
    """Batches loaded as training goes, from any map-style ``torch.utils.data.Dataset``.

    For data that does not fit on the device (or in memory): a DataLoader with
    ``data.stream_workers`` worker processes reads and transforms the samples, in
    pinned memory on CUDA. The order is a function of the seed and the epoch
    alone, the same on every rank, and each rank takes its slice of every global
    batch, so every sample is seen once per epoch across the ranks. Where the
    epoch stands is one number (the batches drawn), so a resumed run skips
    exactly the batches already trained on and continues bit for bit.
    """

    def __init__(
        self,
        data: Data,
        batch_size: int,
        device: torch.device,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.data = data
        self.batch_size, self.rank, self.world_size = batch_size, rank, world_size
        self.device, self.seed = device, seed
        self.batches_per_epoch = len(data.train) // (batch_size * world_size)
        if self.batches_per_epoch == 0:
            raise _too_few_samples(len(data.train), batch_size, world_size)
        self.epoch = 0  # epochs this source has served (its order depends on it)
        self.cursor = 0
        self._iterator = None
        workers = data.stream_workers
        self._loader = torch.utils.data.DataLoader(
            data.train,
            batch_sampler=_EpochBatches(self),
            num_workers=workers,
            pin_memory=device.type == "cuda",
            persistent_workers=workers > 0,
            # the loader's own seed for its workers, never drawn from torch's global stream,
            # which is part of what a checkpoint restores
            generator=torch.Generator().manual_seed(seed),
        )

    capturable = False
    """A DataLoader's batches come through the host: a step on streamed data is not captured."""

    def order(self) -> Tensor:
        """This epoch's permutation of the training set: a function of the seed and the epoch."""
        rng = torch.Generator().manual_seed(self.seed * 1000003 + self.epoch)
        return torch.randperm(len(self.data.train), generator=rng)

    def pending_batches(self) -> list[list[int]]:
        order, size, world = self.order(), self.batch_size, self.world_size
        return [
            order[(b * world + self.rank) * size : (b * world + self.rank + 1) * size].tolist()
            for b in range(self.cursor, self.batches_per_epoch)
        ]

    def remaining(self) -> int:
        return self.batches_per_epoch - self.cursor

    def next(self) -> Batch:
        if self.cursor >= self.batches_per_epoch:
            raise _drew_past_the_epoch(self.batches_per_epoch)
        if self._iterator is None:
            self._iterator = iter(self._loader)
        try:
            item = next(self._iterator)
        except ConfigError as exc:  # raised in a worker: keep its own last line, not the worker's traceback
            raise ConfigError(str(exc).strip().splitlines()[-1].partition("ConfigError: ")[2] or str(exc)) from None
        self.cursor += 1
        if isinstance(item, (list, tuple)):  # (x,) from a one-tensor TensorDataset, or (x, label)
            raw, labels = item[0], item[1] if len(item) > 1 else None
        else:
            raw, labels = item, None
        x = self.data.decode(raw.to(self.device, non_blocking=True))
        return Batch(x, None if labels is None else labels.to(self.device, torch.int64, non_blocking=True))

    def new_epoch(self) -> None:
        self.epoch += 1
        self.cursor = 0
        self._iterator = None  # the loader's next iterator reads the next epoch's batches

    def state_dict(self) -> dict[str, Any]:
        return {"cursor": self.cursor, "source_epoch": self.epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.cursor = state["cursor"]
        self.epoch = state.get("source_epoch", 0)
        self.seed = state.get("seed", self.seed)
        self._iterator = None


def make_source(data: Data, batch_size: int, device: torch.device, rng: torch.Generator, seed: int, rank: int, world_size: int):
    """The tensor-resident source for tensors, the streamed one for a Dataset."""
    if data.streamed:
        return StreamSource(data, batch_size, device, seed, rank, world_size)
    return TensorSource(data, batch_size, device, rng, rank, world_size)
