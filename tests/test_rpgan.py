"""The relativistic pairing loss (--loss rpgan) and the R1/R2 penalties at hand-computed values, and
a training step that uses them: G's step pairs its fakes with reals, R2 is lazy like R1."""

import math

import pytest
import torch

from gankit.config import make_config
from gankit.errors import UserError
from gankit.nets import build
from gankit.nets.r3gan import ResidualBlock
from gankit.nets.spec import net_spec
from gankit.training.d_calls import CallEach, OneCall
from gankit.training.losses import LOSSES, r1_penalty, r2_penalty, squared_gradient_norms, zero_centred_penalty
from gankit.training.step import GANStep

RPGAN = LOSSES["rpgan"]


def t(*values, grad=False):
    return torch.tensor(values, dtype=torch.float64, requires_grad=grad)


def softplus(x):
    return math.log1p(math.exp(x))


def sigmoid(x):
    return 1 / (1 + math.exp(-x))


# --- the loss -----------------------------------------------------------------------------------

def test_rpgan_losses_by_hand():
    real, fake = t(1.0, 0.0), t(0.0, 2.0)
    anything = t(0.3, 0.7)  # no labels: targets are ignored
    # D: mean f(D(fake_i) - D(real_i)) = (softplus(-1) + softplus(2)) / 2
    assert RPGAN.d_loss(real, fake, anything, anything).item() == pytest.approx(
        (softplus(-1.0) + softplus(2.0)) / 2, rel=1e-12)
    # G: mean f(D(real_i) - D(fake_i)) = (softplus(1) + softplus(-2)) / 2
    assert RPGAN.generator_loss(fake, real).item() == pytest.approx((softplus(1.0) + softplus(-2.0)) / 2, rel=1e-12)


def test_rpgan_gradients_are_sigmoids_of_the_differences():
    real_values, fake_values = (1.0, 0.0, -0.5), (0.0, 2.0, -0.5)
    n = len(real_values)
    real, fake = t(*real_values, grad=True), t(*fake_values, grad=True)
    RPGAN.d_loss(real, fake, real, fake).backward()
    # d/d fake_i of mean softplus(fake - real) = sigmoid(fake_i - real_i) / N; the real gets its negative.
    want = [sigmoid(f - r) / n for r, f in zip(real_values, fake_values)]
    assert fake.grad.tolist() == pytest.approx(want, rel=1e-12)
    assert real.grad.tolist() == pytest.approx([-w for w in want], rel=1e-12)

    real, fake = t(*real_values, grad=True), t(*fake_values, grad=True)
    RPGAN.generator_loss(fake, real).backward()
    want = [sigmoid(r - f) / n for r, f in zip(real_values, fake_values)]
    assert fake.grad.tolist() == pytest.approx([-w for w in want], rel=1e-12)
    assert real.grad.tolist() == pytest.approx(want, rel=1e-12)


def test_rpgan_is_symmetric_shift_free_and_pairs_by_index():
    real, fake = t(0.5, -1.0, 3.0), t(2.0, 0.25, -0.75)
    # Swapping roles: G's loss is D's loss with real and fake exchanged.
    assert RPGAN.generator_loss(fake, real).item() == pytest.approx(RPGAN.d_loss(fake, real, real, fake).item(),
                                                                    rel=1e-12)
    # Only differences count: moving every logit by the same amount changes nothing.
    assert RPGAN.d_loss(real + 7, fake + 7, real, fake).item() == pytest.approx(
        RPGAN.d_loss(real, fake, real, fake).item(), rel=1e-12)
    # The i-th real meets the i-th fake: reordering the fakes changes the loss.
    assert RPGAN.d_loss(real, fake.flip(0), real, fake).item() != pytest.approx(
        RPGAN.d_loss(real, fake, real, fake).item())


def test_rpgan_reads_raw_logits_with_threshold_zero():
    assert RPGAN.relativistic and not LOSSES["bce"].relativistic and not RPGAN.gradient_penalty
    logits = t(-0.5, 0.0, 2.0)
    assert torch.equal(RPGAN.readout(logits), logits) and RPGAN.threshold == 0.0


def test_rpgan_g_loss_without_reals_says_what_to_do():
    with pytest.raises(ValueError, match="real"):
        RPGAN.generator_loss(t(1.0))


# --- R1 and R2: one function --------------------------------------------------------------------

def test_penalty_of_a_linear_d_is_the_squared_weight_norm():
    # D(x) = sum(w * x): grad_x D = w at every x, so the penalty is ||w||^2 exactly, on any images.
    w = t(3.0, 4.0, 12.0)
    assert r1_penalty is zero_centred_penalty and r2_penalty is zero_centred_penalty
    for images in (torch.randn(5, 3, dtype=torch.float64), torch.randn(2, 3, dtype=torch.float64) * 10):
        images.requires_grad_(True)
        assert r2_penalty((images * w).sum(1), images).item() == pytest.approx(169.0, rel=1e-12)


