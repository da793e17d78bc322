"""The colour prior (gankit/nets/prior.py): written, read back into fresh nets, into class-conditional
nets, refused where it cannot fit, and the file that ships with gankit."""

import dataclasses

import numpy as np
import pytest
import torch

import gankit
from gankit.errors import UserError
from gankit.nets import build, prior
from gankit.nets.spec import NetSpec

SMALL = NetSpec(arch="dcgan", image_shape=(3, 32, 32), width=8, latent_dim=16, init="dcgan")


def _nets(spec, seed):
    torch.manual_seed(seed)
    g, d = build(spec)
    return g.eval(), d.eval()


@pytest.fixture
def written(tmp_path, monkeypatch):
    """A prior of SMALL nets (seed 7, which no run here uses) in a temporary weights folder gankit reads instead."""
    monkeypatch.setattr(prior, "PRIOR_DIR", tmp_path)
    g, d = _nets(SMALL, 7)
    # BatchNorm statistics other than a fresh net's, so that the copy of buffers is checked too.
    for m in g.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
    prior.write_prior(g, d, SMALL, prior.prior_path(32), {"what": "test"})
    return g, d


def _bf16(net):
    return {k: (v.to(torch.bfloat16).float() if v.is_floating_point() else v) for k, v in net.state_dict().items()}


def test_fresh_nets_take_the_prior_bit_for_bit_in_bf16(written):
    g0, d0 = written
    g, d = _nets(SMALL, 1)
    assert not torch.equal(next(iter(g.parameters())), next(iter(g0.parameters())))
    path = prior.load_prior(g, d, SMALL)
    assert path.name == "colour-prior-32.safetensors" and path.with_suffix(".json").is_file()
    for mine, theirs in ((g, g0), (d, d0)):
        want = _bf16(theirs)
        assert set(mine.state_dict()) == set(want)
        for key, value in mine.state_dict().items():
            assert torch.equal(value.float() if value.is_floating_point() else value, want[key]), key


def test_a_class_conditional_net_starts_drawing_what_the_prior_draws(written):
    g0, d0 = _nets(SMALL, 2)
    prior.load_prior(g0, d0, SMALL)
    spec = dataclasses.replace(SMALL, conditioning="projection", num_classes=5)
    g, d = _nets(spec, 3)
    prior.load_prior(g, d, spec)
    z = torch.randn(6, SMALL.latent_dim)
    with torch.no_grad():
        plain = g0(z)
        for label in (0, 4):
            assert torch.allclose(g(z, torch.full((6,), label)), plain, atol=1e-6)
        # D: the unconditional logit plus the projection term, whose embedding is learnt fresh
        x = plain
        assert not torch.allclose(d(x, torch.zeros(6, dtype=torch.long)), d0(x))
        d.condition.embed.weight.zero_()
        assert torch.allclose(d(x, torch.zeros(6, dtype=torch.long)), d0(x), atol=1e-6)


@pytest.mark.parametrize("change, flag", [(dict(width=16), "--width 8"), (dict(latent_dim=32), "--latent-dim 16"),
                                          (dict(g_upsample="resize"), "--g-upsample transposed")])
def test_nets_of_another_shape_are_refused_with_the_flag_to_pass(written, change, flag):
    spec = dataclasses.replace(SMALL, **change)
    g, d = _nets(spec, 1)
    before = next(iter(g.parameters())).clone()
    with pytest.raises(UserError, match=flag):
        prior.load_prior(g, d, spec)
    assert torch.equal(next(iter(g.parameters())), before)


@pytest.mark.parametrize("shape, says", [((1, 32, 32), "greyscale"), ((4, 32, 32), "--alpha white"),
                                         ((3, 64, 64), "--image-size 32")])
def test_pictures_the_prior_cannot_draw_are_refused_with_the_fix(written, shape, says):
    with pytest.raises(UserError, match=says):
        prior.check_prior_fits(dataclasses.replace(SMALL, image_shape=shape))


def _small_colour_run(run, data_seed: int, steps: int, **fields) -> dict:
    """A few steps of the colour preset on SMALL nets over 64 random colour pictures; its last checkpoint."""
    from gankit.run import checkpoint

    data = run.parent / f"colour-{data_seed}.npz"
    if not data.exists():
        rng = np.random.default_rng(data_seed)
        np.savez(data, images=rng.integers(0, 256, (64, 32, 32, 3), dtype=np.uint8))
    gankit.train("colour", out=run, images=None, dataset=str(data), width=8, latent_dim=16, steps=steps, batch_size=8,
                 log_every=1, sample_every=1000, sample_every_early=1000, checkpoint_every=1000, report=False,
                 tensorboard="off", sample_grid=4, precision="fp32", quiet=True, **fields)
    return checkpoint.load(checkpoint.latest(run))


