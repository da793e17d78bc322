"""The training loop: build a run from its Config, then train it as a sequence of phases.

    build      data (gankit.data), nets (gankit.nets), the training state (state.py)
    each step  (1) D updates on real batches (batches.py) and fakes, (2) one G update, G's EMA
               (the arithmetic: step.py, d_calls.py, losses.py), then the divergence check (divergence.py)
    on schedule (schedule.py): a log line, the sample grid (gankit.run.training_views), an evaluation
               (periodic_eval.py, by steps or by minutes: eval_marks.py; its time is kept off the
               training clock), a checkpoint (gankit.run.checkpoint) and the views redrawn

Everything a step depends on goes into each checkpoint, so a resumed run computes exactly what an
uninterrupted one would have. The run directory's files are gankit.run.rundir's. Under torchrun, one
Run per process trains together with the others (distributed.py): rank 0 alone writes and prints.
Files named without a package are this one's, gankit/training/.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TextIO

import torch
from torch import Tensor

import gankit
from gankit.config import Config, eval_minutes
from gankit.data import ImageSet, open_dataset
from gankit.errors import UserError
from gankit.nets import build
from gankit.nets.prior import freeze_lower_layers, load_prior
from gankit.nets.spec import net_spec
from gankit.run import checkpoint as ckpt_io
from gankit.run.rundir import RunDir, append_record
from gankit.run.training_views import RunViews
from gankit.training.batches import RealBatches
from gankit.training.compute import pick_device
from gankit.training.distributed import Dist, batch_split, describe_batch
from gankit.training.divergence import DivergenceGuard
from gankit.training.eval_marks import MinuteMarks
from gankit.training.health import LiveHealth
from gankit.training.overfitting_probe import HeldOutProbe, split_holdout
from gankit.training.progress import progress_display
from gankit.training.schedule import Schedule
from gankit.training.state import Progress, TrainingState
from gankit.training.step import GANStep
from gankit.training.stop_signals import stop_signals


def open_data(cfg: Config, split: str | None = None, download: bool = True, quiet: bool = False) -> ImageSet:
    """The images a run with `cfg` trains on (or its `split`); `quiet`: no decoding progress bar."""
    return open_dataset(cfg.dataset, data_dir=cfg.data_dir, split=split or cfg.split, classes=cfg.classes or None,
                        image_size=cfg.image_size, channels=cfg.channels, download=download,
                        skip_bad=cfg.skip_bad_images, fit=cfg.fit, alpha=cfg.alpha, progress=not quiet)


def resolve_conditioning(cfg: Config, data: ImageSet) -> Config:
    """--conditioning auto: class-conditional (projection) when the data has labels of 2 or more
    classes, unconditional otherwise. Resolved once; config.json records the choice."""
    if cfg.conditioning != "auto":
        return cfg
    labelled = data.labels is not None and data.num_classes >= 2
    return replace(cfg, conditioning="projection" if labelled else "none")


def _held_out_images(cfg: Config, data: ImageSet, measures: bool) -> tuple[ImageSet, ImageSet | None]:
    """(the images to train on, real images D never trains on, or None): `--holdout N` sets N
    training images aside (in every process, so all train on the same images); else the test
    split, where the dataset has one on disk and the run does not train on it (training data
    unchanged), read only by the process that `measures` the gap. See gankit/training/overfitting_probe.py."""
    if cfg.holdout:
        if cfg.holdout >= len(data):
            raise UserError(f"--holdout {cfg.holdout} is not smaller than the dataset ({len(data)} images "
                            f"of {data.name}); set fewer aside, e.g. --holdout {max(1, len(data) // 10)}")
        return split_holdout(data, cfg.holdout, cfg.seed)
    if cfg.split != "train" or not measures:
        return data, None
    try:
        held = open_data(cfg, split="test", download=False)
    except UserError:  # no test split (folders, arrays, mnist-5k) or not on disk: not measured
        return data, None
    return data, held


def _conditional_classes(cfg: Config, data: ImageSet) -> int:
    """Classes G and D are conditioned on: 0 unless --conditioning asks, then the data's."""
    if cfg.conditioning == "none":
        return 0
    if data.labels is None or data.num_classes < 2:
        raise UserError(f"--conditioning {cfg.conditioning} needs labelled images with at least 2 classes; "
                        f"{data.name} has none (an image folder gets labels from class sub-folders). "
                        f"Use --conditioning none")
    return data.num_classes


