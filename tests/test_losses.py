"""Each built-in loss against its closed form on hand-made logits, and its numerical behaviour."""

from __future__ import annotations

import math

import pytest
import torch

from advnets.losses import BUILTIN_LOSSES, HingeLoss, LeastSquaresLoss, MinimaxLoss, NonSaturatingLoss, WassersteinLoss

REAL = [2.0, -1.0, 0.0, 0.5]
FAKE = [-3.0, 0.5, 1.0, -0.25]


def sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def tensors():
    return torch.tensor(REAL, dtype=torch.float64), torch.tensor(FAKE, dtype=torch.float64)


CLOSED_FORMS = {
    # name: (D's loss, G's loss), straight from the formulas with plain floats
    "minimax": (
        -mean(math.log(sig(r)) for r in REAL) - mean(math.log(1 - sig(f)) for f in FAKE),
        mean(math.log(1 - sig(f)) for f in FAKE),
    ),
    "non-saturating": (
        -mean(math.log(sig(r)) for r in REAL) - mean(math.log(1 - sig(f)) for f in FAKE),
        -mean(math.log(sig(f)) for f in FAKE),
    ),
    "least-squares": (
        0.5 * mean((r - 1) ** 2 for r in REAL) + 0.5 * mean(f**2 for f in FAKE),
        0.5 * mean((f - 1) ** 2 for f in FAKE),
    ),
    "hinge": (
        mean(max(0.0, 1 - r) for r in REAL) + mean(max(0.0, 1 + f) for f in FAKE),
        -mean(FAKE),
    ),
    "wasserstein": (mean(FAKE) - mean(REAL), -mean(FAKE)),
    # Jolicoeur-Martineau (2019), equations (7)-(8): each sample against the other side's mean logit
    "relativistic-average": (
        -mean(math.log(sig(r - mean(FAKE))) for r in REAL) - mean(math.log(1 - sig(f - mean(REAL))) for f in FAKE),
        -mean(math.log(sig(f - mean(REAL))) for f in FAKE) - mean(math.log(1 - sig(r - mean(FAKE))) for r in REAL),
    ),
}


@pytest.mark.parametrize("name", sorted(CLOSED_FORMS))
def test_loss_matches_closed_form(name):
    loss = BUILTIN_LOSSES[name]()
    real, fake = tensors()
    d_expected, g_expected = CLOSED_FORMS[name]
    assert loss.discriminator_loss(real, fake).item() == pytest.approx(d_expected, rel=1e-12)
    assert loss.generator_loss(fake, real).item() == pytest.approx(g_expected, rel=1e-12)
    if not loss.generator_uses_real:  # the one-argument form stays valid where real logits are not needed
        assert loss.generator_loss(fake).item() == pytest.approx(g_expected, rel=1e-12)


def test_all_builtin_losses_are_checked():
    assert set(CLOSED_FORMS) == set(BUILTIN_LOSSES)


@pytest.mark.parametrize("name", sorted(BUILTIN_LOSSES))
def test_losses_are_finite_at_extreme_logits(name):
    loss = BUILTIN_LOSSES[name]()
    real = torch.tensor([300.0, -300.0], requires_grad=True)
    fake = torch.tensor([-300.0, 300.0], requires_grad=True)
    total = loss.discriminator_loss(real, fake) + loss.generator_loss(fake, real)
    total.backward()
    assert torch.isfinite(total) and torch.isfinite(real.grad).all() and torch.isfinite(fake.grad).all()


# D's best response when p_g = p_data: the output that minimises its loss on identical inputs.
BEST_OUTPUT_AT_EQUILIBRIUM = {
    "minimax": 0.0,
    "non-saturating": 0.0,
    "least-squares": 0.5,
    "hinge": 0.0,
    "wasserstein": 0.0,
    "relativistic-average": 0.0,
}


@pytest.mark.parametrize("name", sorted(BUILTIN_LOSSES))
def test_equilibrium_is_ds_loss_at_its_best_response(name):
    loss = BUILTIN_LOSSES[name]()
    best = torch.full((5,), BEST_OUTPUT_AT_EQUILIBRIUM[name], dtype=torch.float64)
    assert loss.discriminator_loss(best, best).item() == pytest.approx(loss.equilibrium, abs=1e-12)
    # and it is a minimum over constant outputs (real and fake look the same to D)
    for shift in (-0.3, 0.3):
        other = best + shift
        assert loss.discriminator_loss(other, other).item() >= loss.equilibrium - 1e-12


def test_cross_entropy_equilibrium_is_2_log_2():
    assert MinimaxLoss.equilibrium == pytest.approx(2 * math.log(2))


def test_non_saturating_generator_escapes_where_minimax_saturates():
    """The paper's section 3: when D rejects G's samples, log(1 - D(G(z))) has almost no gradient."""
    fake = torch.tensor([-10.0], requires_grad=True)
    MinimaxLoss().generator_loss(fake).backward()
    saturating = fake.grad.item()
    fake.grad = None
    NonSaturatingLoss().generator_loss(fake).backward()
    non_saturating = fake.grad.item()
    assert abs(saturating) < 1e-4  # -sigmoid(-10)
    assert non_saturating == pytest.approx(-1.0, abs=1e-4)  # -(1 - sigmoid(-10))


def test_gradient_penalty_of_a_linear_critic():
    """For D(x) = w.x + b the gradient is w everywhere, so the penalty is weight * (|w| - 1)^2."""
    critic = torch.nn.Linear(2, 1)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[3.0, 4.0]]))
    real, fake = torch.randn(16, 2), torch.randn(16, 2)
    penalty = WassersteinLoss(gradient_penalty=10.0).discriminator_penalty(critic, real, fake)
    assert penalty.item() == pytest.approx(10.0 * (5.0 - 1.0) ** 2, rel=1e-6)
    penalty.backward()  # differentiable with respect to D's weights
    assert critic.weight.grad is not None
    assert WassersteinLoss(gradient_penalty=0.0).discriminator_penalty(critic, real, fake) is None
    assert HingeLoss().discriminator_penalty(critic, real, fake) is None
    assert LeastSquaresLoss().discriminator_penalty(critic, real, fake) is None


def test_relativistic_generator_loss_needs_real_logits():
    from advnets.errors import ConfigError
    from advnets.losses import RelativisticAverageLoss

    with pytest.raises(ConfigError, match="needs D's logits on real data"):
        RelativisticAverageLoss().generator_loss(torch.zeros(3))
