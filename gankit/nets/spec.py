"""NetSpec: everything needed to build a (G, D) pair, and the checks that do not depend on the arch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from gankit.errors import UserError
from gankit.nets.init import INIT_SCHEMES

if TYPE_CHECKING:  # only for the annotation: the nets do not depend on the Config
    from gankit.config import Config

G_BATCHNORM_PLACEMENTS = ("none", "post", "pre")
G_UPSAMPLES = ("transposed", "resize")
# "projection": Miyato & Koyama 2018; "acgan": Odena et al. 2017 (D also classifies its input).
CONDITIONINGS = ("none", "projection", "acgan")


@dataclass(frozen=True)
class NetSpec:
    """What to build: the arch, the image shape and the knobs the tutorial presets turn.

    Fields the arch does not use are ignored (`width` by `mlp`; `g_widths`, `d_widths` and
    `g_batchnorm` by the conv families; `d_dropout` by `resnet` and `r3gan`), so a preset's MLP widths do
    not stop `--arch dcgan`.

    Class-conditional nets: `conditioning` other than "none" with `num_classes` >= 1 makes G
    take labels, G(z, y), and D judge (image, label) pairs, D(x, y); see gankit/nets/conditional.py
    for how each arch does it. `num_classes` is ignored while `conditioning` is "none".
    """

    arch: str  # key of ARCHS
    image_shape: tuple[int, int, int]  # (C, H, W)
    latent_dim: int = 100
    g_widths: tuple[int, ...] = ()  # MLP hidden widths of G (empty = the arch's default)
    d_widths: tuple[int, ...] = ()  # MLP hidden widths of D (empty = the arch's default)
    width: int = 64  # conv families: base channel count; 64 reproduces the tutorials' nets
    g_batchnorm: str = "post"  # MLP only: "none" | "post" (Dense->LReLU->BN) | "pre" (Dense->BN->LReLU)
    # PyTorch meaning (weight of the new batch). A Keras tutorial's momentum m is 1 - m here.
    bn_momentum: float = 0.1
    bn_eps: float = 1e-5
    d_dropout: float = 0.0  # dropout after each hidden activation of D
    # "default" (the arch's own), "prior" (the arch's own, then the caller copies gankit/nets/prior.py's
    # file in) or one of INIT_SCHEMES
    init: str = "default"
    num_classes: int = 0  # classes of the labels y; 0 = unconditional
    conditioning: str = "none"  # one of CONDITIONINGS
    spectral_norm: bool = False  # spectrally normalise every conv/linear/embedding layer of D
    g_upsample: str = "transposed"  # dcgan G's doublings: "transposed" convs or "resize" (nearest x2, 3x3 conv)
    d_mbstd: int = 0  # dcgan D: minibatch-stddev group before the last conv; 0 = none


def check_square_side(arch: str, image_shape: tuple[int, int, int], sides) -> None:
    """For nets that make only square images of some sides (`sides`): UserError naming
    --image-size, with the nearest side that works, for any other shape."""
    _, h, w = image_shape
    listed = " or ".join(map(str, sides))
    if h != w:
        raise UserError(f"{arch} needs square images; got {h}x{w}. Pass a single --image-size ({listed})")
    if h not in sides:
        raise UserError(f"{arch} makes {listed} px images, not {h}x{h}. Try --image-size "
                        f"{min(sides, key=lambda s: (abs(s - h), s))}")


def flag(field: str) -> str:
    """The command-line flag that sets a NetSpec field (`d_dropout` -> `--d-dropout`)."""
    return "--" + field.replace("_", "-")


def validate_spec(spec: NetSpec) -> None:
    """Raise UserError, naming the flag, for a field no arch can use. Arch rules live in the arch."""
    shape = tuple(spec.image_shape)
    if len(shape) != 3 or not all(isinstance(n, int) and n > 0 for n in shape):
        raise UserError(f"image shape must be three positive integers (C, H, W), got {shape}; "
                        f"check --image-size and --channels")
    # 4 = RGBA (--alpha keep): every family treats alpha as one more channel to learn.
    if shape[0] not in (1, 3, 4):
        raise UserError(f"images have {shape[0]} channels; the nets take 1 (grey), 3 (colour) or 4 (colour "
                        f"with transparency, from --alpha keep): pass --channels 1 or --channels 3")
    for field in ("latent_dim", "width"):
        value = getattr(spec, field)
        if not isinstance(value, int) or value <= 0:
            raise UserError(f"{flag(field)} must be a positive integer, got {value!r}")
    for field in ("g_widths", "d_widths"):
        widths = tuple(getattr(spec, field))
        if not all(isinstance(n, int) and n > 0 for n in widths):
            raise UserError(f"{flag(field)} must be positive integers (e.g. 256,512,1024), got {widths}")
    if spec.g_batchnorm not in G_BATCHNORM_PLACEMENTS:
        raise UserError(f"--g-batchnorm must be one of {', '.join(G_BATCHNORM_PLACEMENTS)}, "
                        f"got {spec.g_batchnorm!r}")
    if not 0.0 < spec.bn_momentum <= 1.0:
        raise UserError(f"--bn-momentum must be in (0, 1] (PyTorch meaning: the weight of the new "
                        f"batch; Keras momentum 0.99 is 0.01 here), got {spec.bn_momentum}")
    if not spec.bn_eps > 0.0:
        raise UserError(f"--bn-eps must be > 0, got {spec.bn_eps}")
    if not 0.0 <= spec.d_dropout < 1.0:
        raise UserError(f"--d-dropout must be in [0, 1), got {spec.d_dropout}")
    if spec.init not in ("default", "prior") and spec.init not in INIT_SCHEMES:
        raise UserError(f"unknown --init {spec.init!r}; choose default, prior, {', '.join(INIT_SCHEMES)}")
    if not isinstance(spec.spectral_norm, bool):
        raise UserError(f"--spectral-norm is on or off (True/False), got {spec.spectral_norm!r}")
    if spec.g_upsample not in G_UPSAMPLES:
        raise UserError(f"--g-upsample must be one of {', '.join(G_UPSAMPLES)}, got {spec.g_upsample!r}")
    if (spec.g_upsample != "transposed" or spec.d_mbstd) and spec.arch != "dcgan":
        raise UserError(f"--g-upsample and --d-mbstd are options of --arch dcgan, not {spec.arch}: "
                        f"use --arch dcgan, or drop them")
    if spec.conditioning not in CONDITIONINGS:
        raise UserError(f"unknown --conditioning {spec.conditioning!r}; choose one of {', '.join(CONDITIONINGS)}")
    if isinstance(spec.num_classes, bool) or not isinstance(spec.num_classes, int) or spec.num_classes < 0:
        raise UserError(f"{flag('num_classes')} must be a whole number >= 0 (0 = unconditional), "
                        f"got {spec.num_classes!r}")
    if spec.conditioning != "none" and spec.num_classes < 1:
        raise UserError(f"--conditioning {spec.conditioning} needs class labels, but the number of classes "
                        f"is 0: use a labelled dataset (or pass {flag('num_classes')}), or --conditioning none")


def net_spec(cfg: "Config", image_shape: tuple[int, int, int], num_classes: int = 0) -> NetSpec:
    """The network description a config asks for, for images of `image_shape` (C, H, W) with
    labels in [0, num_classes) (used only when the config asks for conditioning)."""
    return NetSpec(arch=cfg.arch, image_shape=tuple(image_shape), latent_dim=cfg.latent_dim,
                   g_widths=tuple(cfg.g_widths), d_widths=tuple(cfg.d_widths), width=cfg.width,
                   g_batchnorm=cfg.g_batchnorm, bn_momentum=cfg.bn_momentum, bn_eps=cfg.bn_eps,
                   d_dropout=cfg.d_dropout, init=cfg.init, num_classes=num_classes,
                   conditioning=cfg.conditioning, spectral_norm=cfg.spectral_norm, g_upsample=cfg.g_upsample,
                   d_mbstd=cfg.d_mbstd)
