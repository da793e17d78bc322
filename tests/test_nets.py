"""gankit.nets: shapes, logits, one training step, seed-exact sizes, layer order, inits, errors."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import nn
from torch.nn.functional import binary_cross_entropy_with_logits as bce

from gankit.errors import UserError
from gankit.nets import ARCHS, NetSpec, build, count_params, describe_archs

GREY_28 = (1, 28, 28)
COLOUR_32 = (3, 32, 32)
CASES = [(arch, shape) for arch in ARCHS for shape in (GREY_28, COLOUR_32)] + [("dcgan", (3, 64, 64))]


def shape_id(value):
    """Test ids like dcgan-3x64x64 instead of dcgan-shape8."""
    return "x".join(map(str, value)) if isinstance(value, tuple) else None


def tiny(arch: str, image_shape=GREY_28, **overrides) -> NetSpec:
    """A spec small enough to build and step in milliseconds."""
    fields = dict(width=8, latent_dim=16)
    if arch == "mlp":
        fields.update(g_widths=(16, 32), d_widths=(32, 16))
    fields.update(overrides)
    return NetSpec(arch, image_shape, **fields)


def leaves(module: nn.Module) -> list[nn.Module]:
    """The layers of a net in forward order (every family registers them in that order)."""
    return [m for m in module.modules() if not list(m.children())]


def last_weighted(module: nn.Module) -> nn.Module:
    return [m for m in leaves(module) if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d))][-1]


@pytest.mark.parametrize("arch, shape", CASES, ids=shape_id)
def test_shapes_range_and_attributes(arch, shape):
    torch.manual_seed(0)
    g, d = build(tiny(arch, shape))
    assert g.arch == d.arch == arch and g.latent_dim == 16
    fake = g(torch.randn(5, 16))
    assert fake.shape == (5, *shape)
    assert fake.abs().max() <= 1.0 and fake.std() > 0
    assert isinstance(leaves(g)[-1], nn.Tanh) or isinstance(leaves(g)[-2], nn.Tanh)
    assert d(fake).shape == (5,)


@pytest.mark.parametrize("arch", list(ARCHS))
def test_d_returns_raw_logits(arch):
    # No sigmoid anywhere: shifting the last layer's bias shifts the output by exactly that much,
    # so D can say -5 or +5, which a probability cannot.
    torch.manual_seed(0)
    g, d = build(tiny(arch, COLOUR_32))
    assert not any(isinstance(m, nn.Sigmoid) for m in d.modules())
    x = torch.rand(6, *COLOUR_32) * 2 - 1
    with torch.no_grad():
        base = d(x)
        last_weighted(d).bias += 5.0
        up = d(x)
        last_weighted(d).bias -= 10.0
        down = d(x)
    torch.testing.assert_close(up - base, torch.full_like(base, 5.0))
    # Outside [0, 1] on one side at least (resnet's summed features start far from 0).
    assert up.max() > 1.0 or down.min() < 0.0


@pytest.mark.parametrize("arch, shape", CASES, ids=shape_id)
def test_two_adam_steps_train_both_nets(arch, shape):
    torch.manual_seed(0)
    g, d = build(tiny(arch, shape, d_dropout=0.3))
    opt_g = torch.optim.Adam(g.parameters(), lr=1e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=1e-3, betas=(0.5, 0.999))
    g_before = [p.detach().clone() for p in g.parameters()]
    d_before = [p.detach().clone() for p in d.parameters()]
    real = torch.rand(4, *shape) * 2 - 1
    ones, zeros = torch.ones(4), torch.zeros(4)

    # Two steps: a residual branch whose last conv starts at zero (r3gan's fix-up) passes no
    # gradient to its first conv until that last conv has moved once.
    for _ in range(2):
        # (1) update D
        fake = g(torch.randn(4, 16))
        d_loss = bce(d(real), ones) + bce(d(fake.detach()), zeros)
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        # (2) update G
        g_loss = bce(d(g(torch.randn(4, 16))), ones)
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()

    assert torch.isfinite(d_loss) and torch.isfinite(g_loss)
    for before, net in ((d_before, d), (g_before, g)):
        after = list(net.parameters())
        assert all(torch.isfinite(p).all() for p in after)
        assert all(not torch.equal(b, a) for b, a in zip(before, after)), f"{arch}: a parameter did not move"


def test_dcgan_small_matches_seed_004_keras_summary():
    g, d = build(NetSpec("dcgan-small", GREY_28, width=64))
    # The seed's model.summary(): Dense 51,712; Dense 1,608,768; Conv2DTranspose 51,232 and 801.
    weighted = [count_params(m) for m in leaves(g) if isinstance(m, (nn.Linear, nn.ConvTranspose2d))]
    assert weighted == [51_712, 1_608_768, 51_232, 801]
    # Keras counts 4 numbers per BN feature (2,048 / 12,544 / 128), 2 of them trainable.
    bn = [count_params(m) for m in leaves(g) if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
    assert [2 * n for n in bn] == [2_048, 12_544, 128]
    assert count_params(g) == 51_712 + 1_608_768 + 51_232 + 801 + sum(bn)
    # D: Conv 32 and 64 (5x5), Dense 7*7*64 -> 512, Dense 512 -> 1.
    d_weighted = [count_params(m) for m in leaves(d) if isinstance(m, (nn.Linear, nn.Conv2d))]
    assert d_weighted == [1 * 32 * 25 + 32, 32 * 64 * 25 + 64, 7 * 7 * 64 * 512 + 512, 512 + 1]


def test_mlp_matches_seed_000():
    g, d = build(NetSpec("mlp", GREY_28, latent_dim=100))
    linear = [count_params(m) for m in leaves(g) if isinstance(m, nn.Linear)]
    assert linear == [100 * 256 + 256, 256 * 512 + 512, 512 * 1024 + 1024, 1024 * 784 + 784]
    d_linear = [count_params(m) for m in leaves(d) if isinstance(m, nn.Linear)]
    assert d_linear == [784 * 512 + 512, 512 * 256 + 256, 256 + 1]
    assert all(m.negative_slope == 0.2 for m in leaves(g) + leaves(d) if isinstance(m, nn.LeakyReLU))


@pytest.mark.parametrize("placement, order", [
    ("post", "Linear LeakyReLU BatchNorm1d " * 3),  # seed 000
    ("pre", "Linear LeakyReLU " + "Linear BatchNorm1d LeakyReLU " * 2),  # seed 001: none on the first
    ("none", "Linear LeakyReLU " * 3),  # seed 002
])
def test_mlp_batchnorm_placement(placement, order):
    g, _ = build(NetSpec("mlp", GREY_28, g_widths=(8, 16, 32), g_batchnorm=placement))
    assert " ".join(type(m).__name__ for m in leaves(g)) == order + "Linear Tanh Unflatten"


@pytest.mark.parametrize("arch", list(ARCHS))
def test_dropout_follows_d_activations(arch):
    _, d = build(tiny(arch, d_dropout=0.25))
    layers = leaves(d)
    drops = [i for i, m in enumerate(layers) if isinstance(m, nn.Dropout)]
    hidden_acts = [m for m in layers if isinstance(m, nn.LeakyReLU)]
    assert len(drops) == len(hidden_acts) and all(layers[i].p == 0.25 for i in drops)
    assert all(isinstance(layers[i - 1], (nn.LeakyReLU, nn.MaxPool2d)) for i in drops)
    _, d_plain = build(tiny(arch))
    assert not any(isinstance(m, nn.Dropout) for m in d_plain.modules())


@pytest.mark.parametrize("arch", ["mlp", "dcgan-small", "infogan", "dcgan", "resnet"])
def test_bn_settings_reach_every_batchnorm(arch):
    # Keras BatchNormalization() defaults (seed 004): momentum 0.99 -> PyTorch 0.01, eps 1e-3.
    g, d = build(tiny(arch, bn_momentum=0.01, bn_eps=1e-3))
    bns = [m for m in leaves(g) + leaves(d) if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
    assert bns and all(m.momentum == 0.01 and m.eps == 1e-3 for m in bns)


def test_dcgan_layout_at_64px():
    g, d = build(NetSpec("dcgan", (3, 64, 64), width=4))
    g_convs = [m for m in leaves(g) if isinstance(m, nn.ConvTranspose2d)]
    assert [m.out_channels for m in g_convs] == [32, 16, 8, 4, 3]  # 8w, 4w, 2w, w, C
    assert g_convs[0].kernel_size == (4, 4) and g_convs[0].bias is None and g_convs[-1].bias is not None
    d_convs = [m for m in leaves(d) if isinstance(m, nn.Conv2d)]
    assert [m.out_channels for m in d_convs] == [4, 8, 16, 32, 1]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in leaves(d)) == 3  # none on D's first layer
    g28, _ = build(NetSpec("dcgan", GREY_28, width=4))
    g28_convs = [m for m in leaves(g28) if isinstance(m, nn.ConvTranspose2d)]
    assert [m.out_channels for m in g28_convs] == [8, 4, 1] and g28_convs[0].kernel_size == (7, 7)


def test_infogan_follows_the_image_size():
    for side, flat in ((28, 4 * 4), (32, 5 * 5), (16, 1)):
        g, d = build(tiny("infogan", (1, side, side)))
        assert g(torch.randn(2, 16)).shape == (2, 1, side, side)
        first_dense = next(m for m in leaves(d) if isinstance(m, nn.Linear))
        assert first_dense.in_features == 8 * flat  # width 8 -> 8 channels after the second conv
    assert all(m.negative_slope == 0.01 for m in leaves(d) if isinstance(m, nn.LeakyReLU))


# --- init schemes ---------------------------------------------------------------------------

def weighted(module):
    return [m for m in module.modules() if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d))]


def glorot_limit(m):
    fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(m.weight)
    return math.sqrt(6 / (fan_in + fan_out))


def test_keras_init_is_glorot_with_zero_biases():
    for arch in ("mlp", "dcgan-small"):  # "default" means keras for both
        g, d = build(tiny(arch))
        for m in weighted(g) + weighted(d):
            assert m.weight.abs().max() <= glorot_limit(m)
            assert m.bias is None or not m.bias.any()


def test_xavier_init_touches_linear_and_convtranspose_weights_only():
    torch.manual_seed(0)
    g, d = build(tiny("infogan"))  # seed 003's default
    for m in weighted(g) + weighted(d):
        if isinstance(m, (nn.Linear, nn.ConvTranspose2d)):
            assert m.weight.abs().max() <= glorot_limit(m)
    convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert all(m.bias.abs().sum() > 0 for m in convs)  # PyTorch's uniform default kept
    linear = next(m for m in g.modules() if isinstance(m, nn.Linear))
    assert linear.bias.abs().sum() > 0


def test_dcgan_init_is_normal_0_02():
    torch.manual_seed(0)
    g, d = build(NetSpec("dcgan", (3, 64, 64), width=16))  # default init: dcgan
    big = max(weighted(g) + weighted(d), key=lambda m: m.weight.numel())
    assert big.weight.numel() > 30_000
    assert abs(big.weight.std().item() - 0.02) < 0.001 and abs(big.weight.mean().item()) < 0.001
    bn_weights = torch.cat([m.weight for m in g.modules() if isinstance(m, nn.BatchNorm2d)])
    assert abs(bn_weights.mean().item() - 1.0) < 0.01 and 0.01 < bn_weights.std().item() < 0.03
    assert all(not m.bias.any() for m in g.modules() if isinstance(m, nn.BatchNorm2d))
    # The same scheme applies to MLPs on request.
    g_mlp, _ = build(tiny("mlp", init="dcgan", g_widths=(256, 256)))
    assert abs(weighted(g_mlp)[1].weight.std().item() - 0.02) < 0.002


def test_pytorch_init_keeps_defaults():
    g, _ = build(tiny("mlp", init="pytorch"))
    first = weighted(g)[0]
    bound = 1 / math.sqrt(first.in_features)  # nn.Linear's own kaiming-uniform / uniform bounds
    assert first.weight.abs().max() <= bound and first.bias.abs().sum() > 0


def test_same_seed_same_nets():
    def params():
        torch.manual_seed(3)
        g, d = build(tiny("dcgan"))
        return [p.detach().clone() for p in list(g.parameters()) + list(d.parameters())]
    assert all(torch.equal(a, b) for a, b in zip(params(), params()))


# --- user errors ------------------------------------------------------------------------------

@pytest.mark.parametrize("spec, fix", [
    (NetSpec("stylegan", GREY_28), "--arch"),
    (NetSpec("dcgan", (1, 28, 32)), "--image-size"),
    (NetSpec("mlp", (2, 28, 28)), "--channels"),
    (NetSpec("mlp", (1, 28)), "--image-size"),
    (NetSpec("dcgan", GREY_28, width=0), "--width"),
    (NetSpec("mlp", GREY_28, latent_dim=0), "--latent-dim"),
    (NetSpec("mlp", GREY_28, g_widths=(256, 0)), "--g-widths"),
    (NetSpec("mlp", GREY_28, d_widths=(-1,)), "--d-widths"),
    (NetSpec("mlp", GREY_28, d_dropout=1.0), "--d-dropout"),
    (NetSpec("mlp", GREY_28, d_dropout=-0.1), "--d-dropout"),
    (NetSpec("mlp", GREY_28, g_batchnorm="middle"), "--g-batchnorm"),
    (NetSpec("mlp", GREY_28, bn_momentum=0.0), "--bn-momentum"),
    (NetSpec("mlp", GREY_28, bn_eps=0.0), "--bn-eps"),
    (NetSpec("mlp", GREY_28, init="he"), "--init"),
])
def test_invalid_spec_names_the_flag(spec, fix):
    with pytest.raises(UserError, match=fix):
        build(spec)


def test_conv_archs_ignore_mlp_widths():
    # A preset's MLP widths must not block switching --arch to a conv family.
    g, _ = build(tiny("dcgan", g_widths=(256,), d_widths=(8,)))
    assert count_params(g) == count_params(build(tiny("dcgan"))[0])


def test_unknown_arch_lists_the_archs():
    with pytest.raises(UserError) as err:
        build(NetSpec("stylegan", GREY_28))
    assert all(name in str(err.value) for name in ARCHS)
    assert [name for name, _ in describe_archs()] == list(ARCHS)


def test_impossible_sizes_suggest_working_ones():
    with pytest.raises(UserError, match=r"--image-size .*28.*32"):
        build(NetSpec("dcgan", (1, 30, 30)))
    for arch in ("dcgan-small", "infogan"):
        with pytest.raises(UserError, match=r"multiples of 4.*--image-size 28 or 32"):
            build(NetSpec(arch, (1, 30, 30)))
    with pytest.raises(UserError, match=r"--image-size 16"):
        build(NetSpec("infogan", (1, 12, 12)))
    # Every suggested dcgan size really builds.
    for side in (16, 28, 32, 56, 64):
        g, _ = build(dataclasses.replace(tiny("dcgan"), image_shape=(1, side, side)))
        assert g(torch.randn(2, 16)).shape[-1] == side
