"""Metrics: what the core knows of them (it ships none; the first-party plugins do).

A metric is a callable ``metric(samples, data) -> {name: number}`` (see :data:`Metric`);
:func:`score` runs several on the same samples, and :func:`declared` reads which way
each number is better and which are headline. The paper's own evaluation is a
first-party plugin like any other.
"""

from __future__ import annotations

import dataclasses
import inspect
import numbers
import time
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from .data import Data
from .errors import ConfigError, PluginError
from .plots import NOT_METRICS


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
    """The declarations of several metrics together, in their order.

    Two metrics that declare one key with opposite directions are refused: which
    checkpoint is best would depend on the order they are listed in.
    """
    together = Declared()
    declared_by: dict[str, str] = {}
    for name, metric in metrics.items():
        own = declared(name, metric)
        for key, way in own.directions.items():
            if key in declared_by and together.directions[key] != way:
                raise ConfigError(
                    f"metrics {declared_by[key]!r} and {name!r} both declare {key!r}, as "
                    f"{together.directions[key]} and {way}: which is better would depend on their order"
                )
            declared_by.setdefault(key, name)
        together = together | own
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
        reported = metric(samples, data, labels=labels) if takes_labels(metric) else metric(samples, data)
        results.update(numbers_of(name, reported))
        seconds[name] = round(time.perf_counter() - start, 3)
    return results, seconds


def numbers_of(name: str, reported: Any) -> dict[str, float | int]:
    """A metric's report, checked: names (not a record's own keys) to plain numbers.

    A one-element tensor or a NumPy number becomes a Python number; anything else
    (a string, a list, a tensor of several values) is the metric's error, said before
    training by the check, not as a crash when the record is written.
    """
    if not isinstance(reported, Mapping):
        raise PluginError(f"metric {name!r} returned {_kind(reported)}: a metric returns {{name: number}}")
    found: dict[str, float | int] = {}
    for key, value in reported.items():
        if not isinstance(key, str):
            raise PluginError(f"metric {name!r} reported a number under {key!r}: names must be strings")
        if key in NOT_METRICS:  # an evaluation record's own keys
            raise PluginError(f"metric {name!r} reported {key!r}, a key of the evaluation record itself: name it otherwise")
        if isinstance(value, Tensor) and value.numel() == 1 and not value.dtype.is_complex and value.dtype != torch.bool:
            value = value.item()
        elif isinstance(value, numbers.Real) and not isinstance(value, (bool, int, float)):
            value = float(value)  # a NumPy number
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise PluginError(f"metric {name!r} reported {key!r} as {_kind(value)}: a metric reports numbers")
        found[key] = value
    return found


def _kind(value: Any) -> str:
    if isinstance(value, Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    if isinstance(value, (str, bool)):
        return f"{type(value).__name__} {value!r}"
    return "None" if value is None else f"a {type(value).__name__}"
