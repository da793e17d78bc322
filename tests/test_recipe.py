"""A run that names no preset gets the recipe its data needs: `colour` on colour pictures."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from gankit.api import resolve_run
from gankit.preset_choice import resolve_for_data
from gankit.presets import COLOUR_PRESET, DEFAULT_PRESET


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
