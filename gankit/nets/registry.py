"""The table of network families, and `build`, which checks a NetSpec and makes its (G, D)."""

from __future__ import annotations

from typing import Callable, NamedTuple

from torch import nn

from gankit.errors import UserError
from gankit.nets import conditional, dcgan, dcgan_small, infogan, mlp, r3gan, resnet
from gankit.nets.init import init_weights
from gankit.nets.spec import NetSpec, validate_spec
from gankit.nets.spectral import apply_spectral_norm


class ArchEntry(NamedTuple):
    """One network family: how to build it, what it is, its own init, which image sizes it takes,
    whether its builder makes class-conditional nets itself, and what it must set after any init."""

    builder: Callable[[NetSpec], tuple[nn.Module, nn.Module]]
    description: str
    default_init: str  # the init the family's tutorial used; NetSpec.init="default" picks it
    check_shape: Callable[[tuple[int, int, int]], None]  # raises UserError naming --image-size
    # True: the builder honours NetSpec.conditioning itself. False: it builds unconditional flat
    # nets and `build` makes them conditional with gankit/nets/conditional.py's wrappers.
    own_conditioning: bool = False
    # (G, D, spec) -> None, run after the init scheme, before spectral normalisation: weights the
    # family needs whatever --init says (r3gan: residual branches that start at zero).
    after_init: Callable[[nn.Module, nn.Module, NetSpec], None] | None = None


ARCHS: dict[str, ArchEntry] = {
    "mlp": ArchEntry(mlp.build, "fully-connected G and D (seeds 000-002); any image size",
                     "keras", mlp.check_shape),
    "dcgan-small": ArchEntry(dcgan_small.build, "PyImageSearch Keras DCGAN, 5x5 convs (seed 004); "
                             "sides multiple of 4", "keras", dcgan_small.check_shape),
    "infogan": ArchEntry(infogan.build, "CS231n InfoGAN G + max-pool CNN D (seed 003); "
                         "sides multiple of 4, >= 16", "xavier", infogan.check_shape),
    "dcgan": ArchEntry(dcgan.build, "Radford et al. DCGAN, all-conv (pytorch/examples); "
                       "square, 4*2^k or 7*2^k px", "dcgan", dcgan.check_shape),
    "resnet": ArchEntry(resnet.build, "ResNet of SNGAN (Miyato et al.; SNGAN is it with "
                        "--spectral-norm); square 28, 32 or 64 px", "keras", resnet.check_shape, own_conditioning=True),
    "r3gan": ArchEntry(r3gan.build, "residual G and D without normalisation, branches starting at zero "
                       "(R3GAN, Huang et al. 2024; train with --loss rpgan); square 28, 32 or 64 px", "keras",
                       r3gan.check_shape, after_init=r3gan.after_init),
}


def describe_archs() -> list[tuple[str, str]]:
    """(name, one-line description) of every arch, in table order, for `--help` and errors."""
    return [(name, entry.description) for name, entry in ARCHS.items()]


def count_params(module: nn.Module) -> int:
    """Number of parameters of `module` (BatchNorm's running statistics are buffers, not counted)."""
    return sum(p.numel() for p in module.parameters())


def build(spec: NetSpec) -> tuple[nn.Module, nn.Module]:
    """Check `spec`, then build and initialise (G, D).

    G maps z [N, latent_dim] to images [N, C, H, W] in [-1, 1]; D maps images to raw logits
    [N]. Both are called as G(z, y=None) and D(x, y=None): y, the class labels [N], is needed
    when spec.conditioning is not "none" and ignored otherwise; an "acgan" D returns
    (logits [N], class_logits [N, num_classes]) instead (gankit/nets/conditional.py). Both carry
    `arch` and `num_classes` (0: unconditional); G also `latent_dim`, D `aux_classes` (the
    classes it predicts; 0 unless acgan). With spec.spectral_norm, D's conv, linear and
    embedding layers are spectrally normalised, after the init. Raises UserError, before any
    module is made, for a spec no net can honour.
    """
    if spec.arch not in ARCHS:
        raise UserError(f"unknown --arch {spec.arch!r}; choose one of {', '.join(ARCHS)}")
    validate_spec(spec)
    entry = ARCHS[spec.arch]
    entry.check_shape(tuple(spec.image_shape))
    if spec.conditioning == "none" or entry.own_conditioning:
        g, d = entry.builder(spec)
    else:
        g, d = conditional.build_wrapped(spec, entry.builder)
    # (a prior is copied in afterwards, by the caller: gankit/nets/prior.py)
    scheme = entry.default_init if spec.init in ("default", "prior") else spec.init
    for net in (g, d):
        init_weights(net, scheme)
        net.arch = spec.arch
    if entry.after_init is not None:
        entry.after_init(g, d, spec)
    if spec.spectral_norm:
        # After the init: re-initialising a normalised weight would write into a computed copy.
        apply_spectral_norm(d)
    return g, d
