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
    """A value function: what D minimises and what G minimises, on D's logits.

    ``equilibrium`` is D's loss at the game's equilibrium: p_g = p_data and D at its
    best response (for the cross-entropy losses D = 1/2, logit 0, everywhere; the
    paper's Theorem 1). ``None`` where it means nothing.

    ``probabilities``: D's outputs are log-odds, so sigmoid(logit) is D's estimate
    of the probability that a sample is real, and 1/2 is the equilibrium. Otherwise
    displays show the mean raw scores, with ``score_equilibrium`` as their reference
    line where there is one.

    ``generator_uses_real``: G's loss also needs D's logits on real data (a
    relativistic loss); then ``generator_loss(fake_logits, real_logits)`` is called
    with real logits computed without gradients, else ``generator_loss(fake_logits)``.
    """

    equilibrium: float | None = None
    probabilities: bool = False
    score_equilibrium: float | None = None
    generator_uses_real: bool = False

    def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        raise NotImplementedError

    def generator_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        raise NotImplementedError

    def discriminator_penalty(self, discriminator: nn.Module, real: Tensor, fake: Tensor) -> Tensor | None:
        """An extra term for D's loss that needs D itself (a gradient penalty); None if none."""
        return None


class MinimaxLoss(GANLoss):
    """The paper's equation 1: D ascends log D(x) + log(1 - D(G(z))), G descends log(1 - D(G(z)))."""

    equilibrium = 2 * math.log(2)
    probabilities = True

    def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        # -[log D(x) + log(1 - D(G(z)))]
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()

    def generator_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        # log(1 - D(G(z))) = -softplus(l): saturates (vanishing gradient) when D rejects G's samples
        return -F.softplus(fake_logits).mean()


class NonSaturatingLoss(MinimaxLoss):
    """The paper's section 3: D as in equation 1, G ascends log D(G(z)) instead (stronger early gradients)."""

    def generator_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        # -log D(G(z)): binary cross-entropy of G's samples against the label "real"
        return F.softplus(-fake_logits).mean()


class LeastSquaresLoss(GANLoss):
    """Least-squares GAN (Mao et al. 2017): D regresses real to 1 and fake to 0, G pulls fake to 1."""

    equilibrium = 0.25  # the best D outputs 1/2: 0.5 * (1/2 - 1)^2 + 0.5 * (1/2)^2
    score_equilibrium = 0.5

    def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return 0.5 * (real_logits - 1).square().mean() + 0.5 * fake_logits.square().mean()

    def generator_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        return 0.5 * (fake_logits - 1).square().mean()


class HingeLoss(GANLoss):
    """Hinge loss (Lim and Ye 2017; Miyato et al. 2018): D's margin at +-1, G raises D's score."""

    equilibrium = 2.0  # D = 0: relu(1 - 0) + relu(1 + 0)
    score_equilibrium = 0.0

    def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()

    def generator_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        return -fake_logits.mean()


class WassersteinLoss(GANLoss):
    """Wasserstein GAN (Arjovsky et al. 2017), with the gradient penalty of Gulrajani et al. 2017."""

    equilibrium = 0.0  # the critic cannot tell p_g from p_data: E[D(x)] - E[D(G(z))] = 0

    def __init__(self, gradient_penalty: float = 10.0) -> None:
        """``gradient_penalty`` weighs E[(||grad D(x_hat)|| - 1)^2]; 0 turns it off."""
        if gradient_penalty < 0:
            raise ConfigError(f"loss.gradient_penalty must be >= 0, got {gradient_penalty}")
        self.gradient_penalty = gradient_penalty

    def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        # the critic estimates W(p_data, p_g) as E[D(x)] - E[D(G(z))] and maximises it
        return fake_logits.mean() - real_logits.mean()

    def generator_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
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


class RelativisticAverageLoss(GANLoss):
    """Relativistic average GAN (Jolicoeur-Martineau 2019): each side asks if real looks more real than fake."""

    equilibrium = 2 * math.log(2)  # C(x_r) - E C(x_f) = 0 everywhere: log 2 for each term
    generator_uses_real = True

    def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        # -E_r log sigmoid(C(x_r) - E_f C(x_f)) - E_f log(1 - sigmoid(C(x_f) - E_r C(x_r)))
        return F.softplus(-(real_logits - fake_logits.mean())).mean() + F.softplus(fake_logits - real_logits.mean()).mean()

    def generator_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        if real_logits is None:
            raise ConfigError("the relativistic-average loss needs D's logits on real data for G's loss")
        # the same game with the roles of real and fake swapped; real logits carry no gradient to G
        return F.softplus(-(fake_logits - real_logits.mean())).mean() + F.softplus(real_logits - fake_logits.mean()).mean()


BUILTIN_LOSSES = {
    "minimax": MinimaxLoss,
    "non-saturating": NonSaturatingLoss,
    "least-squares": LeastSquaresLoss,
    "hinge": HingeLoss,
    "wasserstein": WassersteinLoss,
    "relativistic-average": RelativisticAverageLoss,
}
