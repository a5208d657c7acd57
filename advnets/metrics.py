"""Core metrics: the Parzen-window log-likelihood of the paper's Table 1.

The estimate of Goodfellow et al. (2014), as their code computed it
(goodfeli/adversarial, ``parzen_ll.py``): G's samples are the centres of an
isotropic normal kernel of width sigma; sigma is picked from
``logspace(-1, 0, 10)`` by the mean log-likelihood of held-out images (the
dataset's ``valid`` split, or, for a dataset without one, the training samples
``valid_start:valid_start+valid_size`` that the run was told to leave unseen);
the score is the mean log-likelihood of the test images, with its standard error
std / sqrt(N). Pixels are on the [0, 1] scale.

    log p(x) = logmeanexp_i( -||x - mu_i||^2 / (2 sigma^2) ) - d log(sigma sqrt(2 pi))

The squared distances come from one matrix product per chunk of test points
(||x||^2 + ||mu||^2 - 2 x.mu, in float64) and serve every sigma at once.
Theis et al. (2016) show that this estimator can rank models badly in high
dimensions; report it beside modern metrics.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from .data import Data, to_unit
from .errors import ConfigError


Metric = Callable[..., Mapping[str, float]]
"""A metric maps G's samples (model space) and the dataset to named numbers: ``metric(samples, data)``.

A metric that declares a ``labels`` parameter is also given the class labels the
samples were drawn for (``None`` for an unconditional G): ``metric(samples, data, labels=labels)``.

A metric says which way its numbers are better, and which of them are its headline,
with two optional attributes (on the class, or set on a function):

- ``directions``: ``{key: "max" | "min"}`` for the numbers that have a better side
  (a standard error or a chosen bandwidth has none: leave it out);
- ``headline``: the keys, most important first, that the training plot draws and
  ``advnets compare`` shows first; each must have a direction.

``eval.best`` takes its direction from them (``eval.mode`` may still say it), and
``advnets compare`` gives a best value for every number with a direction.
"""

DIRECTIONS = ("max", "min")


@dataclasses.dataclass(frozen=True)
class Declared:
    """What metrics say of their numbers: which way each is better, and the headline ones."""

    directions: dict[str, str] = dataclasses.field(default_factory=dict)
    headline: tuple[str, ...] = ()

    def as_json(self) -> dict[str, dict[str, Any]]:
        """One entry per key with a direction, as metrics.jsonl's ``evaluations`` record holds them."""
        return {key: {"direction": way, "headline": key in self.headline} for key, way in self.directions.items()}

    def __or__(self, other: Declared) -> Declared:
        return Declared({**self.directions, **other.directions}, (*self.headline, *(k for k in other.headline if k not in self.headline)))


def declared(name: str, metric: Metric) -> Declared:
    """A metric's ``directions`` and ``headline``, checked (a ConfigError names the metric and what is wrong)."""
    directions = getattr(metric, "directions", None)
    headline = getattr(metric, "headline", None)
    directions = {} if directions is None else directions
    headline = () if headline is None else headline
    if not isinstance(directions, Mapping) or not all(
        isinstance(key, str) and way in DIRECTIONS for key, way in directions.items()
    ):
        raise ConfigError(f"metric {name!r}: directions must map each key to 'max' or 'min', got {directions!r}")
    if isinstance(headline, str) or not isinstance(headline, (list, tuple)) or not all(isinstance(k, str) for k in headline):
        raise ConfigError(f"metric {name!r}: headline must be a list of keys, got {headline!r}")
    undirected = [key for key in headline if key not in directions]
    if undirected:
        raise ConfigError(f"metric {name!r}: headline key {undirected[0]!r} has no direction (directions: max or min)")
    return Declared(dict(directions), tuple(dict.fromkeys(headline)))


def declared_all(metrics: Mapping[str, Metric]) -> Declared:
    """The declarations of several metrics together, in their order."""
    together = Declared()
    for name, metric in metrics.items():
        together = together | declared(name, metric)
    return together


def takes_labels(metric: Metric) -> bool:
    """True if the metric's call signature has a ``labels`` parameter."""
    try:
        return "labels" in inspect.signature(metric).parameters
    except (TypeError, ValueError):  # a callable without a signature takes no labels
        return False


