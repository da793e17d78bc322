"""A run's length: --steps, --epochs or --images, and gankit's own presets sized in images."""

import json

import pytest

from gankit.cli import main
from gankit.config import make_config
from gankit.errors import UserError
from gankit.presets import PRESETS, preset
from gankit.run.checkpoint import latest, load
from gankit.training.schedule import Schedule, describe_length, steps_for_images


def steps_of(cfg, data_size, global_batch):
    return Schedule(cfg, data_size // global_batch, global_batch).total_steps


@pytest.mark.parametrize("images, global_batch, d_steps, steps", [
    (115_200, 128, 1, 900),
    (1000, 128, 1, 8),  # a partial last batch still counts as a step
    (1000, 64, 5, 4),  # each of a step's 5 D updates takes a global batch: 320 images a step
    (1, 128, 1, 1),
])
def test_images_become_steps(images, global_batch, d_steps, steps):
    assert steps_for_images(images, global_batch, d_steps) == steps
    cfg = make_config({"images": images, "d_steps": d_steps, "batch_size": global_batch})
    assert steps_of(cfg, 5000, global_batch) == steps


def test_default_still_trains_900_steps_of_128():
    cfg = make_config(preset("default"))
    assert (cfg.images, cfg.steps, cfg.epochs, cfg.batch_size) == (115_200, None, None, 128)
    assert steps_of(cfg, 5000, 128) == 900


def test_fast_trains_as_long_on_a_small_folder_as_on_fashion_mnist():
    cfg = make_config(preset("fast"))
    assert cfg.images == 1_200_000 and cfg.epochs is None
    assert steps_of(cfg, 3000, 128) == steps_of(cfg, 60_000, 128) == 9375


def test_seed_presets_and_dcgan_keep_their_epochs():
    for name in ("mlp-gan-tf", "mlp-gan-scratch", "infogan-lsgan", "dcgan-small", "dcgan"):
        assert "epochs" in PRESETS[name] and "images" not in PRESETS[name], name


def test_a_length_in_a_later_layer_replaces_the_preset_images():
    assert (lambda c: (c.steps, c.images))(make_config(preset("default"), {"steps": 50})) == (50, None)
    assert (lambda c: (c.epochs, c.images))(make_config(preset("fast"), {}, {"epochs": 2})) == (2, None)
    cfg = make_config(preset("dcgan"), {"images": 10_000})
    assert (cfg.epochs, cfg.images) == (None, 10_000)
    assert steps_of(make_config(preset("default"), {"batch_size": 64}), 5000, 64) == 1800  # the same images


@pytest.mark.parametrize("layer, flag", [
    ({"images": 0}, "--images"),
    ({"images": -5}, "--images"),
    ({"images": 1.5}, "--images"),
    ({"images": 100, "steps": 5}, "--images"),  # two lengths in one layer
])
def test_bad_images_name_the_flag(layer, flag):
    with pytest.raises(UserError, match=flag):
        make_config(layer)


def test_the_length_is_described_in_its_own_unit():
    assert describe_length(make_config(preset("default")), 128) == "115,200 real images (900 steps of 128 images)"
    assert describe_length(make_config({"steps": 5, "batch_size": 16}), 16) == "5 steps (80 real images)"
    assert "steps follow the data's size" in describe_length(make_config({"epochs": 2}), 128)
    assert describe_length(make_config({"epochs": 2}), 128, total_steps=78) == "2 epochs (78 steps)"


def test_dry_run_shows_the_length(capsys):
    assert main(["train", "--dry-run"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["length"] == "115,200 real images (900 steps of 128 images)"
    assert printed["config"]["images"] == 115_200 and printed["config"]["steps"] is None
    assert main(["train", "--dry-run", "--steps", "7"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["length"].startswith("7 steps") and printed["config"]["images"] is None


def test_a_run_sized_in_images_stops_when_d_has_seen_them(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--width", "8", "--batch-size", "16", "--images", "40",
                 "--sample-grid", "16", "--tensorboard", "off"]) == 0
    assert "training 40 real images (3 steps of 16 images)" in capsys.readouterr().out
    state = load(latest(out))
    assert state["progress"]["step"] == 3 and state["progress"]["images_seen"] == 48
