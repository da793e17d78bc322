"""The `resnet` (SNGAN) arch and class-conditional nets: shapes, layouts, labels, errors, training."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gankit.errors import UserError
from gankit.nets import ARCHS, NetSpec, build
from gankit.nets.conditional import ConditionalBatchNorm2d
from gankit.nets.resnet import DBlock, FirstDBlock, GBlock
from gankit.nets.spectral import is_spectral_normalised
from gankit.training.losses import LOSSES

SHAPES = [(c, s, s) for s in (28, 32, 64) for c in (1, 3)]
CLASSES = 10


def shape_id(value):
    return "x".join(map(str, value)) if isinstance(value, tuple) else None


def tiny(arch="resnet", shape=(3, 32, 32), **overrides):
    fields = dict(width=8, latent_dim=16)
    if arch == "mlp":
        fields.update(g_widths=(16, 32), d_widths=(32, 16))
    fields.update(overrides)
    return NetSpec(arch, shape, **fields)


def labels(n, seed=0):
    return torch.randint(0, CLASSES, (n,), generator=torch.Generator().manual_seed(seed))


# --- the unconditional resnet -------------------------------------------------------------------

@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_resnet_shapes(shape):
    torch.manual_seed(0)
    g, d = build(tiny(shape=shape))
    fake = g(torch.randn(3, 16))
    assert fake.shape == (3, *shape) and fake.abs().max() <= 1
    logits = d(fake)
    assert logits.shape == (3,) and torch.isfinite(logits).all()
    assert g.latent_dim == 16 and g.num_classes == 0 and d.num_classes == 0 and d.aux_classes == 0


@pytest.mark.parametrize("side, g_sides, d_sides", [
    (28, [7, 14, 28], [28, 14, 7, 7, 7]),
    (32, [4, 8, 16, 32], [32, 16, 8, 8, 8]),  # the paper's CIFAR-10 layout
    (64, [4, 8, 16, 32, 64], [64, 32, 16, 8, 4, 4]),
])
def test_resnet_layout(side, g_sides, d_sides):
    g, d = build(tiny(shape=(1, side, side)))
    seen = []
    hooks = [b.register_forward_hook(lambda m, i, o: seen.append(o.shape[-1])) for b in g.blocks]
    g(torch.randn(2, 16))
    assert [g_sides[0]] + seen == g_sides
    seen.clear()
    for h in hooks:
        h.remove()
    for b in d.blocks:
        b.register_forward_hook(lambda m, i, o: seen.append(o.shape[-1]))
    d(torch.randn(2, 1, side, side))
    assert [side] + seen == d_sides
    assert isinstance(d.blocks[0], FirstDBlock) and all(isinstance(b, DBlock) for b in d.blocks[1:])
    # Side-keeping D blocks at constant width have the identity shortcut.
    assert [b.shortcut is None for b in d.blocks[1:]] == [not b.downsample for b in d.blocks[1:]]


def test_width_sets_the_channels():
    g, d = build(NetSpec("resnet", (3, 32, 32), width=256, latent_dim=128))
    assert g.linear.out_features == 256 * 4 * 4
    assert all(b.c1.out_channels == 256 for b in g.blocks) and g.to_image.out_channels == 3
    assert d.blocks[0].c1.out_channels == 128 and d.linear.in_features == 128  # the paper's D: 128
    # The paper's 32 px nets at width 256 (and Mimicry's 128-d z): G 4.3M, D 1.0M parameters.
    assert 4.2e6 < sum(p.numel() for p in g.parameters()) < 4.4e6
    assert 1.0e6 < sum(p.numel() for p in d.parameters()) < 1.1e6


def test_g_block_and_d_block_by_hand():
    # With every BN at identity statistics (eval, mean 0, var 1) a G block is a composition we
    # can write out with F; the same for D's blocks.
    torch.manual_seed(0)
    spec = tiny(shape=(1, 28, 28), bn_eps=0.0)
    block = GBlock(3, 5, spec).eval()
    x = torch.randn(2, 3, 4, 4)
    up = lambda t: F.interpolate(t, scale_factor=2)  # noqa: E731
    h = block.c2(F.relu(block.c1(up(F.relu(x)))))
    torch.testing.assert_close(block(x), h + block.shortcut(up(x)))
    first = FirstDBlock(3, 5)
    torch.testing.assert_close(first(x), F.avg_pool2d(first.c2(F.relu(first.c1(x))), 2)
                               + first.shortcut(F.avg_pool2d(x, 2)))
    down = DBlock(3, 5, downsample=True)
    torch.testing.assert_close(down(x), F.avg_pool2d(down.c2(F.relu(down.c1(F.relu(x)))), 2)
                               + F.avg_pool2d(down.shortcut(x), 2))


def test_d_sums_relu_features_over_pixels():
    torch.manual_seed(0)
    _, d = build(tiny(shape=(1, 32, 32)))
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    feats = F.relu(d.blocks(x))
    assert feats.shape == (2, 4, 8, 8)  # width 8: D has 4 channels
    torch.testing.assert_close(d(x), d.linear(feats.sum(dim=(2, 3))).flatten())
    assert not torch.allclose(d(x), d.linear(feats.mean(dim=(2, 3))).flatten())  # a sum, not a mean


def test_default_init_is_glorot_with_zero_biases():
    torch.manual_seed(0)
    g, d = build(tiny())
    assert ARCHS["resnet"].default_init == "keras"
    for m in g.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(m.weight)
            assert m.weight.abs().max() <= (6 / (fan_in + fan_out)) ** 0.5
            assert not m.bias.any()


@pytest.mark.parametrize("shape", [(1, 30, 30), (1, 16, 16), (3, 128, 128), (1, 32, 28)], ids=shape_id)
def test_resnet_refuses_other_sizes(shape):
    with pytest.raises(UserError, match="--image-size"):
        build(tiny(shape=shape))


# --- conditional nets ---------------------------------------------------------------------------

@pytest.mark.parametrize("arch", list(ARCHS))
@pytest.mark.parametrize("conditioning", ["projection", "acgan"])
def test_conditional_g_depends_on_y(arch, conditioning):
    torch.manual_seed(0)
    g, _ = build(tiny(arch, num_classes=CLASSES, conditioning=conditioning))
    assert g.num_classes == CLASSES and g.latent_dim == 16
    z = torch.randn(1, 16).expand(6, 16)
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    if arch == "resnet":
        # Class-conditional BN starts as plain BN (gain 1, bias 0); give the classes their own.
        with torch.no_grad():
            for m in g.modules():
                if isinstance(m, ConditionalBatchNorm2d):
                    m.gain.weight.normal_(1.0, 0.3)
                    m.bias.weight.normal_(0.0, 0.3)
    g.eval()
    out = g(z, y)
    assert out.shape == (6, 3, 32, 32)
    # same z, same y: same image (up to rounding: threads may split a batch's rows differently)
    assert torch.allclose(out[0], out[4], atol=1e-6) and torch.allclose(out[1], out[5], atol=1e-6)
    assert not torch.allclose(out[0], out[1]) and not torch.allclose(out[2], out[3])


def test_conditional_bn_starts_as_plain_bn():
    torch.manual_seed(0)
    cbn = ConditionalBatchNorm2d(4, CLASSES)
    x = torch.randn(6, 4, 3, 3)
    plain = nn.BatchNorm2d(4)
    torch.testing.assert_close(cbn(x, labels(6)), plain(x))
    with torch.no_grad():
        cbn.gain.weight[2] = 3.0
        cbn.bias.weight[2] = -1.0
    y = torch.tensor([2, 0, 2, 0, 0, 0])
    out = cbn(x, y)
    torch.testing.assert_close(out[y == 2], 3 * plain(x)[y == 2] - 1)
    torch.testing.assert_close(out[y == 0], plain(x)[y == 0])


@pytest.mark.parametrize("arch", list(ARCHS))
def test_projection_d_logit_depends_on_y(arch):
    torch.manual_seed(0)
    _, d = build(tiny(arch, num_classes=CLASSES, conditioning="projection"))
    assert d.num_classes == CLASSES and d.aux_classes == 0
    x = torch.rand(1, 3, 32, 32).expand(CLASSES, -1, -1, -1) * 2 - 1
    d.eval()
    out = d(x, torch.arange(CLASSES))
    assert out.shape == (CLASSES,) and len(set(out.tolist())) == CLASSES


def test_projection_term_by_hand():
    # logit(x, y) = linear(h) + <embed(y), h>: the difference between two classes is
    # <embed(a) - embed(b), h>, h being D's summed features.
    torch.manual_seed(0)
    _, d = build(tiny(num_classes=CLASSES, conditioning="projection"))
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    h = d.relu(d.blocks(x)).sum(dim=(2, 3))
    a, b = torch.tensor([1, 4, 7]), torch.tensor([0, 0, 9])
    embed = d.condition.embed.weight
    torch.testing.assert_close(d(x, a) - d(x, b), ((embed[a] - embed[b]) * h).sum(1))
    torch.testing.assert_close(d(x, a), d.linear(h).flatten() + (embed[a] * h).sum(1))


@pytest.mark.parametrize("arch", list(ARCHS))
def test_acgan_d_returns_logits_and_class_logits(arch):
    torch.manual_seed(0)
    g, d = build(tiny(arch, num_classes=CLASSES, conditioning="acgan"))
    assert d.aux_classes == CLASSES
    y = labels(4)
    logits, class_logits = d(g(torch.randn(4, 16), y), y)
    assert logits.shape == (4,) and class_logits.shape == (4, CLASSES)
    # The logit does not depend on y (only G and the class head are conditional).
    x = torch.rand(4, 3, 32, 32)
    d.eval()
    torch.testing.assert_close(d(x, y)[0], d(x, labels(4, seed=1))[0])


def test_unconditional_nets_ignore_labels():
    for arch in ARCHS:
        torch.manual_seed(0)
        g, d = build(tiny(arch, num_classes=CLASSES))  # conditioning "none": num_classes ignored
        assert g.num_classes == 0 and d.num_classes == 0 and d.aux_classes == 0
        g.eval(), d.eval()
        z, x = torch.randn(3, 16), torch.rand(3, 3, 32, 32)
        assert torch.equal(g(z), g(z, labels(3))) and torch.equal(d(x), d(x, labels(3)))


@pytest.mark.parametrize("arch", ["resnet", "dcgan"])
@pytest.mark.parametrize("conditioning", ["projection", "acgan"])
def test_conditional_nets_need_labels(arch, conditioning):
    g, d = build(tiny(arch, num_classes=CLASSES, conditioning=conditioning))
    with pytest.raises(ValueError, match="labels"):
        g(torch.randn(2, 16))
    with pytest.raises(ValueError, match="labels"):
        d(torch.rand(2, 3, 32, 32))


@pytest.mark.parametrize("arch", list(ARCHS))
def test_spectral_norm_flag_wraps_conditional_d(arch):
    _, d = build(tiny(arch, num_classes=CLASSES, conditioning="projection", spectral_norm=True))
    layers = [m for m in d.modules() if isinstance(m, (nn.Conv2d, nn.Linear, nn.Embedding))]
    assert any(isinstance(m, nn.Embedding) for m in layers)  # the projection's embedding too
    assert all(is_spectral_normalised(m) for m in layers)


@pytest.mark.parametrize("overrides, flag", [
    (dict(conditioning="projection"), "--conditioning"),  # no classes
    (dict(conditioning="projection", num_classes=0), "--num-classes"),
    (dict(conditioning="cgan", num_classes=CLASSES), "--conditioning"),
    (dict(num_classes=-1), "--num-classes"),
    (dict(num_classes=2.5), "--num-classes"),
    (dict(spectral_norm="yes"), "--spectral-norm"),
])
def test_bad_conditioning_names_the_flag(overrides, flag):
    with pytest.raises(UserError, match=flag):
        build(tiny(**overrides))


# --- one training step ---------------------------------------------------------------------------

@pytest.mark.parametrize("arch, conditioning, sn", [
    ("resnet", "none", True), ("resnet", "projection", True), ("resnet", "acgan", False),
    ("dcgan", "projection", False), ("mlp", "acgan", True),
])
def test_one_hinge_step_trains_both_nets(arch, conditioning, sn):
    torch.manual_seed(0)
    num_classes = CLASSES if conditioning != "none" else 0
    g, d = build(tiny(arch, (1, 28, 28), num_classes=num_classes, conditioning=conditioning, spectral_norm=sn))
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.0, 0.9))
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.0, 0.9))
    g_before = {n: p.detach().clone() for n, p in g.named_parameters()}
    d_before = {n: p.detach().clone() for n, p in d.named_parameters()}
    hinge = LOSSES["hinge"]
    real, y_real, y_fake = torch.rand(6, 1, 28, 28) * 2 - 1, labels(6), labels(6, seed=1)
    args = (lambda y: (y,)) if num_classes else (lambda y: ())

    def split(out):
        """(logits, class loss term) of D's output for labels y."""
        return out if isinstance(out, tuple) else (out, None)

    fake = g(torch.randn(6, 16), *args(y_fake))
    real_logits, real_cls = split(d(real, *args(y_real)))
    fake_logits, fake_cls = split(d(fake.detach(), *args(y_fake)))
    d_loss = hinge.d_loss(real_logits, fake_logits, real_logits, fake_logits)
    if real_cls is not None:
        d_loss = d_loss + F.cross_entropy(real_cls, y_real) + F.cross_entropy(fake_cls, y_fake)
    opt_d.zero_grad()
    d_loss.backward()
    opt_d.step()

    g_logits, g_cls = split(d(g(torch.randn(6, 16), *args(y_fake)), *args(y_fake)))
    g_loss = hinge.g_loss(g_logits) + (F.cross_entropy(g_cls, y_fake) if g_cls is not None else 0)
    opt_g.zero_grad()
    g_loss.backward()
    opt_g.step()

    assert torch.isfinite(d_loss) and torch.isfinite(g_loss)
    # The hinge gives D's logit bias -1/N per real and +1/N per fake inside the margin: with
    # every logit inside it, as at the start, that is exactly 0, so that bias may stay put.
    logit_bias = {n for n, p in d.named_parameters() if n.endswith("bias") and p.shape == (1,)}
    assert len(logit_bias) == 1
    for before, net in ((d_before, d), (g_before, g)):
        after = dict(net.named_parameters())
        assert all(torch.isfinite(p).all() for p in after.values())
        still = [n for n in after if torch.equal(before[n], after[n]) and n not in logit_bias]
        assert not still, f"{arch}/{conditioning}: {still} did not move"
