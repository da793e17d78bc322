"""The guard against divergence: NaN/Inf or exploding losses and weights, and the rollback.

A diverged run goes back to its last good state (the newest checkpoint, kept in memory) with lower
learning rates, and tries again, at most --max-rollbacks times.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor, nn

from gankit.config import Config
from gankit.errors import RunFailed
from gankit.run.rundir import RunDir, append_record
from gankit.training.distributed import Dist
from gankit.training.state import TrainingState


class DivergenceGuard:
    """Watches the losses of every step and the weights before every checkpoint."""

    def __init__(self, cfg: Config, dist: Dist):
        self.cfg, self.dist = cfg, dist
        self._worst_loss: Tensor | None = None  # largest |loss| since the last check, on the device
        self.good_state: dict[str, Any] | None = None  # what a divergence rolls back to
        self.stop_agreed = False  # every rank's decision to stop, taken at the last check

    def remember(self, state: dict[str, Any]) -> None:
        """Keep `state` (each rank its own, with its own BatchNorm statistics) to roll back to."""
        self.good_state = copy.deepcopy(state)

    def check(self, d_loss: Tensor, g_loss: Tensor, check_now: bool, wants_stop: bool = False) -> str | None:
        """Why the losses since the last check show divergence, or None; at a check it also settles
        `stop_agreed` from `wants_stop` (a signal, the deadline).

        The largest |loss| is kept on the device (NaN wins torch.maximum) and read back only
        when `check_now`: every step on the CPU, where reading costs nothing, and once per log
        line or checkpoint on a GPU, where a read stalls the queue of kernels. A NaN is thus always
        caught before it reaches a log line or a checkpoint. In several processes the read is one
        all_gather, and every rank takes the same decisions from it: a NaN on any rank rolls all of
        them back, a signal to any one stops all of them after the same step."""
        step_worst = torch.stack([d_loss.detach().float().abs(), g_loss.detach().float().abs()])
        self._worst_loss = step_worst if self._worst_loss is None else torch.maximum(self._worst_loss, step_worst)
        if not check_now:
            return None
        stop = torch.tensor([float(wants_stop)], device=self._worst_loss.device)
        rows, self._worst_loss = self.dist.rows(torch.cat([self._worst_loss, stop])), None
        self.stop_agreed = any(row[2] for row in rows)
        for rank, row in enumerate(rows):
            where = f" on rank {rank}" if len(rows) > 1 else ""
            for name, value in zip(("d_loss", "g_loss"), row[:2]):
                if value != value or value == float("inf"):
                    return f"{name} is {value}{where}"
                if value > self.cfg.loss_limit:
                    return f"|{name}| reached {value:.3g}{where}, beyond --loss-limit {self.cfg.loss_limit:g}"
        return None

    def nonfinite_weights(self, nets: dict[str, nn.Module]) -> str | None:
        """On every rank, the first rank's weight or buffer (e.g. a BatchNorm running variance) that
        holds NaN/Inf, or None. The losses catch most divergence; this catches what they do not see."""
        return self.dist.first(_first_nonfinite(nets))

    def roll_back(self, state: TrainingState, reason: str, rundir: RunDir) -> str:
        """Return `state` to the last good state with lower learning rates (and the run directory to
        that step), or raise RunFailed after too many tries. Returns the warning to show."""
        cfg, bad_step = self.cfg, state.progress.step
        rollbacks, scale = state.progress.rollbacks + 1, state.progress.lr_scale * cfg.rollback_lr_factor
        if rollbacks > cfg.max_rollbacks:
            raise RunFailed(
                f"training diverged at step {bad_step} ({reason}) after {cfg.max_rollbacks} rollbacks with "
                f"learning rates lowered to {state.progress.lr_scale:g}x. The last good checkpoint is intact. "
                f"Try lower --lr-d/--lr-g, --loss lsgan, --real-label 0.9, or --d-dropout 0.3; "
                f"--max-rollbacks allows more tries.")
        state.load_state_dict(copy.deepcopy(self.good_state))
        state.progress.rollbacks, state.progress.lr_scale = rollbacks, scale
        good_step = state.progress.step
        if self.dist.is_main:
            rundir.truncate_metrics(good_step)
            rundir.remove_samples_after(good_step)
            with rundir.open_metrics() as f:
                append_record(f, {"step": good_step, "event": "rollback", "diverged_at": bad_step, "reason": reason,
                                  "lr_scale": scale, "rollbacks": rollbacks})
        return (f"warning: {reason} at step {bad_step}; rolled back to step {good_step} with learning rates "
                f"x{scale:g} (rollback {rollbacks} of at most {cfg.max_rollbacks})")


def _first_nonfinite(nets: dict[str, nn.Module]) -> str | None:
    for net_name, net in nets.items():
        for name, t in list(net.named_parameters()) + list(net.named_buffers()):
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                return f"{net_name}'s {name} holds NaN/Inf"
    return None
