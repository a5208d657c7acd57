"""Players: the networks of a game, each with its own optimiser and optional moving average.

A run has named players: ``generator`` and ``discriminator`` always, and any
others an objective asks for (an ``encoder`` for learned inference, say). The trainer treats
every player alike: it moves the module to the device, wraps it for data
parallelism under torchrun, builds its optimiser, keeps its moving average,
applies the NaN guard to its updates and saves all of it in checkpoints.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from .errors import ConfigError

# Where the two players of the 2014 game keep their state in a checkpoint (the
# names of the first release, so older checkpoints still load); other players
# live under players.<name>, optimizers.<name> and averages.<name>.
LEGACY_KEYS = {
    "generator": ("generator", "g_optimizer", "generator_ema"),
    "discriminator": ("discriminator", "d_optimizer", "discriminator_ema"),
}


def is_conditional(module: nn.Module) -> bool:
    """True if the module takes class labels as a second argument: ``G(z, y)``, ``D(x, y)``.

    A module says so with a positive integer attribute ``num_classes``.
    """
    classes = getattr(module, "num_classes", None)
    return isinstance(classes, int) and not isinstance(classes, bool) and classes > 0


def row_labels(n: int, per_row: int, num_classes: int, device: torch.device | None = None) -> Tensor:
    """Labels for a grid of n samples, ``per_row`` to a row: row r shows class r mod num_classes."""
    return torch.arange(n, device=device) // per_row % num_classes


def call(module: nn.Module, inputs: Tensor, labels: Tensor | None = None) -> Tensor:
    """``module(inputs)``, or ``module(inputs, labels)`` when labels are given (a conditional module)."""
    return module(inputs) if labels is None else module(inputs, labels)


@dataclasses.dataclass
class PlayerSpec:
    """A player beyond G and D for :class:`~advnets.AdversarialTrainer`: its module and optimiser maker."""

    module: nn.Module
    optimizer: Any = None
    """A maker ``params -> Optimizer`` (an optimizer component); default Adam at 2e-4, betas (0.5, 0.999)."""
    ema_decay: float = 0.0
    ema_start: int = 0
    ema_warmup: int = 0
    """Before ``ema_start``: 0 copies the weights; W > 0 averages them with decay (1 + t) / (W + 1 + t)."""


def check_average(ema_decay: float, ema_start: int, ema_warmup: int, where: str = "") -> None:
    """A moving average's settings, checked: one line naming the first that is out of range."""
    prefix = f"{where}: " if where else ""
    if not 0 <= ema_decay < 1:
        raise ConfigError(f"{prefix}ema_decay must be in [0, 1), got {ema_decay}")
    if ema_start < 0:
        raise ConfigError(f"{prefix}ema_start must be >= 0, got {ema_start}")
    if ema_warmup < 0:
        raise ConfigError(f"{prefix}ema_warmup must be >= 0, got {ema_warmup}")


