"""The Python API: everything the command line does, one call away (for notebooks and scripts).

    import advnets

    run = advnets.train(PRESET, out="runs/quick", settings={"trainer.epochs": 10})
    samples = run.trainer.sample(1000)
    print(advnets.evaluate("runs/quick", metrics=[METRIC]))

(``advnets list components --kind preset`` and ``--kind metric`` name what is installed;
docs/python.md has the same with the first-party plugins' names.)
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .config import resolve
from .evaluation import evaluate_generator
from .plugins import default_plugins
from .registry import Component, Registry
from .runs import LoadedGenerator, Run, resume_run, start_run
from .runs import load_generator as _load_generator
from .trainer import Callback


def registry() -> Registry:
    """The registry of this environment's plugins (core, installed, and files in ADVNETS_PLUGINS)."""
    return default_plugins().registry


def build(kind: str, name: str, **settings: Any) -> Any:
    """Build a component by name: ``build("loss", "hinge")``."""
    return registry().build(kind, name, **settings)


def components(kind: str | None = None, plugin: str | None = None, pattern: str | None = None) -> list[Component]:
    """Registered components, filtered like ``advnets list components``."""
    return registry().components(kind=kind, plugin=plugin, pattern=pattern)


def configure(preset: str, settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A preset's resolved configuration with ``settings`` applied: ``{"trainer.k": 2, "loss": "hinge"}``."""
    overrides = [(tuple(key.split(".")), value) for key, value in (settings or {}).items()]
    return resolve(registry(), preset=preset, overrides=overrides)


def train(
    preset: str,
    *,
    out: str | os.PathLike[str] | None = None,
    settings: Mapping[str, Any] | None = None,
    callbacks: Iterable[Callback] = (),
    fit: bool = True,
) -> Run:
    """``advnets run PRESET --set key=value ...``: a run folder, a trainer, and (unless ``fit=False``) training.

    ``settings`` uses the dotted keys of ``--set``; ``callbacks`` are added to the
    standard ones (progress goes to your callbacks: nothing is printed).
    """
    run = start_run(registry(), configure(preset, settings), out, extra_callbacks=list(callbacks))
    if fit:
        run.fit()
    return run


def resume(
    run_dir: str | os.PathLike[str],
    *,
    steps: int | None = None,
    epochs: int | None = None,
    settings: Mapping[str, Any] | None = None,
) -> Run:
    """``advnets run --resume RUN_DIR``: continue (or extend) a run from its newest good checkpoint.

    ``settings`` (dotted keys, as ``--set``) may change what leaves the steps already taken as
    they were: learning rates, eval, loggers, checkpoints (``advnets.runs.RESUMABLE``).
    """
    overrides = [(tuple(key.split(".")), value) for key, value in (settings or {}).items()]
    run = resume_run(registry(), run_dir, steps=steps, epochs=epochs, overrides=overrides)
    run.fit()
    return run


def load_generator(source: str | os.PathLike[str], use_average: bool = True) -> LoadedGenerator:
    """G from a run folder or checkpoint (its moving average where there is one)."""
    return _load_generator(registry(), Path(source), use_average=use_average)


def evaluate(
    source: str | os.PathLike[str],
    metrics: list[str] | None = None,
    *,
    n: int = 10000,
    seed: int = 0,
    use_average: bool = True,
    data_dir: str | None = None,
) -> dict[str, float]:
    """``advnets eval``: the metrics' numbers for a run folder or checkpoint."""
    return evaluate_generator(
        registry(), source, metrics=metrics, n=n, seed=seed, use_average=use_average, data_dir=data_dir
    ).results
