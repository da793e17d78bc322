"""When things happen in a run: its length, the learning-rate and noise schedules, and the steps
that log, draw the grid, evaluate and checkpoint."""

from __future__ import annotations

import math

from gankit.config import Config


def steps_for_epochs(epochs: float, batches_per_epoch: int, d_steps: int) -> int:
    """G updates that make D see the data `epochs` times (each D update takes one real batch)."""
    return max(1, math.ceil(epochs * batches_per_epoch / d_steps))


def steps_for_images(images: int, global_batch: int, d_steps: int) -> int:
    """G updates that show D `images` real images: each of a step's `d_steps` D updates takes one
    global batch (Progress.images_seen counts the same)."""
    return max(1, math.ceil(images / (global_batch * d_steps)))


def run_length(cfg: Config, batches_per_epoch: int, global_batch: int) -> int:
    """The run's total G updates from whichever of --steps, --epochs and --images is set (one epoch
    when none is)."""
    if cfg.steps is not None:
        return cfg.steps
    if cfg.images is not None:
        return steps_for_images(cfg.images, global_batch, cfg.d_steps)
    return steps_for_epochs(cfg.epochs if cfg.epochs is not None else 1, batches_per_epoch, cfg.d_steps)


def describe_length(cfg: Config, global_batch: int, total_steps: int | None = None) -> str:
    """The run's length in the unit it was given, with the steps it makes when they are known
    (an --epochs length needs the dataset's size: pass `total_steps`)."""
    per_step = global_batch * cfg.d_steps
    if cfg.steps is not None:
        return f"{cfg.steps:,} steps ({cfg.steps * per_step:,} real images)"
    if cfg.images is not None:
        steps = steps_for_images(cfg.images, global_batch, cfg.d_steps)
        return f"{cfg.images:,} real images ({steps:,} steps of {per_step:,} images)"
    epochs = f"{cfg.epochs:g} epochs" if cfg.epochs is not None else "1 epoch"
    return f"{epochs} ({total_steps:,} steps)" if total_steps is not None else f"{epochs} (steps follow the data's size)"


def lr_factor(cfg: Config, step: int, total_steps: int) -> float:
    """The learning-rate multiplier at `step` (before any rollback's reduction)."""
    if cfg.lr_decay == "keras-time":
        return 1.0 / (1.0 + cfg.lr_decay_rate * step)  # Keras' `decay` argument
    if cfg.lr_decay == "linear":
        return max(0.0, 1.0 - step / total_steps)
    return 1.0


class Schedule:
    """The run's length in steps and what each step does besides training."""

    def __init__(self, cfg: Config, batches_per_epoch: int, global_batch: int):
        self.cfg, self.global_batch = cfg, global_batch
        self.total_steps = run_length(cfg, batches_per_epoch, global_batch)

    def describe(self) -> str:
        """The length as the run's first lines give it: "115,200 real images (900 steps of 128 images)"."""
        return describe_length(self.cfg, self.global_batch, self.total_steps)

    def lr_factor(self, step: int) -> float:
        return lr_factor(self.cfg, step, self.total_steps)

    def noise_sigma(self, step: int) -> float:
        """Instance noise's std at this step: annealed linearly to zero at the last step."""
        return self.cfg.instance_noise * max(0.0, 1.0 - step / self.total_steps)

    def is_last(self, step: int) -> bool:
        return step == self.total_steps

    def logs(self, step: int, stopping: bool) -> bool:
        return step % self.cfg.log_every == 0 or self.is_last(step) or stopping

    def draws_grid(self, step: int, epoch_ended: bool, stopping: bool) -> bool:
        cfg = self.cfg
        every = cfg.sample_every_early if step <= cfg.sample_early_until else cfg.sample_every
        return step % every == 0 or epoch_ended or self.is_last(step) or stopping

    def evaluates(self, step: int) -> bool:
        return bool(self.cfg.eval_every) and (step % self.cfg.eval_every == 0 or self.is_last(step))

    def checkpoints(self, step: int, stopping: bool) -> bool:
        return step % self.cfg.checkpoint_every == 0 or self.is_last(step) or stopping

    def checks_divergence(self, step: int, on_cpu: bool, stop_alone: bool) -> bool:
        """Whether the losses are read back after `step`. Several processes check only at steps every
        rank knows to be checks (each step on the CPU): there they agree, and a stop wanted in between
        waits for the next; one process reads at once when it wants to stop (`stop_alone`)."""
        return (on_cpu or step % self.cfg.log_every == 0 or step % self.cfg.checkpoint_every == 0
                or self.is_last(step) or stop_alone)
