"""When things happen in a run: its length, the learning-rate and noise schedules, and the steps
that log, draw the grid, evaluate and checkpoint."""

from __future__ import annotations

from gankit.config import Config
from gankit.models import steps_for_epochs


def lr_factor(cfg: Config, step: int, total_steps: int) -> float:
    """The learning-rate multiplier at `step` (before any rollback's reduction)."""
    if cfg.lr_decay == "keras-time":
        return 1.0 / (1.0 + cfg.lr_decay_rate * step)  # Keras' `decay` argument
    if cfg.lr_decay == "linear":
        return max(0.0, 1.0 - step / total_steps)
    return 1.0


class Schedule:
    """The run's length in steps and what each step does besides training."""

    def __init__(self, cfg: Config, batches_per_epoch: int):
        self.cfg = cfg
        self.total_steps = cfg.steps if cfg.steps is not None else steps_for_epochs(
            cfg.epochs if cfg.epochs is not None else 1, batches_per_epoch, cfg.d_steps)

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
