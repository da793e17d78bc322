"""`gankit export`: the hubs' file names (model.safetensors, config.json), the old names still
read, a model card a person can read (data, recipe, images seen, scores with their floor and
protocol, a sample grid), and no export over a run directory."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from PIL import Image

import gankit
from gankit.cli import main

TINY = ["--steps", "2", "--width", "8", "--batch-size", "16", "--sample-grid", "16", "--checkpoint-every", "2",
        "--tensorboard", "off"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The default preset (conditional, EMA), evaluated during training and by `gankit eval`."""
    out = tmp_path_factory.mktemp("export") / "run"
    assert main(["train", "-q", "--out", str(out), *TINY, "--eval-every", "2", "--eval-n", "64"]) == 0
    assert main(["eval", str(out), "-n", "100", "--metrics", "fid,pr"]) == 0
    return out


@pytest.fixture(scope="module")
def exported(run, tmp_path_factory):
    out = tmp_path_factory.mktemp("shared") / "digits"
    assert main(["export", str(run), "--out", str(out)]) == 0
    return out


def test_the_files_have_the_hubs_names(exported):
    assert sorted(p.name for p in exported.iterdir()) == ["README.md", "config.json", "model.safetensors", "sample.png"]
    from safetensors.torch import load_file
    weights = load_file(str(exported / "model.safetensors"))
    description = json.loads((exported / "config.json").read_text())
    assert description["format"] == "gankit-generator/1" and description["images_seen"] == 2 * 16
    g = gankit.load(exported)
    assert set(weights) == set(g.g.state_dict())


def test_the_old_names_still_load(run, exported, tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    (old / "generator.safetensors").write_bytes((exported / "model.safetensors").read_bytes())
    (old / "generator.json").write_bytes((exported / "config.json").read_bytes())
    expected = gankit.load(run).sample(6, seed=2)
    for target in (old, old / "generator.safetensors", exported, exported / "model.safetensors"):
        assert torch.equal(gankit.load(target).sample(6, seed=2), expected), target
    assert main(["sample", str(old), "-n", "4", "--out", str(tmp_path / "s.npz"), "-q"]) == 0
    assert np.load(tmp_path / "s.npz")["images"].shape == (4, 28, 28, 1)


def test_the_card_says_what_the_generator_is(exported):
    card = (exported / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: gankit\n")
    assert "dataset: `mnist-5k`, 5,000 images" in card and "preset: `default`" in card
    assert "real images seen by D: 32" in card and "class-conditional (10 classes" in card
    assert "![samples, seed 0](sample.png)" in card
    # scores with their floor and protocol: gankit eval's and the best one during training
    assert re.search(r"\| FID \| [\d.]+ \| [\d.]+ \|", card)
    assert "From `gankit eval`" in card and "100 generated images" in card and "real data:" in card
    assert "Best evaluation during training (step 2" in card and "64 generated" in card
    assert "/tmp" not in card and str(exported.parent) not in card  # nothing of this machine's paths


def test_the_sample_grid_is_the_command_the_card_gives(exported, tmp_path):
    card = (exported / "README.md").read_text()
    command = re.search(r"`(gankit sample \S+ [^`]+)`", card).group(1).split()
    assert command[2] == exported.name
    command[2], command[-1] = str(exported), str(tmp_path / "grid.png")
    assert main(command[1:]) == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "grid.png")), np.asarray(Image.open(exported / "sample.png")))


def test_a_card_without_scores_says_so(tmp_path):
    assert main(["train", "-q", "--out", str(tmp_path / "run"), *TINY]) == 0
    assert main(["export", str(tmp_path / "run"), "--out", str(tmp_path / "x")]) == 0
    assert "Not scored yet: `gankit eval RUN`" in (tmp_path / "x" / "README.md").read_text()


def test_export_never_writes_over_a_run_directory(run, capsys):
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    assert main(["export", str(run), "--out", str(run)]) == 2
    assert "is not a gankit export" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