def score(
    metrics: Mapping[str, Metric], samples: Tensor, data: Data, labels: Tensor | None = None
) -> tuple[dict[str, float], dict[str, float]]:
    """Run each metric on the same samples: (all the numbers they report, seconds each took).

    ``labels`` (the samples' classes, for a conditional G) go only to metrics that take them.
    """
    results: dict[str, float] = {}
    seconds: dict[str, float] = {}
    for name, metric in metrics.items():
        start = time.perf_counter()
        results.update(metric(samples, data, labels=labels) if takes_labels(metric) else metric(samples, data))
        seconds[name] = round(time.perf_counter() - start, 3)
    return results, seconds


def parzen_log_likelihood(x: Tensor, centres: Tensor, sigmas: Tensor, chunk: int = 500) -> Tensor:
    """log p(x) under the Parzen window of ``centres``, for each sigma: shape (len(x), len(sigmas)), float64."""
    x = x.reshape(len(x), -1).to(torch.float64)
    centres = centres.reshape(len(centres), -1).to(torch.float64)
    sigmas = sigmas.to(torch.float64)
    d = x.shape[1]
    centre_norms = centres.square().sum(1)
    # log of the normaliser: log m + d log(sigma sqrt(2 pi)), one per sigma
    log_norm = math.log(len(centres)) + d * torch.log(sigmas * math.sqrt(2 * math.pi))
    out = torch.empty(len(x), len(sigmas), dtype=torch.float64)
    for start in range(0, len(x), chunk):
        block = x[start : start + chunk]
        squared = (block.square().sum(1, keepdim=True) + centre_norms - 2 * block @ centres.T).clamp_(min=0)
        for j, sigma in enumerate(sigmas.tolist()):
            out[start : start + len(block), j] = torch.logsumexp(squared / (-2 * sigma * sigma), dim=1) - log_norm[j]
    return out


class Parzen:
    """Parzen-window log-likelihood of the test set in nats (Goodfellow et al. 2014, Table 1 protocol)."""

    directions = {"parzen": "max", "parzen_valid": "max"}
    headline = ("parzen",)

    def __init__(
        self,
        sigma_min: float = 0.1,
        sigma_max: float = 1.0,
        n_sigmas: int = 10,
        valid_start: int | None = None,
        valid_size: int = 1000,
        n_test: int = 10000,
    ) -> None:
        if not 0 < sigma_min <= sigma_max or n_sigmas < 1:
            raise ConfigError("parzen: need 0 < sigma_min <= sigma_max and n_sigmas >= 1")
        if valid_start is not None and (not isinstance(valid_start, int) or isinstance(valid_start, bool) or valid_start < 0):
            raise ConfigError(f"parzen: valid_start must be null or an integer >= 0, got {valid_start!r}")
        if valid_size < 1 or n_test < 1:
            raise ConfigError("parzen: valid_size >= 1 and n_test >= 1")
        self.sigmas = torch.logspace(math.log10(sigma_min), math.log10(sigma_max), n_sigmas, dtype=torch.float64)
        self.valid = None if valid_start is None else slice(valid_start, valid_start + valid_size)
        self.n_test = n_test

    def __call__(self, samples: Tensor, data: Data) -> dict[str, float]:
        if data.test is None:
            raise ConfigError(f"parzen needs a test set; dataset {data.name!r} has none")
        if data.valid is not None:
            held_out = data.valid
        elif self.valid is None:
            raise ConfigError(
                f"parzen: dataset {data.name!r} has no validation split to choose sigma on; give it one, or "
                "name training samples the run leaves unseen with eval.metrics.parzen.valid_start"
            )
        elif len(data.train) >= self.valid.stop:
            held_out = data.train[self.valid]
        else:
            raise ConfigError(
                f"parzen: dataset {data.name!r} has no validation split, and training samples "
                f"{self.valid.start}:{self.valid.stop} are beyond its {len(data.train)}"
            )
        centres = to_unit(samples.detach().float().cpu(), data.model_range)
        valid = to_unit(data.decode(held_out.cpu()), data.model_range)
        test = to_unit(data.decode(data.test[: self.n_test].cpu()), data.model_range)
        by_sigma = parzen_log_likelihood(valid, centres, self.sigmas).mean(0)
        best = int(by_sigma.argmax())
        scores = parzen_log_likelihood(test, centres, self.sigmas[best : best + 1])[:, 0]
        return {
            "parzen": float(scores.mean()),
            "parzen_se": float(scores.std(unbiased=False) / math.sqrt(len(scores))),
            "parzen_sigma": float(self.sigmas[best]),
            # the validation images' mean at that sigma: what to pick a checkpoint by (eval.best),
            # since picking by the test set's number would tune on the test set
            "parzen_valid": float(by_sigma[best]),
        }