def test_penalty_of_a_square_d_is_four_times_the_squared_norm():
    # D(x) = sum(x^2): grad 2x, so each image gives 4 ||x||^2 and the penalty is their mean.
    x = torch.tensor([[[[1.0, -2.0], [0.5, 0.0]]], [[[3.0, 0.0], [0.0, -1.0]]]],
                     dtype=torch.float64).requires_grad_(True)  # [2, 1, 2, 2]
    logits = x.pow(2).flatten(1).sum(1)
    per_image = [4 * (1 + 4 + 0.25), 4 * (9 + 1)]
    assert squared_gradient_norms(logits, x).tolist() == pytest.approx(per_image, rel=1e-12)
    assert zero_centred_penalty(x.pow(2).flatten(1).sum(1), x).item() == pytest.approx(sum(per_image) / 2, rel=1e-12)


def test_penalty_gradient_in_d_weights_by_hand():
    # D_w(x) = sum_j w_j x_j^2: grad_x = 2 w x, penalty P = mean_i sum_j 4 w_j^2 x_ij^2,
    # so dP/dw_j = mean_i 8 w_j x_ij^2; create_graph carries the penalty back to w.
    w = t(0.5, -2.0, 1.5, grad=True)
    x = torch.tensor([[1.0, 2.0, -1.0], [0.0, -0.5, 3.0]], dtype=torch.float64).requires_grad_(True)
    zero_centred_penalty((w * x.pow(2)).sum(1), x).backward()
    want = [8 * w_j * (x[0, j].item() ** 2 + x[1, j].item() ** 2) / 2 for j, w_j in enumerate((0.5, -2.0, 1.5))]
    assert w.grad.tolist() == pytest.approx(want, rel=1e-12)


def test_one_backward_gives_each_image_of_a_joined_batch_its_own_gradient():
    torch.manual_seed(0)
    d = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3), torch.nn.Softplus(), torch.nn.Flatten(),
                            torch.nn.Linear(3 * 4 * 4, 1), torch.nn.Flatten(0))
    real, fake = torch.randn(4, 1, 6, 6), torch.randn(4, 1, 6, 6)
    both = torch.cat([real, fake]).requires_grad_(True)
    joined = squared_gradient_norms(d(both), both)
    real, fake = real.requires_grad_(True), fake.requires_grad_(True)
    torch.testing.assert_close(joined[:4].mean(), r1_penalty(d(real), real))
    torch.testing.assert_close(joined[4:].mean(), r2_penalty(d(fake), fake))


# --- config -------------------------------------------------------------------------------------

@pytest.mark.parametrize("fields, flag", [
    ({"loss": "rpgan", "d_split_update": True}, "--d-split-update"),
    ({"r2_gamma": 1.0, "d_split_update": True}, "--d-split-update"),
    ({"r2_gamma": -1.0}, "--r2-gamma"),
    ({"loss": "rpgn"}, "rpgan"),  # the list of valid losses names it
])
def test_config_refuses_what_cannot_run(fields, flag):
    with pytest.raises(UserError, match=flag):
        make_config(fields)


# --- the step -----------------------------------------------------------------------------------

def make_step(arch="dcgan-small", image_shape=(1, 28, 28), **fields):
    cfg = make_config({"arch": arch, "width": 8, "batch_size": 8, "precision": "fp32", "loss": "rpgan", **fields})
    torch.manual_seed(0)
    g, d = build(net_spec(cfg, image_shape))
    return GANStep(cfg, g, d, torch.optim.SGD(g.parameters(), lr=1e-2), torch.optim.SGD(d.parameters(), lr=1e-2),
                   torch.device("cpu"))


def real_batch(shape=(1, 28, 28), n=8):
    return torch.rand(n, *shape, generator=torch.Generator().manual_seed(1)) * 2 - 1


def params(net):
    return [p.detach().clone() for p in net.parameters()]


def test_g_step_pairs_fakes_with_reals_and_leaves_d_alone():
    step = make_step()
    real = real_batch()
    with pytest.raises(ValueError, match="real batch"):
        step.update_g(None, None, 0.0, GANStep.zero_stats())
    torch.manual_seed(3)
    fake = step._g(step.latent(8), None)
    with torch.no_grad():
        want = torch.nn.functional.softplus(step.d(real) - step.d(fake)).mean()
    d_before = params(step.d)
    stats = GANStep.zero_stats()
    g_loss = step.update_g(fake, None, 0.0, stats, real=real)
    torch.testing.assert_close(g_loss, want)
    assert all(torch.equal(a, b) for a, b in zip(d_before, step.d.parameters()))
    assert all(p.grad is None and p.requires_grad for p in step.d.parameters())


