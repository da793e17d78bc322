"""Options for colour recipes: dcgan's G doubling by resize + conv, a minibatch-stddev layer in D,
and LeCam regularisation (its anchors resumed exactly)."""

import pytest
import torch
from torch import nn

import gankit
from gankit.config import make_config
from gankit.errors import UserError
from gankit.nets import build
from gankit.nets.minibatch_std import MinibatchStd
from gankit.nets.spec import net_spec
from gankit.run import checkpoint
from gankit.training.d_calls import CallEach, OneCall
from gankit.training.lecam import LeCamAnchors
from gankit.training.step import GANStep


def nets(image_shape=(3, 32, 32), **fields):
    cfg = make_config({"arch": "dcgan", "width": 8, **fields})
    torch.manual_seed(0)
    return build(net_spec(cfg, image_shape))


@pytest.mark.parametrize("side", [28, 32, 64])
def test_a_resize_g_draws_the_same_shape_without_transposed_doublings(side):
    g, _ = nets((3, side, side), g_upsample="resize")
    out = g(torch.randn(2, 100))
    assert out.shape == (2, 3, side, side) and out.abs().max() <= 1
    transposed = [m for m in g.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert len(transposed) == 1 and transposed[0].stride == (1, 1)  # only z's projection to the first map
    assert sum(isinstance(m, nn.Upsample) for m in g.modules()) == {28: 2, 32: 3, 64: 4}[side]


def test_minibatch_std_appends_each_groups_spread():
    layer = MinibatchStd(group=2)
    x = torch.randn(4, 3, 2, 2)
    out = layer(x)
    assert out.shape == (4, 4, 2, 2) and torch.equal(out[:, :3], x)
    # images 0 and 2 form a group, 1 and 3 the other
    spread = ((x[0] - x[2]) / 2).pow(2).add(1e-8).sqrt().mean()  # a group of 2's deviation: half the gap
    torch.testing.assert_close(out[0, 3], torch.full((2, 2), float(spread)))
    torch.testing.assert_close(out[2, 3], out[0, 3])
    same = layer(torch.ones(4, 3, 2, 2))
    assert same[:, 3].max() < 1e-3  # a collapsed G's batch: no spread


def test_a_d_that_mixes_images_judges_real_and_fake_apart():
    cfg = make_config({"arch": "dcgan", "width": 8, "batch_size": 8, "precision": "fp32", "d_mbstd": 4,
                       "init": "dcgan"})
    g, d = build(net_spec(cfg, (3, 32, 32)))
    step = GANStep(cfg, g, d, torch.optim.Adam(g.parameters()), torch.optim.Adam(d.parameters()), torch.device("cpu"))
    assert isinstance(step.d_calls, CallEach)
    cfg_r3 = make_config({"arch": "r3gan", "width": 8, "batch_size": 8, "precision": "fp32"})
    g3, d3 = build(net_spec(cfg_r3, (3, 32, 32)))
    assert isinstance(GANStep(cfg_r3, g3, d3, torch.optim.Adam(g3.parameters()), torch.optim.Adam(d3.parameters()),
                              torch.device("cpu")).d_calls, OneCall)


def test_the_options_name_their_arch():
    with pytest.raises(UserError, match="--arch dcgan"):
        nets(g_upsample="resize", arch="resnet")
    with pytest.raises(UserError, match="--d-mbstd"):
        make_config({"d_mbstd": 1})
    with pytest.raises(UserError, match="--g-upsample"):
        make_config({"g_upsample": "bilinear"})
    with pytest.raises(UserError, match="--lecam-weight"):
        make_config({"d_split_update": True, "lecam_weight": 0.3})


def test_lecam_penalty_and_its_anchors():
    anchors = LeCamAnchors(torch.device("cpu"), decay=0.5)
    real, fake = torch.tensor([2.0, 4.0]), torch.tensor([-1.0, -3.0])
    penalty = anchors.penalty(real, fake)
    assert anchors.real == 1.5 and anchors.fake == -1.0  # halfway from 0 to the means 3 and -2
    # relu(real - a_fake)^2: 3^2, 5^2; relu(a_real - fake)^2: 2.5^2, 4.5^2
    torch.testing.assert_close(penalty, torch.tensor((9 + 25) / 2 + (6.25 + 20.25) / 2))


def _short(tmp_path, name, steps, **fields):
    run = tmp_path / name
    base = {"arch": "dcgan", "width": 8, "batch_size": 8, "image_size": 32, "precision": "fp32", "report": False,
            "tensorboard": "off", "checkpoint_every": 2, "sample_grid": 4, "lecam_weight": 0.3, "d_mbstd": 2,
            "g_upsample": "resize"}
    return run, {**base, **fields, "steps": steps}


def _weights(run):
    state = checkpoint.load(checkpoint.latest(run))
    return checkpoint.content_digest({k: state[k] for k in ("generator", "discriminator", "opt_d", "lecam")}), state


def test_lecam_changes_d_and_resumes_exactly(tmp_path):
    whole, fields = _short(tmp_path, "whole", 4)
    gankit.train("dcgan", out=whole, quiet=True, dataset="mnist-5k", channels=3, **fields)
    halves, fields = _short(tmp_path, "halves", 2)
    gankit.train("dcgan", out=halves, quiet=True, dataset="mnist-5k", channels=3, **fields)
    gankit.train(resume=halves, steps=4, quiet=True)
    (a, state), (b, _) = _weights(whole), _weights(halves)
    assert a == b
    assert state["lecam"]["real"] != 0 and state["lecam"]["fake"] != 0
    plain, fields = _short(tmp_path, "plain", 4, lecam_weight=0.0)
    gankit.train("dcgan", out=plain, quiet=True, dataset="mnist-5k", channels=3, **fields)
    off = checkpoint.load(checkpoint.latest(plain))
    assert "lecam" not in off
    assert not torch.equal(off["discriminator"]["0.weight"], state["discriminator"]["0.weight"])
