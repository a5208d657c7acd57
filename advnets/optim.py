"""Optimizer components.

An optimizer component's factory takes JSON-able settings and returns a *maker*:
a function from a model's parameters to a ``torch.optim.Optimizer``. The trainer
calls the maker once the models are on their device.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable

import torch

from .errors import ConfigError, first_line

OptimizerMaker = Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer]

IMPLEMENTATIONS = ("auto", "fused", "foreach", "for-loop")


def _check(name: str, lr: float, weight_decay: float) -> None:
    if lr <= 0:
        raise ConfigError(f"{name}: lr must be > 0, got {lr}")
    if weight_decay < 0:
        raise ConfigError(f"{name}: weight_decay must be >= 0, got {weight_decay}")


def _maker(name: str, cls: type[torch.optim.Optimizer], impl: str, **settings: object) -> OptimizerMaker:
    """A maker for ``cls``; ``auto`` takes torch's fused kernel where the class and device have one.

    Fused steps update all parameters in one multi-threaded kernel: on this
    project's 2-core CPU they cut Adam's share of a step of a small fully connected GAN from about a
    third to about a tenth (docs/performance.md).
    """
    if impl not in IMPLEMENTATIONS:
        raise ConfigError(f"{name}: impl must be one of {', '.join(IMPLEMENTATIONS)}, got {impl!r}")
    has_fused = "fused" in inspect.signature(cls).parameters
    if impl == "fused" and not has_fused:
        raise ConfigError(f"{name}: torch has no fused {cls.__name__}; use impl=foreach")
    try:  # a dry build on one parameter: torch's own checks (eps < 0, a beta of 1) as one line, now
        cls([torch.nn.Parameter(torch.zeros(1))], **settings)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{name}: {first_line(exc)}") from None

    def make(params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
        params = list(params)
        if impl == "auto" and has_fused:
            try:
                return cls(params, fused=True, **settings)
            except RuntimeError:  # a device without the fused kernel
                return cls(params, **settings)
        extra = {"fused": {"fused": True}, "foreach": {"foreach": True}, "for-loop": {"foreach": False}}.get(impl, {})
        return cls(params, **settings, **extra)

    return make


def adam(
    lr: float = 2e-4,
    betas: list[float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    impl: str = "auto",
) -> OptimizerMaker:
    """Adam (Kingma and Ba 2015); impl: auto (fused where possible), fused, foreach or for-loop."""
    _check("adam", lr, weight_decay)
    if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
        raise ConfigError(f"adam: betas must be two numbers in [0, 1), got {list(betas)}")
    return _maker("adam", torch.optim.Adam, impl, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)


def sgd(
    lr: float = 0.1, momentum: float = 0.5, nesterov: bool = False, weight_decay: float = 0.0, impl: str = "auto"
) -> OptimizerMaker:
    """SGD with momentum, as in the paper's own experiments."""
    _check("sgd", lr, weight_decay)
    if not 0 <= momentum < 1:
        raise ConfigError(f"sgd: momentum must be in [0, 1), got {momentum}")
    return _maker("sgd", torch.optim.SGD, impl, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)


def rmsprop(lr: float = 5e-5, alpha: float = 0.99, weight_decay: float = 0.0, impl: str = "auto") -> OptimizerMaker:
    """RMSprop, the original WGAN's choice."""
    _check("rmsprop", lr, weight_decay)
    return _maker("rmsprop", torch.optim.RMSprop, impl, lr=lr, alpha=alpha, weight_decay=weight_decay)


BUILTIN_OPTIMIZERS = {"adam": adam, "sgd": sgd, "rmsprop": rmsprop}
