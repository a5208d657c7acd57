"""The toy 1-D Gaussian: exact metrics, and a GAN that learns the target (the paper's Figure 1)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from advnets.config import resolve
from advnets.runs import start_run
from advnets_gaussian.metrics import histogram_js, ks_statistic, normal_cdf, wasserstein_1

MU, SIGMA = 4.0, 0.5


def integrated_w1(samples: torch.Tensor, mu: float, sigma: float) -> float:
    """W1 = integral |F_n - F| dx by the trapezoid rule on a fine grid."""
    x = torch.linspace(min(mu - 12 * sigma, samples.min().item() - 1), max(mu + 12 * sigma, samples.max().item() + 1), 400_001, dtype=torch.float64)
    empirical = torch.searchsorted(samples.sort().values.double(), x, right=True).double() / len(samples)
    return torch.trapezoid((empirical - normal_cdf(x, mu, sigma)).abs(), x).item()


@pytest.mark.parametrize("shift, scale", [(0.0, 1.0), (0.7, 1.0), (0.0, 1.6), (-1.2, 0.4)])
def test_w1_matches_numerical_integration(shift, scale):
    samples = torch.randn(2000, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * SIGMA * scale + MU + shift
    assert wasserstein_1(samples, MU, SIGMA) == pytest.approx(integrated_w1(samples, MU, SIGMA), rel=1e-4, abs=1e-6)


def test_w1_of_a_shifted_target_is_the_shift():
    """W1 between N(mu + d, s) and N(mu, s) is |d|; the target's own quantiles are almost 0 away."""
    n = 20000
    quantiles = MU + SIGMA * math.sqrt(2) * torch.erfinv(2 * (torch.arange(1, n + 1, dtype=torch.float64) - 0.5) / n - 1)
    assert wasserstein_1(quantiles, MU, SIGMA) < 1e-3
    assert wasserstein_1(quantiles + 0.3, MU, SIGMA) == pytest.approx(0.3, abs=1e-3)


