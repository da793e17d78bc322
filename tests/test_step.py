"""The training step's shortcuts compute what the long way computes: one D call for real and fake,
G's step on the fakes D saw, bf16 autocast (penalties included), and the speed settings' fallbacks."""

import copy

import pytest
import torch

from gankit.config import make_config
from gankit.nets import build
from gankit.nets.spec import net_spec
from gankit.training.compute import autocast, compiled, has_batchnorm, native_bf16, resolve_precision
from gankit.training.d_calls import CallEach, OneCall
from gankit.training.losses import gradient_penalty
from gankit.training.step import GANStep


def make_step(optimiser=torch.optim.Adam, **fields):
    cfg = make_config({"arch": "dcgan-small", "width": 8, "batch_size": 8, "precision": "fp32", **fields})
    torch.manual_seed(0)
    g, d = build(net_spec(cfg, (1, 28, 28)))
    opt_g = optimiser(g.parameters(), lr=1e-3, foreach=True)
    opt_d = optimiser(d.parameters(), lr=1e-3, foreach=True)
    return GANStep(cfg, g, d, opt_g, opt_d, torch.device("cpu"))


def real_batch(n=8):
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(1)) * 2 - 1


def test_one_d_call_for_real_and_fake_equals_two_calls():
    # SGD: Adam turns a rounding-sized gradient into a full-sized step, which would hide the comparison.
    joint, separate = make_step(torch.optim.SGD), make_step(torch.optim.SGD)
    assert isinstance(joint.d_calls, OneCall)  # dcgan-small's D has no BatchNorm
    separate.d_calls = CallEach()
    for step in (joint, separate):
        torch.manual_seed(5)
        step([(real_batch(), None)], 0.0, GANStep.zero_stats())
    for a, b in zip(joint.d.parameters(), separate.d.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-7)
    for a, b in zip(joint.g.parameters(), separate.g.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-7)


def test_batchnorm_in_d_keeps_real_and_fake_apart():
    step = make_step(arch="dcgan", width=8)
    assert has_batchnorm(step.d) and isinstance(step.d_calls, CallEach)
    assert isinstance(make_step(d_split_update=True).d_calls, CallEach)


def count_g_calls(step, reuse):
    calls = []
    step.g.register_forward_hook(lambda *_: calls.append(1))
    step([(real_batch(), None)], 0.0, GANStep.zero_stats())
    return len(calls)


def test_reused_fakes_save_a_forward_of_g_and_still_train_g():
    reuse, fresh = make_step(reuse_fakes=True), make_step(reuse_fakes=False)
    before = copy.deepcopy(reuse.g.state_dict())
    assert count_g_calls(reuse, True) == 1
    assert count_g_calls(fresh, False) == 2
    changed = [not torch.equal(before[k], v) for k, v in reuse.g.state_dict().items() if v.is_floating_point()]
    assert any(changed)


def test_g_step_leaves_d_untouched_and_trainable():
    step = make_step()
    stats = GANStep.zero_stats()
    d_before = copy.deepcopy(step.d.state_dict())
    step.update_g(None, None, 0.0, stats)
    assert all(torch.equal(d_before[k], v) for k, v in step.d.state_dict().items())
    assert all(p.requires_grad for p in step.d.parameters())
    assert all(p.grad is None for p in step.d.parameters())


def test_stats_are_device_tensors_until_the_log_line():
    step = make_step(d_steps=2)
    stats = GANStep.zero_stats()
    step([(real_batch(), None), (real_batch(), None)], 0.0, stats)
    assert isinstance(stats["d_loss"], torch.Tensor) and stats["d_updates"] == 2


def test_bf16_step_trains_and_keeps_float32_weights():
    step = make_step(precision="bf16")
    assert step.dtype == torch.bfloat16
    d_loss, g_loss = step([(real_batch(), None)], 0.0, GANStep.zero_stats())
    assert torch.isfinite(d_loss) and torch.isfinite(g_loss)
    assert d_loss.dtype == torch.float32
    assert all(p.dtype == torch.float32 for p in list(step.g.parameters()) + list(step.d.parameters()))


def test_gradient_penalty_under_bf16_autocast_matches_float32():
    step = make_step(loss="wgan-gp")
    real, fake = real_batch(), real_batch() * 0.5
    gen = torch.Generator().manual_seed(3)
    exact = gradient_penalty(step.d, real, fake, generator=gen)
    gen.manual_seed(3)
    with autocast(torch.device("cpu"), torch.bfloat16):
        low = gradient_penalty(lambda x: step.d(x).float(), real, fake, generator=gen)
    assert low.dtype == torch.float32
    torch.testing.assert_close(low, exact, rtol=0.05, atol=1e-3)
    low.backward()  # the penalty's own gradient reaches D's weights
    weights = [p for p in step.d.parameters() if p.dim() > 1]  # biases do not move grad_x D
    assert all(p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0 for p in weights)


def test_precision_choice():
    cpu = torch.device("cpu")
    assert resolve_precision("fp32", cpu) == torch.float32
    assert resolve_precision("bf16", cpu) == torch.bfloat16
    assert resolve_precision("auto", cpu) == (torch.bfloat16 if native_bf16(cpu) else torch.float32)
    assert resolve_precision("auto", torch.device("mps")) == torch.float32


def test_compile_without_a_compiler_warns_and_falls_back(monkeypatch):
    monkeypatch.setattr("shutil.which", lambda name: None)
    net = torch.nn.Linear(2, 2)
    messages = []
    assert compiled(net, torch.device("cpu"), True, warn=messages.append) is net
    assert len(messages) == 1 and "--compile" in messages[0] and "compiler" in messages[0]
    assert compiled(net, torch.device("cpu"), False, warn=messages.append) is net and len(messages) == 1


