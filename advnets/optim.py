"""Optimizer components.

An optimizer component's factory takes JSON-able settings and returns a *maker*:
a function from a model's parameters to a ``torch.optim.Optimizer``. The trainer
calls the maker once the models are on their device.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable

import torch

from .errors import ConfigError

OptimizerMaker = Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer]

IMPLEMENTATIONS = ("auto", "fused", "foreach", "for-loop")


def _check(name: str, lr: float, weight_decay: float) -> None:
    if lr <= 0:
        raise ConfigError(f"{name}: lr must be > 0, got {lr}")
    if weight_decay < 0:
        raise ConfigError(f"{name}: weight_decay must be >= 0, got {weight_decay}")


def _impl_kwargs(name: str, impl: str) -> dict[str, bool]:
    if impl not in IMPLEMENTATIONS:
        raise ConfigError(f"{name}: impl must be one of {', '.join(IMPLEMENTATIONS)}, got {impl!r}")
    return {
        "auto": {},  # torch picks foreach where it can
        "fused": {"fused": True},
        "foreach": {"foreach": True},
        "for-loop": {"foreach": False},
    }[impl]


def adam(
    lr: float = 2e-4,
    betas: list[float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    impl: str = "auto",
) -> OptimizerMaker:
    """Adam (Kingma and Ba 2015); impl picks torch's fused, foreach or for-loop kernels."""
    _check("adam", lr, weight_decay)
    if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
        raise ConfigError(f"adam: betas must be two numbers in [0, 1), got {list(betas)}")
    return functools.partial(
        torch.optim.Adam,
        lr=lr,
        betas=tuple(betas),
        eps=eps,
        weight_decay=weight_decay,
        **_impl_kwargs("adam", impl),
    )


def sgd(
    lr: float = 0.1, momentum: float = 0.5, nesterov: bool = False, weight_decay: float = 0.0, impl: str = "auto"
) -> OptimizerMaker:
    """SGD with momentum, as in the paper's own experiments."""
    _check("sgd", lr, weight_decay)
    if not 0 <= momentum < 1:
        raise ConfigError(f"sgd: momentum must be in [0, 1), got {momentum}")
    return functools.partial(
        torch.optim.SGD,
        lr=lr,
        momentum=momentum,
        nesterov=nesterov,
        weight_decay=weight_decay,
        **_impl_kwargs("sgd", impl),
    )


def rmsprop(lr: float = 5e-5, alpha: float = 0.99, weight_decay: float = 0.0, impl: str = "auto") -> OptimizerMaker:
    """RMSprop, the original WGAN's choice."""
    _check("rmsprop", lr, weight_decay)
    return functools.partial(
        torch.optim.RMSprop, lr=lr, alpha=alpha, weight_decay=weight_decay, **_impl_kwargs("rmsprop", impl)
    )


BUILTIN_OPTIMIZERS = {"adam": adam, "sgd": sgd, "rmsprop": rmsprop}
