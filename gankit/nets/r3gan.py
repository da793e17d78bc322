"""`r3gan`: residual G and D without any normalisation, after R3GAN, for 28, 32 and 64 px squares.

R3GAN is Huang et al. 2024, "The GAN is dead; long live the GAN! A Modern GAN Baseline".

Both nets are a linear trunk of stages, one per side length, with residual blocks on it:

    G: z -> Linear -> c0 x b x b -> block -> (up: 1x1 conv where the channels change, bilinear x2
       -> block) per doubling -> 1x1 conv to C channels -> tanh
    D: image -> 1x1 conv -> block -> (down: 2x2 average pool, 1x1 conv where the channels change
       -> block) per halving -> flatten -> Linear -> one logit

A block is x + branch(x), branch = conv3x3 -> leaky ReLU 0.2 -> conv3x3, and the branch is the
only place with an activation: no BatchNorm, no normalisation of any kind (R3GAN's point is that
a well-posed loss, RpGAN with R1 and R2, trains such nets without the usual tricks). R3GAN's branch
is a grouped 3x3 conv between two 1x1 convs with an inverted bottleneck; at the widths a CPU trains,
a plain two-conv branch costs about the same and is simpler.

Fix-up init (`fixup`, applied by `gankit.nets.build` after any --init scheme): the last conv of
every branch starts at zero, so each block starts as the identity and each net as its linear
trunk, and the first conv is scaled by L^-1/2 for L blocks (Fixup's L^(-1/(2m-2)) for m = 2
convs; R3GAN's three-layer branches give L^-1/4). The branches then grow from zero as they learn.

Channels: `width` / 4 at the full-size stage, doubling each time the side halves (32 px at width
64: 128, 64, 32, 16 channels at 4, 8, 16, 32 px; 64 px reaches 4 * width at 4 px). The 3x3 convs of every
stage then cost the same (channels^2 x pixels), and the pair costs about what `dcgan` does at the
same width; twice the width is four times the arithmetic.

G ends in tanh, unlike R3GAN's linear output: gankit's images live in [-1, 1] and every consumer
of G's output (sample grids, metrics, export) counts on it; a saturating end costs little here
since the trunk keeps the pre-activations small at the start.

Unconditional; class conditioning comes from gankit/nets/conditional.py's wrappers (one-hot labels
appended to z, a projection or ACGAN head on D's flattened features). --d-dropout is ignored.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gankit.nets.layers import UnconditionalNet, to_logits
from gankit.nets.spec import NetSpec, check_square_side

# side: (G's first side, doublings to reach the side)
LAYOUTS: dict[int, tuple[int, int]] = {
    28: (7, 2),  # 7 -> 14 -> 28 (MNIST)
    32: (4, 3),  # 4 -> 8 -> 16 -> 32 (CIFAR-10)
    64: (4, 4),
}
LEAKY_SLOPE = 0.2  # R3GAN's activation
FULL_SIZE_DIVISOR = 4  # width / 4 channels at the full-size stage: dcgan's cost at the same --width


def stage_channels(width: int, doublings: int) -> list[int]:
    """Channels of each stage from G's first (smallest side) to the full-size one."""
    top = max(1, width // FULL_SIZE_DIVISOR)
    return [top * 2 ** (doublings - i) for i in range(doublings + 1)]


class ResidualBlock(nn.Module):
    """x + conv3x3(leaky_relu(conv3x3(x))): side and channels kept."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1)  # zeroed by `fixup`

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(F.leaky_relu(self.conv1(x), LEAKY_SLOPE))


class Up(nn.Module):
    """Twice the side by bilinear interpolation, after a 1x1 conv when the channel count changes.

    Both are linear and act on different axes, so they commute: mixing channels first, on the
    smaller map, is 4x cheaper.
    """

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else None

    def forward(self, x: Tensor) -> Tensor:
        if self.conv is not None:
            x = self.conv(x)
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


class Down(nn.Module):
    """Half the side by 2x2 average pooling, then a 1x1 conv when the channel count changes (on
    the pooled map: the same result, 4x cheaper)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else None

    def forward(self, x: Tensor) -> Tensor:
        x = F.avg_pool2d(x, 2)
        return x if self.conv is None else self.conv(x)


class R3GANGenerator(UnconditionalNet):
    """z [N, latent_dim] -> images [N, C, S, S] in [-1, 1]."""

    def __init__(self, spec: NetSpec):
        c, side, _ = spec.image_shape
        base, doublings = LAYOUTS[side]
        chans = stage_channels(spec.width, doublings)
        layers: list[nn.Module] = [nn.Linear(spec.latent_dim, chans[0] * base * base),
                                   nn.Unflatten(1, (chans[0], base, base)), ResidualBlock(chans[0])]
        for c_in, c_out in zip(chans, chans[1:]):
            layers += [Up(c_in, c_out), ResidualBlock(c_out)]
        layers += [nn.Conv2d(chans[-1], c, 1), nn.Tanh()]
        super().__init__(*layers)
        self.latent_dim = spec.latent_dim


class R3GANDiscriminator(UnconditionalNet):
    """images [N, C, S, S] -> logits [N]. The features before the Linear head, flattened, are
    what a projection or ACGAN head reads (gankit/nets/conditional.py)."""

    def __init__(self, spec: NetSpec):
        c, side, _ = spec.image_shape
        base, doublings = LAYOUTS[side]
        chans = stage_channels(spec.width, doublings)[::-1]  # full size first
        layers: list[nn.Module] = [nn.Conv2d(c, chans[0], 1), ResidualBlock(chans[0])]
        for c_in, c_out in zip(chans, chans[1:]):
            layers += [Down(c_in, c_out), ResidualBlock(c_out)]
        layers += [nn.Flatten(), nn.Linear(chans[-1] * base * base, 1), to_logits()]
        super().__init__(*layers)


def fixup(net: nn.Module) -> None:
    """Make every residual block of `net` start as the identity: its branch's last conv zero, its
    first conv scaled by L^-1/2 (L blocks), so that the branches, once grown, add up to O(1)."""
    blocks = [m for m in net.modules() if isinstance(m, ResidualBlock)]
    with torch.no_grad():
        for block in blocks:
            block.conv1.weight.mul_(len(blocks) ** -0.5)
            block.conv2.weight.zero_()
            block.conv2.bias.zero_()


def after_init(g: nn.Module, d: nn.Module, spec: NetSpec) -> None:
    """The fix-up init on top of the --init scheme. Not on a spectrally normalised D: spectral
    normalisation divides each weight by its largest singular value, 0/0 for a zero conv (and
    would undo any scaling), so that D's blocks start as plain residual blocks."""
    fixup(g)
    if not spec.spectral_norm:
        fixup(d)


def check_shape(image_shape: tuple[int, int, int]) -> None:
    """Square 28, 32 or 64 px images; UserError naming --image-size otherwise."""
    check_square_side("r3gan", image_shape, LAYOUTS)


def build(spec: NetSpec) -> tuple[nn.Module, nn.Module]:
    """(G, D) for a valid spec; `gankit.nets.build` checks the spec, applies the init, then
    `after_init`."""
    return R3GANGenerator(spec), R3GANDiscriminator(spec)
