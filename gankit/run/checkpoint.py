"""Atomic, self-checking save and safe load of the whole training state.

A checkpoint is one dict (nanoGPT's shape), saved by torch.save as it is, so that
`torch.load(path, weights_only=True)` gives it directly: "generator", "discriminator",
"generator_ema", "opt_g", "opt_d", "config", "progress", RNG states, data order, fixed latents.
Its "integrity" entry holds the format, the gankit version that wrote it and a SHA-256 over
everything else in it (every tensor's bytes, dtype and shape, every other value), so a damaged file
is recognised before it is used, even where torch.load still reads it (bytes flipped inside a
tensor). It is written to a temporary file, fsynced and renamed, so a crash never leaves a
half-written `ckpt_*.pt`; it is read with `weights_only=True`, so loading never runs code from it.
Files of the first format (the state wrapped as a byte payload with its checksum) still load.
"""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path
from typing import Any

import torch

import gankit
from gankit.atomic import atomic_write
from gankit.errors import UserError

FORMAT = "gankit-checkpoint/2"
_WRAPPED_FORMAT = "gankit-checkpoint/1"  # the state as a torch.save payload inside a wrapper dict

_NAME = re.compile(r"^ckpt_(\d{8})\.pt$")


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"ckpt_{step:08d}.pt"


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Checkpoints of a run, oldest first."""
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def content_digest(state: Any) -> str:
    """SHA-256 over a state's contents in order: keys, every tensor's dtype, shape and bytes, and the
    repr of every other value. The same for the state before torch.save and after torch.load."""
    digest = hashlib.sha256()

    def feed(value: Any) -> None:
        if isinstance(value, torch.Tensor):
            t = value.detach().cpu().contiguous()
            digest.update(f"tensor {t.dtype} {tuple(t.shape)};".encode())
            digest.update(t.reshape(-1).view(torch.uint8).numpy())
        elif isinstance(value, dict):
            digest.update(f"dict {len(value)};".encode())
            for key, item in value.items():
                digest.update(f"{key!r}:".encode())
                feed(item)
        elif isinstance(value, (list, tuple)):
            digest.update(f"{type(value).__name__} {len(value)};".encode())
            for item in value:
                feed(item)
        else:
            digest.update(f"{value!r};".encode())

    feed(state)
    return digest.hexdigest()


def save_atomic(state: dict[str, Any], path: Path) -> None:
    """Write `state` to `path` so that `path` is either the old file or the complete new one.

    An OSError (disk full, read-only folder) leaves the old file and no temporary file behind."""
    stamped = {**state, "integrity": {"format": FORMAT, "gankit_version": gankit.__version__,
                                      "sha256": content_digest(state)}}
    atomic_write(path, lambda f: torch.save(stamped, f), durable=True, mode=0o600)


def remove_stray_temporaries(run_dir: Path) -> list[Path]:
    """Delete `*.tmp` files a killed process left in checkpoints/ (never valid checkpoints)."""
    folder = Path(run_dir) / "checkpoints"
    stray = sorted(folder.glob("*.tmp")) if folder.is_dir() else []
    for f in stray:
        f.unlink(missing_ok=True)
    return stray


def prune(run_dir: Path, keep: int) -> None:
    """Delete all but the newest `keep` checkpoints."""
    for old in list_checkpoints(run_dir)[:-keep]:
        old.unlink(missing_ok=True)


def _torch_load(source, what: str) -> Any:
    try:
        return torch.load(source, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"{what}: no such checkpoint") from None
    except Exception as exc:  # noqa: BLE001 - truncated or foreign files raise many types
        raise UserError(f"{what}: not a readable gankit checkpoint, damaged or truncated "
                        f"({type(exc).__name__}: {str(exc)[:200]})") from None


def load(path: Path) -> dict[str, Any]:
    """Load and verify a checkpoint without unpickling arbitrary objects; UserError if it is damaged,
    not a gankit checkpoint, or written by an incompatible gankit (the message names the version)."""
    path = Path(path)
    state = _torch_load(path, str(path))
    if isinstance(state, dict) and isinstance(state.get("integrity"), dict):
        integrity = state.pop("integrity")
        _check_format(path, integrity.get("format", ""), integrity.get("gankit_version"), FORMAT)
        if content_digest(state) != integrity.get("sha256"):
            raise UserError(f"{path}: checksum mismatch, the file is damaged")
    elif isinstance(state, dict) and str(state.get("format", "")).startswith("gankit-checkpoint/"):
        _check_format(path, state["format"], state.get("gankit_version"), _WRAPPED_FORMAT)
        payload = state["payload"].numpy().tobytes()
        if hashlib.sha256(payload).hexdigest() != state["sha256"]:
            raise UserError(f"{path}: checksum mismatch, the file is damaged")
        state = _torch_load(io.BytesIO(payload), str(path))
    # else: gankit 0.1.0 development files: the state itself, without a checksum
    if not isinstance(state, dict) or "generator" not in state or "config" not in state:
        raise UserError(f"{path}: not a gankit checkpoint (no generator/config inside)")
    return state


def _check_format(path: Path, found: str, version: str | None, expected: str) -> None:
    if found != expected:
        raise UserError(f"{path}: written by gankit {version or '?'} in format {found}, which gankit "
                        f"{gankit.__version__} cannot read; install that version to use it")


def newest_intact(run_dir: Path) -> tuple[Path | None, dict | None, list[str]]:
    """The newest checkpoint that loads and verifies, its state, and why newer ones were skipped."""
    skipped = []
    for path in reversed(list_checkpoints(run_dir)):
        try:
            return path, load(path), skipped
        except UserError as exc:
            skipped.append(f"{path.name} skipped: {exc}")
    return None, None, skipped


def latest(run_dir: Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def resolve(target: str | Path) -> tuple[Path, Path]:
    """A run directory or a checkpoint file -> (checkpoint path, run directory)."""
    target = Path(target)
    if target.is_dir():
        ckpt = latest(target)
        if ckpt is None:
            raise UserError(f"{target}: no checkpoints/ckpt_*.pt inside; is it a gankit run directory?")
        return ckpt, target
    if target.is_file():
        run_dir = target.parent.parent if target.parent.name == "checkpoints" else target.parent
        return target, run_dir
    raise UserError(f"{target}: no such run directory or checkpoint file")
