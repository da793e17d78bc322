"""An exponential moving average of G's weights, the G that samples and evaluation should use.

The EMA G averages out the last steps' oscillation of the GAN game, and usually scores a
clearly better FID than the raw G at the same step (Karras et al.; Yazici et al. 2019).
The decay follows StyleGAN2-ADA's `ema_kimg` convention: it is set by a half-life counted in
training images, not per step, so that changing the batch size keeps the same averaging window.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class GeneratorEMA:
    """An eval-mode copy of G whose parameters trail G's as an exponential moving average.

        ema = GeneratorEMA(g, half_life_images=10_000)
        ...  # after each G optimiser step:
        ema.update(g, batch_images=z.shape[0])
        images = ema.module(z)  # the averaged G

    Each update sets p_ema <- beta * p_ema + (1 - beta) * p with
    beta = 0.5 ** (batch_images / half_life), so an old value's weight halves every
    `half_life_images` training images. With `rampup` (StyleGAN2-ADA uses 0.05) the half-life
    is min(half_life_images, images_seen * rampup): short at the start, when G changes fast
    and its random init should be forgotten quickly. Buffers (BatchNorm's running statistics)
    are copied from G, not averaged, as StyleGAN2-ADA does.
    """

    def __init__(self, g: nn.Module, half_life_images: float = 10_000.0, rampup: float | None = None):
        if not half_life_images > 0:
            raise ValueError(f"EMA half-life must be > 0 images, got {half_life_images}")
        if rampup is not None and not rampup > 0:
            raise ValueError(f"EMA ramp-up must be > 0 (or None for no ramp-up), got {rampup}")
        self.module = copy.deepcopy(g).eval().requires_grad_(False)
        self.half_life_images = float(half_life_images)
        self.rampup = rampup
        self.images_seen = 0  # training images G had been updated on before the next update

    def half_life(self) -> float:
        """The half-life in images the next update uses (shorter during the ramp-up)."""
        if self.rampup is None:
            return self.half_life_images
        return min(self.half_life_images, self.images_seen * self.rampup)

    def beta(self, batch_images: int) -> float:
        """How much of the old average the next update keeps, for a step on `batch_images` images.

        0 on the very first update with a ramp-up (the half-life is 0 there): the EMA starts as G.
        """
        return 0.5 ** (batch_images / max(self.half_life(), 1e-8))

    @torch.no_grad()
    def update(self, g: nn.Module, batch_images: int) -> None:
        """Fold G's current weights in after one G step on `batch_images` images; copy its buffers."""
        beta = self.beta(batch_images)
        # Matched by name, not by position, so a differently ordered copy cannot mix layers up.
        params = dict(g.named_parameters())
        for name, p_ema in self.module.named_parameters():
            p_ema.copy_(params[name].detach().lerp(p_ema, beta))
        buffers = dict(g.named_buffers())
        for name, b_ema in self.module.named_buffers():
            b_ema.copy_(buffers[name])
        self.images_seen += batch_images

    def state_dict(self) -> dict:
        """{"module": the averaged G's state_dict, "images_seen": int}; the half-life and ramp-up
        are settings, given again to the constructor on resume."""
        return {"module": self.module.state_dict(), "images_seen": self.images_seen}

    def load_state_dict(self, state: dict) -> None:
        """Restore what `state_dict` saved."""
        self.module.load_state_dict(state["module"])
        self.images_seen = int(state["images_seen"])
