"""`resnet`: the ResNet G and D of SNGAN (Miyato et al. 2018), for 28, 32 and 64 px squares.

As in the CIFAR-10 code of Miyato & Koyama's projection-discriminator paper (and Mimicry's SNGAN).

G: z -> Linear -> width x b x b (b = 7 at 28 px, else 4) -> up-blocks, each doubling the side
(28: 7->14->28; 32: 4->8->16->32; 64: 4->8->16->32->64) -> BN -> ReLU -> conv3x3 -> tanh.
An up-block is BN-ReLU-upsample-conv3x3-BN-ReLU-conv3x3 plus an upsampled 1x1-conv shortcut.

D: an "optimized" first block (conv3x3-ReLU-conv3x3-avgpool, shortcut avgpool-conv1x1; no ReLU
on the image), more down-blocks (ReLU-conv3x3-ReLU-conv3x3-avgpool, shortcut conv1x1-avgpool),
then blocks that keep the side, ReLU, a SUM over pixels and Linear -> logits [N]. At 28 and 32 px
it is the paper's CIFAR-10 D (down to 7 or 8 px, then two plain blocks); at 64 px it goes down to
4 px and ends with one plain block, the paper's 64 px layout.

`width` is the channel count of every G block; D's blocks have width / 2. The paper's CIFAR-10
nets (G 256, D 128 channels) are --width 256. The default 64 is a quarter of that, a net that
trains at a useful speed on a CPU. Unlike the paper's 64 px ImageNet nets, the channel count does
not change from block to block. Ignores d_dropout, g_widths, d_widths and g_batchnorm.

SNGAN is this arch with --spectral-norm (on D; `gankit.nets.build` applies it) and the hinge
loss. Class conditioning: "projection" and "acgan" give G class-conditional BatchNorm in
every block (the last BN stays plain, as in the paper's code); D adds the projection term or
the ACGAN class head on its summed features (gankit/nets/conditional.py).
Default init "keras": xavier-uniform weights and zero biases on every conv and linear layer,
as the paper's Chainer code (which uses gain sqrt(2) on the residual convs; here gain 1).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from gankit.nets.conditional import ClassConditioning, ConditionalBatchNorm2d, d_attributes, require_labels
from gankit.nets.layers import batchnorm2d
from gankit.nets.spec import NetSpec, check_square_side

# side: (G's first side b, D's down-blocks counting the optimized one, D's side-keeping blocks)
LAYOUTS: dict[int, tuple[int, int, int]] = {
    28: (7, 2, 2),  # 28 -> 14 -> 7, like the CIFAR D at 7 px
    32: (4, 2, 2),  # the paper's CIFAR-10 nets: D 32 -> 16 -> 8, then 2 plain blocks
    64: (4, 4, 1),  # the paper's 64 px D layout: 64 -> ... -> 4, then 1 plain block
}


def d_channels(width: int) -> int:
    """D's channel count for base width `width` (half of G's, as in the paper)."""
    return max(1, width // 2)


def _conditional(spec: NetSpec) -> bool:
    return spec.conditioning != "none"


def _g_norm(channels: int, spec: NetSpec) -> nn.Module:
    """G's BatchNorm inside a block: per-class gain and bias when G is conditional."""
    if _conditional(spec):
        return ConditionalBatchNorm2d(channels, spec.num_classes, eps=spec.bn_eps, momentum=spec.bn_momentum)
    return batchnorm2d(channels, spec)


def _norm(layer: nn.Module, x: Tensor, y: Tensor | None) -> Tensor:
    return layer(x, y) if isinstance(layer, ConditionalBatchNorm2d) else layer(x)


def _up(x: Tensor) -> Tensor:
    return F.interpolate(x, scale_factor=2, mode="nearest")


class GBlock(nn.Module):
    """BN-ReLU-upsample-conv3x3-BN-ReLU-conv3x3, plus the shortcut conv1x1(upsample(x)): 2x the side."""

    def __init__(self, c_in: int, c_out: int, spec: NetSpec):
        super().__init__()
        self.b1 = _g_norm(c_in, spec)
        self.c1 = nn.Conv2d(c_in, c_out, 3, 1, 1)
        self.b2 = _g_norm(c_out, spec)
        self.c2 = nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.shortcut = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        h = self.c1(_up(F.relu(_norm(self.b1, x, y))))
        h = self.c2(F.relu(_norm(self.b2, h, y)))
        # A 1x1 conv commutes with nearest upsampling: convolving first is the same, 4x cheaper.
        return h + _up(self.shortcut(x))


