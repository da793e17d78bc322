"""Loss values at known logits, and the WGAN-GP and R1 penalties against hand-computed gradients."""

import math

import pytest
import torch

from gankit.training.losses import LOSSES, gradient_penalty, r1_penalty


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
    # A relativistic loss judges real and fake in pairs and has no separate terms (tests/test_rpgan.py).
    for loss in (loss for loss in LOSSES.values() if not loss.relativistic):
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


# --- hinge --------------------------------------------------------------------------------------

def test_hinge_values_by_hand():
    real, fake = t(2.0, 0.5, -1.0), t(-3.0, -0.25, 1.5)
    anything = t(0.3, 0.7, 0.9)
    # real: relu(1 - [2, 0.5, -1]) = [0, 0.5, 2]; fake: relu(1 + [-3, -0.25, 1.5]) = [0, 0.75, 2.5]
    hinge = LOSSES["hinge"]
    assert hinge.real_term(real, anything).item() == pytest.approx(2.5 / 3)
    assert hinge.fake_term(fake, anything).item() == pytest.approx(3.25 / 3)
    assert hinge.d_loss(real, fake, anything, anything).item() == pytest.approx(5.75 / 3)
    assert hinge.g_loss(fake).item() == pytest.approx(-(-3.0 - 0.25 + 1.5) / 3)


def test_hinge_d_stops_pushing_beyond_the_margin():
    real = torch.tensor([1.5, 0.5], requires_grad=True)
    fake = torch.tensor([-1.5, -0.5], requires_grad=True)
    LOSSES["hinge"].d_loss(real, fake, torch.ones(2), torch.zeros(2)).backward()
    # Only the logits inside the margin get a gradient, -1/N for real and +1/N for fake.
    assert real.grad.tolist() == [0.0, -0.5] and fake.grad.tolist() == [0.0, 0.5]


def test_hinge_readout_is_the_raw_score_with_threshold_zero():
    hinge = LOSSES["hinge"]
    logits = t(-0.5, 0.0, 2.0)
    assert torch.equal(hinge.readout(logits), logits) and hinge.threshold == 0.0
    assert (hinge.readout(logits) > hinge.threshold).tolist() == [False, False, True]
    assert not hinge.gradient_penalty


# --- R1 -----------------------------------------------------------------------------------------

def test_r1_of_a_linear_d_is_the_squared_weight_norm():
    # D(x) = <w, x> + b: grad_x D = w at every x, so the penalty is ||w||^2 = 9 + 16 + 144 = 169.
    w = torch.tensor([3.0, 4.0, 12.0], dtype=torch.float64)
    real = torch.randn(7, 3, dtype=torch.float64).requires_grad_(True)
    logits = real @ w + 0.5
    assert r1_penalty(logits, real).item() == pytest.approx(169.0, rel=1e-12)


def test_r1_of_a_quadratic_d_by_hand():
    # D(x) = sum_j a_j x_j^2: grad = 2 a x, so the penalty is mean_i sum_j 4 a_j^2 x_ij^2.
    a = torch.tensor([[[0.5, -1.0], [2.0, 0.0]]], dtype=torch.float64)  # images [1, 2, 2]
    real = torch.tensor([[[[1.0, 2.0], [-1.0, 3.0]]], [[[0.0, -0.5], [0.25, 1.0]]]],
                        dtype=torch.float64).requires_grad_(True)  # [2, 1, 2, 2]
    logits = (a * real ** 2).flatten(1).sum(1)
    by_hand = ((4 * 0.25 * 1 + 4 * 1 * 4 + 4 * 4 * 1 + 0)  # image 0
               + (0 + 4 * 1 * 0.25 + 4 * 4 * 0.0625 + 0)) / 2  # image 1
    assert r1_penalty(logits, real).item() == pytest.approx(by_hand, rel=1e-12)


def test_r1_gradient_reaches_d_weights():
    # For D(x) = <w, x>, R1 = ||w||^2, whose gradient in w is 2w.
    lin = torch.nn.Linear(5, 1)
    real = torch.randn(6, 5).requires_grad_(True)
    r1_penalty(lin(real).squeeze(1), real).backward()
    torch.testing.assert_close(lin.weight.grad, 2 * lin.weight.detach())
    assert lin.bias.grad is None or not lin.bias.grad.any()


def test_r1_through_a_conv_d_is_finite_and_trains():
    torch.manual_seed(0)
    conv, out = torch.nn.Conv2d(1, 4, 3), torch.nn.Linear(4 * 6 * 6, 1)
    d = torch.nn.Sequential(conv, torch.nn.Softplus(), torch.nn.Flatten(), out)
    real = torch.randn(3, 1, 8, 8).requires_grad_(True)
    penalty = r1_penalty(d(real).flatten(), real)
    penalty.backward()
    assert torch.isfinite(penalty) and penalty > 0
    # Every weight shapes grad_x D; the last bias does not (it shifts D by a constant).
    assert all(p.grad.abs().sum() > 0 for p in (conv.weight, conv.bias, out.weight))
    assert out.bias.grad is None or not out.bias.grad.any()


def test_r1_without_requires_grad_says_what_to_do():
    real = torch.randn(2, 3)
    with pytest.raises(ValueError, match="requires_grad_"):
        r1_penalty(real.sum(1), real)
