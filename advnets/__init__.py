"""advnets: adversarial nets as a framework (Goodfellow et al. 2014, Algorithm 1).

The Python API mirrors the command line: :func:`train`, :func:`resume`,
:func:`load_generator`, :func:`evaluate`, :func:`build` and :func:`components`;
:class:`AdversarialTrainer` plays the game with components you build yourself.
Plugins use :class:`Component`, :func:`hookimpl` and :func:`preset_component`.
"""

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

__version__ = "0.1.0"

__all__ = [
    "AdversarialTrainer",
    "AdvnetsError",
    "Batch",
    "Callback",
    "CheckpointError",
    "Component",
    "ConfigError",
    "Data",
    "Diagnostic",
    "GANLoss",
    "GANObjective",
    "Objective",
    "Player",
    "PlayerSpec",
    "PluginError",
    "Registry",
    "StepContext",
    "build",
    "components",
    "configure",
    "evaluate",
    "hookimpl",
    "load_generator",
    "preset_component",
    "registry",
    "resume",
    "train",
]
