"""advnets: adversarial nets as a framework (Goodfellow et al. 2014, Algorithm 1).

The Python API mirrors the command line: :func:`train`, :func:`resume`,
:func:`load_generator`, :func:`evaluate`, :func:`build` and :func:`components`;
:class:`AdversarialTrainer` plays the game with components you build yourself.
Plugins use :class:`Component`, :func:`hookimpl` and :func:`preset_component`.

The public names are imported on first use (PEP 562), so that ``import advnets``
(and ``advnets --help``) does not pay for importing torch.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_HOMES = {
    "AdversarialTrainer": "trainer",
    "AdvnetsError": "errors",
    "Batch": "sources",
    "Callback": "trainer",
    "CheckpointError": "errors",
    "Component": "registry",
    "ConfigError": "errors",
    "Data": "data",
    "Diagnostic": "objectives",
    "GANLoss": "losses",
    "GANObjective": "objectives",
    "Objective": "objectives",
    "Player": "players",
    "PlayerSpec": "players",
    "PluginError": "errors",
    "Registry": "registry",
    "StepContext": "objectives",
    "build": "api",
    "components": "api",
    "configure": "api",
    "evaluate": "api",
    "hookimpl": "hookspecs",
    "load_generator": "api",
    "preset_component": "config",
    "registry": "api",
    "resume": "api",
    "train": "api",
}
"""Each public name and the submodule it lives in."""

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'advnets' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{home}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


class _Package(types.ModuleType):
    """Keeps a public name when a submodule of the same name is imported (``registry``)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _HOMES and isinstance(value, types.ModuleType):
            return  # the import system binding advnets.registry (the module): the function wins
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from .api import build, components, configure, evaluate, load_generator, registry, resume, train
    from .config import preset_component
    from .data import Data
    from .errors import AdvnetsError, CheckpointError, ConfigError, PluginError
    from .hookspecs import hookimpl
    from .losses import GANLoss
    from .objectives import Diagnostic, GANObjective, Objective, StepContext
    from .players import Player, PlayerSpec
    from .registry import Component, Registry
    from .sources import Batch
    from .trainer import AdversarialTrainer, Callback
