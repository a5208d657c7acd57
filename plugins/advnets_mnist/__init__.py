"""advnets-mnist: the classic MLP GAN on MNIST, as a plugin.

Registers the datasets ``mnist`` and ``fashion-mnist``, the lecture's MLP
``generator``/``discriminator`` (``mlp``), the classifier-based metrics
``mnist-fid``, ``mnist-score`` and ``mnist-modes``, and the presets ``mlp-mnist``
(the lecture's MLPs with settings that learn digits; its old name ``mlp-mnist-fast``
is an alias) and ``mlp-mnist-lecture`` (the lecture's exact recipe, which collapses).
Class-conditional GANs (the paper's section 7): the generator ``cond-mlp``, the
discriminators ``cond-mlp`` and ``projection-mlp``, the metric ``mnist-cond-acc``
and the preset ``cgan-mnist``.

"""

from __future__ import annotations

from advnets import Component, hookimpl, preset_component

MNIST_METRICS = {"parzen": {}, "mnist-fid": {}, "mnist-score": {}, "mnist-modes": {}}

MLP_MNIST_LECTURE = {
    # The lecture's recipe, as intended (docs/results.md: on this machine G collapses to one
    # pattern within the first epochs and never recovers): G 64-64-128-256-512-1024-784 with ReLU and
    # Tanh, D 784-1024-512-256-128-1 with ReLU, the non-saturating cross-entropy on
    # logits, Adam at 1e-4 (torch's default betas) for both, batch 32, 100 epochs,
    # pixels scaled to [-1, 1] to match the Tanh.
    "generator": {"name": "mlp", "latent_dim": 64, "hidden": [64, 128, 256, 512, 1024]},
    "discriminator": {"name": "mlp", "hidden": [1024, 512, 256, 128]},
    "dataset": {"name": "mnist"},
    "loss": {"name": "non-saturating"},
    "g_optimizer": {"name": "adam", "lr": 1e-4, "betas": [0.9, 0.999]},
    "d_optimizer": {"name": "adam", "lr": 1e-4, "betas": [0.9, 0.999]},
    "trainer": {"batch_size": 32, "k": 1, "epochs": 100, "log_every": 200},
    "checkpoint": {"every_epochs": 1, "keep": 3},
    "callbacks": {"sample-grid": {"n": 64, "nrow": 8, "every_epochs": 1}},
    "eval": {"metrics": MNIST_METRICS, "every_epochs": 10, "n_samples": 10000},
}

MLP_MNIST = {
    # The lecture's MLP shapes, tuned by experiment on the project's 2-core CPU (docs/results.md
    # records the search): batch norm in G, dropout in D as in the paper's own model,
    # Adam at 3e-4 with beta1 0.5, batch 128, and samples from G's moving average.
    "generator": {**MLP_MNIST_LECTURE["generator"], "batchnorm": True},
    "discriminator": {**MLP_MNIST_LECTURE["discriminator"], "dropout": 0.3},
    # MNIST's 50,000 training images: train[50000:51000] is the Parzen validation set, so it
    # must stay unseen when it picks the best checkpoint.
    "dataset": {"name": "mnist", "n_train": 50000},
    "loss": {"name": "non-saturating"},
    "g_optimizer": {"name": "adam", "lr": 3e-4, "betas": [0.5, 0.999]},
    "d_optimizer": {"name": "adam", "lr": 3e-4, "betas": [0.5, 0.999]},
    # Both learning rates follow a cosine from 3e-4 down to 0.3 x 3e-4 at the last step. A constant
    # rate peaked near epoch 15 and fell back; a x0.3 step after epoch 20 recovered but left
    # mnist-fid near 30-31 at epoch 30-32; a cosine down to 0.1 x was best near 0.3 x and got
    # worse below 0.2 x (docs/results.md has the search). The cosine ends at step 14,040 (epoch 36)
    # whatever --epochs says, so a shorter run is the start of this one and a longer one stays at 0.3 x.
    "lr_scheduler": {"name": "warmup-cosine", "min_factor": 0.3, "decay_steps": 14040},
    # The average starts after two epochs (390 steps each): before that it copies G. Averaged
    # from step 0, with decay 0.9995 (a memory of about 2,000 steps), it would still give the
    # random initial G a weight of 0.9995**1560 = 46% at the first evaluation (epoch 4) and 21%
    # at epoch 8: early evaluations and best-checkpoint picks would score a blur of noise that
    # G has long left. From step 780 it starts from a G that already draws noisy digit strokes.
    # Before that a short average (ema_warmup 9: decay (1 + t) / (10 + t), about the last tenth of
    # the steps) smooths what a run of one epoch draws (mnist-modes 10 instead of 9 after one epoch,
    # docs/results.md); it restarts from G at step 780, so the full run is the same without it.
    # 36 epochs with an evaluation every 4: 13 to 16 minutes on a 2-core CPU, as fast as the shared
    # machine is that day; 30 epochs were faster but left seed 1 at mnist-fid 32.8 (docs/results.md).
    "trainer": {"batch_size": 128, "k": 1, "epochs": 36, "log_every": 100, "ema_decay": 0.9995, "ema_start": 780,
                "ema_warmup": 9},
    "checkpoint": {"every_epochs": 4, "keep": 2},
    "callbacks": {"sample-grid": {"n": 64, "nrow": 8, "every_epochs": 2}},
    # Every 4 epochs; best.safetensors is the checkpoint with the best validation Parzen
    # (never the test set's number, which is what the table reports).
    "eval": {"metrics": MNIST_METRICS, "every_epochs": 4, "n_samples": 10000, "best": "parzen_valid"},
}

