"""The truncation trick: psi = 1 draws today's images bit for bit, psi < 1 pulls z toward the
mean on every arch (both priors, conditional or not), and the flags and the eval sweep use it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import gankit
from gankit.cli import main
from gankit.config import make_config
from gankit.errors import UserError
from gankit.nets import ARCHS, build
from gankit.nets.latents import generate, sample_latent, truncate
from gankit.nets.spec import net_spec
from gankit.sampling import TrainedGenerator

SHAPE = (1, 28, 28)


def tiny_generator(arch: str, classes: int = 0, dist: str = "normal") -> TrainedGenerator:
    fields = {"arch": arch, "width": 8, "latent_dim": 16, "latent_dist": dist,
              "conditioning": "projection" if classes else "none"}
    if arch == "mlp":
        fields.update(g_widths=(16, 32), d_widths=(32, 16))
    cfg = make_config(fields)
    torch.manual_seed(0)
    g, _ = build(net_spec(cfg, SHAPE, classes))
    for embedding in (m for m in g.modules() if isinstance(m, torch.nn.Embedding)):
        torch.nn.init.normal_(embedding.weight, 1.0, 0.5)  # resnet's class gains start equal for every class
    # A few BatchNorm statistics away from their start, so eval mode is not the identity.
    with torch.no_grad():
        for _ in range(2):
            z = torch.randn(32, 16)
            g(z) if not classes else g(z, torch.randint(0, classes, (32,)))
    g.eval()
    return TrainedGenerator(g, cfg, 0, Path("tiny"), False, torch.device("cpu"), classes, SHAPE)


@pytest.mark.parametrize("classes", [0, 10], ids=["unconditional", "conditional"])
@pytest.mark.parametrize("arch", list(ARCHS))
def test_psi_one_is_todays_images_and_smaller_psi_pulls_toward_the_mean(arch, classes):
    tg = tiny_generator(arch, classes)
    # Today's images, drawn without the truncation code: z then labels from one seeded generator.
    rng = torch.Generator().manual_seed(5)
    labels = torch.randint(0, classes, (8,), generator=rng) if classes else None
    today = generate(tg.g, sample_latent(8, 16, "normal", generator=rng), "cpu", y=labels)
    assert torch.equal(tg.sample(8, seed=5, truncation=1.0), today)
    assert torch.equal(tg.sample(8, seed=5), today)
    assert not torch.equal(tg.sample(8, seed=5, truncation=0.5), today)
    # psi = 0: every latent is the mean, so the images differ only by class
    mean = tg.sample(8, classes=3 if classes else None, seed=5, truncation=0.0)
    assert all(torch.equal(image, mean[0]) for image in mean)
    if classes:
        other = tg.sample(8, classes=4, seed=5, truncation=0.0)
        assert not torch.equal(other[0], mean[0])  # the class input stays as given


def test_truncated_latents_are_scaled_toward_zero_for_both_priors():
    for dist in ("normal", "uniform"):
        tg = tiny_generator("mlp", dist=dist)
        plain = tg.latent(500, torch.Generator().manual_seed(1))
        pulled = tg.latent(500, torch.Generator().manual_seed(1), truncation=0.7)
        assert torch.allclose(pulled, plain * 0.7)
        if dist == "uniform":  # inside the cube G was trained on, shrunk toward its centre
            assert plain.abs().max() > 0.95 and pulled.abs().max() <= 0.7
    z = torch.randn(4, 3)
    assert truncate(z, 1.0) is z  # psi = 1: the same tensor, so the same bits


@pytest.mark.parametrize("psi", [1.5, -0.1, float("nan"), "x"])
def test_a_psi_out_of_range_names_the_flag(psi):
    with pytest.raises(UserError, match="--truncation"):
        tiny_generator("mlp").sample(2, truncation=psi)


def test_grid_and_interpolate_take_truncation():
    tg = tiny_generator("dcgan")
    assert tg.grid(4, seed=0, truncation=0.0).getextrema() is not None
    walk = tg.interpolate(rows=2, steps=4, seed=0, truncation=0.0)  # both ends at the mean: a still walk
    assert all(torch.equal(frame, walk[0, 0]) for frame in walk.reshape(-1, *walk.shape[2:]))
    moving = tg.interpolate(rows=2, steps=4, seed=0)
    assert not torch.equal(moving[0, 0], moving[0, -1])


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("trunc") / "run"
    assert main(["train", "-q", "--out", str(out), "--steps", "2", "--width", "8", "--batch-size", "16",
                 "--sample-grid", "16", "--checkpoint-every", "2", "--tensorboard", "off"]) == 0
    return out


def test_sample_and_interpolate_flags(run, tmp_path, capsys):
    assert main(["sample", str(run), "-n", "6", "--truncation", "0.5", "--out", str(tmp_path / "t.npz"), "-q"]) == 0
    expected = gankit.load(run).sample(6, seed=0, truncation=0.5).permute(0, 2, 3, 1).numpy()
    assert np.array_equal(np.load(tmp_path / "t.npz")["images"], expected)
    assert main(["interpolate", str(run), "--rows", "2", "--steps", "3", "--truncation", "0.7",
                 "--out", str(tmp_path / "w.png"), "-q"]) == 0
    assert main(["sample", str(run), "-n", "2", "--truncation", "1.2", "--out", str(tmp_path / "x.npz")]) == 2
    assert "--truncation 1.2" in capsys.readouterr().err and not (tmp_path / "x.npz").exists()


def test_eval_sweeps_truncation_on_the_same_latents(run, tmp_path, capsys):
    before = (run / "eval.json").read_text() if (run / "eval.json").exists() else None
    assert main(["eval", str(run), "-n", "200", "--metrics", "fid,pr,coverage", "--truncation", "1,0.5,0",
                 "--json", str(tmp_path / "sweep.json")]) == 0
    out = capsys.readouterr().out
    header, *rows = out.splitlines()
    assert header.split() == ["truncation", "FID", "precision", "recall", "density", "coverage"]
    assert [r.split()[0] for r in rows[:4]] == ["1", "0.5", "0", "real"]
    sweep = json.loads((tmp_path / "sweep.json").read_text())["truncation"]
    assert [s["psi"] for s in sweep] == [1.0, 0.5, 0.0]
    assert "truncation" not in sweep[0]["protocol"] and sweep[1]["protocol"]["truncation"] == 0.5
    recall = [s["metrics"]["recall"] for s in sweep]
    assert recall[2] <= recall[0]  # every latent at the mean: one picture per class, the least variety
    # the untruncated row is what a plain `gankit eval` scores
    plain = gankit.evaluate(run, n=200, metrics="fid,pr,coverage")
    assert plain["fid"] == pytest.approx(sweep[0]["metrics"]["fid"])
    assert (run / "eval.json").read_text() != before  # the plain one wrote eval.json; the sweep did not
    assert json.loads((run / "eval.json").read_text())["metrics"]["fid"] == pytest.approx(plain["fid"])


def test_eval_truncation_refuses_images(run, tmp_path, capsys):
    images = gankit.load(run).sample(8, seed=0)
    with pytest.raises(UserError, match="--truncation needs a generator"):
        gankit.evaluate(images, dataset="mnist-5k", n=8, truncation=0.5)
    assert main(["eval", str(run), "-n", "50", "--truncation", "1,abc"]) == 2
    assert "--truncation 1,abc" in capsys.readouterr().err
