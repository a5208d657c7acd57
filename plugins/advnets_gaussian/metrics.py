"""Distances between G's 1-D samples and the Gaussian target, computed exactly against its CDF."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from advnets import Data
from advnets.errors import ConfigError


def _target(data: Data) -> tuple[float, float]:
    try:
        return float(data.meta["mu"]), float(data.meta["sigma"])
    except (KeyError, TypeError):
        raise ConfigError(f"gaussian metrics need a gaussian-1d dataset, not {data.name!r}") from None


def _sorted(samples: Tensor) -> Tensor:
    return samples.detach().reshape(-1).to("cpu", torch.float64).sort().values


def normal_cdf(x: Tensor, mu: float, sigma: float) -> Tensor:
    return 0.5 * (1 + torch.erf((x - mu) / (sigma * math.sqrt(2))))


def wasserstein_1(samples: Tensor, mu: float, sigma: float) -> float:
    """W1 between the samples' empirical distribution and N(mu, sigma^2).

    W1 = integral |F_n(x) - F(x)| dx, computed exactly: F_n is constant between
    sorted samples, and the integral of |c - F| over an interval has a closed form
    through the normal's partial expectation.
    """
    x = _sorted(samples)
    n = len(x)
    # integral_a^b |c - F(t)| dt for constant c; with G(t) = integral F = (t-mu)F(t) + sigma^2 f(t)
    def big_f(t: Tensor) -> Tensor:
        z = (t - mu) / sigma
        pdf = torch.exp(-0.5 * z * z) / (sigma * math.sqrt(2 * math.pi))
        return (t - mu) * normal_cdf(t, mu, sigma) + sigma * sigma * pdf

    inf = torch.tensor([mu - 40 * sigma], dtype=torch.float64)
    sup = torch.tensor([mu + 40 * sigma], dtype=torch.float64)
    edges = torch.cat([torch.minimum(inf, x[:1]), x, torch.maximum(sup, x[-1:])])
    levels = torch.arange(n + 1, dtype=torch.float64) / n  # F_n on each interval
    a, b = edges[:-1], edges[1:]
    # Where F crosses the level c inside [a, b], split there: F is increasing.
    cross = (mu + sigma * math.sqrt(2) * torch.erfinv((2 * levels - 1).clamp(-1 + 1e-16, 1 - 1e-16))).clamp(min=a, max=b)
    below = levels * (cross - a) - (big_f(cross) - big_f(a))  # F <= c on [a, cross]
    above = (big_f(b) - big_f(cross)) - levels * (b - cross)  # F >= c on [cross, b]
    return float((below + above).sum())


def ks_statistic(samples: Tensor, mu: float, sigma: float) -> float:
    """One-sample Kolmogorov-Smirnov statistic sup |F_n - F| against N(mu, sigma^2)."""
    x = _sorted(samples)
    n = len(x)
    cdf = normal_cdf(x, mu, sigma)
    i = torch.arange(1, n + 1, dtype=torch.float64)
    return float(torch.maximum(i / n - cdf, cdf - (i - 1) / n).max())


def _check_histogram(bins: int, width: float) -> None:
    if bins < 1 or width <= 0:
        raise ConfigError("gaussian-js: need bins >= 1 and width > 0")


def histogram_js(samples: Tensor, mu: float, sigma: float, bins: int = 50, width: float = 4.0) -> float:
    """Jensen-Shannon divergence (nats, at most log 2) between the samples' histogram and N(mu, sigma^2).

    ``bins`` equal bins cover mu +- ``width`` sigma, and two more take everything
    below and above, so every sample and all of the target's mass is counted. The
    target's share of each bin is exact (differences of its CDF).
    """
    _check_histogram(bins, width)
    x = samples.detach().reshape(-1).to("cpu", torch.float64)
    edges = torch.linspace(mu - width * sigma, mu + width * sigma, bins + 1, dtype=torch.float64)
    # bin 0: below the first edge; bins 1..bins: inside; bin bins + 1: at or above the last edge
    index = torch.bucketize(x, edges, right=True)
    p = torch.bincount(index, minlength=bins + 2).to(torch.float64) / len(x)
    cdf = torch.cat([torch.zeros(1, dtype=torch.float64), normal_cdf(edges, mu, sigma), torch.ones(1, dtype=torch.float64)])
    q = cdf[1:] - cdf[:-1]
    m = (p + q) / 2

    def kl(a: Tensor) -> Tensor:  # KL(a || m), with 0 log 0 = 0 (m > 0 wherever a > 0)
        mask = a > 0
        return (a[mask] * (a[mask] / m[mask]).log()).sum()

    return float(((kl(p) + kl(q)) / 2).clamp(min=0.0))


class GaussianW1:
    """1-D Wasserstein distance from G's samples to the Gaussian target (exact, against its CDF)."""

    directions = {"w1": "min"}
    headline = ("w1",)

    def __call__(self, samples: Tensor, data: Data) -> dict[str, float]:
        return {"w1": wasserstein_1(samples, *_target(data))}


class GaussianKS:
    """Kolmogorov-Smirnov statistic of G's samples against the Gaussian target."""

    directions = {"ks": "min"}
    headline = ("ks",)

    def __call__(self, samples: Tensor, data: Data) -> dict[str, float]:
        return {"ks": ks_statistic(samples, *_target(data))}


class GaussianJS:
    """Jensen-Shannon divergence of G's histogram from the Gaussian target's (nats, at most log 2)."""

    directions = {"js": "min"}
    headline = ("js",)

    def __init__(self, bins: int = 50, width: float = 4.0) -> None:
        _check_histogram(bins, width)  # at build time, before any training
        self.bins, self.width = bins, width

    def __call__(self, samples: Tensor, data: Data) -> dict[str, float]:
        return {"js": histogram_js(samples, *_target(data), bins=self.bins, width=self.width)}
