"""Per-step settings: learning-rate schedulers from ``torch.optim.lr_scheduler``, and k.

An ``lr-scheduler`` component's factory takes JSON-able settings and returns a
*maker* ``(optimizer, total_steps) -> LRScheduler``; the trainer makes one per
player, steps each once per training step, and saves their state in every
checkpoint, so a resumed run follows the same curve. ``total_steps`` is the
run's last step (its ``steps`` or ``epochs`` target).

The built-ins cover the usual curves, and ``torch`` reaches any scheduler class
torch has by name, with its keyword arguments (the text ``"total_steps"`` as a
value stands for the run's last step)::

    --set lr_scheduler=warmup-cosine --set lr_scheduler.warmup_steps=500
    --set lr_scheduler=torch --set lr_scheduler.scheduler=OneCycleLR \\
        --set 'lr_scheduler.settings={"max_lr": 0.001, "total_steps": "total_steps"}'

k, Algorithm 1's discriminator updates per generator update, may follow a
piecewise-constant schedule ``trainer.k_schedule``: ``[[0, 5], [1000, 1]]`` is
k = 5 for steps 0-999 and 1 after. It is a function of the step alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch.optim import lr_scheduler

from .errors import ConfigError

SchedulerMaker = Callable[[torch.optim.Optimizer, int], Any]


def _check_steps(name: str, **values: int) -> None:
    for key, value in values.items():
        if value < 0:
            raise ConfigError(f"lr_scheduler {name}: {key} must be >= 0, got {value}")


def constant() -> SchedulerMaker | None:
    """The optimisers' learning rates throughout (no scheduler)."""
    return None


def warmup_cosine(warmup_steps: int = 0, min_factor: float = 0.0, decay_steps: int = 0) -> SchedulerMaker:
    """Linear warm-up from 0 over warmup_steps, then a half cosine down to min_factor x lr at the last step.

    ``decay_steps`` > 0 ends the cosine at that step instead, and keeps min_factor after it: a run
    stopped early (``--epochs 1``) then follows the first part of the full run's curve.
    """
    _check_steps("warmup-cosine", warmup_steps=warmup_steps)
    if not 0 <= min_factor <= 1:
        raise ConfigError(f"lr_scheduler warmup-cosine: min_factor must be in [0, 1], got {min_factor}")
    if isinstance(decay_steps, bool) or not isinstance(decay_steps, int) or not (decay_steps == 0 or decay_steps > warmup_steps):
        raise ConfigError(
            f"lr_scheduler warmup-cosine: decay_steps must be 0 (the run's last step) or more than warmup_steps, got {decay_steps!r}"
        )

    def factor(total: int) -> Callable[[int], float]:
        end = decay_steps or total

        def at(step: int) -> float:
            if step < warmup_steps:
                return (step + 1) / warmup_steps
            done = min((step - warmup_steps) / max(end - warmup_steps, 1), 1.0)
            return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * done))

        return at

    return lambda optimizer, total: lr_scheduler.LambdaLR(optimizer, factor(total))


def warmup(warmup_steps: int = 1000) -> SchedulerMaker:
    """Linear warm-up from 0 to the optimiser's lr over warmup_steps, then constant."""
    _check_steps("warmup", warmup_steps=warmup_steps)
    return lambda optimizer, total: lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / max(warmup_steps, 1)))


def step_decay(every_steps: int = 10000, gamma: float = 0.5) -> SchedulerMaker:
    """Multiply the learning rate by gamma every every_steps steps (torch's StepLR)."""
    if every_steps < 1 or not 0 < gamma <= 1:
        raise ConfigError("lr_scheduler step: every_steps must be >= 1 and gamma in (0, 1]")
    return lambda optimizer, total: lr_scheduler.StepLR(optimizer, step_size=every_steps, gamma=gamma)


def torch_scheduler(scheduler: str = "CosineAnnealingLR", settings: dict = {"T_max": "total_steps"}) -> SchedulerMaker:  # noqa: B006 - a JSON default, copied by the registry
    """Any class of torch.optim.lr_scheduler by name, with its keyword settings ("total_steps": the run's last step)."""
    cls = getattr(lr_scheduler, scheduler, None)
    if not (isinstance(cls, type) and issubclass(cls, lr_scheduler.LRScheduler)) or scheduler in ("SequentialLR", "ChainedScheduler", "LambdaLR", "MultiplicativeLR"):
        known = sorted(
            n for n, c in vars(lr_scheduler).items()
            if isinstance(c, type) and issubclass(c, lr_scheduler.LRScheduler) and not n.startswith("_")
            and n not in ("LRScheduler", "SequentialLR", "ChainedScheduler", "LambdaLR", "MultiplicativeLR", "ReduceLROnPlateau")
        )
        raise ConfigError(f"lr_scheduler torch: unknown scheduler {scheduler!r}; one of {', '.join(known)}")

    def make(optimizer: torch.optim.Optimizer, total: int) -> Any:
        kwargs = {key: total if value == "total_steps" else value for key, value in settings.items()}
        try:
            return cls(optimizer, **kwargs)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"lr_scheduler torch {scheduler}: {exc}") from None

    return make


BUILTIN_LR_SCHEDULERS = {
    "constant": constant,
    "warmup": warmup,
    "warmup-cosine": warmup_cosine,
    "step": step_decay,
    "torch": torch_scheduler,
}


def check_k_schedule(schedule: list | None) -> list[tuple[int, int]] | None:
    """``[[step, k], ...]`` with steps rising from 0 and every k >= 1; a clear error otherwise."""
    if schedule is None:
        return None
    pairs = []
    for entry in schedule:
        if (
            not isinstance(entry, list) or len(entry) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in entry)
        ):
            raise ConfigError(f"trainer.k_schedule must be a list of [step, k] pairs of integers, got {schedule!r}")
        pairs.append((entry[0], entry[1]))
    if not pairs or pairs[0][0] != 0:
        raise ConfigError("trainer.k_schedule must start at step 0, e.g. [[0, 5], [1000, 1]]")
    if any(b[0] <= a[0] for a, b in zip(pairs, pairs[1:])):
        raise ConfigError("trainer.k_schedule's steps must rise")
    if any(k < 1 for _, k in pairs):
        raise ConfigError("trainer.k_schedule: every k must be >= 1")
    return pairs


def k_at(schedule: list[tuple[int, int]], step: int) -> int:
    value = schedule[0][1]
    for start, k in schedule:
        if step < start:
            break
        value = k
    return value
