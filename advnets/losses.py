"""The built-in value functions of the game, all on discriminator logits.

D returns a logit ``l`` and D(x) = sigmoid(l). Every formula below is written with
``softplus`` so that it is exact and finite for any logit:

    -log D(x)      = -log sigmoid(l)     = softplus(-l)
    -log(1 - D(x)) = -log sigmoid(-l)    = softplus(l)

Each loss returns a mean over the minibatch; the discriminator's loss is the sum
of its real and fake terms, so for the cross-entropy losses D's loss at the
game's equilibrium (D = 1/2 everywhere, the paper's Theorem 1) is 2 log 2.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .errors import ConfigError


class GANLoss:
    """A value function: what D minimises and what G minimises.

    ``equilibrium`` is D's loss at the game's equilibrium: p_g = p_data and D at its
    best response (for the cross-entropy losses D = 1/2, logit 0, everywhere; the
    paper's Theorem 1). ``None`` where it means nothing.
    """

    equilibrium: float | None = None

    def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        raise NotImplementedError

    def generator_loss(self, fake_logits: Tensor) -> Tensor:
        raise NotImplementedError

    def discriminator_penalty(self, discriminator: nn.Module, real: Tensor, fake: Tensor) -> Tensor | None:
        """An extra term for D's loss that needs D itself (a gradient penalty); None if none."""
        return None


class MinimaxLoss(GANLoss):
    """The paper's equation 1: D ascends log D(x) + log(1 - D(G(z))), G descends log(1 - D(G(z)))."""

    equilibrium = 2 * math.log(2)

    def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        # -[log D(x) + log(1 - D(G(z)))]
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()

    def generator_loss(self, fake_logits: Tensor) -> Tensor:
        # log(1 - D(G(z))) = -softplus(l): saturates (vanishing gradient) when D rejects G's samples
        return -F.softplus(fake_logits).mean()


class NonSaturatingLoss(MinimaxLoss):
    """The paper's section 3: D as in equation 1, G ascends log D(G(z)) instead (stronger early gradients)."""

    def generator_loss(self, fake_logits: Tensor) -> Tensor:
        # -log D(G(z)): binary cross-entropy of G's samples against the label "real"
        return F.softplus(-fake_logits).mean()


class LeastSquaresLoss(GANLoss):
    """Least-squares GAN (Mao et al. 2017): D regresses real to 1 and fake to 0, G pulls fake to 1."""

    equilibrium = 0.25  # the best D outputs 1/2: 0.5 * (1/2 - 1)^2 + 0.5 * (1/2)^2

    def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return 0.5 * (real_logits - 1).square().mean() + 0.5 * fake_logits.square().mean()

    def generator_loss(self, fake_logits: Tensor) -> Tensor:
        return 0.5 * (fake_logits - 1).square().mean()


class HingeLoss(GANLoss):
    """Hinge loss (Lim and Ye 2017; Miyato et al. 2018): D's margin at +-1, G raises D's score."""

    equilibrium = 2.0  # D = 0: relu(1 - 0) + relu(1 + 0)

    def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()

    def generator_loss(self, fake_logits: Tensor) -> Tensor:
        return -fake_logits.mean()


class WassersteinLoss(GANLoss):
    """Wasserstein GAN (Arjovsky et al. 2017), with the gradient penalty of Gulrajani et al. 2017."""

    equilibrium = 0.0

    def __init__(self, gradient_penalty: float = 10.0) -> None:
        """``gradient_penalty`` weighs E[(||grad D(x_hat)|| - 1)^2]; 0 turns it off."""
        if gradient_penalty < 0:
            raise ConfigError(f"loss.gradient_penalty must be >= 0, got {gradient_penalty}")
        self.gradient_penalty = gradient_penalty

    def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        # the critic estimates W(p_data, p_g) as E[D(x)] - E[D(G(z))] and maximises it
        return fake_logits.mean() - real_logits.mean()

    def generator_loss(self, fake_logits: Tensor) -> Tensor:
        return -fake_logits.mean()

    def discriminator_penalty(self, discriminator: nn.Module, real: Tensor, fake: Tensor) -> Tensor | None:
        if self.gradient_penalty == 0:
            return None
        # x_hat uniformly on the segment between a real and a fake sample
        shape = (real.shape[0],) + (1,) * (real.dim() - 1)
        eps = torch.rand(shape, device=real.device, dtype=real.dtype)
        x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
        (grad,) = torch.autograd.grad(discriminator(x_hat).sum(), x_hat, create_graph=True)
        norm = grad.flatten(1).norm(2, dim=1)
        return self.gradient_penalty * (norm - 1).square().mean()


BUILTIN_LOSSES = {
    "minimax": MinimaxLoss,
    "non-saturating": NonSaturatingLoss,
    "least-squares": LeastSquaresLoss,
    "hinge": HingeLoss,
    "wasserstein": WassersteinLoss,
}
