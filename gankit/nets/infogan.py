"""`infogan`: the nets of the CS231n GAN assignment (seed 003, trained there as an LSGAN).

G is the InfoGAN generator (Chen et al. 2016) the assignment asks for: two dense layers, then
two stride-2 4x4 transposed convs from H/4 x W/4 (7x7 at 28 px). D is a small CNN: two
unpadded 5x5 convs each followed by 2x2 max-pooling, then two dense layers. Channel counts
are the seed's at width 64 and scale with width.
"""

from __future__ import annotations

from torch import nn

from gankit.nets.layers import (
    UnconditionalNet,
    batchnorm1d,
    batchnorm2d,
    check_multiple_of,
    d_dropout,
    scaled,
    to_logits,
)
from gankit.nets.spec import NetSpec

# Seed 003's D uses LeakyReLU with PyTorch's default slope, 0.01 (not the 0.2 of the others).
LEAKY_SLOPE = 0.01


def _d_side(n: int) -> int:
    """Side length after D's two (5x5 valid conv, 2x2 max-pool) stages: 28 -> 4, 32 -> 5."""
    for _ in range(2):
        n = (n - 4) // 2
    return n


class InfoGANGenerator(UnconditionalNet):
    """z -> Linear->ReLU->BN (x2) -> reshape to H/4 x W/4 -> ConvT->ReLU->BN -> ConvT -> tanh."""

    def __init__(self, spec: NetSpec):
        c, h, w = spec.image_shape
        hidden, depth, mid = scaled(1024, spec.width), scaled(128, spec.width), scaled(64, spec.width)
        flat = depth * (h // 4) * (w // 4)
        super().__init__(
            nn.Linear(spec.latent_dim, hidden), nn.ReLU(), batchnorm1d(hidden, spec),
            nn.Linear(hidden, flat), nn.ReLU(), batchnorm1d(flat, spec),
            nn.Unflatten(1, (depth, h // 4, w // 4)),
            nn.ConvTranspose2d(depth, mid, 4, stride=2, padding=1), nn.ReLU(), batchnorm2d(mid, spec),
            nn.ConvTranspose2d(mid, c, 4, stride=2, padding=1), nn.Tanh(),
        )
        self.latent_dim = spec.latent_dim


class InfoGANDiscriminator(UnconditionalNet):
    """x -> (Conv5x5 -> LReLU(0.01) -> MaxPool2) x2 -> Linear->LReLU -> Linear(1) -> [N] logits.

    Dropout, when asked for, follows each pool rather than sitting between activation and
    pool, so that it does not decide which value the max-pool keeps.
    """

    def __init__(self, spec: NetSpec):
        c, h, w = spec.image_shape
        c1, c2 = scaled(32, spec.width), scaled(64, spec.width)
        # The seed's hidden dense layer is 4*4*64 wide, its flatten size at 28 px; here the
        # flatten size follows the image (5*5*64 at 32 px) while the width stays 1024.
        hidden = scaled(4 * 4 * 64, spec.width)
        super().__init__(
            nn.Conv2d(c, c1, 5), nn.LeakyReLU(LEAKY_SLOPE), nn.MaxPool2d(2, 2), *d_dropout(spec),
            nn.Conv2d(c1, c2, 5), nn.LeakyReLU(LEAKY_SLOPE), nn.MaxPool2d(2, 2), *d_dropout(spec),
            nn.Flatten(),
            nn.Linear(c2 * _d_side(h) * _d_side(w), hidden), nn.LeakyReLU(LEAKY_SLOPE), *d_dropout(spec),
            nn.Linear(hidden, 1), to_logits(),
        )


def check_shape(image_shape: tuple[int, int, int]) -> None:
    """H and W must be multiples of 4 (G's two x2 upsamplings) and at least 16 (D's 1x1 floor)."""
    # 16 is the smallest multiple of 4 that leaves D a 1x1 map: 16 -> 12 -> 6 -> 2 -> 1.
    check_multiple_of("infogan", image_shape, step=4, smallest=16)


def build(spec: NetSpec) -> tuple[nn.Module, nn.Module]:
    """(G, D) for a valid spec; `gankit.nets.build` checks the spec and applies the init."""
    return InfoGANGenerator(spec), InfoGANDiscriminator(spec)
