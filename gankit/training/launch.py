"""Starting a new run and resuming one: the entry points around the training loop (gankit.training.loop),
shared by `gankit train` and `gankit.train()`.

Both make the Run in every process; rank 0 alone touches the run directory (config.json, the
checkpoint it resumes from, the records of steps that will be trained again), and hands what it
read, or the error it met, to the others.
"""

from __future__ import annotations

import platform
import sys
from datetime import datetime
from pathlib import Path

import torch

import gankit
from gankit.config import RESUMABLE_FIELDS, Config, diff, make_config
from gankit.errors import UserError
from gankit.nets import count_params
from gankit.run import checkpoint as ckpt_io
from gankit.run.rundir import RunDir
from gankit.training.compute import dtype_name
from gankit.training.distributed import Dist, describe_batch
from gankit.training.loop import Run


def start(cfg: Config, run_dir: Path, *, preset: str | None, quiet: bool = False, dist: Dist | None = None) -> dict:
    """Train a new run into `run_dir` (which must not hold a run already). `dist`: this process's
    place among several (gankit.training.distributed); rank 0 alone touches the run directory."""
    rundir, dist = RunDir(run_dir), dist or Dist()

    def refuse_existing() -> None:
        if rundir.is_run():
            raise UserError(f"--out {run_dir} already holds a run; continue it with --resume {run_dir} "
                            f"or choose another --out")

    def make_run_dir() -> None:
        try:
            rundir.path.mkdir(parents=True, exist_ok=True)
            rundir.write_info(_run_info(run))
        except OSError as exc:
            raise rundir.write_failed(exc) from None

    dist.on_main(refuse_existing)
    run = Run(cfg, rundir.path, preset=preset, quiet=quiet, dist=dist)  # may raise UserError before any file is made
    dist.on_main(make_run_dir)
    _announce(run, f"training {run.schedule.describe()}")
    return run.fit()


def resume_config(run_dir: Path, overrides: dict) -> tuple[dict, Config, Config]:
    """(the run's info, its saved config, the config it would resume with): the check every resume
    runs, `--dry-run` too. Raises UserError when `overrides` change a field that a resume may not
    (see `resume=` in gankit/config.py: what a run computes stays as it was)."""
    info = RunDir(run_dir).read_info("--resume")
    saved = make_config(info["config"])
    wanted = make_config(info["config"], overrides)
    changed = {k: v for k, v in diff(saved, wanted).items() if k not in RESUMABLE_FIELDS}
    if changed:
        lines = ", ".join(f"{k}: run has {a!r}, you asked {b!r}" for k, (a, b) in changed.items())
        raise UserError(f"--resume {run_dir}: that run was made with another config ({lines}). "
                        f"Drop those flags to continue it, or start a new run with --out")
    return info, saved, wanted


def resume(run_dir: Path, overrides: dict, *, quiet: bool = False, dist: Dist | None = None) -> dict:
    """Continue the run in `run_dir` from its newest checkpoint; overrides may only change
    length, logging and arithmetic fields (RESUMABLE_FIELDS). The number of processes may differ from the
    run's (`dist`, gankit.training.distributed): rank 0 reads the checkpoint and sends it to the others."""
    rundir, dist = RunDir(run_dir), dist or Dist()
    info, saved, wanted = dist.on_main(lambda: resume_config(run_dir, overrides))
    run = Run(wanted, rundir.path, preset=info.get("preset"), quiet=quiet, dist=dist)
    _prepare_resume(run, info, wanted != saved)
    return run.fit()


def _prepare_resume(run: Run, info: dict, config_changed: bool) -> None:
    """Load the newest intact checkpoint into `run` and tidy what the interrupted process left
    (rank 0 does the tidying and reading, and sends the checkpoint to the other ranks)."""
    rundir = run.rundir

    def tidy_and_read() -> tuple[str | None, dict | None, bool]:
        try:
            for stray in ckpt_io.remove_stray_temporaries(rundir.path):
                print(f"removed {stray.name}: a checkpoint that was being written when the process died",
                      file=sys.stderr)
            ckpt, state, skipped = ckpt_io.newest_intact(rundir.path)
            for line in skipped:  # always shown: the user should know a checkpoint was damaged
                print(line, file=sys.stderr)
            step = state["progress"]["step"] if state is not None else 0
            rundir.truncate_metrics(step)
            rundir.remove_samples_after(step)
            if config_changed or info.get("processes") != run.processes():
                rundir.write_info({**info, "config": run.cfg.to_dict(), "total_steps": run.total_steps,
                                   "processes": run.processes()})
        except OSError as exc:
            raise rundir.write_failed(exc) from None
        return (ckpt.name if ckpt else None), state, bool(skipped)

    name, state, skipped = run.dist.on_main(tidy_and_read)
    if state is None:
        _announce(run, "no intact checkpoint: starting from step 0")
        return
    run.load_state_dict(state)
    why = "the newest intact checkpoint" if skipped else "the newest checkpoint"
    before = state.get("processes", {"world_size": 1, "global_batch": state["config"]["batch_size"]})
    if before["world_size"] != run.dist.world_size or before["global_batch"] != run.global_batch:
        why += (f"; trained so far by {before['world_size']} process(es) with a global batch of "
                f"{before['global_batch']}, now by {run.dist.world_size} with {run.global_batch}")
    _announce(run, f"resuming from {name} ({why}): step {run.progress.step} of {run.total_steps}")


def _run_info(run: Run) -> dict:
    """config.json: the resolved config plus what a reader needs to know about the run."""
    d = run.data
    return {
        "gankit_version": gankit.__version__,
        "preset": run.preset,
        "config": run.cfg.to_dict(),
        "dataset": {"name": d.name, "source": d.source, "images": len(d), "image_shape": list(d.image_shape),
                    "num_classes": d.num_classes},
        "total_steps": run.total_steps,
        "processes": run.processes(),
        "environment": {"torch": torch.__version__, "python": platform.python_version(), "device": str(run.device)},
        "created": datetime.now().isoformat(timespec="seconds"),
    }


def _announce(run: Run, what: str) -> None:
    d = run.data
    c, h, w = d.image_shape
    run._log(f"data: {d.name}, {len(d)} images {c}x{h}x{w} ({d.source})")
    placement = run.batches.placement
    if placement.fell_back:  # not what was asked for: shown even with -q
        run._warn(placement.line())
    else:
        run._log(placement.line())
    run._log(f"model: {run.cfg.arch}, G {count_params(run.state.g):,} params, D {count_params(run.state.d):,} "
             f"params; loss {run.cfg.loss}; {describe_batch(run.batch, run.dist.world_size)}; device {run.device}, "
             f"{dtype_name(run.gan_step.dtype)} arithmetic")
    run._log(f"run directory: {run.rundir.path}; {what}")
