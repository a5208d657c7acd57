"""Differentiable augmentation around any discriminator: a component built from another component.

The discriminator ``augmented`` wraps the discriminator its setting
``discriminator`` names (any registered one, a ``--plugin`` file's too) and shows
it every image, real and generated alike, through the same random, differentiable
transformations: DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for
Data-Efficient GAN Training"). Because G's samples pass through the same
transformations with gradients, G is not taught to draw the augmentations, and D
overfits a small training set more slowly.

    --set discriminator=augmented --set discriminator.discriminator=NAME \\
        --set discriminator.discriminator.SETTING=VALUE --set discriminator.cutout=0.5

- ``translation``: each image shifted by up to this fraction of its height and
  width, in whole pixels, its edge pixels repeated into the gap;
- ``cutout``: a square of this fraction of the side, placed at random, set to 0
  (the middle of a [-1, 1] model range; 0 turns it off);
- ``flip``: mirrored left to right with probability 1/2 (for pictures whose mirror
  image is as likely; not digits);
- ``p``: the share of images augmented at all (each image draws its own).

Augmentation runs in training mode only: the check before training, the
evaluation and any use of D in eval mode see the images as they are (but must
be images: a batch that is not (N, C, H, W) is refused before training). The random
draws come from torch's generator on the images' device, as dropout's do, so a
resumed run repeats them.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .errors import ConfigError
from .players import is_conditional


def translate(x: Tensor, ratio: float) -> Tensor:
    """Shift each image by a random whole number of pixels, up to ``ratio`` of its size; edges repeat into the gap."""
    n, _, h, w = x.shape
    dh, dw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    if dh == 0 and dw == 0:
        return x
    shift_h = torch.randint(-dh, dh + 1, (n, 1, 1), device=x.device)
    shift_w = torch.randint(-dw, dw + 1, (n, 1, 1), device=x.device)
    rows = (torch.arange(h, device=x.device).view(1, h, 1) + shift_h).clamp(0, h - 1)
    cols = (torch.arange(w, device=x.device).view(1, 1, w) + shift_w).clamp(0, w - 1)
    batch = torch.arange(n, device=x.device).view(n, 1, 1)
    return x.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)


def cut_out(x: Tensor, ratio: float) -> Tensor:
    """Set a random square of ``ratio`` of the image's side to 0, in each image."""
    n, _, h, w = x.shape
    size_h, size_w = int(h * ratio + 0.5), int(w * ratio + 0.5)
    if size_h == 0 or size_w == 0:
        return x
    top = torch.randint(0, h - size_h + 1, (n, 1, 1), device=x.device)
    left = torch.randint(0, w - size_w + 1, (n, 1, 1), device=x.device)
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    inside = (rows >= top) & (rows < top + size_h) & (cols >= left) & (cols < left + size_w)
    return x * (~inside).unsqueeze(1).to(x.dtype)


def flip(x: Tensor) -> Tensor:
    """Mirror each image left to right with probability 1/2."""
    mirrored = torch.rand(len(x), 1, 1, 1, device=x.device) < 0.5
    return torch.where(mirrored, x.flip(3), x)


class Augmented(nn.Module):
    """Any discriminator, shown randomly shifted, cut-out or mirrored images (DiffAugment, Zhao et al. 2020).

    ``discriminator`` is a discriminator config (a name, or ``{"name": ..., settings}``;
    it has no default), built by the registry before this; the built module arrives here.
    """

    def __init__(
        self,
        discriminator: Any = None,
        translation: float = 0.125,
        cutout: float = 0.0,
        flip: bool = False,
        p: float = 1.0,
    ) -> None:
        super().__init__()
        if not isinstance(discriminator, nn.Module):
            raise ConfigError(f"augmented: discriminator must be a built torch.nn.Module, got {type(discriminator).__name__}")
        for name, value, top in (("translation", translation, 0.5), ("cutout", cutout, 1.0), ("p", p, 1.0)):
            if not 0 <= value <= top:
                raise ConfigError(f"augmented: {name} must be in [0, {top:g}], got {value}")
        self.discriminator = discriminator
        self.translation, self.cutout, self.flip, self.p = translation, cutout, flip, p
        if is_conditional(discriminator):
            self.num_classes = discriminator.num_classes  # a conditional D stays conditional

    def augment(self, x: Tensor) -> Tensor:
        """The images, augmented (whichever transformations are on)."""
        out = x
        if self.flip:
            out = flip(out)
        if self.translation > 0:
            out = translate(out, self.translation)
        if self.cutout > 0:
            out = cut_out(out, self.cutout)
        if self.p < 1:
            chosen = torch.rand(len(x), 1, 1, 1, device=x.device) < self.p
            out = torch.where(chosen, out, x)
        return out

    def forward(self, x: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        if x.dim() != 4:  # in eval mode too: the dry pass before training finds it
            raise ConfigError(f"augmented: needs images of shape (N, C, H, W), got a batch of shape {tuple(x.shape)}")
        if self.training:
            x = self.augment(x)
        return self.discriminator(x, *args, **kwargs)

