"""Small pieces the network families share: the call convention, channel scaling, BN/dropout from
the spec, size checks."""

from __future__ import annotations

from torch import Tensor, nn

from gankit.errors import UserError
from gankit.nets.spec import NetSpec

# The conv tutorials' nets are written for 64 base channels; `width` scales them from there.
SEED_WIDTH = 64


class UnconditionalNet(nn.Sequential):
    """An unconditional G or D written as a flat list of layers, called like every net here:
    G(z, y=None) -> images, D(x, y=None) -> logits [N].

    It has no use for labels, so y is ignored (a training loop may pass them whatever the net);
    `num_classes` and `aux_classes` are 0 to say so.
    """

    num_classes = 0  # labels G and D take (0: none)
    aux_classes = 0  # classes D also predicts, ACGAN style (0: D returns only its logits)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return super().forward(x)


def scaled(channels: int, width: int) -> int:
    """`channels` of the tutorial's net rescaled to base width `width` (width 64 keeps it exact)."""
    return max(1, round(channels * width / SEED_WIDTH))


def batchnorm1d(features: int, spec: NetSpec) -> nn.BatchNorm1d:
    """BatchNorm1d with the spec's momentum and eps (Keras presets pass Keras's values)."""
    return nn.BatchNorm1d(features, eps=spec.bn_eps, momentum=spec.bn_momentum)


def batchnorm2d(channels: int, spec: NetSpec) -> nn.BatchNorm2d:
    """BatchNorm2d with the spec's momentum and eps."""
    return nn.BatchNorm2d(channels, eps=spec.bn_eps, momentum=spec.bn_momentum)


def d_dropout(spec: NetSpec) -> list[nn.Module]:
    """The dropout layer to put after a hidden activation of D: none when d_dropout is 0."""
    return [nn.Dropout(spec.d_dropout)] if spec.d_dropout > 0 else []


def to_logits() -> nn.Module:
    """Last layer of every D: [N, 1] or [N, 1, 1, 1] -> [N] raw logits (the sigmoid is in the loss)."""
    return nn.Flatten(start_dim=0)


def check_multiple_of(arch: str, image_shape: tuple[int, int, int], step: int, smallest: int) -> None:
    """Raise UserError unless H and W are multiples of `step` and at least `smallest`."""
    _, h, w = image_shape
    if all(n % step == 0 and n >= smallest for n in (h, w)):
        return
    worst = next(n for n in (h, w) if n % step or n < smallest)
    below = max(smallest, worst // step * step)
    above = max(smallest, below + step if worst > below else below)
    options = sorted({below, above})
    raise UserError(f"{arch} needs height and width that are multiples of {step} and at least "
                    f"{smallest}; got {h}x{w}. Try --image-size {' or '.join(map(str, options))}")
