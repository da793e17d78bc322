"""GeneratorEMA: the decay formula, exact lerps, the half-life's meaning, buffers, state round trips."""

import copy

import pytest
import torch
from torch import nn

from gankit.training.ema import GeneratorEMA


def small_g():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))


def set_params(net, value):
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(value)


def test_the_copy_is_frozen_in_eval_mode_and_separate():
    g = small_g()
    ema = GeneratorEMA(g, half_life_images=100)
    assert not ema.module.training and g.training
    assert all(not p.requires_grad for p in ema.module.parameters())
    assert all(p.requires_grad for p in g.parameters())
    set_params(g, 3.0)  # changing G does not change the copy
    assert not any((p == 3.0).all() for p in ema.module.parameters())


def test_beta_formula():
    ema = GeneratorEMA(small_g(), half_life_images=10_000)
    assert ema.beta(64) == pytest.approx(0.5 ** (64 / 10_000), rel=1e-15)
    assert ema.beta(10_000) == pytest.approx(0.5)
    assert ema.beta(20_000) == pytest.approx(0.25)


def test_rampup_shortens_the_half_life_at_the_start():
    ema = GeneratorEMA(small_g(), half_life_images=10_000, rampup=0.05)
    assert ema.half_life() == 0 and ema.beta(32) == 0.0  # the first update copies G
    ema.images_seen = 1_000
    assert ema.half_life() == pytest.approx(50.0)
    assert ema.beta(32) == pytest.approx(0.5 ** (32 / 50))
    ema.images_seen = 1_000_000  # 50,000 > 10,000: the ramp-up is over
    assert ema.half_life() == 10_000 and ema.beta(32) == pytest.approx(0.5 ** (32 / 10_000))


def test_one_update_is_the_exact_lerp():
    g = small_g()
    ema = GeneratorEMA(g, half_life_images=50)
    old = {n: p.detach().clone() for n, p in ema.module.named_parameters()}
    with torch.no_grad():
        for p in g.parameters():
            p.add_(torch.randn_like(p))
    beta = 0.5 ** (10 / 50)
    ema.update(g, batch_images=10)
    for name, p in g.named_parameters():
        want = beta * old[name] + (1 - beta) * p.detach()
        torch.testing.assert_close(dict(ema.module.named_parameters())[name], want, rtol=1e-6, atol=1e-7)
    assert ema.images_seen == 10


def test_constant_g_leaves_the_ema_equal_to_g():
    g = small_g()
    ema = GeneratorEMA(g, half_life_images=30, rampup=0.1)
    for _ in range(5):
        ema.update(g, batch_images=8)
    for p_ema, p in zip(ema.module.parameters(), g.parameters()):
        torch.testing.assert_close(p_ema, p.detach())


def test_half_life_means_halfway_after_that_many_images():
    # G jumps from 0 to 1; after half_life images of updates the EMA is at 0.5, after twice
    # that at 0.75.
    g = small_g()
    set_params(g, 0.0)
    ema = GeneratorEMA(g, half_life_images=100)
    set_params(g, 1.0)
    for _ in range(10):
        ema.update(g, batch_images=10)
    assert all(torch.allclose(p, torch.full_like(p, 0.5)) for p in ema.module.parameters())
    for _ in range(4):
        ema.update(g, batch_images=25)
    assert all(torch.allclose(p, torch.full_like(p, 0.75)) for p in ema.module.parameters())


def test_buffers_are_copied_not_averaged():
    g = small_g()
    ema = GeneratorEMA(g, half_life_images=1e9)  # parameters barely move
    g(torch.randn(16, 3) * 5 + 2)  # train-mode pass: BatchNorm's running stats change
    ema.update(g, batch_images=16)
    bn_ema, bn = ema.module[1], g[1]
    assert torch.equal(bn_ema.running_mean, bn.running_mean) and bn.running_mean.abs().sum() > 0
    assert torch.equal(bn_ema.running_var, bn.running_var)
    assert bn_ema.num_batches_tracked.item() == 1


def test_state_round_trip():
    g = small_g()
    ema = GeneratorEMA(g, half_life_images=40)
    with torch.no_grad():
        for p in g.parameters():
            p.mul_(2)
    ema.update(g, batch_images=12)
    state = copy.deepcopy(ema.state_dict())
    fresh = GeneratorEMA(small_g(), half_life_images=40)
    fresh.load_state_dict(state)
    assert fresh.images_seen == 12
    x = torch.randn(5, 3)
    assert torch.equal(fresh.module(x), ema.module(x))
    # The two go on identically.
    ema.update(g, batch_images=12)
    fresh.update(g, batch_images=12)
    assert torch.equal(fresh.module(x), ema.module(x))


@pytest.mark.parametrize("kwargs", [dict(half_life_images=0), dict(half_life_images=10, rampup=0.0)])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        GeneratorEMA(small_g(), **kwargs)
