"""advnets-bigan: learned approximate inference, the 2014 paper's section 7, as a plugin.

BiGAN (Donahue et al. 2017) / ALI (Dumoulin et al. 2017): an encoder E: x -> z is
trained beside G, and the discriminator judges (x, z) pairs. Registers the
objective ``bigan``, the encoder and joint discriminator ``bigan-mlp``, the
callbacks ``bigan-reconstructions`` (x beside G(E(x))) and ``bigan-probe``
(1-nearest-neighbour and linear-classifier accuracy on E's features), and the
preset ``bigan-mnist``.
"""

from __future__ import annotations

from advnets import Component, hookimpl, preset_component

LATENT = 50  # Donahue et al.'s z on permutation-invariant MNIST: 50-d, uniform on [-1, 1]
ADAM = {"name": "adam", "lr": 2e-4, "betas": [0.5, 0.999]}

BIGAN_MNIST = {
    # Donahue et al.'s permutation-invariant MNIST set-up, shrunk to a CPU budget: MLPs with
    # two hidden layers of 512 (theirs: 1024) for G (ReLU, batch norm, Tanh out), E (LeakyReLU,
    # batch norm, Tanh out so that E(x) stays in z's support) and the joint D (LeakyReLU,
    # dropout 0.2 as in ALI, no batch norm: it scores both kinds of pair in one pass); their
    # optimiser (Adam 2e-4, beta1 0.5, batch 128); the non-saturating loss. 5 epochs (2,340
    # steps) took 3.4 to 8 minutes on one shared CPU core (docs/results.md); the probe (1-NN and
    # linear classifiers) runs at the end, about 40 s of that.
    "generator": {"name": "mlp", "latent_dim": LATENT, "hidden": [512, 512], "batchnorm": True},
    "discriminator": {"name": "bigan-mlp", "latent_dim": LATENT, "x_hidden": [512], "z_hidden": [256], "joint_hidden": [512]},
    "players": {
        "encoder": {
            "module": {"name": "bigan-mlp", "latent_dim": LATENT, "hidden": [512, 512], "output": "tanh"},
            "optimizer": ADAM,
        }
    },
    "objective": {"name": "bigan"},
    "dataset": {"name": "mnist"},
    "loss": {"name": "non-saturating"},
    "g_optimizer": ADAM,
    "d_optimizer": ADAM,
    "trainer": {"batch_size": 128, "k": 1, "noise": "uniform", "epochs": 5, "log_every": 100},
    "checkpoint": {"every_epochs": 1, "keep": 2},
    "callbacks": {
        "sample-grid": {"n": 64, "nrow": 8, "every_epochs": 1},
        "bigan-reconstructions": {"n": 32, "pairs_per_row": 8, "every_epochs": 1},
        "bigan-probe": {},
    },
}


@hookimpl
def register_components(register):
    register(Component(kind="objective", name="bigan", factory="advnets_bigan.objective:bigan"))
    register(Component(kind="encoder", name="bigan-mlp", factory="advnets_bigan.models:MLPEncoder"))
    register(Component(kind="discriminator", name="bigan-mlp", factory="advnets_bigan.models:JointDiscriminator"))
    register(Component(kind="callback", name="bigan-reconstructions", factory="advnets_bigan.callbacks:Reconstructions"))
    register(Component(kind="callback", name="bigan-probe", factory="advnets_bigan.callbacks:FeatureProbe"))
    register(
        preset_component(
            "bigan-mnist",
            BIGAN_MNIST,
            "BiGAN on MNIST: 50-d uniform z, MLP G, E and joint D(x, z); 1-NN and linear probes of E's features.",
        )
    )
