"""The paper's Figure 1, drawn from a real run: p_data, p_g and D over x, with the map z -> x.

In each panel, as in the paper: the data density (black, dotted), G's density
p_g (green, solid: a kernel density estimate from G's samples), D(x) (blue,
dashed) against the line D = 1/2, and below them lines from evenly spaced z on
the noise domain up to G(z), showing how G squeezes and stretches p_z. At the
game's equilibrium p_g = p_data and D(x) = 1/2 everywhere (Theorem 1).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from advnets import AdversarialTrainer, Callback
from advnets.trainer import eval_mode
from advnets.errors import ConfigError
from advnets.files import check_file_slot, write_rendered

GRID_POINTS = 200
MAP_LINES = 15
MAX_PANELS = 1000  # a sanity bound on a checkpoint's snapshots (each resume may add its own panels)


class FigureOne(Callback):
    """Writes figure1.png: the paper's Figure 1 panels at evenly spaced points of training."""

    def __init__(self, panels: int = 4, n_samples: int = 5000, filename: str = "figure1.png") -> None:
        if panels < 1 or n_samples < 10:
            raise ConfigError("figure-1: panels must be >= 1 and n_samples >= 10")
        self.panels, self.n_samples, self.filename = panels, n_samples, filename
        self.snapshots: list[dict[str, Any]] = []
        self._due: list[int] = []

    def check(self, trainer: AdversarialTrainer) -> None:
        if trainer.data.sample_shape != (1,):
            raise ConfigError(f"figure-1 draws 1-D data; dataset {trainer.data.name!r} has shape {trainer.data.sample_shape}")
        check_file_slot(trainer.require_run_dir("figure-1") / self.filename, "figure-1's picture")

    def on_fit_start(self, trainer: AdversarialTrainer) -> None:
        target = trainer.target_step
        if self.panels == 1:
            self._due = [target]
        else:
            self._due = sorted({round(i * target / (self.panels - 1)) for i in range(self.panels)})
        self._capture(trainer)

    def _capture(self, trainer: AdversarialTrainer) -> None:
        if trainer.step not in self._due or any(s["step"] == trainer.step for s in self.snapshots):
            return
        mu, sigma = trainer.data.meta.get("mu", 0.0), trainer.data.meta.get("sigma", 1.0)
        samples = trainer.sample(self.n_samples, seed=0).reshape(-1).cpu()
        lo = min(mu - 4 * sigma, float(samples.quantile(0.005)))
        hi = max(mu + 4 * sigma, float(samples.quantile(0.995)))
        grid = torch.linspace(lo, hi, GRID_POINTS, device=trainer.device).unsqueeze(1)
        z = torch.linspace(-1, 1, MAP_LINES, device=trainer.device).unsqueeze(1).expand(-1, trainer.latent_dim)
        with eval_mode(trainer.discriminator) as discriminator, eval_mode(trainer.sampling_generator) as generator:
            with torch.no_grad():
                d = torch.sigmoid(discriminator(grid).reshape(-1)).cpu()
                gz = generator(z.contiguous()).reshape(-1).cpu()
        self.snapshots.append(
            {"step": trainer.step, "samples": samples, "grid": grid.reshape(-1).cpu(), "d": d, "z": z[:, 0].cpu(), "gz": gz}
        )

    def on_step_end(self, trainer: AdversarialTrainer) -> None:
        self._capture(trainer)

    def on_fit_end(self, trainer: AdversarialTrainer) -> None:
        self._capture(trainer)
        draw(self.snapshots, trainer.data.meta, trainer.run_dir / self.filename)

    def state_dict(self) -> dict[str, Any]:
        return {"snapshots": self.snapshots}

    def check_state(self, state: dict[str, Any]) -> None:
        snapshots = state.get("snapshots", [])
        if not isinstance(snapshots, list) or len(snapshots) > MAX_PANELS:
            raise ValueError(f"snapshots must be a list of at most {MAX_PANELS} panels")
        for i, snap in enumerate(snapshots):
            if not isinstance(snap, dict) or not isinstance(snap.get("step"), int) or isinstance(snap.get("step"), bool):
                raise ValueError(f"snapshots.{i} must be a table with a whole-number step")
            for key in ("samples", "grid", "d", "z", "gz"):
                value = snap.get(key)
                if not isinstance(value, torch.Tensor) or value.dim() != 1 or not value.is_floating_point():
                    raise ValueError(f"snapshots.{i}.{key} must be a 1-D float tensor")
            if len(snap["grid"]) != len(snap["d"]) or len(snap["z"]) != len(snap["gz"]) or len(snap["grid"]) < 2:
                raise ValueError(f"snapshots.{i}: grid and d, and z and gz, must be of the same lengths")

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.snapshots = list(state.get("snapshots", []))


