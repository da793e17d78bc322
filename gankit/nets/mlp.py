"""`mlp`: the fully-connected GANs of seeds 000 (Keras), 001 (TF2) and 002 (PyTorch).

The three tutorials differ only in widths, where G's BatchNorm sits and D's dropout, all of
which NetSpec carries; the presets choose them. Works at any image size.
"""

from __future__ import annotations

import math

from torch import nn

from gankit.nets.layers import UnconditionalNet, batchnorm1d, d_dropout, to_logits
from gankit.nets.spec import NetSpec

# Seed 000's widths: G 256-512-1024, D 512-256 (seed 001 uses D 1024-512-256, seed 002 also
# G 256-512-1024 from a 128-d latent).
DEFAULT_G_WIDTHS = (256, 512, 1024)
DEFAULT_D_WIDTHS = (512, 256)
# All three tutorials use LeakyReLU(0.2) in both nets.
LEAKY_SLOPE = 0.2


class MLPGenerator(UnconditionalNet):
    """z [N, latent_dim] -> hidden Linear layers -> Linear(C*H*W) -> tanh -> [N, C, H, W].

    `g_batchnorm` places BatchNorm1d: "post" = Linear->LReLU->BN on every hidden layer
    (seed 000); "pre" = Linear->BN->LReLU except the first hidden layer, which has no BN
    (seed 001); "none" = no BN (seed 002).
    """

    def __init__(self, spec: NetSpec):
        layers: list[nn.Module] = []
        fan_in = spec.latent_dim
        for i, width in enumerate(spec.g_widths or DEFAULT_G_WIDTHS):
            layers.append(nn.Linear(fan_in, width))
            if spec.g_batchnorm == "pre" and i > 0:
                layers.append(batchnorm1d(width, spec))
            layers.append(nn.LeakyReLU(LEAKY_SLOPE))
            if spec.g_batchnorm == "post":
                layers.append(batchnorm1d(width, spec))
            fan_in = width
        layers += [nn.Linear(fan_in, math.prod(spec.image_shape)), nn.Tanh(),
                   nn.Unflatten(1, tuple(spec.image_shape))]
        super().__init__(*layers)
        self.latent_dim = spec.latent_dim


class MLPDiscriminator(UnconditionalNet):
    """x [N, C, H, W] -> flatten -> (Linear -> LReLU(0.2) [-> Dropout]) per width -> Linear(1) -> [N]."""

    def __init__(self, spec: NetSpec):
        layers: list[nn.Module] = [nn.Flatten()]
        fan_in = math.prod(spec.image_shape)
        for width in spec.d_widths or DEFAULT_D_WIDTHS:
            layers += [nn.Linear(fan_in, width), nn.LeakyReLU(LEAKY_SLOPE), *d_dropout(spec)]
            fan_in = width
        layers += [nn.Linear(fan_in, 1), to_logits()]
        super().__init__(*layers)


def check_shape(image_shape: tuple[int, int, int]) -> None:
    """Any image size works: the nets only see C*H*W numbers."""


def build(spec: NetSpec) -> tuple[nn.Module, nn.Module]:
    """(G, D) for a valid spec; `gankit.nets.build` checks the spec and applies the init."""
    return MLPGenerator(spec), MLPDiscriminator(spec)
