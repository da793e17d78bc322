"""Atomic save and safe load of the whole training state.

A checkpoint is one dict (nanoGPT's shape): gankit version, config, step, G, D, both optimisers,
schedulers, RNG states, data position and the fixed sampling latents. It is written to a temporary
file, fsynced and renamed, so a crash never leaves a half-written `ckpt_*.pt`; it is read with
`weights_only=True`, so loading never runs code from the file.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch

from gankit.errors import UserError

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


def save_atomic(state: dict[str, Any], path: Path) -> None:
    """Write `state` to `path` so that `path` is either the old file or the complete new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    # The rename is durable only once the directory entry is on disk.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def prune(run_dir: Path, keep: int) -> None:
    """Delete all but the newest `keep` checkpoints."""
    for old in list_checkpoints(run_dir)[:-keep]:
        old.unlink(missing_ok=True)


def load(path: Path) -> dict[str, Any]:
    """Load a checkpoint without unpickling arbitrary objects; UserError if it is not one."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"{path}: no such checkpoint") from None
    except Exception as exc:  # noqa: BLE001 - truncated or foreign files raise many types
        raise UserError(f"{path}: not a readable gankit checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or "generator" not in state or "config" not in state:
        raise UserError(f"{path}: not a gankit checkpoint (no generator/config inside)")
    return state


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