def test_unknown_precision_names_the_flag():
    from gankit.errors import UserError
    with pytest.raises(UserError, match="--precision"):
        make_config({"precision": "fp8"})


def build_step(image_shape=(1, 28, 28), num_classes=0, **fields):
    cfg = make_config({"arch": "dcgan-small", "width": 8, "batch_size": 8, "precision": "fp32", **fields})
    torch.manual_seed(0)
    g, d = build(net_spec(cfg, image_shape, num_classes))
    return GANStep(cfg, g, d, torch.optim.SGD(g.parameters(), lr=1e-2), torch.optim.SGD(d.parameters(), lr=1e-2),
                   torch.device("cpu"))


def d_after_one_step(step_index=0, **fields):
    step = build_step(**fields)
    torch.manual_seed(7)
    step([(real_batch(), None)], 0.0, GANStep.zero_stats(), step_index)
    return [p.detach().clone() for p in step.d.parameters()]


def test_lazy_r1_runs_every_kth_update_and_changes_d():
    plain = d_after_one_step()
    with_r1 = d_after_one_step(r1_gamma=10.0, r1_every=4)
    skipped = d_after_one_step(step_index=1, r1_gamma=10.0, r1_every=4)
    plain_at_1 = d_after_one_step(step_index=1)
    assert any(not torch.allclose(a, b) for a, b in zip(plain, with_r1))
    assert all(torch.equal(a, b) for a, b in zip(plain_at_1, skipped))  # step 1 is not a multiple of 4


def test_lazy_r1_adds_exactly_k_times_half_gamma_times_the_penalty():
    from gankit.training.losses import r1_penalty
    # the D step's extra gradient equals that of (gamma / 2) * k * penalty
    ref = build_step(r1_gamma=0.0)
    torch.manual_seed(7)
    ref([(real_batch(), None)], 0.0, GANStep.zero_stats(), 0)
    step2 = build_step(r1_gamma=2.0, r1_every=4)
    torch.manual_seed(7)
    step2([(real_batch(), None)], 0.0, GANStep.zero_stats(), 0)
    # SGD: weight difference = -lr * grad of the added term
    probe = build_step()
    real2 = real_batch().requires_grad_(True)
    term = (2.0 / 2) * 4 * r1_penalty(probe._d(real2, None, 0.0)[0], real2)
    grads = torch.autograd.grad(term, [p for p in probe.d.parameters()], allow_unused=True)
    first_w = 0  # the first conv's weight
    diff = list(step2.d.parameters())[first_w] - list(ref.d.parameters())[first_w]
    assert grads[first_w].abs().sum() > 0
    torch.testing.assert_close(diff, -1e-2 * grads[first_w], rtol=1e-3, atol=1e-6)


def test_diffaugment_reaches_d_and_keeps_the_step_finite():
    plain = d_after_one_step()
    augmented = d_after_one_step(augment="color,translation,cutout")
    assert any(not torch.allclose(a, b) for a, b in zip(plain, augmented))
    assert all(torch.isfinite(a).all() for a in augmented)


def test_projection_conditional_step_uses_labels():
    step = build_step(num_classes=10, arch="resnet", width=8, conditioning="projection", spectral_norm=True,
                      loss="hinge")
    assert step.num_classes == 10 and step.aux_classes == 0
    labels = torch.arange(8) % 10
    d_loss, g_loss = step([(real_batch(), labels)], 0.0, GANStep.zero_stats())
    assert torch.isfinite(d_loss) and torch.isfinite(g_loss)
    z = torch.randn(2, step.cfg.latent_dim)
    step.g.eval()
    with torch.no_grad():
        a, b = step.g(z, torch.tensor([0, 0])), step.g(z, torch.tensor([1, 1]))
    assert not torch.allclose(a, b)


def test_acgan_step_trains_the_class_head():
    step = build_step(num_classes=10, arch="resnet", width=8, conditioning="acgan")
    assert step.aux_classes == 10
    stats = GANStep.zero_stats()
    step([(real_batch(), torch.arange(8) % 10)], 0.0, stats)
    assert float(stats["d_class_loss"]) > 0


@pytest.mark.parametrize("extra", [{"r1_gamma": 1.0}, {"conditioning": "acgan"}, {"loss": "wgan-gp"}])
def test_split_d_update_refuses_terms_it_would_drop(extra):
    from gankit.errors import UserError
    with pytest.raises(UserError, match="--d-split-update"):
        make_config({"d_split_update": True, **extra})


class _RefusesBool(torch.nn.Module):
    """Like torch.compile's wrapper of a module: `bool(x)` falls back to `len(x)`, which it refuses."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, *args):
        return self.net(*args)

    def __len__(self):
        raise TypeError(f"{type(self.net).__name__} does not support len()")


def test_a_d_that_refuses_bool_still_steps():
    """--compile on a class-conditional run once stopped in G's step ("ConditionalDiscriminator does
    not support len()"): the step chose D's call with `call or self.d_call`."""
    step = build_step(num_classes=3, conditioning="projection")
    step.d_call = step.d_frozen_call = _RefusesBool(step.d)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    d_loss, g_loss = step([(real_batch(), labels)], 0.0, GANStep.zero_stats(), 0)
    assert torch.isfinite(d_loss) and torch.isfinite(g_loss)
