"""Class-conditional nets: labels y [N] (int64 in [0, num_classes)) go into G and D.

The call convention of every net: G(z, y=None) -> images, D(x, y=None) -> logits [N]. A
conditional G or D needs y; an unconditional one ignores it. G carries `latent_dim` and
`num_classes` (0 = unconditional); D carries `num_classes` and `aux_classes`.

Two conditionings (NetSpec.conditioning):

- "projection" (Miyato & Koyama 2018): D's logit gains the term <embed(y), h>, h being D's
  features just before its last (linear) layer. D still returns logits [N].
- "acgan" (Odena et al. 2017): D also classifies its input. THE ONE EXCEPTION to "D returns
  logits [N]": an ACGAN D returns a tuple (logits [N], class_logits [N, num_classes]), and has
  `aux_classes == num_classes` (0 for every other D) so callers can tell. Its class head is a
  linear layer on the same features h.

How G takes y depends on the arch. `resnet` does it the SNGAN way, class-conditional BatchNorm
(`ConditionalBatchNorm2d`, in every residual block). Every other arch is wrapped here the cGAN way
(Mirza & Osindero 2014): G's input is z with one-hot y appended (`OneHotConditionalGenerator`),
and its D is split before its last weighted layer to get h (`ConditionalDiscriminator`).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gankit.nets.spec import NetSpec


def require_labels(y: Tensor | None, net: nn.Module) -> Tensor:
    """y, or a ValueError saying that this conditional net cannot run without it."""
    if y is None:
        raise ValueError(f"{type(net).__name__} is class-conditional ({net.num_classes} classes): "
                         f"call it with labels, net(input, y) with y an int64 tensor [N]")
    return y


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm2d whose gain and bias are looked up per class (de Vries et al. 2017; SNGAN's G).

    The normalisation itself is shared by all classes; each class has its own affine part, two
    embeddings of `channels` numbers, initialised to 1 (gain) and 0 (bias) so that at the start
    it is plain BatchNorm.
    """

    def __init__(self, channels: int, num_classes: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, eps=eps, momentum=momentum, affine=False)
        self.gain = nn.Embedding(num_classes, channels)
        self.bias = nn.Embedding(num_classes, channels)
        nn.init.ones_(self.gain.weight)
        nn.init.zeros_(self.bias.weight)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return self.bn(x) * self.gain(y)[:, :, None, None] + self.bias(y)[:, :, None, None]


class ClassConditioning(nn.Module):
    """The class-dependent part of a conditional D, on its features h [N, F] (flattened).

    "projection": logits + <embed(y), h>, the embedding xavier-uniform as in SNGAN's code.
    "acgan": (logits, class_logits) with class_logits = Linear(h) [N, num_classes].
    """

    def __init__(self, features: int, num_classes: int, conditioning: str):
        super().__init__()
        if conditioning not in ("projection", "acgan"):
            raise ValueError(f"no class conditioning {conditioning!r}")
        self.conditioning = conditioning
        if conditioning == "projection":
            self.embed = nn.Embedding(num_classes, features)
            nn.init.xavier_uniform_(self.embed.weight)
        else:
            self.classify = nn.Linear(features, num_classes)

    def forward(self, logits: Tensor, h: Tensor, y: Tensor | None) -> Tensor | tuple[Tensor, Tensor]:
        if self.conditioning == "projection":
            return logits + (self.embed(y) * h).sum(dim=1)
        return logits, self.classify(h)


def d_attributes(d: nn.Module, spec: NetSpec) -> None:
    """Set D's `num_classes` (labels it takes) and `aux_classes` (classes it predicts) from spec."""
    d.num_classes = spec.num_classes if spec.conditioning != "none" else 0
    d.aux_classes = spec.num_classes if spec.conditioning == "acgan" else 0


class OneHotConditionalGenerator(nn.Module):
    """A G made conditional the cGAN way: it runs `net` (built for latent_dim + num_classes
    inputs) on z with one-hot y appended."""

    def __init__(self, net: nn.Module, latent_dim: int, num_classes: int):
        super().__init__()
        self.net = net
        self.latent_dim = latent_dim
        self.num_classes = num_classes

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        one_hot = F.one_hot(require_labels(y, self), self.num_classes).to(z.dtype)
        return self.net(torch.cat([z, one_hot], dim=1))


def _last_weighted(layers: list[nn.Module]) -> int:
    """Index of the last Linear/Conv2d layer: the one that makes D's logit."""
    for i in range(len(layers) - 1, -1, -1):
        if isinstance(layers[i], (nn.Linear, nn.Conv2d)):
            return i
    raise ValueError("D has no Linear or Conv2d layer to condition on")


class ConditionalDiscriminator(nn.Module):
    """A flat D (a layer list whose last weighted layer makes the logit) made conditional.

    The layers before that last weighted layer are `body`, whose output, flattened, is h; the
    rest is `head` (h -> logits [N]). `condition` adds the projection or the ACGAN head on h.
    Because the head is linear in h, "projection" here is exactly Miyato & Koyama's form.
    """

    def __init__(self, net: nn.Sequential, spec: NetSpec):
        super().__init__()
        layers = list(net)
        cut = _last_weighted(layers)
        self.body = nn.Sequential(*layers[:cut])
        self.head = nn.Sequential(*layers[cut:])
        self.condition = ClassConditioning(self._features(spec), spec.num_classes, spec.conditioning)
        d_attributes(self, spec)

    def _features(self, spec: NetSpec) -> int:
        # One dry run (eval mode: BatchNorm1d cannot normalise a batch of one in train mode).
        self.body.eval()
        with torch.no_grad():
            size = self.body(torch.zeros(1, *spec.image_shape)).flatten(1).shape[1]
        self.body.train()
        return size

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor | tuple[Tensor, Tensor]:
        y = require_labels(y, self)
        h = self.body(x)
        return self.condition(self.head(h), h.flatten(1), y)


def build_wrapped(spec: NetSpec, builder: Callable[[NetSpec], tuple[nn.Module, nn.Module]]
                  ) -> tuple[nn.Module, nn.Module]:
    """(G, D) of an arch without its own conditioning, made conditional by the wrappers above."""
    plain = dataclasses.replace(spec, latent_dim=spec.latent_dim + spec.num_classes, conditioning="none",
                                num_classes=0)
    g, d = builder(plain)
    return OneHotConditionalGenerator(g, spec.latent_dim, spec.num_classes), ConditionalDiscriminator(d, spec)
