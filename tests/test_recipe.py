"""A run that names no preset gets the recipe its data needs: `colour` on colour pictures."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from gankit.api import resolve_run
from gankit.preset_choice import resolve_for_data
from gankit.presets import COLOUR_PRESET, DEFAULT_PRESET, preset


def _folder(tmp_path, colour: bool):
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for i in range(4):
            pixels = rng.integers(0, 256, (12, 12, 3) if colour else (12, 12), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / cls / f"{i}.png")
    return str(tmp_path)


def _never(cfg):
    raise AssertionError("the dataset's name tells its channels: nothing should be opened")


def test_colour_folder_gets_the_colour_preset(tmp_path):
    name, cfg = resolve_run(preset=None, config_file=None, fields={"dataset": _folder(tmp_path, True)})
    assert name == COLOUR_PRESET
    assert cfg.dataset == str(tmp_path)  # the flags still go on top of the preset


def test_grey_folder_keeps_the_default(tmp_path):
    name, _ = resolve_run(preset=None, config_file=None, fields={"dataset": _folder(tmp_path, False)})
    assert name == DEFAULT_PRESET


def test_a_named_preset_always_wins(tmp_path):
    folder = _folder(tmp_path, True)
    assert resolve_run(preset="default", config_file=None, fields={"dataset": folder})[0] == DEFAULT_PRESET
    config = tmp_path / "run.toml"
    config.write_text('preset = "default"\n')
    assert resolve_run(preset=None, config_file=config, fields={"dataset": folder})[0] == DEFAULT_PRESET


@pytest.mark.parametrize("dataset, expected", [("fashion-mnist", DEFAULT_PRESET), ("mnist-5k", DEFAULT_PRESET),
                                               ("cifar10", COLOUR_PRESET)])
def test_named_datasets_decide_without_opening(dataset, expected):
    name, cfg, why = resolve_for_data(None, None, {"dataset": dataset}, _never)
    assert name == expected
    assert (why is not None) == (expected == COLOUR_PRESET)


def test_channels_flag_decides(tmp_path):
    assert resolve_for_data(None, None, {"dataset": "x.npy", "channels": 1}, _never)[0] == DEFAULT_PRESET
    assert resolve_for_data(None, None, {"dataset": "x.npy", "channels": 3}, _never)[0] == COLOUR_PRESET


def test_the_choice_is_announced(tmp_path, capsys):
    from gankit.api import train_summary
    (tmp_path / "pics").mkdir()
    folder = _folder(tmp_path / "pics", True)
    summary = train_summary(preset=None, config_file=None, fields={"dataset": folder, "steps": 1, "batch_size": 4,
                                                                   "width": 8, "image_size": 16},
                            out=tmp_path / "run", resume=None, quiet=False)
    assert summary["step"] == 1
    assert f"`{COLOUR_PRESET}` preset" in capsys.readouterr().out
    assert json.loads((tmp_path / "run" / "config.json").read_text())["preset"] == COLOUR_PRESET


def test_init_prior_brings_the_fine_tune_and_a_flag_of_the_users_wins(tmp_path):
    from gankit.presets import PRIOR_FINE_TUNE, resolve_config

    _, plain = resolve_config(COLOUR_PRESET, None, {})
    assert (plain.lr_g, plain.freeze_g, plain.ada) == (2e-4, 0, "none")
    _, tuned = resolve_config(COLOUR_PRESET, None, {"init": "prior"})
    assert {k: getattr(tuned, k) for k in PRIOR_FINE_TUNE} == PRIOR_FINE_TUNE
    _, mine = resolve_config(COLOUR_PRESET, None, {"init": "prior", "lr-g": 2e-4, "freeze_g": 0})
    assert (mine.lr_g, mine.freeze_g, mine.lr_d, mine.ada) == (2e-4, 0, 5e-5, "default")
    # --augment and --ada are exclusive: the user's augment keeps ADA out instead of failing
    _, augmented = resolve_config(COLOUR_PRESET, None, {"init": "prior", "augment": "translation"})
    assert (augmented.ada, augmented.augment, augmented.lr_g) == ("none", "translation", 5e-5)
    # a config file's fields are the user's too
    config = tmp_path / "run.toml"
    config.write_text('init = "prior"\nlr_d = 1e-4\n')
    _, from_file = resolve_config(COLOUR_PRESET, config, {})
    assert (from_file.lr_d, from_file.lr_g) == (1e-4, 5e-5)


def test_what_init_prior_set_is_announced(tmp_path):
    name, cfg, why = resolve_for_data(None, None, {"dataset": "cifar10", "init": "prior", "lr_d": 1e-4}, _never)
    assert name == COLOUR_PRESET and cfg.lr_d == 1e-4
    lines = why.splitlines()
    assert len(lines) == 2 and f"`{COLOUR_PRESET}` preset" in lines[0]
    assert lines[1].startswith("--init prior: fine-tuning with --lr-g 5e-5 --freeze-g 2 --ada default --ema-half-life 0")
    assert "--lr-d" not in lines[1]
    assert resolve_for_data(COLOUR_PRESET, None, {"dataset": "cifar10"}, _never)[2] is None


def test_colour_at_64_px_samples_from_g_unless_the_user_sets_the_ema(tmp_path):
    from gankit.presets import LARGE_COLOUR_PX, resolve_config

    kept = preset(COLOUR_PRESET)["ema_half_life"]
    assert kept > 0
    for fields in ({}, {"image_size": 32}, {"image_size": LARGE_COLOUR_PX - 1}):  # the data's size, and below
        assert resolve_config(COLOUR_PRESET, None, fields)[1].ema_half_life == kept
    for size in (LARGE_COLOUR_PX, 96):
        assert resolve_config(COLOUR_PRESET, None, {"image-size": size})[1].ema_half_life == 0
    assert resolve_config(COLOUR_PRESET, None, {"image_size": 64, "ema_half_life": 5000})[1].ema_half_life == 5000
    config = tmp_path / "run.toml"
    config.write_text("image_size = 64\nema_half_life = 2000\n")
    assert resolve_config(COLOUR_PRESET, config, {})[1].ema_half_life == 2000
    config.write_text("image_size = 64\n")
    assert resolve_config(COLOUR_PRESET, config, {})[1].ema_half_life == 0
    # another preset keeps its own EMA at any size
    assert resolve_config("fast", None, {"image_size": 64})[1].ema_half_life == preset("fast")["ema_half_life"] > 0


def test_what_the_size_set_is_announced_once():
    _, cfg, why = resolve_for_data(None, None, {"dataset": "cifar10", "image_size": 64}, _never)
    lines = why.splitlines()
    assert cfg.ema_half_life == 0 and len(lines) == 2
    assert lines[1].startswith("64 px and more: --ema-half-life 0, samples from G itself")
    assert resolve_for_data(None, None, {"dataset": "cifar10", "image_size": 32}, _never)[2].count("\n") == 0
    # with --init prior the fine-tune's line names the EMA already; no second line about it
    _, _, tuned = resolve_for_data(None, None, {"dataset": "cifar10", "image_size": 64, "init": "prior"}, _never)
    assert len(tuned.splitlines()) == 2 and "--ema-half-life 0" in tuned.splitlines()[1]
    assert resolve_for_data(None, None, {"dataset": "cifar10", "image_size": 64, "ema_half_life": 100},
                            _never)[2].count("\n") == 0
