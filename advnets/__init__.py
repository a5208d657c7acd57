"""advnets: adversarial nets as a framework (Goodfellow et al. 2014, Algorithm 1)."""

from .config import preset_component
from .data import Data
from .errors import AdvnetsError, CheckpointError, ConfigError, PluginError
from .hookspecs import hookimpl
from .losses import GANLoss
from .registry import Component, Registry
from .trainer import AdversarialTrainer, Callback

__version__ = "0.1.0"

__all__ = [
    "AdversarialTrainer",
    "AdvnetsError",
    "Callback",
    "CheckpointError",
    "Component",
    "ConfigError",
    "Data",
    "GANLoss",
    "PluginError",
    "Registry",
    "hookimpl",
    "preset_component",
]
