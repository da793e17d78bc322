"""`dcgan-small`: the PyImageSearch Keras DCGAN on Fashion-MNIST (seed 004).

G: two dense layers, then two stride-2 5x5 transposed convs from H/4 x W/4 up to H x W.
D: two stride-2 5x5 convs and one dense layer. Channel counts are the seed's at width 64
(dense 512, 64 x 7 x 7 volume, convT 32; D conv 32, conv 64, dense 512) and scale with width.
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

# Seed 004's D: LeakyReLU(alpha=0.2) after every hidden layer.
LEAKY_SLOPE = 0.2


def _up(c_in: int, c_out: int) -> nn.ConvTranspose2d:
    # Keras Conv2DTranspose(5x5, strides 2, padding="same") doubles the size: in PyTorch
    # that is padding=2 plus output_padding=1 ((n-1)*2 - 4 + 5 + 1 = 2n).
    return nn.ConvTranspose2d(c_in, c_out, 5, stride=2, padding=2, output_padding=1)


def _down(c_in: int, c_out: int) -> nn.Conv2d:
    # Keras Conv2D(5x5, strides 2, padding="same") halves the size: padding=2 here.
    return nn.Conv2d(c_in, c_out, 5, stride=2, padding=2)


class DCGANSmallGenerator(UnconditionalNet):
    """z -> Dense->ReLU->BN (x2) -> reshape to H/4 x W/4 -> ConvT->ReLU->BN -> ConvT -> tanh.

    The seed puts BatchNorm after the ReLU (FC => RELU => BN), unlike the DCGAN paper.
    """

    def __init__(self, spec: NetSpec):
        c, h, w = spec.image_shape
        hidden, depth, mid = scaled(512, spec.width), scaled(64, spec.width), scaled(32, spec.width)
        volume = (depth, h // 4, w // 4)  # 64 x 7 x 7 at 28 px, the seed's Reshape target
        flat = depth * (h // 4) * (w // 4)
        super().__init__(
            nn.Linear(spec.latent_dim, hidden), nn.ReLU(), batchnorm1d(hidden, spec),
            nn.Linear(hidden, flat), nn.ReLU(), batchnorm1d(flat, spec),
            nn.Unflatten(1, volume),
            _up(depth, mid), nn.ReLU(), batchnorm2d(mid, spec),
            _up(mid, c), nn.Tanh(),
        )
        self.latent_dim = spec.latent_dim


class DCGANSmallDiscriminator(UnconditionalNet):
    """x -> Conv(s2)->LReLU (x2) -> flatten -> Dense->LReLU -> Dense(1) -> [N] logits."""

    def __init__(self, spec: NetSpec):
        c, h, w = spec.image_shape
        c1, c2, hidden = scaled(32, spec.width), scaled(64, spec.width), scaled(512, spec.width)
        super().__init__(
            _down(c, c1), nn.LeakyReLU(LEAKY_SLOPE), *d_dropout(spec),
            _down(c1, c2), nn.LeakyReLU(LEAKY_SLOPE), *d_dropout(spec),
            nn.Flatten(),
            nn.Linear(c2 * (h // 4) * (w // 4), hidden), nn.LeakyReLU(LEAKY_SLOPE), *d_dropout(spec),
            nn.Linear(hidden, 1), to_logits(),
        )


def check_shape(image_shape: tuple[int, int, int]) -> None:
    """H and W must be multiples of 4: G upsamples twice by 2 from H/4 x W/4 (7x7 for 28 px)."""
    check_multiple_of("dcgan-small", image_shape, step=4, smallest=4)


def build(spec: NetSpec) -> tuple[nn.Module, nn.Module]:
    """(G, D) for a valid spec; `gankit.nets.build` checks the spec and applies the init."""
    return DCGANSmallGenerator(spec), DCGANSmallDiscriminator(spec)
