"""Sharing a generator: weights as safetensors plus a JSON description, no pickle anywhere.

`gankit export RUN --out DIR` writes DIR/generator.safetensors and DIR/generator.json; `gankit
sample`, `interpolate` and `eval` accept DIR (or the .safetensors file) like a run directory.
Loading reads tensors and JSON only, so it cannot run code from the files.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

import gankit
from gankit.errors import UserError

FORMAT = "gankit-generator/1"
WEIGHTS, DESCRIPTION = "generator.safetensors", "generator.json"


def export_generator(state: dict, out: str | Path) -> Path:
    """Write the generator of a checkpoint state (its EMA copy when there is one) to folder `out`."""
    from safetensors.torch import save_file

    out = Path(out)
    if out.suffix:
        raise UserError(f"--out {out}: export writes a folder (generator.safetensors + generator.json)")
    weights = state.get("generator_ema") or state["generator"]
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in weights.items()}, str(out / WEIGHTS))
    description = {"format": FORMAT, "gankit_version": gankit.__version__, "config": state["config"],
                   "image_shape": list(state["image_shape"]), "step": int(state["progress"]["step"]),
                   "num_classes": int(state.get("num_classes") or 0),
                   "ema": state.get("generator_ema") is not None}
    (out / DESCRIPTION).write_text(json.dumps(description, indent=2) + "\n", encoding="utf-8")
    return out


def is_export(target: Path) -> bool:
    target = Path(target)
    return (target / WEIGHTS).is_file() or (target.suffix == ".safetensors" and target.is_file())


def load_export(target: Path) -> tuple[dict, dict[str, torch.Tensor], Path]:
    """(description, generator weights, weights path) of an exported generator."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    target = Path(target)
    weights_path = target / WEIGHTS if target.is_dir() else target
    json_path = weights_path.with_name(DESCRIPTION)
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
