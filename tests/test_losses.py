"""Loss values at known logits, and the WGAN-GP penalty against a hand-computed gradient."""

import math

import pytest
import torch

from gankit.losses import LOSSES, gradient_penalty


def t(*values):
    return torch.tensor(values, dtype=torch.float64)


def bce(p_logit, target):
    p = 1 / (1 + math.exp(-p_logit))
    return -(target * math.log(p) + (1 - target) * math.log(1 - p))


def test_bce_d_loss_matches_the_formula_with_smoothing():
    real, fake = t(2.0, -1.0), t(0.5, -3.0)
    got = LOSSES["bce"].d_loss(real, fake, t(0.98, 0.98), t(0.02, 0.02)).item()
    want = (bce(2.0, 0.98) + bce(-1.0, 0.98)) / 2 + (bce(0.5, 0.02) + bce(-3.0, 0.02)) / 2
    assert got == pytest.approx(want, rel=1e-12)


def test_bce_at_zero_logits_is_two_log_two():
    zero = torch.zeros(4, dtype=torch.float64)
    assert LOSSES["bce"].d_loss(zero, zero, zero + 1, zero).item() == pytest.approx(2 * math.log(2))


def test_nonsaturating_and_minimax_g_losses():
    fake = t(1.0, -2.0)
    ns = LOSSES["bce"].g_loss(fake).item()
    mm = LOSSES["minimax"].g_loss(fake).item()
    assert ns == pytest.approx((-math.log(1 / (1 + math.exp(-1))) - math.log(1 / (1 + math.exp(2)))) / 2)
    # minimax G minimises log(1 - D(G(z)))
    assert mm == pytest.approx((math.log(1 - 1 / (1 + math.exp(-1))) + math.log(1 - 1 / (1 + math.exp(2)))) / 2)


def test_minimax_gradient_vanishes_where_nonsaturating_does_not():
    fake = torch.tensor([-8.0], requires_grad=True)  # D is sure the fake is fake
    (g_mm,) = torch.autograd.grad(LOSSES["minimax"].g_loss(fake), fake)
    fake2 = torch.tensor([-8.0], requires_grad=True)
    (g_ns,) = torch.autograd.grad(LOSSES["bce"].g_loss(fake2), fake2)
    assert abs(g_mm.item()) < 1e-3 < abs(g_ns.item())


def test_lsgan_values():
    real, fake = t(1.0, 0.0), t(0.0, 2.0)
    d = LOSSES["lsgan"].d_loss(real, fake, torch.ones(2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64))
    assert d.item() == pytest.approx(0.5 * (0 + 1) / 2 + 0.5 * (0 + 4) / 2)
    assert LOSSES["lsgan"].g_loss(fake).item() == pytest.approx(0.5 * (1 + 1) / 2)


def test_wgan_values_ignore_targets():
    real, fake = t(3.0, 1.0), t(-1.0, 0.0)
    anything = t(0.3, 0.7)
    assert LOSSES["wgan-gp"].d_loss(real, fake, anything, anything).item() == pytest.approx(-0.5 - 2.0)
    assert LOSSES["wgan-gp"].g_loss(fake).item() == pytest.approx(0.5)


def test_real_and_fake_terms_sum_to_d_loss():
    real, fake = torch.randn(5), torch.randn(5)
    rt, ft = torch.full((5,), 0.9), torch.zeros(5)
    for loss in LOSSES.values():
        total = loss.d_loss(real, fake, rt, ft)
        assert torch.allclose(total, loss.real_term(real, rt) + loss.fake_term(fake, ft))


def test_gradient_penalty_matches_a_linear_critic_by_hand():
    # D(x) = <w, x>: its input gradient is w everywhere, so the penalty is (|w| - 1)^2 exactly.
    w = torch.tensor([3.0, 4.0], dtype=torch.float64)
    d = lambda x: (x * w).sum(1)  # noqa: E731
    real, fake = torch.randn(6, 2, dtype=torch.float64), torch.randn(6, 2, dtype=torch.float64)
    assert gradient_penalty(d, real, fake).item() == pytest.approx((5.0 - 1.0) ** 2)


def test_gradient_penalty_reaches_critic_weights():
    lin = torch.nn.Linear(4, 1)
    d = lambda x: lin(x).squeeze(1)  # noqa: E731
    penalty = gradient_penalty(d, torch.randn(8, 4), torch.randn(8, 4))
    penalty.backward()
    # d penalty / d w = 2 (|w| - 1) w / |w| for a linear critic
    w = lin.weight.detach()[0]
    want = 2 * (w.norm() - 1) * w / w.norm()
    assert torch.allclose(lin.weight.grad[0], want, atol=1e-5)
