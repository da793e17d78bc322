"""Minibatch standard deviation (Karras et al. 2018, kept in StyleGAN2): a feature D can see variety by.

Each image's D alone cannot tell that G draws the same picture again and again. This layer, put
before D's last convolution, appends one feature map: the standard deviation of every feature over
a group of images, averaged to one number per group. A G that collapses to a few pictures gives
groups with a small deviation, which D then learns to call fake.

It mixes the images of a batch, as BatchNorm does: real and fake images must then go through D in
calls of their own (gankit/training/d_calls.py), and the gradient penalties are taken per call.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class MinibatchStd(nn.Module):
    """x [N, C, H, W] -> [N, C + 1, H, W]; images i, i + N/G, i + 2N/G, ... form a group of G
    (StyleGAN2's layout), G the largest divisor of N up to `group`."""

    mixes_images = True  # read by gankit.training.compute.mixes_images

    def __init__(self, group: int = 4):
        super().__init__()
        self.group = group

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        g = min(self.group, n)
        while n % g:
            g -= 1
        y = x.float().reshape(g, n // g, c, h, w)
        y = (y - y.mean(0)).pow(2).mean(0).add(1e-8).sqrt()  # [N/G, C, H, W]: deviation over each group
        y = y.mean(dim=(1, 2, 3)).to(x.dtype)  # [N/G]: one number per group
        return torch.cat([x, y.repeat(g).view(n, 1, 1, 1).expand(n, 1, h, w)], dim=1)

    def extra_repr(self) -> str:
        return f"group={self.group}"
