"""The lecture's multilayer perceptrons for flat images, and their class-conditional versions."""

from __future__ import annotations

import math

import torch
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


class CondMLPGenerator(nn.Module):
    """Conditional G (Mirza and Osindero 2014): [z, embed(y)] -> the lecture's MLP -> Tanh, shaped ``out_shape``."""

    def __init__(
        self,
        latent_dim: int = 64,
        num_classes: int = 10,
        embed_dim: int = 10,
        hidden: list[int] = (64, 128, 256, 512, 1024),
        out_shape: list[int] = (1, 28, 28),
        activation: str = "relu",
        negative_slope: float = 0.2,
        batchnorm: bool = True,
    ) -> None:
        super().__init__()
        _check_sizes("generator", latent_dim=latent_dim, num_classes=num_classes, embed_dim=embed_dim)
        self.latent_dim, self.num_classes = latent_dim, num_classes
        self.embed = nn.Embedding(num_classes, embed_dim)
        # the label's embedding joins z at the input: G(z, y) = MLP([z, embed(y)])
        self.body = MLPGenerator(latent_dim + embed_dim, hidden, out_shape, activation, negative_slope, batchnorm)

    def forward(self, z: Tensor, labels: Tensor) -> Tensor:
        return self.body(torch.cat((z, self.embed(labels)), 1))


class CondMLPDiscriminator(nn.Module):
    """Conditional D (Mirza and Osindero 2014): [flattened x, embed(y)] -> the lecture's MLP -> one logit."""

    def __init__(
        self,
        num_classes: int = 10,
        embed_dim: int = 10,
        in_shape: list[int] = (1, 28, 28),
        hidden: list[int] = (1024, 512, 256, 128),
        activation: str = "relu",
        negative_slope: float = 0.2,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        _check_sizes("discriminator", num_classes=num_classes, embed_dim=embed_dim)
        self.num_classes = num_classes
        self.embed = nn.Embedding(num_classes, embed_dim)
        self.body = MLPDiscriminator([math.prod(list(in_shape)) + embed_dim], hidden, activation, negative_slope, dropout)

    def forward(self, x: Tensor, labels: Tensor) -> Tensor:
        return self.body(torch.cat((x.flatten(1), self.embed(labels)), 1))


class ProjectionMLPDiscriminator(nn.Module):
    """Projection D (Miyato and Koyama 2018): logit = psi(phi(x)) + <embed(y), phi(x)>, phi the lecture's MLP."""

    def __init__(
        self,
        num_classes: int = 10,
        in_shape: list[int] = (1, 28, 28),
        hidden: list[int] = (1024, 512, 256, 128),
        activation: str = "relu",
        negative_slope: float = 0.2,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        _check_sizes("discriminator", num_classes=num_classes)
        self.num_classes = num_classes
        mlp = MLPDiscriminator(in_shape, hidden, activation, negative_slope, dropout)
        self.phi = mlp.net[:-1]  # features: all but the last Linear
        self.psi = mlp.net[-1]  # the unconditional logit: Linear(features, 1)
        width = list(hidden)[-1]
        self.embed = nn.Embedding(num_classes, width)
        nn.init.normal_(self.embed.weight, std=width**-0.5)  # the projection starts as small as psi's weights

    def forward(self, x: Tensor, labels: Tensor) -> Tensor:
        features = self.phi(x)
        return self.psi(features).squeeze(-1) + (self.embed(labels) * features).sum(1)
