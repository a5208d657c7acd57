"""Writing generator samples to files: image grids, 1-D histograms, or raw tensors.

Also the paper's two other pictures of a trained G: Figure 2 (samples beside their
nearest training image, to show G does not just copy its data) and Figure 3 (images
along straight lines in z-space, to show the space is smooth).
"""

from __future__ import annotations

import math
import os
import secrets
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from torch import Tensor

from .files import write_atomic, write_rendered
from .data import Data, to_unit
from .errors import ConfigError
from .players import call
from .trainer import draw_noise, eval_mode, latent_dim_of

PAIR_GAP = 6
"""White pixels between the pairs of a nearest-neighbour figure (2 black ones inside a pair)."""


MAX_GRID_IMAGES = 10_000
"""The most images ``advnets sample`` puts in one PNG grid (more is not a picture; use .safetensors)."""


def _sample_format(out: Path) -> str:
    """``.png`` or ``.safetensors``: the format ``out`` names, once its folder is known to exist."""
    if not out.parent.is_dir():
        raise ConfigError(f"cannot write {out}: folder {out.parent} does not exist")
    suffix = out.suffix.lower()
    if suffix not in (".png", ".safetensors"):
        raise ConfigError(f"cannot write {out}: use a .png or .safetensors file name")
    return suffix


def check_sample_out(out: Path, data_info: dict[str, Any], n: int) -> None:
    """Before anything is drawn: ``out`` can be written, names a format that fits, and ``n`` samples fit in memory."""
    suffix = _sample_format(Path(out))
    shape = tuple(data_info.get("shape") or ())
    if suffix == ".png" and len(shape) == 3 and n > MAX_GRID_IMAGES:
        raise ConfigError(f"--n {n:,}: a grid of more than {MAX_GRID_IMAGES:,} images is no picture; write them to a .safetensors file")
    check_sample_memory("--n", n, shape)


def check_sample_memory(what: str, n: int, shape: tuple[int, ...]) -> None:
    """One line if ``n`` float32 samples of ``shape`` (drawn in chunks, then joined) cannot fit in half the memory."""
    need = n * math.prod(shape or (1,)) * 4
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else None
    if total and 2 * need > total // 2:  # the chunks and their concatenation: twice the samples, in half the memory
        raise ConfigError(
            f"{what} {n:,}: the samples alone take {need / 2**30:,.1f} GiB and this machine has {total / 2**30:,.1f} GiB; draw fewer"
        )


def write_samples(samples: Tensor, data_info: dict[str, Any], out: Path, nrow: int = 8) -> None:
    """``.png``: a grid for images, a histogram for 1-D samples; ``.safetensors``: the raw tensor."""
    out = Path(out)
    if _sample_format(out) == ".safetensors":
        write_atomic(out, safetensors.torch.save({"samples": samples.detach().cpu().contiguous()}), "the samples")
        return
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
    try:
        write_rendered(out, lambda f, fmt: fig.savefig(f, dpi=110, format=fmt), "the samples")
    finally:
        plt.close(fig)


def check_image_figure(data_info: dict[str, Any], out: Path, option: str) -> None:
    """Refuse a figure of images for a run whose data are not images, or a file that is not a PNG."""
    shape = tuple(data_info.get("shape") or ())
    if len(shape) != 3 or data_info.get("model_range") is None:
        name = data_info.get("name") or "its dataset"
        raise ConfigError(f"{option} draws images; this run's data ({name}) are samples of shape {shape}")
    if Path(out).suffix.lower() != ".png":
        raise ConfigError(f"cannot write {out}: {option} draws a picture, use a .png file name")
    if not Path(out).parent.is_dir():
        raise ConfigError(f"cannot write {out}: folder {Path(out).parent} does not exist")


def nearest_training_images(samples: Tensor, data: Data, chunk: int = 10000) -> Tensor:
    """The index of each sample's nearest training image, by Euclidean distance in pixel space.

    Distances are taken in the model's space, a fixed affine map of the pixels, so the
    nearest image is the same. The training set (resident or streamed) is decoded a
    chunk at a time on the samples' device: memory stays at one chunk whatever its size.
    """
    flat = samples.detach().flatten(1).float()
    best = torch.full((len(flat),), float("inf"), device=flat.device)
    index = torch.zeros(len(flat), dtype=torch.long, device=flat.device)
    for start, raw in data.train_blocks(chunk):
        block = data.decode(raw.to(flat.device)).flatten(1)
        distance, nearest = torch.cdist(flat, block).min(dim=1)
        closer = distance < best
        best = torch.where(closer, distance, best)
        index = torch.where(closer, nearest + start, index)
    return index.cpu()


def save_nearest_pairs(samples: Tensor, nearest: Tensor, model_range: Any, out: Path, pairs_per_row: int) -> None:
    """Figure 2: each sample (left) beside its nearest training image (right), pairs set apart by white gaps."""
    from torchvision.utils import make_grid, save_image

    unit = [to_unit(x.detach().float().cpu(), model_range) for x in (samples, nearest)]
    pairs = [make_grid(torch.stack([sample, neighbour]), nrow=2, padding=2) for sample, neighbour in zip(*unit)]
    grid = make_grid(pairs, nrow=pairs_per_row, padding=PAIR_GAP, pad_value=1.0)
    write_rendered(out, lambda f, fmt: save_image(grid, f, format=fmt), "the samples")


def interpolation_noise(
    generator: torch.nn.Module, paths: int, points: int, noise: str, seed: int | None, device: torch.device
) -> Tensor:
    """z on ``paths`` straight lines in z-space, ``points`` evenly spaced on each, both ends included.

    The ends are the first ``2 * paths`` draws of p_z with ``seed``, taken in pairs:
    path i runs from draw 2i to draw 2i + 1, as in the paper's Figure 3.
    """
    rng = torch.Generator(device=device)
    rng.manual_seed(secrets.randbits(63) if seed is None else seed)
    ends = draw_noise(2 * paths, latent_dim_of(generator), noise, rng, device).view(paths, 2, 1, -1)
    t = torch.linspace(0, 1, points, device=device).view(1, points, 1)
    return (ends[:, 0] * (1 - t) + ends[:, 1] * t).flatten(0, 1)


@torch.no_grad()
def images_of(generator: torch.nn.Module, z: Tensor, labels: Tensor | None = None) -> Tensor:
    """G(z) (or G(z, labels) for a conditional G) in eval mode, without gradients."""
    with eval_mode(generator):
        return call(generator, z, labels)