def test_joint_d_call_equals_separate_calls_with_both_penalties():
    # One D call on real + fake (and one backward for R1 and R2 together) against two calls.
    runs = []
    for joint in (True, False):
        step = make_step(r1_gamma=1.0, r2_gamma=2.0, r1_every=1)
        assert isinstance(step.d_calls, OneCall)
        step.d_calls = OneCall() if joint else CallEach()
        torch.manual_seed(5)
        losses = step([(real_batch(), None)], 0.0, GANStep.zero_stats())
        runs.append((losses, params(step.d), params(step.g)))
    (joint_losses, joint_d, joint_g), (sep_losses, sep_d, sep_g) = runs
    torch.testing.assert_close(joint_losses, sep_losses)
    for a, b in zip(joint_d + joint_g, sep_d + sep_g):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-7)


def d_after_one_step(**fields):
    step = make_step(**fields)
    torch.manual_seed(7)
    step([(real_batch(), None)], 0.0, GANStep.zero_stats(), 0)
    return step


def test_lazy_r2_adds_exactly_k_times_half_gamma_times_the_penalty():
    ref, with_r2 = d_after_one_step(), d_after_one_step(r2_gamma=2.0, r1_every=4)
    # SGD: the weight difference is -lr times the gradient of (gamma / 2) * k * R2 on the same fakes.
    probe = make_step()
    torch.manual_seed(7)
    with torch.no_grad():
        fake = probe._g(probe.latent(8), None).requires_grad_(True)
    term = (2.0 / 2) * 4 * r2_penalty(probe._d(fake, None, 0.0)[0], fake)
    grad = torch.autograd.grad(term, next(probe.d.parameters()))[0]
    diff = next(with_r2.d.parameters()) - next(ref.d.parameters())
    assert grad.abs().sum() > 0
    torch.testing.assert_close(diff, -1e-2 * grad, rtol=1e-3, atol=1e-6)
    # Off the lazy interval nothing is added.
    skipped = make_step(r2_gamma=2.0, r1_every=4)
    plain = make_step()
    for step in (skipped, plain):
        torch.manual_seed(7)
        step([(real_batch(), None)], 0.0, GANStep.zero_stats(), 1)
    assert all(torch.equal(a, b) for a, b in zip(skipped.d.parameters(), plain.d.parameters()))


def test_r3gan_rpgan_r1_r2_trains_at_32px_rgb():
    shape = (3, 32, 32)
    step = make_step(arch="r3gan", image_shape=shape, r1_gamma=0.1, r2_gamma=0.1, r1_every=2, d_steps=2)
    g_before, d_before = params(step.g), params(step.d)
    stats = GANStep.zero_stats()
    torch.manual_seed(11)
    for i in range(3):
        batches = [(real_batch(shape) * 0.5, None), (real_batch(shape), None)]
        d_loss, g_loss = step(batches, 0.0, stats, i)
        assert torch.isfinite(d_loss) and torch.isfinite(g_loss)
    assert stats["d_updates"] == 6
    assert all(math.isfinite(float(stats[k])) for k in ("d_loss", "g_loss", "d_real", "d_fake"))
    # Only differences of D's logits count, so the biases that shift every logit alike (the head's,
    # and the last block's, which only the linear head follows) get no gradient but rounding (the
    # +s and -s of a pair are summed in whatever order the kernels take, and Adam enlarges what
    # is left, so they are checked by their gradient, not for standing still); everything else,
    # the branches' zero-initialised convs included, moves.
    head = [m for m in step.d.modules() if isinstance(m, torch.nn.Linear)][-1]
    last_block = [m for m in step.d.modules() if isinstance(m, ResidualBlock)][-1]
    shift_only = {id(head.bias), id(last_block.conv2.bias)}
    for before, net in ((g_before, step.g), (d_before, step.d)):
        after = list(net.parameters())
        assert all(torch.isfinite(p).all() for p in after)
        moved = [not torch.equal(b, a) for b, a in zip(before, after) if id(a) not in shift_only]
        assert all(moved)
    real, fake = real_batch(shape), real_batch(shape) * 0.3
    real_logits, fake_logits = step.d(torch.cat([real, fake])).split(len(real))
    loss = step.loss.d_loss(real_logits, fake_logits, None, None)
    grads = torch.autograd.grad(loss, [head.bias, last_block.conv2.bias, head.weight])
    assert max(g.abs().max() for g in grads[:2]) < 1e-5 < grads[2].abs().max()
