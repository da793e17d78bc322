"""`dcgan`: Radford et al. 2015, laid out as in pytorch/examples dcgan, for any side 4*2^k or 7*2^k.

The image side S = b * 2^k with base b in {4, 7} and k >= 2 (16, 28, 32, 56, 64, 112, 128, ...).
G projects z to a b x b map of width * 2^(k-1) channels, then k stride-2 4x4 transposed convs
each double the side and halve the channels, the last one to C channels. D mirrors it.

Two departures, off by default: `g_upsample="resize"` doubles the side by nearest-neighbour
resizing and a 3x3 conv instead (Odena et al. 2016: a stride-2 transposed conv overlaps its
kernel unevenly and leaves a checkerboard), and `d_mbstd` puts a minibatch-stddev layer before
D's last conv (gankit/nets/minibatch_std.py).
"""

from __future__ import annotations

from torch import nn

from gankit.errors import UserError
from gankit.nets.layers import UnconditionalNet, batchnorm2d, d_dropout, to_logits
from gankit.nets.minibatch_std import MinibatchStd
from gankit.nets.spec import NetSpec

BASES = (4, 7)  # 4 is the paper's 64 px net; 7 gives the 28 px MNIST sizes
MIN_DOUBLINGS = 2  # below this G would have no hidden transposed conv
LEAKY_SLOPE = 0.2  # the paper: LeakyReLU 0.2 in D


def factor(side: int) -> tuple[int, int] | None:
    """(b, k) with side == b * 2**k, b in BASES and k >= MIN_DOUBLINGS, or None if there is none."""
    for base in BASES:
        times, rest = divmod(side, base)
        if rest == 0 and times >= 2**MIN_DOUBLINGS and (times & (times - 1)) == 0:  # a power of 2
            return base, times.bit_length() - 1
    return None


def supported_sides(up_to: int = 256) -> list[int]:
    """Every side length `dcgan` can make, up to `up_to`, ascending."""
    return [s for s in range(1, up_to + 1) if factor(s)]


def double(ch_in: int, ch_out: int, upsample: str, bias: bool) -> list[nn.Module]:
    """The layers that double the side: a 4x4 stride-2 transposed conv, or a resize and a 3x3 conv."""
    if upsample == "resize":
        return [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(ch_in, ch_out, 3, 1, 1, bias=bias)]
    return [nn.ConvTranspose2d(ch_in, ch_out, 4, 2, 1, bias=bias)]


class DCGANGenerator(UnconditionalNet):
    """z [N, latent_dim] -> ConvT(b x b)->BN->ReLU -> (ConvT 4/2/1->BN->ReLU) x (k-1) -> ConvT -> tanh."""

    def __init__(self, spec: NetSpec):
        c, side, _ = spec.image_shape
        base, doublings = factor(side)
        ch = spec.width * 2 ** (doublings - 1)  # 64 px: 8w, 4w, 2w, w; 28 px: 2w, w
        # z is a 1x1 map with latent_dim channels. Convs followed by BN carry no bias (BN's
        # shift would cancel it).
        layers: list[nn.Module] = [nn.Unflatten(1, (spec.latent_dim, 1, 1)),
                                   nn.ConvTranspose2d(spec.latent_dim, ch, base, 1, 0, bias=False),
                                   batchnorm2d(ch, spec), nn.ReLU()]
        for _ in range(doublings - 1):
            layers += [*double(ch, ch // 2, spec.g_upsample, bias=False), batchnorm2d(ch // 2, spec), nn.ReLU()]
            ch //= 2
        layers += [*double(ch, c, spec.g_upsample, bias=True), nn.Tanh()]
        super().__init__(*layers)
        self.latent_dim = spec.latent_dim


class DCGANDiscriminator(UnconditionalNet):
    """x -> Conv 4/2/1->LReLU -> (Conv 4/2/1->BN->LReLU) x (k-1) -> Conv(b x b) -> [N] logits."""

    def __init__(self, spec: NetSpec):
        c, side, _ = spec.image_shape
        base, doublings = factor(side)
        ch = spec.width
        # The paper puts no BN on D's input layer.
        layers: list[nn.Module] = [nn.Conv2d(c, ch, 4, 2, 1), nn.LeakyReLU(LEAKY_SLOPE), *d_dropout(spec)]
        for _ in range(doublings - 1):
            layers += [nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=False), batchnorm2d(ch * 2, spec),
                       nn.LeakyReLU(LEAKY_SLOPE), *d_dropout(spec)]
            ch *= 2
        if spec.d_mbstd:
            layers.append(MinibatchStd(spec.d_mbstd))
        layers += [nn.Conv2d(ch + (1 if spec.d_mbstd else 0), 1, base, 1, 0), to_logits()]
        super().__init__(*layers)


def check_shape(image_shape: tuple[int, int, int]) -> None:
    """Square images of side 4*2^k or 7*2^k, k >= 2; UserError naming the nearest sides otherwise."""
    _, h, w = image_shape
    if h != w:
        raise UserError(f"dcgan needs square images; got {h}x{w}. Pass a single --image-size")
    if factor(h):
        return
    sides = supported_sides(max(256, 2 * h))
    below = [s for s in sides if s < h][-2:]
    above = [s for s in sides if s > h][:2]
    raise UserError(f"dcgan cannot make {h}x{h} images: the side must be 4*2^k or 7*2^k (k >= 2). "
                    f"Try --image-size {', '.join(map(str, below + above))}")


def build(spec: NetSpec) -> tuple[nn.Module, nn.Module]:
    """(G, D) for a valid spec; `gankit.nets.build` checks the spec and applies the init."""
    return DCGANGenerator(spec), DCGANDiscriminator(spec)
