"""Optional TensorBoard view of a run: event files in RUN_DIR/tensorboard.

metrics.jsonl stays the record of a run; these files only mirror it for browsing with
`tensorboard --logdir RUN_DIR`. The trainer calls this module at log ticks and snapshots,
never on every step, and a failure to write here must never stop training.
"""

from __future__ import annotations

import importlib.util
import numbers
import warnings
from pathlib import Path

import torch

from gankit.errors import UserError

# Training-log keys and their TensorBoard tags; the prefix groups them into panels.
TRAIN_TAGS = {
    "d_loss": "loss/d",
    "g_loss": "loss/g",
    "d_real": "D/real",
    "d_fake": "D/fake",
    "d_acc_real": "D/acc_real",
    "d_acc_fake": "D/acc_fake",
    "d_sign_real": "health/r_t",
    "d_heldout_gap": "health/heldout_gap",
    "g_grad_norm": "health/g_grad_norm",
    "d_grad_norm": "health/d_grad_norm",
    "grid_diversity": "health/grid_diversity",
    "ada_p": "augment/ada_p",
    "lr_g": "lr/g",
    "lr_d": "lr/d",
    "images_per_s": "speed/images_per_s",
    "epoch": "progress/epoch",
    "images_seen": "progress/images_seen",
    "time_s": "progress/time_s",
}

# Evaluation lines carry "eval_n" plus whichever metrics were chosen (fid, kid, kid_std, precision,
# floor_fid, class statistics...), so every other key of such a line is an evaluation metric.
EVAL_MARKER = "eval_n"


def tensorboard_available() -> bool:
    """Whether the `tensorboard` package is installed (torch.utils.tensorboard needs it)."""
    # find_spec does not import it: importing tensorboard is slow and this is asked at start-up.
    return importlib.util.find_spec("tensorboard") is not None


def scalar_tag(key: str, record: dict) -> str:
    """The TensorBoard tag of one metrics.jsonl key (of `record`, an evaluation line or not)."""
    if key in TRAIN_TAGS:
        return TRAIN_TAGS[key]
    if EVAL_MARKER in record:
        return "eval/n" if key == EVAL_MARKER else f"eval/{key}"
    return f"other/{key}"


def _is_number(value) -> bool:
    # bool is an int subclass, but a flag is not a curve worth drawing.
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


class TensorBoardLog:
    """Writes TensorBoard event files into RUN_DIR/tensorboard; the JSONL log stays the source of truth.

    `purge_step`: the first step that will be written again. Events of an earlier process at this
    step or later are hidden by TensorBoard, so curves do not double back after a resume. A run
    resumed from a checkpoint at step S keeps the JSONL lines up to and including S, so it passes
    purge_step=S + 1 to keep the two logs in agreement.

    If writing fails (full disk, removed folder), a warning is issued once and logging stops:
    the view is a convenience, never a reason to lose a training run.
    """

    def __init__(self, run_dir: Path, purge_step: int | None = None):
        if not tensorboard_available():
            raise UserError("TensorBoard logging needs the tensorboard package: pip install tensorboard")
        # Imported here so that importing gankit does not pay for TensorBoard when it is not used.
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = Path(run_dir) / "tensorboard"
        self._writer = SummaryWriter(log_dir=str(self.log_dir), purge_step=purge_step)

    def _write(self, what: str, fn) -> None:
        """Run one write; on failure warn once and turn logging off instead of raising."""
        if self._writer is None:
            return
        try:
            fn(self._writer)
        except Exception as exc:  # noqa: BLE001 - any failure here must not end training
            warnings.warn(f"TensorBoard logging stopped: writing {what} to {self.log_dir} failed: {exc}",
                          RuntimeWarning, stacklevel=3)
            self._close_quietly()

    def scalars(self, record: dict) -> None:
        """Log every numeric value of one metrics.jsonl record at global step record["step"]."""
        step = int(record["step"])
        values = {scalar_tag(k, record): float(v) for k, v in record.items()
                  if k != "step" and _is_number(v)}

        def write(w):
            for tag, value in values.items():
                w.add_scalar(tag, value, global_step=step)

        self._write("scalars", write)

    def histograms(self, step: int, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> None:
        """Distributions of the discriminator's logits on real and on generated images."""
        def write(w):
            # One copy to the CPU each; the histogram itself is computed there with numpy.
            w.add_histogram("D/logits_real", real_logits.detach().float().flatten().cpu(), global_step=step)
            w.add_histogram("D/logits_fake", fake_logits.detach().float().flatten().cpu(), global_step=step)

        self._write("histograms", write)

    def image_grid(self, step: int, grid_uint8_chw: torch.Tensor) -> None:
        """The grid of samples from the fixed latents: a CHW uint8 image with 1, 3 or 4 channels.

        RGBA (from --alpha keep) is stored as it is: the summary is a PNG whose colorspace 4 the
        proto defines as RGBA, and TensorBoard shows it with its transparency, as samples/ does.
        """
        if (grid_uint8_chw.dtype != torch.uint8 or grid_uint8_chw.dim() != 3
                or grid_uint8_chw.shape[0] not in (1, 3, 4)):
            # A wrong image is a bug in the caller, not a write failure: say so plainly.
            raise ValueError(f"image_grid wants a CHW uint8 tensor with 1, 3 or 4 channels, "
                             f"got {tuple(grid_uint8_chw.shape)} {grid_uint8_chw.dtype}")
        image = grid_uint8_chw.detach().cpu()

        def write(w):
            # uint8 is taken as 0..255 as it is (a float image would be rescaled from 0..1).
            w.add_image("samples/fixed_grid", image, global_step=step, dataformats="CHW")

        self._write("image", write)

    def close(self) -> None:
        """Flush pending events to disk and close the file; later calls do nothing."""
        self._write("the last events", lambda w: w.close())
        self._writer = None

    def _close_quietly(self) -> None:
        writer, self._writer = self._writer, None
        try:
            writer.close()
        except Exception:  # noqa: BLE001 - already failing; the warning has been issued
            pass
