"""A run directory and its files: the one module that knows their names and formats.

    RUN/config.json        what the run is: resolved config, dataset, processes, environment
    RUN/metrics.jsonl      one JSON record per log line, evaluation, rollback or warning
    RUN/samples/step_*.png the fixed-latent grid over training
    RUN/checkpoints/       ckpt_*.pt and best.pt (their format: gankit.run.checkpoint)
    RUN/eval.json          the latest `gankit eval` of the run
    RUN/report.html, progress.gif, losses.png, eval.png: views, redrawn from the files above

Training writes it; report, compare, sampling and eval read it, all through `RunDir`. Nothing here
imports the training loop, the report or compare, so each of them can build on this module.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, TextIO

from PIL import Image

from gankit.atomic import atomic_write_text
from gankit.errors import RunFailed, UserError


@dataclass(frozen=True)
class RunDir:
    """The files of one run, by what they hold."""

    path: Path

    def __init__(self, path: str | Path):
        object.__setattr__(self, "path", Path(path))

    def __str__(self) -> str:
        return str(self.path)

    config = property(lambda self: self.path / "config.json")
    metrics = property(lambda self: self.path / "metrics.jsonl")
    samples = property(lambda self: self.path / "samples")
    checkpoints = property(lambda self: self.path / "checkpoints")
    best_checkpoint = property(lambda self: self.path / "checkpoints" / "best.pt")
    eval_json = property(lambda self: self.path / "eval.json")
    report = property(lambda self: self.path / "report.html")
    progress_gif = property(lambda self: self.path / "progress.gif")
    losses_png = property(lambda self: self.path / "losses.png")
    eval_png = property(lambda self: self.path / "eval.png")

    # ---------------------------------------------------------------- config.json
    def is_run(self) -> bool:
        return self.config.is_file()

    def read_info(self, flag: str = "") -> dict[str, Any]:
        """config.json, or a UserError naming the folder (and `flag`, e.g. "--resume") when it is
        not a run directory or cannot be read."""
        who = f"{flag} {self.path}" if flag else str(self.path)
        if not self.is_run():
            raise UserError(f"{who} is not a gankit run directory (it has no config.json); "
                            "pass the --out folder of a `gankit train` run")
        try:
            return json.loads(self.config.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise UserError(f"{self.config} cannot be read ({exc})") from None

    def write_info(self, info: dict[str, Any]) -> None:
        """config.json is what --resume reads first: never leave it half-written."""
        atomic_write_text(self.config, json.dumps(info, indent=2) + "\n")

    # ---------------------------------------------------------------- metrics.jsonl
    def read_metrics(self) -> list[dict]:
        return read_metrics(self.metrics)

    def open_metrics(self, keep: bool = True) -> TextIO:
        """metrics.jsonl for appending records with `append_record`; `keep=False` gives a file that
        keeps nothing (the ranks of a distributed run other than 0)."""
        return open(self.metrics if keep else os.devnull, "a", encoding="utf-8")

    def truncate_metrics(self, step: int) -> None:
        """Drop records written after `step`: a resumed or rolled-back run trains those steps again."""
        if self.metrics.exists():
            kept = [r for r in self.read_metrics() if r.get("step", 0) <= step]
            self.metrics.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")

    # ---------------------------------------------------------------- samples/
    def grid_path(self, step: int) -> Path:
        return self.samples / f"step_{step:08d}.png"

    def save_grid(self, step: int, picture: Image.Image) -> Path:
        path = self.grid_path(step)
        path.parent.mkdir(parents=True, exist_ok=True)
        picture.save(path)
        return path

    def sample_frames(self) -> list[tuple[int, Path]]:
        """(step, path) of every sample grid, in step order."""
        frames = []
        for png in self.samples.glob("step_*.png"):
            try:
                frames.append((int(png.stem.split("_")[1]), png))
            except (IndexError, ValueError):
                continue  # a stray file someone dropped there
        return sorted(frames)

    def remove_samples_after(self, step: int) -> None:
        """Sample grids of steps that will be trained again."""
        for frame_step, png in self.sample_frames():
            if frame_step > step:
                png.unlink()

    # ---------------------------------------------------------------- eval.json, report.html
    def read_eval(self) -> dict | None:
        """eval.json from `gankit eval`, or None when absent or unreadable (a view never fails on it)."""
        try:
            return json.loads(self.eval_json.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None

    def write_eval(self, result: dict) -> Path:
        atomic_write_text(self.eval_json, json.dumps(result, indent=2) + "\n")
        return self.eval_json

    def write_report(self, page: str) -> Path:
        """Via a temporary file and a rename, so a browser reloading the page never sees half of it."""
        atomic_write_text(self.report, page)
        return self.report

    # ---------------------------------------------------------------- failures
    def write_failed(self, exc: OSError, where: Path | None = None) -> RunFailed:
        """The message for a write into the run that failed: which folder, why, what is intact, what to do."""
        from gankit.run.checkpoint import latest  # imports torch: only when a write failed
        newest = latest(self.path)
        kept = f"{newest.name} is intact" if newest else "no checkpoint was written yet"
        return RunFailed(f"cannot write into {where or exc.filename or self.path} ({exc.strerror or exc}); {kept}. "
                         f"Free some space or fix the folder's permissions, then continue with: "
                         f"gankit train --resume {self.path}")


def default_run_dir(preset: str | None) -> Path:
    """runs/PRESET-YYYYmmdd-HHMMSS: where a run goes without --out."""
    return Path("runs") / f"{preset or 'custom'}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


# -------------------------------------------------------------------- records of metrics.jsonl
def read_metrics(path: str | Path) -> list[dict]:
    """The records of a metrics.jsonl file (a torn last line from a crash is ignored)."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def append_record(file: TextIO, record: dict) -> None:
    file.write(json.dumps(record) + "\n")


def training_records(records: list[dict]) -> list[dict]:
    """Per-step log lines (not evaluation, rollback or warning lines)."""
    return [r for r in records if "d_loss" in r and "event" not in r]


def eval_records(records: list[dict]) -> list[dict]:
    return [r for r in records if "eval_n" in r]


def finite(values: Iterable[Any]) -> list[float]:
    """The finite numbers among `values` (None, NaN, strings and booleans dropped)."""
    return [float(v) for v in values
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]


def best_eval(records: list[dict]) -> dict | None:
    """The evaluation record with the lowest FID (the one best.pt holds), or None."""
    scored = [r for r in eval_records(records) if finite([r.get("fid")])]
    return min(scored, key=lambda r: r["fid"]) if scored else None