def test_a_run_with_init_prior_starts_from_it_and_resumes(written, tmp_path):
    from gankit.run import checkpoint

    run = tmp_path / "run"
    tuned = _small_colour_run(run, 0, 2, init="prior")
    scratch = _small_colour_run(tmp_path / "ref", 0, 2)
    g0 = written[0].state_dict()
    key = next(k for k, v in g0.items() if v.dim() == 4)
    # two small steps from the prior stay near it; from scratch they are elsewhere
    near = (tuned["generator"][key] - g0[key]).abs().max()
    far = (scratch["generator"][key] - g0[key]).abs().max()
    assert near < far / 5
    gankit.train(resume=run, steps=3, quiet=True)
    assert checkpoint.load(checkpoint.latest(run))["progress"]["step"] == 3


def test_prior_dir_starts_from_the_prior_in_that_folder_instead(written, tmp_path):
    # the shipped folder (the fixture's) holds prior 7; another folder holds prior 8, which --prior-dir picks
    other = tmp_path / "mine"
    g8, d8 = _nets(SMALL, 8)
    prior.write_prior(g8, d8, SMALL, prior.prior_path(32, other), {"what": "test"})
    key = next(k for k, v in g8.state_dict().items() if v.dim() == 4)
    run = tmp_path / "run"
    state = _small_colour_run(run, 0, 1, init="prior", prior_dir=str(other), freeze_g=1)
    assert torch.equal(state["generator"][key], _bf16(g8)[key])
    assert not torch.equal(state["generator"][key], _bf16(written[0])[key])
    from gankit.config import make_config
    with pytest.raises(UserError, match="--init prior"):
        make_config({"prior_dir": str(other)})
    for folder, says in ((tmp_path / "missing", "--prior-dir .*no such folder"),
                         (tmp_path / "run", "--prior-dir .* holds no colour-prior-SIDE.safetensors")):
        with pytest.raises(UserError, match=says):
            _small_colour_run(tmp_path / "refused", 0, 1, init="prior", prior_dir=str(folder))
        assert not (tmp_path / "refused").exists()


@pytest.mark.parametrize("side", [32, 64])
def test_the_shipped_priors_fit_the_colour_preset_and_draw_colour(side):
    from gankit.config import make_config
    from gankit.nets.spec import net_spec
    from gankit.presets import preset

    assert side in prior.available_sides()
    cfg = make_config(preset("colour"), {"init": "prior"})
    spec = net_spec(cfg, (3, side, side))
    g, d = _nets(spec, 0)
    prior.load_prior(g, d, spec)
    with torch.no_grad():
        images = g(torch.randn(16, spec.latent_dim))
    assert images.shape == (16, 3, side, side)
    # colour, not grey, and not one picture repeated
    assert (images[:, 0] - images[:, 2]).abs().mean() > 0.02
    assert images.std(dim=0).mean() > 0.05


def test_freeze_d_keeps_ds_first_layers_and_trains_the_rest(written, tmp_path):
    _, d = _nets(SMALL, 0)
    prior.freeze_lower_layers(d, 2)
    frozen = [name for name, p in d.named_parameters() if not p.requires_grad]
    kinds = {name: type(m).__name__ for name, m in d.named_modules()}
    # 32 px: conv, conv + BatchNorm (frozen), conv + BatchNorm, the conv to the logit (learning)
    assert [kinds[n.rsplit(".", 1)[0]] for n in frozen] == ["Conv2d", "Conv2d", "Conv2d", "BatchNorm2d", "BatchNorm2d"]
    learning = [name for name, p in d.named_parameters() if p.requires_grad]
    assert [kinds[n.rsplit(".", 1)[0]] for n in learning] == ["Conv2d", "BatchNorm2d", "BatchNorm2d", "Conv2d",
                                                             "Conv2d"]

    trained = _small_colour_run(tmp_path / "frozen", 1, 3, init="prior", freeze_d=2)["discriminator"]
    start = _bf16(written[1])
    for name in frozen:
        assert torch.equal(trained[name].float(), start[name]), name
    for name in learning:
        assert not torch.equal(trained[name].float(), start[name]), name


