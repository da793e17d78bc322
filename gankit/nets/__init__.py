"""Generators and discriminators, one file per family, built from a NetSpec.

    from gankit.nets import NetSpec, build
    G, D = build(NetSpec("dcgan", (3, 64, 64), width=64))

Families: mlp.py (seeds 000-002), dcgan_small.py (seed 004), infogan.py (seed 003),
dcgan.py (Radford et al.), resnet.py (SNGAN, Miyato et al.) and r3gan.py (Huang et al. 2024,
no normalisation). registry.py holds the table and
`build`; spec.py the NetSpec, its checks and the NetSpec a Config asks for (`net_spec`); latents.py
the latent noise and G run over it; init.py the weight-init schemes; layers.py the pieces the
families share; spectral.py spectral normalisation; conditional.py class conditioning.
Every G ends in tanh; every D returns raw logits [N] (the sigmoid lives in the loss), except an
ACGAN D, which returns (logits [N], class_logits [N, num_classes]). Nets are called as
G(z, y=None) and D(x, y=None), y the class labels of a conditional net.
"""

from gankit.nets.registry import ARCHS, ArchEntry, build, count_params, describe_archs
from gankit.nets.spec import NetSpec

__all__ = ["ARCHS", "ArchEntry", "NetSpec", "build", "count_params", "describe_archs"]
