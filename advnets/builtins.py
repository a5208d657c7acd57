"""The core plugin: the components advnets ships in its core (no models and no metrics of its own).

It is registered through the same hook as every other plugin. Each factory is
named by import path, so that listing them does not import torch: the module is
imported when the component is built (``tests/test_lazy.py`` keeps this list and
the modules' ``BUILTIN_*`` tables the same).
"""

from __future__ import annotations

from .hookspecs import hookimpl
from .registry import Component

BUILTINS = {
    "loss": {
        "minimax": "advnets.losses:MinimaxLoss",
        "non-saturating": "advnets.losses:NonSaturatingLoss",
        "least-squares": "advnets.losses:LeastSquaresLoss",
        "hinge": "advnets.losses:HingeLoss",
        "wasserstein": "advnets.losses:WassersteinLoss",
        "relativistic-average": "advnets.losses:RelativisticAverageLoss",
    },
    "objective": {"gan": "advnets.objectives:gan"},
    "lr-scheduler": {
        "constant": "advnets.schedules:constant",
        "warmup": "advnets.schedules:warmup",
        "warmup-cosine": "advnets.schedules:warmup_cosine",
        "step": "advnets.schedules:step_decay",
        "torch": "advnets.schedules:torch_scheduler",
    },
    "optimizer": {"adam": "advnets.optim:adam", "sgd": "advnets.optim:sgd", "rmsprop": "advnets.optim:rmsprop"},
    "logger": {
        "jsonl": "advnets.loggers:JsonlLogger",
        "csv": "advnets.loggers:CsvLogger",
        "tensorboard": "advnets.loggers:TensorBoardLogger",
        "mlflow": "advnets.loggers:MlflowLogger",
    },
    "callback": {"sample-grid": "advnets.callbacks:SampleGrid", "weight-clip": "advnets.callbacks:WeightClip"},
    "dataset": {"image-folder": "advnets.image_folder:image_folder"},
}
"""Each kind's built-in components: name -> factory, as ``module:name``."""

WRAPPERS = {
    ("discriminator", "augmented"): ("advnets.augment:Augmented", {"discriminator": "discriminator"}),
}
"""Built-in components made from another component: (kind, name) -> (factory, its nested settings)."""


@hookimpl
def register_components(register):
    for kind, components in BUILTINS.items():
        for name, factory in components.items():
            register(Component(kind=kind, name=name, factory=factory))
    for (kind, name), (factory, nested) in WRAPPERS.items():
        register(Component(kind=kind, name=name, factory=factory, nested=nested))
