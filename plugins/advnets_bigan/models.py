"""BiGAN's two new networks for flat images: the encoder E: x -> z and the joint discriminator D(x, z).

The generator is the MNIST plugin's ``mlp``: BiGAN changes the game, not G.
"""

from __future__ import annotations

import math

from torch import Tensor, nn
import torch

from advnets.errors import ConfigError

OUTPUTS = ("linear", "tanh")


def _check_sizes(owner: str, **sizes: list[int] | int) -> None:
    for key, value in sizes.items():
        values = value if isinstance(value, list) else [value]
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in values):
            raise ConfigError(f"{owner}.{key} must be positive integers, got {value!r}")


def _leaky_mlp(width: int, hidden: list[int], negative_slope: float, dropout: float = 0.0, batchnorm: bool = False) -> tuple[list[nn.Module], int]:
    """Linear layers with LeakyReLU (optionally batch norm before it, dropout after it); (layers, output width)."""
    layers: list[nn.Module] = []
    for size in hidden:
        layers.append(nn.Linear(width, size))
        if batchnorm:
            layers.append(nn.BatchNorm1d(size))
        layers.append(nn.LeakyReLU(negative_slope))
        if dropout:
            layers.append(nn.Dropout(dropout))
        width = size
    return layers, width


class MLPEncoder(nn.Module):
    """E: flattened x -> LeakyReLU layers -> z (``output: tanh`` keeps z in [-1, 1], uniform noise's support)."""

    def __init__(
        self,
        in_shape: list[int] = (1, 28, 28),
        latent_dim: int = 50,
        hidden: list[int] = (1024, 1024),
        negative_slope: float = 0.2,
        batchnorm: bool = True,
        output: str = "linear",
    ) -> None:
        super().__init__()
        in_shape, hidden = list(in_shape), list(hidden)
        _check_sizes("encoder", in_shape=in_shape, latent_dim=latent_dim, hidden=hidden)
        if output not in OUTPUTS:
            raise ConfigError(f"encoder.output must be one of {', '.join(OUTPUTS)}, got {output!r}")
        self.latent_dim = latent_dim
        layers, width = _leaky_mlp(math.prod(in_shape), hidden, negative_slope, batchnorm=batchnorm)
        layers.append(nn.Linear(width, latent_dim))
        if output == "tanh":
            layers.append(nn.Tanh())
        self.net = nn.Sequential(nn.Flatten(), *layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class JointDiscriminator(nn.Module):
    """D(x, z): x and z through their own LeakyReLU layers, joined, then more layers -> one logit.

    No layer couples the samples of a batch (no batch norm), so the BiGAN objective
    can score the encoder's pairs and the generator's pairs in one pass.
    """

    def __init__(
        self,
        in_shape: list[int] = (1, 28, 28),
        latent_dim: int = 50,
        x_hidden: list[int] = (1024,),
        z_hidden: list[int] = (512,),
        joint_hidden: list[int] = (1024,),
        negative_slope: float = 0.2,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        in_shape, x_hidden, z_hidden, joint_hidden = list(in_shape), list(x_hidden), list(z_hidden), list(joint_hidden)
        _check_sizes("discriminator", in_shape=in_shape, latent_dim=latent_dim)
        _check_sizes("discriminator", x_hidden=x_hidden, z_hidden=z_hidden, joint_hidden=joint_hidden)
        if not 0 <= dropout < 1:
            raise ConfigError(f"discriminator.dropout must be in [0, 1), got {dropout}")
        self.latent_dim = latent_dim
        x_layers, x_width = _leaky_mlp(math.prod(in_shape), x_hidden, negative_slope, dropout)
        z_layers, z_width = _leaky_mlp(latent_dim, z_hidden, negative_slope, dropout)
        joint_layers, width = _leaky_mlp(x_width + z_width, joint_hidden, negative_slope, dropout)
        self.x_net = nn.Sequential(nn.Flatten(), *x_layers)
        self.z_net = nn.Sequential(*z_layers)
        self.joint = nn.Sequential(*joint_layers, nn.Linear(width, 1))

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        return self.joint(torch.cat((self.x_net(x), self.z_net(z)), dim=1)).squeeze(-1)
