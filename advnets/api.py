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
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Union

from .config import resolve
from .evaluation import evaluate_generator
from .plugins import default_plugins
from .provenance import FIELD, file_records, load_for
from .registry import Component, Registry
from .runs import LoadedGenerator, Run, resume_run, start_run
from .runs import load_generator as _load_generator
from .trainer import Callback


PluginFiles = Iterable[Union[str, "os.PathLike[str]"]]


def registry(plugins: PluginFiles = ()) -> Registry:
    """The registry of this environment's plugins (core, installed, files in ADVNETS_PLUGINS) and of
    the plugin ``files`` given, as ``--plugin`` gives them."""
    return _plugins(plugins).registry


def _plugins(files: PluginFiles = (), source: str | os.PathLike[str] | None = None) -> Any:
    """As the command line loads them: the files given and those a run (``source``) records.

    Without either, the environment's plugins, loaded once per value of ADVNETS_PLUGINS.
    """
    files = list(files)
    if not files and source is None:
        return default_plugins()
    plugins, notes = load_for(files, source)
    for note in notes:
        warnings.warn(note, stacklevel=3)
    return plugins


def _dotted(settings: Mapping[str, Any] | None) -> list[tuple[tuple[str, ...], Any]]:
    """``{"trainer.k": 2}`` as the overrides ``--set trainer.k=2`` gives."""
    return [(tuple(key.split(".")), value) for key, value in (settings or {}).items()]


def build(kind: str, name: str, **settings: Any) -> Any:
    """Build a component by name: ``build("loss", "hinge")`` (with the environment's plugins)."""
    return registry().build(kind, name, **settings)


def components(kind: str | None = None, plugin: str | None = None, pattern: str | None = None) -> list[Component]:
    """Registered components, filtered like ``advnets list components``."""
    return registry().components(kind=kind, plugin=plugin, pattern=pattern)


def configure(preset: str, settings: Mapping[str, Any] | None = None, *, plugins: PluginFiles = ()) -> dict[str, Any]:
    """A preset's resolved configuration with ``settings`` applied: ``{"trainer.k": 2, "loss": "hinge"}``."""
    return resolve(registry(plugins), preset=preset, overrides=_dotted(settings))


def train(
    preset: str,
    *,
    out: str | os.PathLike[str] | None = None,
    settings: Mapping[str, Any] | None = None,
    callbacks: Iterable[Callback] = (),
    fit: bool = True,
    plugins: PluginFiles = (),
) -> Run:
    """``advnets run PRESET --set key=value ... --plugin FILE``: a run folder, a trainer, and (unless
    ``fit=False``) training.

    ``settings`` uses the dotted keys of ``--set``; ``callbacks`` are added to the
    standard ones (progress goes to your callbacks: nothing is printed). ``plugins`` are
    plugin files, loaded as ``--plugin`` loads them; the run records them, and those of
    ADVNETS_PLUGINS, so that ``resume``, ``load_generator`` and the command line find them again.
    """
    loaded = _plugins(plugins)
    config = resolve(loaded.registry, preset=preset, overrides=_dotted(settings))
    config[FIELD] = file_records(loaded)
    run = start_run(loaded.registry, config, out, extra_callbacks=list(callbacks))
    if fit:
        run.fit()
    return run


def resume(
    run_dir: str | os.PathLike[str],
    *,
    steps: int | None = None,
    epochs: int | None = None,
    settings: Mapping[str, Any] | None = None,
    plugins: PluginFiles = (),
) -> Run:
    """``advnets run --resume RUN_DIR``: continue (or extend) a run from its newest good checkpoint.

    ``settings`` (dotted keys, as ``--set``) may change what leaves the steps already taken as
    they were: learning rates, eval, loggers, checkpoints (``advnets.runs.RESUMABLE``). The
    plugin files the run records load again; ``plugins`` names a moved or edited one.
    """
    loaded = _plugins(plugins, run_dir)
    run = resume_run(
        loaded.registry, run_dir, steps=steps, epochs=epochs, overrides=_dotted(settings), plugin_files=file_records(loaded)
    )
    run.fit()
    return run


def load_generator(source: str | os.PathLike[str], use_average: bool = True, *, plugins: PluginFiles = ()) -> LoadedGenerator:
    """G from a run folder or checkpoint (its moving average where there is one), with the plugin
    files its run records (``plugins`` names a moved or edited one)."""
    return _load_generator(_plugins(plugins, source).registry, Path(source), use_average=use_average)


def evaluate(
    source: str | os.PathLike[str],
    metrics: list[str] | None = None,
    *,
    n: int = 10000,
    seed: int = 0,
    use_average: bool = True,
    data_dir: str | None = None,
    plugins: PluginFiles = (),
) -> dict[str, float]:
    """``advnets eval``: the metrics' numbers for a run folder or checkpoint (with the plugin files
    its run records, and ``plugins``)."""
    return evaluate_generator(
        _plugins(plugins, source).registry, source, metrics=metrics, n=n, seed=seed, use_average=use_average, data_dir=data_dir
    ).results
