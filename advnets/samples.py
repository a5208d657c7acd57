"""Writing generator samples to files: image grids, 1-D histograms, or raw tensors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import safetensors.torch
from torch import Tensor

from .checkpoint import write_atomic
from .errors import ConfigError


def write_samples(samples: Tensor, data_info: dict[str, Any], out: Path, nrow: int = 8) -> None:
    """``.png``: a grid for images, a histogram for 1-D samples; ``.safetensors``: the raw tensor."""
    out = Path(out)
    if not out.parent.is_dir():
        raise ConfigError(f"cannot write {out}: folder {out.parent} does not exist")
    suffix = out.suffix.lower()
    if suffix == ".safetensors":
        write_atomic(out, safetensors.torch.save({"samples": samples.detach().cpu().contiguous()}))
        return
    if suffix != ".png":
        raise ConfigError(f"cannot write {out}: use a .png or .safetensors file name")
    shape = tuple(samples.shape[1:])
    if len(shape) == 3 and data_info.get("model_range") is not None:
        from .callbacks import save_grid

        save_grid(samples, data_info["model_range"], out, nrow=nrow)
    elif shape == (1,):
        _histogram(samples, data_info, out)
    else:
        raise ConfigError(f"samples of shape {shape} have no picture; use --out FILE.safetensors")


def _histogram(samples: Tensor, data_info: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.hist(samples.detach().reshape(-1).cpu().numpy(), bins=60, density=True, color="#2ca02c", alpha=0.6)
    ax.set_xlabel("x")
    ax.set_ylabel("density")
    ax.set_title(f"{len(samples)} samples of G ({data_info.get('name') or 'data'})", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
