"""Which preset a new run gets when the user names none: the data decides.

`default` is gankit's recipe for 28-px greyscale digits and clothes. Colour pictures at 32-64 px
need another one (D overfits a few thousand colour pictures within minutes and wins; see the
`colour` preset), so a run that names no preset, on colour data, gets `colour` instead, and says
so. Naming a preset (`--preset default`, or `preset = ...` in a config file) always wins.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from gankit.config import Config, load_config_file
from gankit.presets import (COLOUR_PRESET, DEFAULT_PRESET, LARGE_COLOUR_PX, fine_tune_layer, preset, resolve_config,
                            size_layer)

# Datasets whose channels are known from the name alone, so that nothing is opened to decide.
GREY_DATASETS = frozenset({"mnist", "mnist-5k", "fashion-mnist", "fashionmnist", "mnist5k"})
COLOUR_DATASETS = frozenset({"cifar10", "cifar-10"})


def named_preset(preset_name: str | None, config_file: str | Path | None) -> str | None:
    """The preset the user asked for, by flag or in the config file; None when neither names one."""
    if preset_name:
        return preset_name
    if config_file:
        return load_config_file(config_file).get("preset")
    return None


def known_colour(cfg: Config) -> bool | None:
    """True/False when the config alone says whether the run trains on colour; None when only
    the data can tell (a folder, a ZIP, an array file)."""
    if cfg.channels is not None:
        return cfg.channels == 3
    if cfg.dataset.lower() in GREY_DATASETS:
        return False
    if cfg.dataset.lower() in COLOUR_DATASETS:
        return True
    return None


def resolve_for_data(preset_name: str | None, config_file: str | Path | None, fields: dict[str, Any],
                     data_channels: Callable[[Config], int]) -> tuple[str, Config, str | None]:
    """(preset, config, why) of a new run. As `presets.resolve_config`, except that with no preset
    named and colour data, the `colour` preset replaces `default` (the config file and `fields`
    still go on top); `why` then says so in a line for the user, and in others what `--init prior`
    (presets.PRIOR_FINE_TUNE) and a large --image-size (presets.LARGE_COLOUR) set beside the preset;
    None when there is none of these.

    `data_channels(cfg)` opens the data `cfg` names and returns its channel count; it is called
    only when the name of the dataset cannot tell (pictures are decoded once and cached anyway,
    so the run itself then reuses them).
    """
    name, cfg = resolve_config(preset_name, config_file, fields)
    if named_preset(preset_name, config_file) or name != DEFAULT_PRESET:
        return name, cfg, layer_notes(name, config_file, fields)
    colour = known_colour(cfg)
    if colour is None:
        colour = data_channels(cfg) >= 3
    if not colour:
        return name, cfg, layer_notes(name, config_file, fields)
    name, cfg = resolve_config(COLOUR_PRESET, config_file, fields)
    why = (f"colour pictures: training with the `{COLOUR_PRESET}` preset, gankit's recipe for colour "
           f"(`gankit presets` describes it; --preset {DEFAULT_PRESET} keeps the greyscale recipe)")
    return name, cfg, "\n".join(filter(None, [why, layer_notes(name, config_file, fields)]))


def layer_notes(name: str, config_file: str | Path | None, fields: dict[str, Any]) -> str | None:
    """The lines that say what --init prior, and the colour preset at a large --image-size, set
    beside the preset, or None when they set nothing."""
    file_layer = load_config_file(config_file) if config_file else {}
    file_layer.pop("preset", None)
    lines = []
    tuned = fine_tune_layer(preset(name), file_layer, fields)
    if tuned:
        lines.append(f"--init prior: fine-tuning with {_flags(tuned)} (what measured best from the prior; "
                     "a flag of yours wins over each)")
    large = {k: v for k, v in size_layer(name, preset(name), file_layer, fields).items() if k not in tuned}
    if large:
        lines.append(f"{LARGE_COLOUR_PX} px and more: {_flags(large)}, samples from G itself (the `{name}` "
                     f"recipe's EMA of G, chosen at 32 px, drew worse pictures at {LARGE_COLOUR_PX}; "
                     "a flag of yours wins)")
    return "\n".join(lines) or None


def _flags(layer: dict[str, Any]) -> str:
    return " ".join(f"--{k.replace('_', '-')} {_short(v)}" for k, v in layer.items())


def _short(value: Any) -> str:
    """5e-05 as 5e-5, as one would type it."""
    return f"{value:g}".replace("e-0", "e-") if isinstance(value, float) else str(value)