def test_freeze_d_needs_the_prior_and_a_layer_left_to_learn(written):
    from gankit.config import make_config
    with pytest.raises(UserError, match="--init prior"):
        make_config({"freeze_d": 1})
    g, d = _nets(SMALL, 0)
    with pytest.raises(UserError, match="at most --freeze-d 3"):
        prior.freeze_lower_layers(d, 4)


def test_freeze_g_keeps_gs_layers_nearest_the_latent_and_trains_the_rest(written, tmp_path):
    g, _ = _nets(SMALL, 0)
    prior.freeze_lower_layers(g, 2, "--freeze-g", "G")
    frozen = [name for name, p in g.named_parameters() if not p.requires_grad]
    kinds = {name: type(m).__name__ for name, m in g.named_modules()}
    # 32 px: convT + BatchNorm, convT + BatchNorm (frozen), convT + BatchNorm, the convT to the picture
    assert [kinds[n.rsplit(".", 1)[0]] for n in frozen] == ["ConvTranspose2d", "BatchNorm2d", "BatchNorm2d",
                                                            "ConvTranspose2d", "BatchNorm2d", "BatchNorm2d"]
    trained = _small_colour_run(tmp_path / "frozen", 1, 3, init="prior", freeze_g=2, ema_half_life=100)
    start = _bf16(written[0])
    for name in frozen:
        assert torch.equal(trained["generator"][name].float(), start[name]), name
    learning = [name for name, p in g.named_parameters() if p.requires_grad]
    assert learning
    for name in learning:
        assert not torch.equal(trained["generator"][name].float(), start[name]), name
    # the EMA of a frozen layer is that layer
    for name in frozen:
        assert torch.equal(trained["generator_ema"][name].float(), start[name]), name


def test_freeze_g_needs_the_prior_and_a_layer_left_to_learn(written):
    from gankit.config import make_config
    with pytest.raises(UserError, match="--init prior"):
        make_config({"freeze_g": 1})
    g, _ = _nets(SMALL, 0)
    with pytest.raises(UserError, match="G has 4 convolutions.*at most --freeze-g 3"):
        prior.freeze_lower_layers(g, 4, "--freeze-g", "G")


def test_a_class_conditional_g_with_freeze_g_learns_its_labels_and_keeps_the_rest(written, tmp_path):
    data = tmp_path / "labelled.npz"
    rng = np.random.default_rng(0)
    np.savez(data, images=rng.integers(0, 256, (32, 32, 32, 3), dtype=np.uint8), labels=np.arange(32) % 2)
    gankit.train("colour", out=tmp_path / "run", images=None, dataset=str(data), width=8, latent_dim=16, steps=3,
                 batch_size=8, init="prior", freeze_g=1, conditioning="projection", report=False,
                 tensorboard="off", sample_grid=4, precision="fp32", quiet=True)
    from gankit.run import checkpoint
    trained = checkpoint.load(checkpoint.latest(tmp_path / "run"))["generator"]
    prior_first = next(v for v in _bf16(written[0]).values() if v.dim() == 4)  # G's first conv: [16, out, 4, 4]
    first = next(v for v in trained.values() if v.dim() == 4)  # here [16 + 2 labels, out, 4, 4]
    assert first.shape[0] == SMALL.latent_dim + 2
    assert torch.equal(first[:SMALL.latent_dim].float(), prior_first)
    assert first[SMALL.latent_dim:].abs().sum() > 0  # the labels' weights, from zero, learnt


def test_gankit_train_fine_tunes_a_colour_folder_from_the_shipped_prior(tmp_path):
    """What a user types: a folder of colour PNGs, `--init prior`, and the run starts from the file."""
    import subprocess
    import sys

    from PIL import Image

    folder = tmp_path / "pictures"
    folder.mkdir()
    rng = np.random.default_rng(2)
    for i in range(40):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    run = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "gankit", "train", "--dataset", str(folder), "--image-size", "32",
                           "--init", "prior", "--steps", "2", "--report", "false", "--tensorboard", "off",
                           "--out", str(run)], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "from colour-prior-32.safetensors" in done.stdout
    from gankit.run import checkpoint
    state = checkpoint.load(checkpoint.latest(run))
    tensors, _ = prior.read_prior(prior.prior_path(32))
    key = next(k for k in state["discriminator"] if state["discriminator"][k].dim() == 4)
    moved = (state["discriminator"][key] - tensors["discriminator." + key].float()).abs().max()
    assert moved < 0.01  # two steps from the prior, not a fresh init (whose weights are N(0, 0.02))