CGAN_MNIST = {
    # A class-conditional GAN (the paper's section 7; Mirza and Osindero 2014): the digit's
    # embedding joins z in G; D is a projection discriminator (Miyato and Koyama 2018), which
    # learned to tell digits apart faster than D with the embedding joined to x (docs/results.md).
    # The lecture's layer sizes, with batch norm in G and dropout in D.
    "generator": {"name": "cond-mlp", "latent_dim": 64, "num_classes": 10, "embed_dim": 10,
                  "hidden": [64, 128, 256, 512, 1024], "batchnorm": True},
    "discriminator": {"name": "projection-mlp", "num_classes": 10, "hidden": [1024, 512, 256, 128], "dropout": 0.3},
    # MNIST's 50,000 training images, with their labels: train[50000:51000] is the Parzen
    # validation set, so it must stay unseen when it picks the best checkpoint.
    "dataset": {"name": "mnist", "n_train": 50000},
    "loss": {"name": "non-saturating"},
    "g_optimizer": {"name": "adam", "lr": 3e-4, "betas": [0.5, 0.999]},
    "d_optimizer": {"name": "adam", "lr": 3e-4, "betas": [0.5, 0.999]},
    "trainer": {"batch_size": 128, "k": 1, "epochs": 20, "log_every": 100, "ema_decay": 0.9995},
    "checkpoint": {"every_epochs": 4, "keep": 2},
    "callbacks": {"sample-grid": {"nrow": 10, "every_epochs": 2}},  # one row of 10 per digit
    # Every 4 epochs; best.safetensors is the checkpoint with the best validation Parzen.
    "eval": {
        "metrics": {"parzen": {}, "mnist-fid": {}, "mnist-score": {}, "mnist-modes": {}, "mnist-cond-acc": {}},
        "every_epochs": 4,
        "n_samples": 10000,
        "best": "parzen_valid",
    },
}


@hookimpl
def register_components(register):
    register(Component(kind="dataset", name="mnist", factory="advnets_mnist.data:mnist"))
    register(Component(kind="dataset", name="fashion-mnist", factory="advnets_mnist.data:fashion_mnist"))
    register(Component(kind="generator", name="mlp", factory="advnets_mnist.models:MLPGenerator"))
    register(Component(kind="discriminator", name="mlp", factory="advnets_mnist.models:MLPDiscriminator"))
    register(Component(kind="metric", name="mnist-fid", factory="advnets_mnist.metrics:MnistFID"))
    register(Component(kind="metric", name="mnist-score", factory="advnets_mnist.metrics:MnistScore"))
    register(Component(kind="metric", name="mnist-modes", factory="advnets_mnist.metrics:MnistModes"))
    register(Component(kind="generator", name="cond-mlp", factory="advnets_mnist.models:CondMLPGenerator"))
    register(Component(kind="discriminator", name="cond-mlp", factory="advnets_mnist.models:CondMLPDiscriminator"))
    register(Component(kind="discriminator", name="projection-mlp", factory="advnets_mnist.models:ProjectionMLPDiscriminator"))
    register(Component(kind="metric", name="mnist-cond-acc", factory="advnets_mnist.metrics:MnistCondAcc"))
    register(
        preset_component(
            "mlp-mnist",
            MLP_MNIST,
            "The lecture's MLPs, settings that learn: batch norm in G, dropout in D, Adam 3e-4 beta1 0.5, "
            "cosine to x0.3, batch 128, EMA; 36 epochs.",
            aliases=("mlp-mnist-fast",),
        )
    )
    register(
        preset_component(
            "mlp-mnist-lecture",
            MLP_MNIST_LECTURE,
            "The lecture's exact MLP GAN recipe (collapses): non-saturating loss, Adam 1e-4, batch 32, 100 epochs.",
        )
    )
    register(
        preset_component(
            "cgan-mnist",
            CGAN_MNIST,
            "A class-conditional MLP GAN on MNIST (the paper's section 7): digits on demand.",
        )
    )
