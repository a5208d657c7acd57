"""Small MLPs for 1-D data."""

from __future__ import annotations

from torch import Tensor, nn

from advnets.errors import ConfigError


def _mlp(width_in: int, hidden: list[int], width_out: int) -> nn.Sequential:
    if not hidden or not all(isinstance(h, int) and h >= 1 for h in hidden):
        raise ConfigError(f"hidden must be a list of positive integers, got {hidden!r}")
    layers: list[nn.Module] = []
    for size in hidden:
        layers += [nn.Linear(width_in, size), nn.LeakyReLU(0.2)]
        width_in = size
    layers.append(nn.Linear(width_in, width_out))
    return nn.Sequential(*layers)


class ToyGenerator(nn.Module):
    """G for 1-D data: z -> MLP (LeakyReLU) -> x, with a linear output."""

    def __init__(self, latent_dim: int = 1, hidden: list[int] = (64, 64)) -> None:
        super().__init__()
        if latent_dim < 1:
            raise ConfigError(f"generator.latent_dim must be >= 1, got {latent_dim}")
        self.latent_dim = latent_dim
        self.net = _mlp(latent_dim, list(hidden), 1)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)


class ToyDiscriminator(nn.Module):
    """D for 1-D data: x -> MLP (LeakyReLU) -> one logit."""

    def __init__(self, hidden: list[int] = (64, 64)) -> None:
        super().__init__()
        self.net = _mlp(1, list(hidden), 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).squeeze(-1)