class FirstDBlock(nn.Module):
    """D's "optimized" first block: conv3x3-ReLU-conv3x3-avgpool, plus avgpool-conv1x1 shortcut.

    No ReLU before the first conv: the input is the image, not a previous block's output.
    """

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.c1 = nn.Conv2d(c_in, c_out, 3, 1, 1)
        self.c2 = nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.shortcut = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = F.avg_pool2d(self.c2(F.relu(self.c1(x))), 2)
        return h + self.shortcut(F.avg_pool2d(x, 2))


class DBlock(nn.Module):
    """ReLU-conv3x3-ReLU-conv3x3 [-avgpool], plus a conv1x1 [-avgpool] shortcut, or the identity
    when the block keeps both the side and the channel count."""

    def __init__(self, c_in: int, c_out: int, downsample: bool):
        super().__init__()
        self.downsample = downsample
        self.c1 = nn.Conv2d(c_in, c_out, 3, 1, 1)
        self.c2 = nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.shortcut = nn.Conv2d(c_in, c_out, 1) if downsample or c_in != c_out else None

    def forward(self, x: Tensor) -> Tensor:
        h = self.c2(F.relu(self.c1(F.relu(x))))
        skip = x if self.shortcut is None else self.shortcut(x)
        if self.downsample:
            h, skip = F.avg_pool2d(h, 2), F.avg_pool2d(skip, 2)
        return h + skip


class ResNetGenerator(nn.Module):
    """z [N, latent_dim] (and y [N] when conditional) -> images [N, C, S, S] in [-1, 1]."""

    def __init__(self, spec: NetSpec):
        super().__init__()
        c, side, _ = spec.image_shape
        base = LAYOUTS[side][0]
        ch = spec.width
        self.latent_dim = spec.latent_dim
        self.num_classes = spec.num_classes if _conditional(spec) else 0
        self.linear = nn.Linear(spec.latent_dim, ch * base * base)
        self.unflatten = nn.Unflatten(1, (ch, base, base))
        self.blocks = nn.ModuleList(GBlock(ch, ch, spec) for _ in range((side // base).bit_length() - 1))
        # The last BN is unconditional in the paper's code too.
        self.bn = batchnorm2d(ch, spec)
        self.relu = nn.ReLU()
        self.to_image = nn.Conv2d(ch, c, 3, 1, 1)
        self.tanh = nn.Tanh()

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        if self.num_classes:
            y = require_labels(y, self)
        h = self.unflatten(self.linear(z))
        for block in self.blocks:
            h = block(h, y)
        return self.tanh(self.to_image(self.relu(self.bn(h))))


class ResNetDiscriminator(nn.Module):
    """images [N, C, S, S] (and y [N] when conditional) -> logits [N]; (logits, class_logits) for ACGAN."""

    def __init__(self, spec: NetSpec):
        super().__init__()
        c, side, _ = spec.image_shape
        _, downs, plains = LAYOUTS[side]
        ch = d_channels(spec.width)
        blocks: list[nn.Module] = [FirstDBlock(c, ch)]
        blocks += [DBlock(ch, ch, downsample=True) for _ in range(downs - 1)]
        blocks += [DBlock(ch, ch, downsample=False) for _ in range(plains)]
        self.blocks = nn.Sequential(*blocks)
        self.relu = nn.ReLU()
        self.condition = ClassConditioning(ch, spec.num_classes, spec.conditioning) if _conditional(spec) else None
        self.linear = nn.Linear(ch, 1)  # registered last: the layer that makes the logit
        d_attributes(self, spec)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor | tuple[Tensor, Tensor]:
        # Sum, not mean, over pixels, as in the paper: the logit's scale grows with the image.
        h = self.relu(self.blocks(x)).sum(dim=(2, 3))
        logits = self.linear(h).flatten()
        if self.condition is None:
            return logits
        return self.condition(logits, h, require_labels(y, self))


def check_shape(image_shape: tuple[int, int, int]) -> None:
    """Square 28, 32 or 64 px images; UserError naming --image-size otherwise."""
    check_square_side("resnet", image_shape, LAYOUTS)


def build(spec: NetSpec) -> tuple[nn.Module, nn.Module]:
    """(G, D) for a valid spec; `gankit.nets.build` checks the spec, applies the init and,
    when asked, spectral normalisation to D."""
    return ResNetGenerator(spec), ResNetDiscriminator(spec)
