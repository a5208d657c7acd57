"""A third player through the public contract: an encoder that recovers z from G(z).

Save this file anywhere and run, for example:

    advnets run toy-gaussian --plugin latent_regression.py --set objective=latent-regression \
        --set 'players.encoder={"module": {"name": "mlp"}}' --steps 400

The objective plays Algorithm 1 between G and D, then updates G and the encoder E
together: G on its usual loss plus ``weight * |E(G(z)) - z|^2``, E on the same
reconstruction term (the mutual-information bonus of InfoGAN, in its simplest form).
"""

from __future__ import annotations

import torch
from torch import nn

from advnets import Component, ConfigError, Diagnostic, Objective, hookimpl


class MLPEncoder(nn.Module):
    """E: x -> z, a small MLP; ``latent_dim`` must match G's."""

    def __init__(self, in_features: int = 1, latent_dim: int = 1, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(in_features, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, latent_dim))

    def forward(self, x):
        return self.net(x)


class LatentRegression(Objective):
    """Algorithm 1 plus an encoder that must recover G's noise from G's samples."""

    players = ("generator", "discriminator", "encoder")

    def __init__(self, weight: float = 1.0) -> None:
        self.weight = weight

    def check(self, trainer):
        """Before training: E's code has G's latent size (a mismatch would broadcast in silence)."""
        latent = trainer.players.generator.module.latent_dim
        with torch.no_grad():
            code = trainer.players.encoder.module(torch.zeros(2, *trainer.data.sample_shape, device=trainer.device))
        if tuple(code.shape) != (2, latent):
            raise ConfigError(f"the encoder gives codes of shape {tuple(code.shape[1:])}; G's latent_dim is {latent}: "
                              f"set players.encoder.module.latent_dim={latent}")

    def diagnostics(self, trainer):
        return {
            "d_loss": Diagnostic("D's loss", trainer.loss.equilibrium),
            "g_loss": Diagnostic("G's loss"),
            "z_error": Diagnostic("|E(G(z)) - z|^2", 0.0),
        }

    def step(self, ctx):
        G, D, E = ctx.players.generator, ctx.players.discriminator, ctx.players.encoder
        batch = ctx.batch()
        with torch.no_grad():
            fake = G.module(ctx.noise())
        d_loss = ctx.loss.discriminator_loss(D.update_module(batch.x).reshape(-1), D.module(fake).reshape(-1))
        ctx.update("discriminator", d_loss)

        z = ctx.noise()
        fake = G.update_module(z)
        g_loss = ctx.loss.generator_loss(D.module(fake).reshape(-1))
        z_error = (E.update_module(fake) - z).square().mean()
        ctx.update(("generator", "encoder"), g_loss + self.weight * z_error)
        return {"d_loss": d_loss.detach(), "g_loss": g_loss.detach(), "z_error": z_error.detach()}


@hookimpl
def register_components(register):
    register(Component(kind="encoder", name="mlp", factory=MLPEncoder))
    register(Component(kind="objective", name="latent-regression", factory=LatentRegression))
