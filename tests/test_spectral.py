"""Spectral normalisation: sigma ~ 1 after training-mode passes, round trips, every arch's D."""

import copy

import pytest
import torch
from torch import nn

from gankit.nets import ARCHS, NetSpec, build
from gankit.nets.spectral import SPECTRAL_LAYERS, apply_spectral_norm, is_spectral_normalised


def spec(arch, shape=(1, 28, 28), **overrides):
    fields = dict(width=8, latent_dim=16, spectral_norm=True)
    if arch == "mlp":
        fields.update(g_widths=(16, 32), d_widths=(32, 16))
    fields.update(overrides)
    return NetSpec(arch, shape, **fields)


def sigma(layer):
    """Largest singular value of the weight as the parametrization sees it: rows are output
    channels (dim 1 of a ConvTranspose2d weight)."""
    w = layer.weight
    if isinstance(layer, nn.ConvTranspose2d):
        w = w.movedim(1, 0)
    return torch.linalg.matrix_norm(w.flatten(1), 2).item()


def weighted(module):
    return [m for m in module.modules() if isinstance(m, SPECTRAL_LAYERS)]


def mixed_net():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU(), nn.ConvTranspose2d(6, 5, 4), nn.ReLU(),
                        nn.Flatten(), nn.Linear(5 * 9 * 9, 7), nn.BatchNorm1d(7))
    with torch.no_grad():
        for m in weighted(net):
            m.weight.mul_(7.0)  # far from sigma 1 before normalising
    return net


def test_every_weighted_layer_gets_sigma_one():
    net = mixed_net()
    assert all(sigma(m) > 2 for m in weighted(net))
    emb = nn.Embedding(10, 4)
    with torch.no_grad():
        emb.weight.mul_(5)
    assert apply_spectral_norm(net) is net
    apply_spectral_norm(emb)
    x = torch.randn(4, 3, 8, 8)
    for _ in range(5):
        net(x)
        emb(torch.arange(4))
    for m in weighted(net) + [emb]:
        assert is_spectral_normalised(m)
        assert sigma(m) == pytest.approx(1.0, rel=0.05)
    assert not any(is_spectral_normalised(m) for m in net.modules() if isinstance(m, nn.BatchNorm1d))


def test_uses_the_parametrization_api_and_is_idempotent():
    net = mixed_net()
    apply_spectral_norm(net)
    apply_spectral_norm(net)
    conv = net[0]
    assert len(conv.parametrizations.weight) == 1  # not normalised twice
    assert "weight_orig" not in dict(conv.named_parameters())  # the old hook API's name
    assert "parametrizations.weight.original" in dict(conv.named_parameters())


def test_state_dict_and_deepcopy_reproduce_outputs():
    net = apply_spectral_norm(mixed_net())
    x = torch.randn(4, 3, 8, 8)
    for _ in range(3):
        net(x)
    torch.manual_seed(1)
    other = apply_spectral_norm(mixed_net())
    other.load_state_dict(net.state_dict())
    clone = copy.deepcopy(net)
    net.eval(), other.eval(), clone.eval()
    assert torch.equal(other(x), net(x)) and torch.equal(clone(x), net(x))
    # In train mode too: same u, v, so the same power iteration and the same output.
    net.train(), other.train(), clone.train()
    want = net(x)
    assert torch.equal(other(x), want) and torch.equal(clone(x), want)


def test_sigma_is_frozen_in_eval_mode():
    net = apply_spectral_norm(mixed_net()).eval()
    u = net[0].parametrizations.weight[0]._u.clone()
    net(torch.randn(2, 3, 8, 8))
    assert torch.equal(net[0].parametrizations.weight[0]._u, u)


@pytest.mark.parametrize("arch", list(ARCHS))
def test_build_normalises_every_d_and_no_g(arch):
    torch.manual_seed(0)
    shape = (3, 32, 32)
    g, d = build(spec(arch, shape))
    layers = weighted(d)
    assert layers and all(is_spectral_normalised(m) for m in layers)
    assert not any(is_spectral_normalised(m) for m in weighted(g))
    x = torch.rand(8, *shape) * 2 - 1
    for _ in range(3):
        out = d(x)
    assert out.shape == (8,) and torch.isfinite(out).all()
    for m in layers:
        assert sigma(m) == pytest.approx(1.0, rel=0.05), type(m).__name__
    # One step of D trains the stored weights.
    before = [p.detach().clone() for p in d.parameters()]
    opt = torch.optim.Adam(d.parameters(), lr=1e-3)
    opt.zero_grad()
    d(x).mean().backward()
    opt.step()
    assert all(not torch.equal(b, p) for b, p in zip(before, d.parameters()))
    _, plain = build(spec(arch, shape, spectral_norm=False))
    assert not any(is_spectral_normalised(m) for m in weighted(plain))


@pytest.mark.parametrize("arch", list(ARCHS))
def test_built_d_state_dict_round_trip(arch):
    torch.manual_seed(0)
    _, d = build(spec(arch))
    x = torch.rand(4, 1, 28, 28) * 2 - 1
    d(x)
    torch.manual_seed(5)
    _, d2 = build(spec(arch))
    d2.load_state_dict(d.state_dict())
    d.eval(), d2.eval()
    assert torch.equal(d(x), d2(x))


def test_init_is_applied_before_normalising():
    # The init must reach the stored weight: keras init zeroes the biases and leaves a glorot
    # weight, which spectral norm only rescales.
    torch.manual_seed(0)
    _, d = build(spec("dcgan-small"))
    first = d[0]
    assert not first.bias.any()
    original = first.parametrizations.weight.original
    limit = (6 / (first.in_channels * 25 + first.out_channels * 25)) ** 0.5
    assert original.abs().max() <= limit and original.abs().max() > limit / 2
