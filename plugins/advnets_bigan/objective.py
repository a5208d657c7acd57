"""The BiGAN / ALI game (Donahue et al. 2017; Dumoulin et al. 2017): adversarially learned inference.

An encoder E maps data to noise space, as G maps noise to data space. The
discriminator sees *pairs*: (x, E(x)) with x from the data, and (G(z), z) with z
from p_z. It learns to tell the encoder's pairs (labelled real) from the
generator's (labelled fake):

    min_{G,E} max_D  E_x[log D(x, E(x))] + E_z[log(1 - D(G(z), z))]

At the optimum the two joint distributions are equal, D = 1/2 everywhere, and E
inverts G (Donahue et al., Theorems 1-2). G and E descend together, in one update,
on the run's loss with the roles swapped: G wants its pairs called real, E wants
its pairs called fake.
"""

from __future__ import annotations

import inspect

import torch
from torch import Tensor

from advnets import AdversarialTrainer, Diagnostic, GANLoss, Objective, StepContext
from advnets.errors import ConfigError


def swaps_by_negation(loss: GANLoss) -> bool:
    """True if swapping real and fake is negating the logits: D's loss(r, f) = D's loss(-f, -r).

    Then E's side of the game (its pairs should look fake) is the generator's loss on
    negated logits. It holds for the minimax, non-saturating, hinge and Wasserstein
    losses (sigmoid(-l) = 1 - sigmoid(l)); not for least squares, whose targets are 0 and 1.
    """
    rng = torch.Generator().manual_seed(0)
    real, fake = torch.randn(16, generator=rng) * 3, torch.randn(16, generator=rng) * 3
    return bool(torch.allclose(loss.discriminator_loss(real, fake), loss.discriminator_loss(-fake, -real), atol=1e-5))


