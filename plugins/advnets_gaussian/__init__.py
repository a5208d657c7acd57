"""advnets-gaussian: the paper's Figure 1 as a plugin, a GAN on a 1-D Gaussian.

Registers the dataset ``gaussian-1d``, the ``toy-mlp`` generator and
discriminator, the metrics ``gaussian-w1``, ``gaussian-ks`` and ``gaussian-js``, the callback
``figure-1`` and the preset ``toy-gaussian``.
"""

from __future__ import annotations

from advnets import Component, hookimpl, preset_component

TOY_GAUSSIAN = {
    # Uniform z through a small MLP, as in the paper's Figure 1. Found by a sweep
    # (docs/results.md): D learning 10x faster than G (two time-scale updates) and
    # sampling from an average of G's weights settle the game within 40 epochs.
    "generator": {"name": "toy-mlp", "latent_dim": 1, "hidden": [64, 64]},
    "discriminator": {"name": "toy-mlp", "hidden": [64, 64]},
    "dataset": {"name": "gaussian-1d", "mu": 4.0, "sigma": 0.5},
    "loss": {"name": "non-saturating"},
    "g_optimizer": {"name": "adam", "lr": 1e-4, "betas": [0.5, 0.999]},
    "d_optimizer": {"name": "adam", "lr": 1e-3, "betas": [0.5, 0.999]},
    "trainer": {"batch_size": 128, "k": 1, "noise": "uniform", "epochs": 40, "log_every": 100, "ema_decay": 0.999},
    "checkpoint": {"every_epochs": 10, "keep": 2},
    "eval": {"metrics": {"gaussian-w1": {}, "gaussian-ks": {}, "gaussian-js": {}}, "every_epochs": 5, "n_samples": 10000},
    "callbacks": {"figure-1": {"panels": 4}},
}


@hookimpl
def register_components(register):
    register(Component(kind="dataset", name="gaussian-1d", factory="advnets_gaussian.data:gaussian_1d"))
    register(Component(kind="generator", name="toy-mlp", factory="advnets_gaussian.models:ToyGenerator"))
    register(Component(kind="discriminator", name="toy-mlp", factory="advnets_gaussian.models:ToyDiscriminator"))
    register(Component(kind="metric", name="gaussian-w1", factory="advnets_gaussian.metrics:GaussianW1"))
    register(Component(kind="metric", name="gaussian-ks", factory="advnets_gaussian.metrics:GaussianKS"))
    register(Component(kind="metric", name="gaussian-js", factory="advnets_gaussian.metrics:GaussianJS"))
    register(Component(kind="callback", name="figure-1", factory="advnets_gaussian.figure:FigureOne"))
    register(
        preset_component(
            "toy-gaussian",
            TOY_GAUSSIAN,
            "The paper's Figure 1: a GAN learns N(4, 0.5^2) from uniform z; writes figure1.png.",
        )
    )