def density_line(samples: torch.Tensor, xs: torch.Tensor, min_bandwidth: float) -> torch.Tensor:
    """A Gaussian kernel density estimate of 1-D ``samples`` at ``xs``.

    Silverman's rule picks the bandwidth, never below ``min_bandwidth``: a G that has
    collapsed to one point still draws a peak of finite height.
    """
    samples = samples.reshape(-1).double()
    bandwidth = max(1.06 * float(samples.std()) * len(samples) ** -0.2, min_bandwidth)
    u = (xs.double().unsqueeze(1) - samples.unsqueeze(0)) / bandwidth
    return (torch.exp(-0.5 * u**2).mean(dim=1) / (bandwidth * math.sqrt(2 * math.pi))).float()


def figure(snapshots: list[dict[str, Any]], meta: dict[str, Any]):
    """The figure's panels, one per snapshot; each panel's y axis fits the densities and D it draws."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    mu, sigma = float(meta.get("mu", 0.0)), float(meta.get("sigma", 1.0))
    lo = min(float(s["grid"][0]) for s in snapshots)
    hi = max(float(s["grid"][-1]) for s in snapshots)
    xs = torch.linspace(lo, hi, 400)
    density = torch.exp(-0.5 * ((xs - mu) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))
    fig, axes = plt.subplots(1, len(snapshots), figsize=(3.6 * len(snapshots), 3.9), squeeze=False)
    for ax, snap, letter in zip(axes[0], snapshots, "abcdefghijklmnopqrstuvwxyz"):
        p_g = density_line(snap["samples"], xs, min_bandwidth=(hi - lo) / 200)
        top = 1.1 * max(1.0, float(density.max()), float(p_g.max()))  # D is at most 1
        ax.plot(xs.numpy(), density.numpy(), "k:", lw=2, label="p_data")
        ax.plot(xs.numpy(), p_g.numpy(), "-", color="#2ca02c", lw=2, label="p_g (G's samples)")
        ax.plot(snap["grid"].numpy(), snap["d"].numpy(), "--", color="#1f77b4", lw=2, label="D(x)")
        ax.axhline(0.5, color="#1f77b4", lw=0.8, alpha=0.5, label="D = 1/2 (equilibrium)")
        # The map x = G(z): evenly spaced z on the lower line, joined to G(z) on the x line.
        z_line, x_line = -0.32 * top, -0.06 * top
        z_pos = lo + (snap["z"].numpy() + 1) / 2 * (hi - lo)
        ax.hlines([z_line, x_line], lo, hi, color="0.3", lw=0.8)
        for zp, gx in zip(z_pos, snap["gz"].numpy()):
            ax.annotate("", xy=(min(max(gx, lo), hi), x_line), xytext=(zp, z_line), arrowprops={"arrowstyle": "->", "color": "0.35", "lw": 0.7})
        ax.text(lo, z_line - 0.07 * top, "z", fontsize=9, va="top")
        ax.text(lo, x_line + 0.02 * top, "x", fontsize=9, va="bottom")
        ax.set_ylim(-0.42 * top, top)
        ax.set_xlim(lo, hi)
        ax.set_xlabel("x")
        ax.set_title(f"({letter}) step {snap['step']}", fontsize=10)
        ax.set_yticks([t for t in MaxNLocator(4, steps=[1, 2, 5, 10]).tick_values(0, top) if 0 <= t <= top])
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.suptitle(f"p_data = N({mu:g}, {sigma:g}²): G's density and D during training (Goodfellow et al. 2014, Fig. 1)", fontsize=10)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


def draw(snapshots: list[dict[str, Any]], meta: dict[str, Any], path: Path) -> None:
    import matplotlib.pyplot as plt

    fig = figure(snapshots, meta)
    try:
        write_rendered(path, lambda f, fmt: fig.savefig(f, dpi=110, format=fmt), "figure 1")
    finally:
        plt.close(fig)
