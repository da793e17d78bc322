"""Sharing a generator: weights as safetensors plus a JSON description, no pickle anywhere.

`gankit export RUN --out DIR` writes DIR/model.safetensors and DIR/config.json, the names model
hubs' PyTorch tooling looks for (and a model card, README.md, written by gankit.run.model_card);
`gankit sample`, `interpolate`, `eval` and `serve` accept DIR (or the .safetensors file) like a
run directory. Exports of earlier versions (generator.safetensors + generator.json) still load.
Loading reads tensors and JSON only, so it cannot run code from the files.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

import gankit
from gankit.errors import UserError

FORMAT = "gankit-generator/1"
WEIGHTS, DESCRIPTION = "model.safetensors", "config.json"
# The names exports had before they followed the hubs' convention: still read, never written.
OLD_WEIGHTS, OLD_DESCRIPTION = "generator.safetensors", "generator.json"


def export_generator(state: dict, out: str | Path) -> Path:
    """Write the generator of a checkpoint state (its EMA copy when there is one) to folder `out`."""
    from safetensors.torch import save_file

    out = Path(out)
    if out.suffix:
        raise UserError(f"--out {out}: export writes a folder ({WEIGHTS} + {DESCRIPTION} + README.md)")
    _refuse_foreign_config(out)
    weights = state.get("generator_ema") or state["generator"]
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in weights.items()}, str(out / WEIGHTS))
    description = {"format": FORMAT, "gankit_version": gankit.__version__, "config": state["config"],
                   "image_shape": list(state["image_shape"]), "step": int(state["progress"]["step"]),
                   "images_seen": int(state["progress"].get("images_seen") or 0),
                   "num_classes": int(state.get("num_classes") or 0),
                   "ema": state.get("generator_ema") is not None}
    (out / DESCRIPTION).write_text(json.dumps(description, indent=2) + "\n", encoding="utf-8")
    return out


def _refuse_foreign_config(out: Path) -> None:
    """A config.json that is not an export's (a run directory's, another tool's) is never overwritten."""
    existing = out / DESCRIPTION
    if not existing.is_file():
        return
    try:
        mine = json.loads(existing.read_text(encoding="utf-8")).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        mine = False
    if not mine:
        raise UserError(f"--out {out}: it holds a {DESCRIPTION} that is not a gankit export (a run directory?); "
                        "export into a new folder")


def is_export(target: Path) -> bool:
    """A folder holding exported weights (either name), or a .safetensors file."""
    target = Path(target)
    return (any((target / name).is_file() for name in (WEIGHTS, OLD_WEIGHTS))
            or (target.suffix == ".safetensors" and target.is_file()))


def _export_files(target: Path) -> tuple[Path, Path]:
    """(weights, description) of an export: model.safetensors with config.json, or the older
    generator.safetensors with generator.json; a .safetensors file of another name takes the
    description beside it (config.json first)."""
    if target.is_dir():
        weights = target / WEIGHTS if (target / WEIGHTS).is_file() else target / OLD_WEIGHTS
    else:
        weights = target
    pair = {WEIGHTS: DESCRIPTION, OLD_WEIGHTS: OLD_DESCRIPTION}.get(weights.name)
    if pair is None:
        pair = next((n for n in (DESCRIPTION, OLD_DESCRIPTION) if weights.with_name(n).is_file()), DESCRIPTION)
    return weights, weights.with_name(pair)


def load_export(target: Path) -> tuple[dict, dict[str, torch.Tensor], Path]:
    """(description, generator weights, weights path) of an exported generator."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    weights_path, json_path = _export_files(Path(target))
    try:
        description = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{json_path}: cannot read the generator's description ({exc})") from None
    if description.get("format") != FORMAT:
        raise UserError(f"{json_path}: format {description.get('format')!r} written by gankit "
                        f"{description.get('gankit_version', '?')}; this gankit {gankit.__version__} reads {FORMAT}")
    try:
        weights = load_file(str(weights_path))
    except (OSError, SafetensorError) as exc:
        raise UserError(f"{weights_path}: not a readable safetensors file ({exc})") from None
    return description, weights, weights_path
