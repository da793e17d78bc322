"""What a run draws while it trains: the fixed-latent grid, plots, report.html, progress.gif.

Rank 0 draws them into the run directory. They are views of the files (gankit.run.rundir): a
failure to draw the report never stops training."""

from __future__ import annotations

import sys

import numpy as np
import torch
from torch import Tensor, nn

from gankit.nets.latents import class_row_length, generate, grid_labels
from gankit.run import pictures as viz
from gankit.run.rundir import RunDir, eval_records


class RunViews:
    """Draws the views of one run (only where `enabled`: rank 0)."""

    def __init__(self, rundir: RunDir, *, title: str, image_size: int, num_classes: int, report: bool,
                 enabled: bool = True):
        self.rundir, self.title, self.num_classes = rundir, title, num_classes
        self.scale = 2 if image_size <= 32 else 1
        self.report, self.enabled = report, enabled
        self.tb = None  # a TensorBoardLog that mirrors the grid, while the run has one open
        self._report_failed = False

    def grid(self, sampler: nn.Module, fixed_z: Tensor, step: int, device: torch.device) -> float | None:
        """Draw the fixed latents with G in eval mode (BatchNorm running stats), as the seeds do, into
        samples/step_*.png. Returns the per-pixel spread across the samples (None at step 0 or alone)."""
        if not self.enabled:
            return None
        y = grid_labels(len(fixed_z), self.num_classes)
        if y is not None:
            fixed_z = fixed_z[:len(y)]  # full rows only: one class per row
        images = generate(sampler, fixed_z, device, y=y)
        spread = float(images.float().std(0).mean()) if len(images) > 1 and step > 0 else None
        nrow = class_row_length(len(fixed_z), self.num_classes) if self.num_classes else None
        picture = viz.grid(images, nrow=nrow, scale=self.scale)
        self.rundir.save_grid(step, picture)
        if self.tb is not None:
            array = torch.from_numpy(np.array(picture))
            self.tb.image_grid(step, array.unsqueeze(0) if array.dim() == 2 else array.permute(2, 0, 1))
        return spread

    def refresh(self) -> None:
        """losses.png, eval.png and report.html from the records written so far."""
        if not self.enabled:
            return
        records = self.rundir.read_metrics()
        viz.plot_training(records, self.rundir.losses_png, title=self.title)
        self._plot_fid(records)
        self._refresh_report()

    def _plot_fid(self, records: list[dict]) -> None:
        evals = eval_records(records)
        series = {}
        for key, name in (("fid", "FID"), ("floor_fid", "FID of real data")):
            points = [(r["step"], r[key]) for r in evals if key in r]
            if points:
                series[name] = ([x for x, _ in points], [y for _, y in points])
        if series:
            viz.line_plot(series, self.rundir.eval_png, title="FID during training (lower is better)",
                          xlabel="step")

    def _refresh_report(self) -> None:
        if not self.report:
            return
        try:
            from gankit.run.report import write_report
            write_report(self.rundir.path)
        except OSError:
            raise
        except Exception as exc:  # noqa: BLE001 - a view must never stop training
            if not self._report_failed:
                print(f"warning: could not refresh report.html ({type(exc).__name__}: {exc})", file=sys.stderr)
            self._report_failed = True

    def gif(self) -> None:
        frames = [path for _, path in self.rundir.sample_frames()] if self.enabled else []
        if frames:
            viz.save_gif(frames, self.rundir.progress_gif)
