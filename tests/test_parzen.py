"""The Parzen-window estimate: the matrix form against a direct computation, and known answers."""

from __future__ import annotations

import math

import pytest
import torch

from advnets import Data
from advnets_parzen.metrics import Parzen, parzen_log_likelihood


def direct(x: torch.Tensor, centres: torch.Tensor, sigma: float) -> list[float]:
    """log p(x) for each point, straight from the formula, one point and one centre at a time."""
    d = x.shape[1]
    out = []
    for point in x.tolist():
        exponents = [-0.5 * sum(((a - b) / sigma) ** 2 for a, b in zip(point, centre)) for centre in centres.tolist()]
        top = max(exponents)
        log_mean_exp = top + math.log(sum(math.exp(e - top) for e in exponents) / len(exponents))
        out.append(log_mean_exp - d * math.log(sigma * math.sqrt(2 * math.pi)))
    return out


def test_matrix_form_matches_the_direct_computation():
    g = torch.Generator().manual_seed(0)
    x, centres = torch.rand(7, 5, generator=g), torch.rand(11, 5, generator=g)
    sigmas = torch.tensor([0.05, 0.2, 1.0])
    matrix = parzen_log_likelihood(x, centres, sigmas, chunk=3)
    for j, sigma in enumerate(sigmas.tolist()):
        assert matrix[:, j].tolist() == pytest.approx(direct(x, centres, sigma), rel=1e-10, abs=1e-9)


def test_a_single_centre_is_a_gaussian_density():
    d, sigma = 784, 0.3
    x = torch.zeros(1, d, dtype=torch.float64)
    x[0, :4] = torch.tensor([0.3, 0.4, 0.0, 1.2], dtype=torch.float64)  # squared distance 1.69 from the origin
    ll = parzen_log_likelihood(x, torch.zeros(1, d), torch.tensor([sigma], dtype=torch.float64))[0, 0].item()
    assert ll == pytest.approx(-1.69 / (2 * sigma**2) - d * math.log(sigma * math.sqrt(2 * math.pi)), rel=1e-12)


def test_far_points_stay_finite():
    """log-mean-exp in float64: no underflow to -inf when every kernel is tiny."""
    ll = parzen_log_likelihood(torch.ones(3, 784), torch.zeros(10, 784), torch.tensor([0.1]))
    assert torch.isfinite(ll).all() and ll.max() < -30000


def test_protocol_picks_the_validation_sigma_and_reports_the_standard_error():
    """Data drawn around centres with noise 0.3: the validation set should pick the sigma nearest 0.3."""
    g = torch.Generator().manual_seed(1)
    d = 20
    means = torch.rand(50, d, generator=g)
    def draw(n):
        return (means[torch.randint(0, 50, (n,), generator=g)] + 0.3 * torch.randn(n, d, generator=g)).float()
    data = Data(train=draw(400), test=draw(300), name="blobs")
    metric = Parzen(valid_start=0, valid_size=200, n_test=300)
    samples = draw(2000)
    result = metric(samples, data)
    sigmas = metric.sigmas.tolist()
    assert result["parzen_sigma"] in sigmas
    assert abs(math.log(result["parzen_sigma"] / 0.3)) <= math.log(sigmas[1] / sigmas[0]) + 1e-9
    scores = parzen_log_likelihood(data.test, samples, torch.tensor([result["parzen_sigma"]]))[:, 0]
    assert result["parzen"] == pytest.approx(scores.mean().item())
    assert result["parzen_se"] == pytest.approx(scores.std(unbiased=False).item() / math.sqrt(300))
    valid = parzen_log_likelihood(data.train[:200], samples, torch.tensor([result["parzen_sigma"]]))[:, 0]
    assert result["parzen_valid"] == pytest.approx(valid.mean().item())
