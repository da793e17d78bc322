"""Random changes of the classifier's training pictures, so that it must learn shapes, not pixels.

Without them the colour classifiers learnt texture and colour: with every picture cut into four
shuffled quadrants their FID stayed within 7x to 20x of the floor (docs/measurements.md). A picture
moved by a few pixels, mirrored, zoomed a little or with its colours shifted is still the same
thing; a classifier that must name it anyway has to look at the shape. Used in training only:
features and the held-out accuracy are always taken from the pictures as they are.

Every random choice comes from one ``torch.Generator``, so a seed gives the same pictures.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Up to an eighth of the side in each direction (4 px of 32), zoom in by up to 15%, mirror half of
# them; brightness and contrast by up to 20%, saturation by up to 30%: small enough that a 32-px
# stamp stays recognisable, large enough that no pixel position or exact colour names its class.
SHIFT = 0.125
ZOOM = 0.15
BRIGHTNESS, CONTRAST, SATURATION = 0.2, 0.2, 0.3


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator)


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Float images in [-1, 1], [N, C, H, W] -> the same, each moved, zoomed, perhaps mirrored and
    colour-jittered (grey images get brightness and contrast only)."""
    n = len(x)
    scale = 1 - _uniform(n, 0, ZOOM, generator)
    mirror = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = scale * mirror, scale
    theta[:, 0, 2], theta[:, 1, 2] = _uniform(n, -SHIFT, SHIFT, generator) * 2, _uniform(n, -SHIFT, SHIFT, generator) * 2
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    # Border padding: the pictures' edges are mostly background, so the space moved in looks like it.
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    x = (x + 1) / 2
    x = x * _uniform(n, 1 - BRIGHTNESS, 1 + BRIGHTNESS, generator).view(n, 1, 1, 1)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * _uniform(n, 1 - CONTRAST, 1 + CONTRAST, generator).view(n, 1, 1, 1) + mean
    if x.shape[1] == 3:
        grey = x.mean(dim=1, keepdim=True)
        x = (x - grey) * _uniform(n, 1 - SATURATION, 1 + SATURATION, generator).view(n, 1, 1, 1) + grey
    return (x.clamp(0, 1) * 2 - 1)
