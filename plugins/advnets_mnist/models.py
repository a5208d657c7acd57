"""The lecture's multilayer perceptrons: a generator and a discriminator for flat images."""

from __future__ import annotations

import math

from torch import Tensor, nn

from advnets.errors import ConfigError

ACTIVATIONS = ("relu", "leaky-relu")


def _activation(name: str, negative_slope: float) -> nn.Module:
    if name == "relu":
        return nn.ReLU()
    if name == "leaky-relu":
        return nn.LeakyReLU(negative_slope)
    raise ConfigError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {name!r}")


def _check_sizes(owner: str, **sizes: list[int] | int) -> None:
    for key, value in sizes.items():
        values = value if isinstance(value, list) else [value]
        if not values or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in values):
            raise ConfigError(f"{owner}.{key} must be positive integers, got {value!r}")


class MLPGenerator(nn.Module):
    """G: z -> Linear/activation layers -> Linear -> Tanh, reshaped to ``out_shape``."""

    def __init__(
        self,
        latent_dim: int = 64,
        hidden: list[int] = (64, 128, 256, 512, 1024),
        out_shape: list[int] = (1, 28, 28),
        activation: str = "relu",
        negative_slope: float = 0.2,
        batchnorm: bool = False,
    ) -> None:
        super().__init__()
        hidden, out_shape = list(hidden), list(out_shape)
        _check_sizes("generator", latent_dim=latent_dim, hidden=hidden, out_shape=out_shape)
        self.latent_dim = latent_dim
        self.out_shape = tuple(out_shape)
        layers: list[nn.Module] = []
        width = latent_dim
        for size in hidden:
            layers.append(nn.Linear(width, size))
            if batchnorm:  # as in DCGAN's generator: batch statistics keep the layers' scale in hand
                layers.append(nn.BatchNorm1d(size))
            layers.append(_activation(activation, negative_slope))
            width = size
        layers += [nn.Linear(width, math.prod(out_shape)), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z).view(-1, *self.out_shape)


class MLPDiscriminator(nn.Module):
    """D: flattened x -> Linear/activation layers -> Linear -> one logit (no sigmoid: losses apply it)."""

    def __init__(
        self,
        in_shape: list[int] = (1, 28, 28),
        hidden: list[int] = (1024, 512, 256, 128),
        activation: str = "relu",
        negative_slope: float = 0.2,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        hidden, in_shape = list(hidden), list(in_shape)
        _check_sizes("discriminator", hidden=hidden, in_shape=in_shape)
        if not 0 <= dropout < 1:
            raise ConfigError(f"discriminator.dropout must be in [0, 1), got {dropout}")
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(in_shape)
        for size in hidden:
            layers += [nn.Linear(width, size), _activation(activation, negative_slope)]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = size
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).squeeze(-1)