class BiGANObjective(Objective):
    """k updates of the joint D on (x, E(x)) against (G(z), z), then one update of G and E together."""

    players = ("generator", "discriminator", "encoder")
    capturable = True  # its work depends on ctx.k, the batches, the noise and the players' tensors only

    def batches_per_step(self, step: int, trainer: AdversarialTrainer) -> int:
        return trainer.k_at(step)

    def check(self, trainer: AdversarialTrainer) -> None:
        if trainer.conditional:
            raise ConfigError("the bigan objective plays an unconditional game; this generator takes class labels")
        discriminator = trainer.discriminator
        if len(inspect.signature(discriminator.forward).parameters) < 2:
            raise ConfigError(
                f"the bigan objective's discriminator judges (x, z) pairs, like bigan-mlp; "
                f"{type(discriminator).__name__} takes one input"
            )
        loss = trainer.loss
        if not loss.generator_uses_real and not swaps_by_negation(loss):
            raise ConfigError(
                f"the bigan objective gives E the generator's loss on negated logits; loss {type(loss).__name__} "
                "is not symmetric in real and fake that way (use non-saturating, minimax, hinge, wasserstein "
                "or relativistic-average)"
            )
        encoder = trainer.players["encoder"].module
        if getattr(encoder, "latent_dim", trainer.latent_dim) != trainer.latent_dim:
            raise ConfigError(f"the encoder's latent_dim is {encoder.latent_dim}, the generator's {trainer.latent_dim}")

    def diagnostics(self, trainer: AdversarialTrainer) -> dict[str, Diagnostic]:
        loss = trainer.loss
        found = {"d_loss": Diagnostic("D's loss", loss.equilibrium), "g_loss": Diagnostic("G and E's loss")}
        if loss.probabilities:  # at the optimum the joint distributions match and D = 1/2
            found["d_real"] = Diagnostic("mean D(x, E(x))", 0.5, "outputs")
            found["d_fake"] = Diagnostic("mean D(G(z), z)", 0.5, "outputs")
        else:
            found["real_score"] = Diagnostic("mean score of (x, E(x))", loss.score_equilibrium, "outputs")
            found["fake_score"] = Diagnostic("mean score of (G(z), z)", loss.score_equilibrium, "outputs")
        return found

    @staticmethod
    def _pair_logits(discriminator, x: Tensor, ex: Tensor, gz: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
        """D on the encoder's pairs and the generator's pairs, in one pass (one gradient reduction under DDP)."""
        logits = discriminator(torch.cat((x, gz)), torch.cat((ex, z))).reshape(-1).float()
        return logits[: len(x)], logits[len(x) :]

    @staticmethod
    def _penalty(ctx: StepContext, x: Tensor, ex: Tensor, gz: Tensor, z: Tensor) -> Tensor | None:
        """The loss's gradient penalty, if any, on the joint space: each pair flattened into one vector."""
        discriminator = ctx.players.discriminator.module
        split, shape = x[0].numel(), x.shape[1:]

        def critic(pairs: Tensor) -> Tensor:
            return discriminator(pairs[:, :split].reshape(-1, *shape), pairs[:, split:])

        return ctx.loss.discriminator_penalty(critic, torch.cat((x.flatten(1), ex), 1), torch.cat((gz.flatten(1), z), 1))

    def step(self, ctx: StepContext) -> dict[str, Tensor]:
        G, D, E, loss = ctx.players.generator, ctx.players.discriminator, ctx.players.encoder, ctx.loss

        # Discriminator: k updates, each on a fresh real batch and fresh noise, descending
        # -[log D(x, E(x)) + log(1 - D(G(z), z))] (or the run's loss). G and E are fixed here:
        # their outputs enter D's update detached. The last round keeps their graphs for
        # the update of G and E below, on the same x and z.
        for round_ in range(ctx.k):
            last = round_ == ctx.k - 1
            batch = ctx.batch()
            x, z = batch.x, ctx.noise(len(batch))
            with ctx.autocast(), torch.set_grad_enabled(last):
                ex = (E.update_module if last else E.module)(x)
                gz = (G.update_module if last else G.module)(z)
            with ctx.autocast():
                real_logits, fake_logits = self._pair_logits(D.update_module, x, ex.detach(), gz.detach(), z)
                penalty = self._penalty(ctx, x, ex.detach(), gz.detach(), z)
            d_loss = loss.discriminator_loss(real_logits, fake_logits)
            if penalty is not None:
                d_loss = d_loss + penalty.float()
            ctx.update("discriminator", d_loss)

        # G and E together, against the updated D: G descends the generator's loss on its
        # pairs (non-saturating: -log D(G(z), z)), E the same loss with real and fake
        # swapped (-log(1 - D(x, E(x)))). Only theta_G and theta_E receive gradients.
        with ctx.autocast():
            real_logits_g, fake_logits_g = self._pair_logits(D.module, x, ex, gz, z)
        if loss.generator_uses_real:  # a relativistic loss: already the swapped game on both sides
            g_loss = loss.generator_loss(fake_logits_g, real_logits_g)
        else:
            g_loss = loss.generator_loss(fake_logits_g) + loss.generator_loss(-real_logits_g)
        ctx.update(("generator", "encoder"), g_loss)

        with torch.no_grad():
            real_logits, fake_logits = real_logits.detach(), fake_logits.detach()
            if loss.probabilities:
                outputs = {"d_real": torch.sigmoid(real_logits).mean(), "d_fake": torch.sigmoid(fake_logits).mean()}
            else:
                outputs = {"real_score": real_logits.mean(), "fake_score": fake_logits.mean()}
        return {"d_loss": d_loss.detach(), "g_loss": g_loss.detach(), **outputs}


def bigan() -> BiGANObjective:
    """BiGAN / ALI: a joint D(x, z) tells (x, E(x)) from (G(z), z); G and E update together to fool it.

    Needs the players generator, discriminator (taking x and z) and encoder; its
    settings are the trainer's (``trainer.k``).
    """
    return BiGANObjective()
