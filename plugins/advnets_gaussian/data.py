"""A 1-D Gaussian target, the setting of the paper's Figure 1."""

from __future__ import annotations

import torch

from advnets import Data
from advnets.errors import ConfigError


def gaussian_1d(mu: float = 4.0, sigma: float = 0.5, n_train: int = 20000, n_test: int = 10000, seed: int = 0) -> Data:
    """Samples of N(mu, sigma^2) in one dimension: the paper's Figure 1 toy problem."""
    if sigma <= 0:
        raise ConfigError(f"dataset.sigma must be > 0, got {sigma}")
    if n_train < 1 or n_test < 0:
        raise ConfigError("dataset.n_train must be >= 1 and dataset.n_test >= 0")
    rng = torch.Generator().manual_seed(seed)  # the data set is a fixed draw, apart from the run's seed
    draws = torch.randn(n_train + n_test, 1, generator=rng).mul_(sigma).add_(mu)
    return Data(
        train=draws[:n_train],
        test=draws[n_train:] if n_test else None,
        name="gaussian-1d",
        meta={"mu": mu, "sigma": sigma},
    )