def test_ks_statistic_known_answers():
    n = 1000
    quantiles = MU + SIGMA * math.sqrt(2) * torch.erfinv(2 * (torch.arange(1, n + 1, dtype=torch.float64) - 0.5) / n - 1)
    assert ks_statistic(quantiles, MU, SIGMA) == pytest.approx(0.5 / n, rel=1e-6)
    far = torch.full((100,), MU + 50 * SIGMA, dtype=torch.float64)
    assert ks_statistic(far, MU, SIGMA) == pytest.approx(1.0)
    samples = torch.randn(500, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * SIGMA + MU + 0.2
    grid = torch.linspace(MU - 6 * SIGMA, MU + 6 * SIGMA, 200_001, dtype=torch.float64)
    empirical = torch.searchsorted(samples.sort().values, grid, right=True).double() / len(samples)
    brute = (empirical - normal_cdf(grid, MU, SIGMA)).abs().max().item()
    assert ks_statistic(samples, MU, SIGMA) == pytest.approx(brute, abs=2e-3)


def direct_js(samples: list[float], mu: float, sigma: float, bins: int, width: float) -> float:
    """The same divergence by hand, one bin at a time with math.erf."""
    lo, step = mu - width * sigma, 2 * width * sigma / bins
    edges = [lo + i * step for i in range(bins + 1)]
    cdf = [0.0] + [0.5 * (1 + math.erf((e - mu) / (sigma * math.sqrt(2)))) for e in edges] + [1.0]
    counts = [0] * (bins + 2)
    for x in samples:
        counts[sum(1 for e in edges if x >= e)] += 1
    total = 0.0
    for i in range(bins + 2):
        p, q = counts[i] / len(samples), cdf[i + 1] - cdf[i]
        m = (p + q) / 2
        total += (p * math.log(p / m) if p > 0 else 0.0) + (q * math.log(q / m) if q > 0 else 0.0)
    return total / 2


@pytest.mark.parametrize("shift, scale, bins", [(0.0, 1.0, 50), (0.4, 1.0, 50), (0.0, 2.0, 20), (-3.0, 0.3, 7)])
def test_histogram_js_matches_a_direct_computation(shift, scale, bins):
    samples = torch.randn(3000, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * SIGMA * scale + MU + shift
    expected = direct_js(samples.tolist(), MU, SIGMA, bins, 4.0)
    assert histogram_js(samples, MU, SIGMA, bins=bins) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_histogram_js_known_answers():
    n = 100_000
    quantiles = MU + SIGMA * math.sqrt(2) * torch.erfinv(2 * (torch.arange(1, n + 1, dtype=torch.float64) - 0.5) / n - 1)
    assert histogram_js(quantiles, MU, SIGMA) < 1e-6  # the target's own quantiles fill each bin with its mass
    # all samples far above: disjoint from the target except its tail beyond 4 sigma (3.2e-5), so nearly log 2
    far = torch.full((100,), MU + 50 * SIGMA, dtype=torch.float64)
    assert histogram_js(far, MU, SIGMA) == pytest.approx(math.log(2), abs=1e-3)
    assert histogram_js(far, MU, SIGMA) < math.log(2)


@pytest.mark.slow
def test_toy_gaussian_learns_the_target_and_draws_figure_1(registry, tmp_path):
    """The full toy-gaussian preset (40 epochs, about 10 s): W1 to N(4, 0.5^2) falls from ~4 to under 0.15."""
    config = resolve(registry, preset="toy-gaussian", overrides=[(("seed",), 0)])
    run = start_run(registry, config, out=tmp_path / "run")
    run.fit()
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if r["event"] == "eval"]
    train = [r for r in records if r["event"] == "train"]
    assert evals[-1]["step"] == run.trainer.step == 40 * run.trainer.steps_per_epoch
    assert evals[-1]["w1"] < 0.15, evals[-1]
    assert evals[-1]["ks"] < 0.15, evals[-1]
    assert evals[-1]["js"] < 0.05 and evals[0]["js"] > 0.5, evals
    # D ends near its equilibrium output 1/2 on both real and generated samples (Theorem 1)
    assert abs(train[-1]["d_real"] - 0.5) < 0.05 and abs(train[-1]["d_fake"] - 0.5) < 0.05
    figure = tmp_path / "run" / "figure1.png"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    snapshots = run.trainer.callbacks[0].snapshots
    assert [s["step"] for s in snapshots] == [0, 2080, 4160, 6240]
    # the first panel is far from the target, the last one close
    assert wasserstein_1(snapshots[0]["samples"], MU, SIGMA) > 2.0
    assert wasserstein_1(snapshots[-1]["samples"], MU, SIGMA) < 0.15


def test_figure_1_draws_gs_density_as_a_line_that_fits_its_axis():
    """A KDE line for p_g (finite even when G has collapsed), every curve inside its panel, x labelled, 1/2 in the legend."""
    import matplotlib.pyplot as plt

    from advnets_gaussian.figure import density_line, figure

    xs = torch.linspace(-2, 10, 1201)
    normal = torch.randn(20000, generator=torch.Generator().manual_seed(0)) * SIGMA + MU
    estimate = density_line(normal, xs, min_bandwidth=0.01)
    truth = torch.exp(-0.5 * ((xs - MU) / SIGMA) ** 2) / (SIGMA * math.sqrt(2 * math.pi))
    assert (estimate - truth).abs().max() < 0.05 and float(estimate.sum() * (xs[1] - xs[0])) == pytest.approx(1, abs=1e-3)
    assert density_line(torch.zeros(100), xs, min_bandwidth=0.06).max() == pytest.approx(1 / (0.06 * math.sqrt(2 * math.pi)), rel=1e-3)

    grid = torch.linspace(0, 6, 50)
    snapshot = {"grid": grid, "d": torch.full((50,), 0.5), "z": torch.linspace(-1, 1, 5), "gz": torch.full((5,), 0.1)}
    collapsed, learned = {**snapshot, "step": 0, "samples": torch.full((500,), 0.1)}, {**snapshot, "step": 9, "samples": normal[:5000]}
    fig = figure([collapsed, learned], {"mu": MU, "sigma": SIGMA})
    try:
        for ax in fig.axes:
            top = ax.get_ylim()[1]
            assert all(max(line.get_ydata()) <= top for line in ax.get_lines())  # nothing is cut off at the top
            assert ax.get_xlabel() == "x"
        assert fig.axes[0].get_ylim()[1] > 10 > 1.5 > fig.axes[1].get_ylim()[1]  # each panel fits its own curves
        assert "D = 1/2 (equilibrium)" in [t.get_text() for t in fig.legends[0].get_texts()]
    finally:
        plt.close(fig)
