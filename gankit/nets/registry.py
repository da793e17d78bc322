"""The table of network families, and `build`, which checks a NetSpec and makes its (G, D)."""

from __future__ import annotations

from typing import Callable, NamedTuple

from torch import nn

from gankit.errors import UserError
from gankit.nets import dcgan, dcgan_small, infogan, mlp
from gankit.nets.init import init_weights
from gankit.nets.spec import NetSpec, validate_spec


class ArchEntry(NamedTuple):
    """One network family: how to build it, what it is, its own init, which image sizes it takes."""

    builder: Callable[[NetSpec], tuple[nn.Module, nn.Module]]
    description: str
    default_init: str  # the init the family's tutorial used; NetSpec.init="default" picks it
    check_shape: Callable[[tuple[int, int, int]], None]  # raises UserError naming --image-size


ARCHS: dict[str, ArchEntry] = {
    "mlp": ArchEntry(mlp.build, "fully-connected G and D (seeds 000-002); any image size",
                     "keras", mlp.check_shape),
    "dcgan-small": ArchEntry(dcgan_small.build, "PyImageSearch Keras DCGAN, 5x5 convs (seed 004); "
                             "sides multiple of 4", "keras", dcgan_small.check_shape),
    "infogan": ArchEntry(infogan.build, "CS231n InfoGAN G + max-pool CNN D (seed 003); "
                         "sides multiple of 4, >= 16", "xavier", infogan.check_shape),
    "dcgan": ArchEntry(dcgan.build, "Radford et al. DCGAN, all-conv (pytorch/examples); "
                       "square, 4*2^k or 7*2^k px", "dcgan", dcgan.check_shape),
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
    [N]. Both carry an `arch` attribute; G also `latent_dim`. Raises UserError, before any
    module is made, for a spec no net can honour.
    """
    if spec.arch not in ARCHS:
        raise UserError(f"unknown --arch {spec.arch!r}; choose one of {', '.join(ARCHS)}")
    validate_spec(spec)
    entry = ARCHS[spec.arch]
    entry.check_shape(tuple(spec.image_shape))
    g, d = entry.builder(spec)
    scheme = entry.default_init if spec.init == "default" else spec.init
    for net in (g, d):
        init_weights(net, scheme)
        net.arch = spec.arch
    return g, d