# How far short of an --eval-at-minutes mark a --max-minutes limit may fall and still score it.
LIMIT_SLACK_S = 1.0


@dataclass
class _Tick:
    """The steps since the last log line: their summed statistics, images and wall-clock start."""

    stats: dict = field(default_factory=GANStep.zero_stats)
    images: int = 0
    start: float = field(default_factory=time.perf_counter)


class Run:
    """A run directory being trained: builds everything from a Config, then `fit()`s."""

    def __init__(self, cfg: Config, run_dir: Path, *, preset: str | None = None, quiet: bool = False,
                 dist: Dist | None = None):
        self.dist = dist or Dist()
        self.dist.run_dir = Path(run_dir)  # named by the message of a rank that loses the others
        self.rundir, self.preset, self.quiet = RunDir(run_dir), preset, quiet or not self.dist.is_main
        self.device = self.dist.device(pick_device(cfg.device))
        # -- data: this process's batches; rank 0 alone measures D's held-out gap (it alone logs)
        if self.dist.active and Path(cfg.dataset).expanduser().exists():  # pictures: rank 0 decodes them
            self.dist.on_main(lambda: open_data(cfg, quiet=quiet).name)    # once, the others then reuse its cache
        data = open_data(cfg, quiet=self.quiet)
        self.cfg = cfg = resolve_conditioning(cfg, data)
        self.data, held_out = _held_out_images(cfg, data, measures=self.dist.is_main)
        self.batch, self.global_batch = batch_split(cfg.batch_size, cfg.global_batch_size, self.dist.world_size)
        if len(self.data) < self.global_batch:
            what = (f"--batch-size {cfg.batch_size}" if self.global_batch == cfg.batch_size
                    else f"the global batch ({describe_batch(self.batch, self.dist.world_size)})")
            raise UserError(f"{what} is larger than the dataset ({len(self.data)} images "
                            f"of {self.data.name}); use a smaller --batch-size")
        self.schedule = Schedule(cfg, len(self.data) // self.global_batch, self.global_batch)
        self.total_steps = self.schedule.total_steps
        self.num_classes = _conditional_classes(cfg, self.data)
        self.batches = RealBatches(self.data, self.device, self.dist, self.batch, self.global_batch,
                                   conditional=self.num_classes > 0, placement=cfg.data_placement)
        # -- nets and the training state (weight init draws from the seeded default generator)
        torch.manual_seed(cfg.seed)
        spec = net_spec(cfg, self.data.image_shape, self.num_classes)
        g, d = build(spec)
        if cfg.init == "prior":  # (a resume then loads its own weights over it)
            nets = "G, G's EMA and D" if cfg.ema_half_life > 0 else "G and D"
            folder = Path(cfg.prior_dir) if cfg.prior_dir is not None else None
            path = load_prior(g, d, spec, folder)
            self._log(f"starting {nets} from {path if folder is not None else path.name}")
            freeze_lower_layers(d, cfg.freeze_d)
            # a class-conditional G's first layer also takes the labels, whose weights start at 0 and learn
            freeze_lower_layers(g, cfg.freeze_g, "--freeze-g", "G",
                                labels_from=spec.latent_dim if self.num_classes else None)
        if cfg.sync_batchnorm:
            g, d = (self.dist.sync_batchnorm(net, self.device) for net in (g, d))
        about = {"gankit_version": gankit.__version__, "config": cfg.to_dict(), "preset": preset,
                 "image_shape": list(self.data.image_shape), "num_classes": self.data.num_classes,
                 "processes": self.processes()}
        self.state = TrainingState(cfg, g.to(self.device), d.to(self.device), self.device, self.dist, about,
                                   total_images=self.total_steps * self.global_batch * cfg.d_steps)
        self.gan_step = GANStep(cfg, g, d, self.state.opt_g, self.state.opt_d, self.device, warn=self.dist.warn,
                                replica=self.dist.replica(self.batch, self.device), ada=self.state.ada,
                                lecam=self.state.lecam)
        # -- what watches and shows the run
        self.guard = DivergenceGuard(cfg, self.dist)
        self.health = LiveHealth()
        self.probe = (HeldOutProbe(self.data, held_out, cfg.seed, self.device, conditional=self.num_classes > 0)
                      if held_out is not None and self.dist.is_main else None)
        self.views = RunViews(self.rundir, title=f"{preset or 'custom'} on {self.data.name}",
                              image_size=self.data.image_shape[1], num_classes=self.num_classes,
                              report=cfg.report, enabled=self.dist.is_main)
        self.evaluator = None
        self.minute_marks = MinuteMarks(eval_minutes(cfg.eval_at_minutes) or ())
        if cfg.eval_every or self.minute_marks.pending:
            from gankit.training.periodic_eval import TrainingEvaluator
            self.evaluator = TrainingEvaluator(cfg, self.dist, self.device, self.num_classes)
        if cfg.tensorboard == "on":
            from gankit.run.tensorboard_log import tensorboard_available
            if not tensorboard_available():
                raise UserError("--tensorboard on: the tensorboard package is not installed; "
                                "pip install tensorboard (or 'gankit[tensorboard]'), or use --tensorboard auto")
        self.tb = None  # TensorBoardLog while fit() runs, when wanted
        self._grid_spread: float | None = None  # of the latest grid, for the next log line

    @property
    def progress(self) -> Progress:
        return self.state.progress

    def processes(self) -> dict:
        """How many processes train the run and how the batch is shared among them."""
        return {"world_size": self.dist.world_size, "batch_per_process": self.batch, "global_batch": self.global_batch}

    def load_state_dict(self, state: dict) -> None:
        self.state.load_state_dict(state)

    # ---------------------------------------------------------------- phases
    def train_step(self, stats: dict) -> tuple[Tensor, Tensor]:
        """(1) `d_steps` D updates on the next real batches, (2) one G update, then G's EMA; returns
        the detached losses and adds the step's statistics to `stats`."""
        st, step = self.state, self.progress.step
        st.set_learning_rates(self.schedule.lr_factor(step))
        self.dist.reseed(self.cfg.seed, step)  # several processes: this rank's own noise
        reals = [self.batches.next(st.progress, st.data_rng) for _ in range(self.cfg.d_steps)]
        losses = self.gan_step(reals, self.schedule.noise_sigma(step), stats, step)
        if st.ema is not None:
            st.ema.update(st.g, self.global_batch)  # the half-life counts every process's images
        st.progress.step += 1
        return losses

    def draw_grid(self) -> None:
        self._grid_spread = self.views.grid(self.state.sampler, self.state.fixed_z, self.progress.step, self.device)

    def evaluate(self, metrics_file: TextIO, tick: _Tick | None = None, mark_minutes: float | None = None) -> float:
        """Score the sampler now; return the seconds it took, which the caller keeps off the
        training clock (the tick's start moves on by as much; no tick: between ticks, as after a load)."""
        tick = tick if tick is not None else _Tick()
        seconds = self.progress.seconds + (time.perf_counter() - tick.start)  # the training clock now
        spent = self.evaluator(self.state, metrics_file, self.rundir, self.tb, say=None if self.quiet else _say,
                               seconds=seconds, mark_minutes=mark_minutes)
        tick.start += spent
        self.progress.eval_seconds += spent
        return spent

    def marks_at_limit(self, limit_seconds: float) -> float | None:
        """At a --max-minutes stop, the mark at the limit (--max-minutes 5 --eval-at-minutes 5).
        The limit is wall-clock and the marks are on the training clock, which lags it by the
        moments between log lines' clocks, so without this the run stops just short of the mark
        and never scores it; a resumed run's limit, its clock plus --max-minutes, may fall as short
        of it. One process only: several evaluate together only at log lines."""
        if self.dist.active:
            return None
        return self.minute_marks.due(limit_seconds + LIMIT_SLACK_S)

    def minute_mark_due(self, tick: _Tick, at_log_line: bool) -> float | None:
        """The --eval-at-minutes mark the training clock has passed, if any. Several processes read
        their clocks only at log lines, and follow rank 0's, so that all of them evaluate together."""
        if not self.minute_marks.pending:
            return None
        if not self.dist.active:
            return self.minute_marks.due(self.progress.seconds + (time.perf_counter() - tick.start))
        if not at_log_line:
            return None
        clock = torch.tensor([self.progress.seconds if self.dist.is_main else 0.0], device=self.device)
        return self.minute_marks.due(float(self.dist.mean(clock)) * self.dist.world_size)

    def save_checkpoint(self) -> Path:
        """Write a checkpoint (rank 0; the others wait, and learn of a failure); it also becomes the
        state a divergence rolls back to."""
        path = ckpt_io.checkpoint_path(self.rundir.path, self.progress.step)
        state = self.state.state_dict()

        def write() -> None:
            try:
                ckpt_io.save_atomic(state, path)
            except OSError as exc:
                raise self.rundir.write_failed(exc, path.parent) from None
            ckpt_io.prune(self.rundir.path, self.cfg.keep_checkpoints)

        self.dist.on_main(write)
        self.guard.remember(state)
        return path

    def roll_back(self, reason: str) -> None:
        message = self.guard.roll_back(self.state, reason, self.rundir)
        if not self.quiet:
            _say(message)

    def log_line(self, metrics_file: TextIO, tick: _Tick) -> dict:
        """One metrics.jsonl record of the steps since the last (one transfer from the device), the
        health warnings it raises, and its TensorBoard mirror."""
        p = self.progress
        elapsed = time.perf_counter() - tick.start
        p.seconds += elapsed
        record = self._record(tick.stats, tick.images / max(elapsed, 1e-9))
        append_record(metrics_file, record)
        for warning in self.health.check(record):
            append_record(metrics_file, {"step": p.step, "event": "warning", "message": warning})
            self._warn(warning)
        metrics_file.flush()
        if self.tb is not None:
            self.tb.scalars(record)
            if self.gan_step.last_logits is not None:
                self.tb.histograms(p.step, *self.gan_step.last_logits)
        return record

    # ---------------------------------------------------------------- the loop
    def fit(self) -> dict:
        """Train to `total_steps`, writing samples, metrics and checkpoints. Returns a summary."""
        cfg, sched = self.cfg, self.schedule
        if self.progress.step >= self.total_steps:
            self._log(f"already at step {self.progress.step} of {self.total_steps}: nothing to do "
                      f"(raise --steps, --epochs or --images to train further)")
            return self.summary()
        self.tb = self.views.tb = self._open_tensorboard()
        # the marks still ahead of the clock (a resumed run has passed some)
        scored = tuple(r["mark_minutes"] for r in self.rundir.read_metrics() if "mark_minutes" in r) \
            if self.progress.step and not self.dist.active else ()
        self.minute_marks = MinuteMarks(eval_minutes(cfg.eval_at_minutes) or (), self.progress.seconds, scored)
        if self.progress.step == 0:
            self.draw_grid()  # the noise G starts from
        self.guard.remember(self.state.state_dict())
        bar = None
        if not self.quiet:  # a bar in a terminal, a line every few seconds in a log (gankit/training/progress.py)
            bar = progress_display(self.total_steps, self.progress.step)
        tick, stopped_early = _Tick(), False
        deadline = time.perf_counter() + cfg.max_minutes * 60 if cfg.max_minutes else float("inf")
        limit = self.progress.seconds + cfg.max_minutes * 60 if cfg.max_minutes else float("inf")
        try:
            with stop_signals() as signals, self.rundir.open_metrics(keep=self.dist.is_main) as log:
                while self.progress.step < self.total_steps:
                    d_loss, g_loss = self.train_step(tick.stats)
                    step = self.progress.step
                    wants_stop = signals.signalled or time.perf_counter() > deadline
                    check_now = sched.checks_divergence(step, self.device.type == "cpu",
                                                        wants_stop and not self.dist.active)
                    reason = self.guard.check(d_loss, g_loss, check_now, wants_stop)
                    if reason is None and sched.checkpoints(step, self.guard.stop_agreed):
                        reason = self.guard.nonfinite_weights({"G": self.state.g, "D": self.state.d})
                    if reason:  # never let a NaN into a log line or a checkpoint
                        self.roll_back(reason)
                        tick = _Tick()
                        if bar is not None:
                            bar.n = self.progress.step
                            bar.refresh()
                        continue
                    stopping = self.guard.stop_agreed
                    tick.images += self.global_batch * cfg.d_steps
                    epoch_ended = self.batches.epoch_ends_after(self.progress)
                    if sched.logs(step, stopping):
                        record = self.log_line(log, tick)
                        tick = _Tick()
                        if bar is not None:
                            bar.set_postfix(d=f"{record['d_loss']:.3f}", g=f"{record['g_loss']:.3f}", refresh=False)
                    if bar is not None:
                        bar.update(1)
                    if sched.draws_grid(step, epoch_ended, stopping):
                        self.draw_grid()
                    mark = self.minute_mark_due(tick, sched.logs(step, stopping))
                    if mark is None and stopping and time.perf_counter() > deadline:
                        mark = self.marks_at_limit(limit)
                    if sched.evaluates(step) or mark is not None:
                        deadline += self.evaluate(log, tick, mark)  # evaluation is not training time
                    if sched.checkpoints(step, stopping):
                        log.flush()
                        self.save_checkpoint()
                        self.views.refresh()
                    if stopping:
                        stopped_early = True
                        break
            self.views.gif()
        except OSError as exc:  # disk full, folder made read-only, ... while logging or drawing
            raise self.rundir.write_failed(exc) from None
        finally:
            self.batches.close()
            if bar is not None:
                bar.close()
            if self.tb is not None:
                self.tb.close()
                self.tb = self.views.tb = None
        if stopped_early and self.dist.is_main:  # even with -q: a script must learn that the run is not finished
            print(f"stopped at step {self.progress.step} of {self.total_steps}; checkpoint saved. "
                  f"Continue with: {self.dist.command(f'train --resume {self.rundir.path}')}", flush=True)
        return self.summary()

    # ---------------------------------------------------------------- logging
    def _record(self, stats: dict, images_per_s: float) -> dict:
        p, st = self.progress, self.state
        n_d = max(float(stats["d_updates"]), 1.0)
        keys = ("d_loss", "g_loss", "d_real", "d_fake", "d_acc_real", "d_acc_fake", "d_sign_real")
        if self.gan_step.aux_classes:
            keys += ("d_class_loss",)
        extras = [_grad_norm(st.g), _grad_norm(st.d)]  # of the tick's last G and D updates
        extras += [st.ada.p.float()] if st.ada is not None else []  # the same on every process
        values = torch.stack([torch.as_tensor(stats[k], dtype=torch.float32, device=self.device)
                              for k in keys] + extras)
        values = self.dist.mean(values).tolist()  # several processes: the global batch's statistics
        extra_values, values = values[len(keys):], values[:len(keys)]
        g_updates = n_d / self.cfg.d_steps
        record = {"step": p.step, "epoch": round(p.epoch + p.position / len(self.data), 4),
                  "images_seen": p.images_seen, "time_s": round(p.seconds, 3)}
        for k, v in zip(keys, values):
            record[k] = v / (g_updates if k == "g_loss" else n_d)
        record["g_grad_norm"], record["d_grad_norm"] = extra_values[:2]
        if st.ada is not None:
            record["ada_p"] = round(extra_values[2], 6)
        if self.probe is not None:
            record.update({k: round(v, 4) for k, v in self.probe.measure(st.d, self.gan_step.loss.threshold).items()})
        if self._grid_spread is not None:
            record["grid_diversity"], self._grid_spread = round(self._grid_spread, 3), None
        record["lr_g"] = st.opt_g.param_groups[0]["lr"]
        record["lr_d"] = st.opt_d.param_groups[0]["lr"]
        record["images_per_s"] = round(images_per_s, 1)
        return record

    def _open_tensorboard(self):
        from gankit.run.tensorboard_log import TensorBoardLog, tensorboard_available
        wanted = self.cfg.tensorboard
        if not self.dist.is_main or wanted == "off" or (wanted == "auto" and not tensorboard_available()):
            return None
        # On resume from step S, events the interrupted process wrote after S are dropped (purge_step
        # drops that step and later, and the log keeps step S itself).
        return TensorBoardLog(self.rundir.path, purge_step=self.progress.step + 1 if self.progress.step else None)

    def summary(self) -> dict:
        p = self.progress
        return {"run_dir": str(self.rundir.path), "step": p.step, "total_steps": self.total_steps,
                "epochs": round(p.epoch + p.position / len(self.data), 3), "images_seen": p.images_seen,
                "seconds": round(p.seconds, 1), "eval_seconds": round(p.eval_seconds, 1)}

    def _log(self, msg: str) -> None:
        if not self.quiet:
            print(msg, flush=True)

    def _warn(self, message: str) -> None:
        """Health warnings show even with -q (on stderr then): they call for action. Rank 0's only:
        every rank logs the same all-ranks statistics."""
        if not self.dist.is_main:
            return
        if self.quiet:
            print(message, file=sys.stderr, flush=True)
        else:
            _say(message)


def _say(message: str) -> None:
    """A line printed above the progress bar."""
    from tqdm import tqdm
    tqdm.write(message)


def _grad_norm(net: torch.nn.Module) -> Tensor:
    """L2 norm of all of a net's current gradients (0 when none are kept), on the device."""
    grads = [p.grad for p in net.parameters() if p.grad is not None]
    if not grads:
        return torch.zeros((), device=next(net.parameters()).device)
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
