"""The core plugin: the components advnets ships in its core (no datasets, no models).

It is registered through the same hook as every other plugin.
"""

from __future__ import annotations

from .callbacks import SampleGrid, WeightClip
from .hookspecs import hookimpl
from .image_folder import image_folder
from .loggers import BUILTIN_LOGGERS
from .losses import BUILTIN_LOSSES
from .metrics import Parzen
from .objectives import BUILTIN_OBJECTIVES
from .schedules import BUILTIN_LR_SCHEDULERS
from .optim import BUILTIN_OPTIMIZERS
from .registry import Component


@hookimpl
def register_components(register):
    for name, loss in BUILTIN_LOSSES.items():
        register(Component(kind="loss", name=name, factory=loss))
    for name, objective in BUILTIN_OBJECTIVES.items():
        register(Component(kind="objective", name=name, factory=objective))
    for name, scheduler in BUILTIN_LR_SCHEDULERS.items():
        register(Component(kind="lr-scheduler", name=name, factory=scheduler))
    for name, optimizer in BUILTIN_OPTIMIZERS.items():
        register(Component(kind="optimizer", name=name, factory=optimizer))
    for name, logger in BUILTIN_LOGGERS.items():
        register(Component(kind="logger", name=name, factory=logger))
    register(Component(kind="callback", name="sample-grid", factory=SampleGrid))
    register(Component(kind="callback", name="weight-clip", factory=WeightClip))
    register(Component(kind="metric", name="parzen", factory=Parzen))
    register(Component(kind="dataset", name="image-folder", factory=image_folder))
