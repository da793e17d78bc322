"""gankit.nets r3gan: layout and channels, no normalisation, blocks that start as the identity under
every --init scheme (fix-up), spectral norm without NaNs, and the sizes it refuses."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gankit.errors import UserError
from gankit.nets import ARCHS, NetSpec, build
from gankit.nets.init import INIT_SCHEMES, init_weights
from gankit.nets.r3gan import Down, ResidualBlock, Up, stage_channels
from gankit.nets.r3gan import build as build_r3gan

NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm, nn.InstanceNorm2d)


def spec(side=32, channels=3, **fields) -> NetSpec:
    return NetSpec("r3gan", (channels, side, side), **{"width": 8, "latent_dim": 16, **fields})


def blocks(net: nn.Module) -> list[ResidualBlock]:
    return [m for m in net.modules() if isinstance(m, ResidualBlock)]


def without_blocks(net: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """The net's shortcut path: every layer but the residual blocks."""
    for layer in net:
        if not isinstance(layer, ResidualBlock):
            x = layer(x)
    return x


@pytest.mark.parametrize("side, sides", [(28, [7, 14, 28]), (32, [4, 8, 16, 32]), (64, [4, 8, 16, 32, 64])])
def test_shapes_and_one_block_per_side(side, sides):
    torch.manual_seed(0)
    g, d = build(spec(side))
    z = torch.randn(3, 16)
    fake = g(z)
    assert fake.shape == (3, 3, side, side) and d(fake).shape == (3,)
    seen = []
    for block in blocks(g):
        block.register_forward_hook(lambda m, inp, out: seen.append(out.shape[-1]))
    g(z)
    assert seen == sides
    assert len(blocks(d)) == len(sides)


def test_channels_double_as_the_side_halves_from_a_quarter_of_the_width():
    assert stage_channels(64, 3) == [128, 64, 32, 16]  # 32 px: at 4, 8, 16, 32 px
    assert stage_channels(64, 4) == [256, 128, 64, 32, 16]  # 64 px
    assert stage_channels(2, 2) == [4, 2, 1]  # never below one channel
    g, d = build(NetSpec("r3gan", (3, 32, 32), width=64))
    assert [b.conv1.in_channels for b in blocks(g)] == [128, 64, 32, 16]
    assert [b.conv1.in_channels for b in blocks(d)] == [16, 32, 64, 128]
    assert [type(m).__name__ for m in g if isinstance(m, (Up, Down))] == ["Up"] * 3
    assert [type(m).__name__ for m in d if isinstance(m, (Up, Down))] == ["Down"] * 3


def test_no_normalisation_and_raw_logits():
    g, d = build(spec())
    assert not any(isinstance(m, NORMS) for m in list(g.modules()) + list(d.modules()))
    assert isinstance(list(g)[-1], nn.Tanh) and isinstance(list(d)[-2], nn.Linear)
    assert ARCHS["r3gan"].default_init == "keras" and not ARCHS["r3gan"].own_conditioning


@pytest.mark.parametrize("init", ["default", *INIT_SCHEMES])
def test_every_block_starts_as_the_identity(init):
    torch.manual_seed(0)
    g, d = build(spec(init=init))
    for block in blocks(g) + blocks(d):
        assert not block.conv2.weight.any() and not block.conv2.bias.any()
        x = torch.randn(2, block.conv1.in_channels, 4, 4)
        assert torch.equal(block(x), x)
    # So each net starts as its shortcut path: linear maps, resampling, and G's tanh.
    z, x = torch.randn(4, 16), torch.rand(4, 3, 32, 32) * 2 - 1
    assert torch.equal(g(z), without_blocks(g, z)) and torch.equal(d(x), without_blocks(d, x))


def test_first_branch_convs_are_scaled_by_one_over_root_l():
    torch.manual_seed(0)
    g, d = build(spec())
    torch.manual_seed(0)  # the same draws without the fix-up: build, then the default scheme
    g0, d0 = build_r3gan(spec())
    init_weights(g0, "keras")
    init_weights(d0, "keras")
    for net, plain in ((g, g0), (d, d0)):
        scale = len(blocks(net)) ** -0.5
        for block, before in zip(blocks(net), blocks(plain)):
            torch.testing.assert_close(block.conv1.weight, before.conv1.weight * scale)
            assert torch.equal(block.conv1.bias, before.conv1.bias)


def test_branches_learn_away_from_the_identity():
    torch.manual_seed(0)
    g, _ = build(spec())
    opt = torch.optim.Adam(g.parameters(), lr=1e-3)
    z = torch.randn(4, 16)
    for _ in range(2):
        opt.zero_grad()
        g(z).square().mean().backward()
        opt.step()
    assert all(b.conv2.weight.any() and b.conv1.weight.grad.any() for b in blocks(g))
    assert not torch.equal(g(z), without_blocks(g, z))


def test_spectral_norm_leaves_d_finite():
    # A zero weight cannot be spectrally normalised (0 / 0): a normalised D keeps the scheme's init.
    torch.manual_seed(0)
    g, d = build(spec(spectral_norm=True))
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    assert torch.isfinite(d(x)).all()
    assert all(not b.conv2.weight.any() for b in blocks(g))


@pytest.mark.parametrize("conditioning", ["projection", "acgan"])
def test_class_conditioning_through_the_wrappers(conditioning):
    torch.manual_seed(0)
    g, d = build(spec(num_classes=4, conditioning=conditioning))
    y = torch.tensor([0, 1, 2, 3])
    out = d(g(torch.randn(4, 16), y), y)
    logits = out[0] if conditioning == "acgan" else out
    assert logits.shape == (4,) and torch.isfinite(logits).all()
    assert len(blocks(g)) == 4 and all(not b.conv2.weight.any() for b in blocks(g) + blocks(d))


@pytest.mark.parametrize("shape", [(3, 30, 30), (1, 16, 16), (3, 128, 128), (3, 32, 28)],
                         ids=lambda s: "x".join(map(str, s)))
def test_other_sizes_name_the_image_size_flag(shape):
    with pytest.raises(UserError, match="--image-size"):
        build(NetSpec("r3gan", shape, width=8))
