"""advnets-dcgan: a DCGAN-style GAN for 28x28 images (Radford et al. 2016), as an advnets plugin."""

from __future__ import annotations

from torch import Tensor, nn

from advnets import Component, hookimpl, preset_component


class DCGANGenerator(nn.Module):
    """G: z -> 7x7 feature maps -> two stride-2 transposed convolutions -> a 1x28x28 image in [-1, 1]."""

    def __init__(self, latent_dim: int = 100, width: int = 64) -> None:
        super().__init__()
        self.latent_dim = latent_dim  # the trainer draws z of this size
        self.project = nn.Sequential(nn.Linear(latent_dim, 2 * width * 7 * 7), nn.BatchNorm1d(2 * width * 7 * 7), nn.ReLU())
        self.net = nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1),  # 7 -> 14
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.ConvTranspose2d(width, 1, 4, stride=2, padding=1),  # 14 -> 28
            nn.Tanh(),
        )
        self.width = width

    def forward(self, z: Tensor) -> Tensor:
        return self.net(self.project(z).view(-1, 2 * self.width, 7, 7))


class DCGANDiscriminator(nn.Module):
    """D: two stride-2 convolutions with LeakyReLU -> one logit (no batch norm: D sees real and fake in one pass)."""

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, width, 4, stride=2, padding=1),  # 28 -> 14
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1),  # 14 -> 7
            nn.LeakyReLU(0.2),
            nn.Flatten(),
            nn.Linear(2 * width * 7 * 7, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).squeeze(-1)


DCGAN_MNIST = {
    "generator": {"name": "dcgan", "latent_dim": 100, "width": 64},
    "discriminator": {"name": "dcgan", "width": 64},
    "dataset": {"name": "mnist"},
    "loss": {"name": "non-saturating"},
    "g_optimizer": {"name": "adam", "lr": 2e-4, "betas": [0.5, 0.999]},
    "d_optimizer": {"name": "adam", "lr": 2e-4, "betas": [0.5, 0.999]},
    "trainer": {"batch_size": 64, "epochs": 5, "ema_decay": 0.999},
    "callbacks": {"sample-grid": {}},
    "eval": {"metrics": {"mnist-fid": {}, "mnist-score": {}, "mnist-modes": {}}, "every_epochs": 1},
}


@hookimpl
def register_components(register):
    register(Component(kind="generator", name="dcgan", factory=DCGANGenerator))
    register(Component(kind="discriminator", name="dcgan", factory=DCGANDiscriminator))
    register(preset_component("dcgan-mnist", DCGAN_MNIST, "A DCGAN-style convolutional GAN on MNIST (the advnets-dcgan example plugin)."))