@dataclasses.dataclass(eq=False)
class Player:
    """One network in the game and everything the trainer keeps for it."""

    name: str
    module: nn.Module
    """The plain module: for passes that must not start a gradient reduction across ranks."""
    optimizer: torch.optim.Optimizer
    params: list[Tensor]
    """The parameters this player trains (``requires_grad``)."""
    update_module: nn.Module
    """The module to call in this player's own update: its DDP wrapper under torchrun, else ``module``."""
    ema_decay: float = 0.0
    ema_start: int = 0
    ema_warmup: int = 0
    ema: nn.Module | None = None
    """The exponential moving average of the weights (sampling and evaluation use it), if kept."""
    base_lrs: list[float] = dataclasses.field(default_factory=list)
    recompute_norms: bool = False
    """The average's batch-norm statistics are recomputed for its own weights before use (the
    trainer does it, see ``ema_norm_batches``) instead of copied from the module each step."""

    def __post_init__(self) -> None:
        if self.ema_decay > 0 and self.ema is None:
            self.ema = copy.deepcopy(self.module).requires_grad_(False).eval()
        trained = [p.requires_grad for p in self.module.parameters()]  # frozen ones never move
        self._ema_params = [] if self.ema is None else [q for q, t in zip(self.ema.parameters(), trained) if t]
        self.base_lrs = [group["lr"] for group in self.optimizer.param_groups]
        # The batch-norm layers of the average that keep running statistics (none without an average).
        self.norm_layers = [
            m for m in (self.ema.modules() if self.ema is not None else ()) if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
        ]
        self.recompute_norms = self.recompute_norms and bool(self.norm_layers)
        kept = {id(b) for m in self.norm_layers for b in m.buffers(recurse=False)} if self.recompute_norms else set()
        self._ema_buffers = (
            []
            if self.ema is None
            else [(q, b) for q, b in zip(self.ema.buffers(), self.module.buffers()) if id(q) not in kept]
        )

    @torch.no_grad()
    def update_average(self, step: int, applied: Tensor | None = None) -> None:
        """theta_ema <- decay * theta_ema + (1 - decay) * theta, with ``ema_decay`` from ``ema_start`` on.

        Before ``ema_start`` the average is a plain copy of the weights, or with
        ``ema_warmup`` W > 0 a short average with decay (1 + t) / (W + 1 + t) at step t
        (about the last t / W steps), so samples drawn early are already smoothed; it
        restarts as a copy at step ``ema_start`` - 1, so what comes after does not
        depend on W.

        ``applied`` (a 0-d bool tensor on the device) masks the update without a host read: where
        it is false the average stays exactly as it was (a lerp with weight 0). A copy is made
        whatever ``applied`` says: a skipped update left the weights as they were, so copying
        them is right either way, and the restart before ``ema_start`` then never keeps the
        warm-up average.
        """
        weight = self.average_weight(step)
        if weight is None:
            return
        if applied is None or weight == 1.0:
            torch._foreach_lerp_(self._ema_params, self.params, weight)
            for ema_buffer, buffer in self._ema_buffers:
                ema_buffer.copy_(buffer)
            return
        if applied.device.type == "cpu":  # a tensor weight is read on the host: free on the CPU
            torch._foreach_lerp_(self._ema_params, self.params, applied * weight)
        else:  # on a GPU that read would be a sync: lerp towards theta, or towards itself (exactly a no-op)
            targets = [torch.where(applied, p, q) for p, q in zip(self.params, self._ema_params)]
            torch._foreach_lerp_(self._ema_params, targets, weight)
        for ema_buffer, buffer in self._ema_buffers:
            ema_buffer.copy_(torch.where(applied, buffer, ema_buffer))

    def average_weight(self, step: int) -> float | None:
        """The weight of theta in the average's update at ``step`` (1: a copy); None without an average."""
        if self.ema is None:
            return None
        if step >= self.ema_start:
            return 1.0 - self.ema_decay
        if self.ema_warmup and 0 < step < self.ema_start - 1:
            return self.ema_warmup / (self.ema_warmup + 1 + step)
        return 1.0

    @property
    def skips_on_device(self) -> bool:
        """True if the optimiser can skip a step on the device (torch's fused kernels read ``found_inf``)."""
        return bool(getattr(self.optimizer, "_step_supports_amp_scaling", False))

    @property
    def sampling_module(self) -> nn.Module:
        """The moving average when there is one, else the module."""
        return self.module if self.ema is None else self.ema

    def state_keys(self) -> tuple[str, str, str]:
        """(module, optimizer, average) keys of this player's state in a checkpoint."""
        return LEGACY_KEYS.get(self.name, (f"players.{self.name}", f"optimizers.{self.name}", f"averages.{self.name}"))

    def state_dict(self) -> dict[str, Any]:
        module_key, optimizer_key, ema_key = self.state_keys()
        state = {module_key: self.module.state_dict(), optimizer_key: self.optimizer.state_dict()}
        if self.ema is not None:
            state[ema_key] = self.ema.state_dict()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        module_key, optimizer_key, ema_key = self.state_keys()
        for key in (module_key, optimizer_key):
            if key not in state:
                raise KeyError(f"the checkpoint has no {key!r} (player {self.name!r})")
        self.module.load_state_dict(state[module_key])
        if self.ema is not None:
            self.ema.load_state_dict(state.get(ema_key, state[module_key]))
        self.optimizer.load_state_dict(state[optimizer_key])


class Players(Mapping[str, Player]):
    """The players of a run by name, in the order they were given (generator and discriminator first)."""

    def __init__(self, players: list[Player]) -> None:
        self._players = {p.name: p for p in players}

    def __getitem__(self, name: str) -> Player:
        try:
            return self._players[name]
        except KeyError:
            raise KeyError(f"no player {name!r}; the players are {', '.join(self._players)}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._players)

    def __len__(self) -> int:
        return len(self._players)

    def __getattr__(self, name: str) -> Player:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._players[name]
        except KeyError:
            raise AttributeError(f"no player {name!r}") from None
