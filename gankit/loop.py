"""The training loop. It knows phases and schedules; the maths lives in losses.py and nets/.

One step = `d_steps` updates of D, (1) below, then one update of G, (2) below. The dataset sits on
the device as one uint8 tensor and batches are drawn by index from a per-epoch permutation, so the
loop never waits on a DataLoader. Statistics are summed on the device and read once per log line.
Everything a step depends on (weights, optimisers, RNG states, permutation and position) goes into
each checkpoint, so a resumed run computes exactly what an uninterrupted one would have.
Under torchrun, one Run per process trains together with the others (gankit.distributed).
"""

from __future__ import annotations

import copy
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

import gankit
from gankit import checkpoint as ckpt_io
from gankit.atomic import atomic_write_text
from gankit.config import RESUMABLE_FIELDS, Config, diff, make_config
from gankit.data import ImageSet, open_dataset
from gankit.distributed import Dist, batch_split, describe_batch
from gankit.errors import RunFailed, UserError
from gankit.images import to_float
from gankit.ema import GeneratorEMA
from gankit.health import LiveHealth
from gankit.heldout import HeldOutProbe, split_holdout
from gankit.models import class_row_length, generate, grid_labels, net_spec, pick_device, sample_latent, steps_for_epochs
from gankit.speed import dtype_name
from gankit.step import GANStep
from gankit.nets import build, count_params
from gankit import viz


@dataclass
class Progress:
    """Where the run is: the counters that, with the RNG states, make resume exact."""

    step: int = 0  # G updates done
    epoch: int = 0  # completed passes over the data
    position: int = 0  # index into `permutation` of the next real batch
    images_seen: int = 0  # real images shown to D
    seconds: float = 0.0  # training time over every process that trained the run (resumes included)
    best_fid: float | None = None  # lowest FID of the evaluations so far (checkpoints/best.pt holds it)
    lr_scale: float = 1.0  # learning rates are multiplied by this after rollbacks from divergence
    rollbacks: int = 0  # how often the run rolled back from NaN/Inf or exploding losses
    permutation: Tensor | None = None


def _open_data(cfg: Config, split: str | None = None, download: bool = True) -> ImageSet:
    return open_dataset(cfg.dataset, data_dir=cfg.data_dir, split=split or cfg.split, classes=cfg.classes or None,
                        image_size=cfg.image_size, channels=cfg.channels, download=download,
                        skip_bad=cfg.skip_bad_images)


def _resolve_conditioning(cfg: Config, data: ImageSet) -> Config:
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
    unchanged), read only by the process that `measures` the gap. See gankit/heldout.py."""
    if cfg.holdout:
        if cfg.holdout >= len(data):
            raise UserError(f"--holdout {cfg.holdout} is not smaller than the dataset ({len(data)} images "
                            f"of {data.name}); set fewer aside, e.g. --holdout {max(1, len(data) // 10)}")
        return split_holdout(data, cfg.holdout, cfg.seed)
    if cfg.split != "train" or not measures:
        return data, None
    try:
        held = _open_data(cfg, split="test", download=False)
    except UserError:  # no test split (folders, arrays, mnist-5k) or not on disk: not measured
        return data, None
    return data, held


def lr_factor(cfg: Config, step: int, total_steps: int) -> float:
    """The learning-rate multiplier at `step` (before any rollback's reduction)."""
    if cfg.lr_decay == "keras-time":
        return 1.0 / (1.0 + cfg.lr_decay_rate * step)  # Keras' `decay` argument
    if cfg.lr_decay == "linear":
        return max(0.0, 1.0 - step / total_steps)
    return 1.0


class Run:
    """A run directory being trained: builds everything from a Config, then `fit()`s."""

    def __init__(self, cfg: Config, run_dir: Path, *, preset: str | None = None, quiet: bool = False,
                 dist: Dist | None = None):
        # Several processes (gankit.distributed): rank 0 alone prints and writes.
        self.dist = dist or Dist()
        self.dist.run_dir = Path(run_dir)  # named by the message of a rank that loses the others
        quiet = quiet or not self.dist.is_main
        self.cfg, self.run_dir, self.preset, self.quiet = cfg, Path(run_dir), preset, quiet
        self.device = self.dist.device(pick_device(cfg.device))
        self.data = _open_data(cfg)
        cfg = self.cfg = _resolve_conditioning(cfg, self.data)
        # Rank 0 alone writes log lines, so it alone measures D's held-out gap.
        self.data, held_out = _held_out_images(cfg, self.data, measures=self.dist.is_main)
        # `batch` images per process and D update, `global_batch` over all processes.
        self.batch, self.global_batch = batch_split(cfg.batch_size, cfg.global_batch_size, self.dist.world_size)
        self.batches_per_epoch = len(self.data) // self.global_batch
        if self.batches_per_epoch == 0:
            what = (f"--batch-size {cfg.batch_size}" if self.global_batch == cfg.batch_size
                    else f"the global batch ({describe_batch(self.batch, self.dist.world_size)})")
            raise UserError(f"{what} is larger than the dataset ({len(self.data)} images "
                            f"of {self.data.name}); use a smaller --batch-size")
        self.total_steps = cfg.steps if cfg.steps is not None else steps_for_epochs(
            cfg.epochs if cfg.epochs is not None else 1, self.batches_per_epoch, cfg.d_steps)
        torch.manual_seed(cfg.seed)  # before building: weight init draws from this RNG
        self.num_classes = self._conditional_classes()
        self.probe = (HeldOutProbe(self.data, held_out, cfg.seed, self.device, conditional=self.num_classes > 0)
                      if held_out is not None and self.dist.is_main else None)
        self.g, self.d = build(net_spec(cfg, self.data.image_shape, self.num_classes))
        if cfg.sync_batchnorm:
            self.g, self.d = (self.dist.sync_batchnorm(net, self.device) for net in (self.g, self.d))
        self.g.to(self.device)
        self.d.to(self.device)
        self.ema = GeneratorEMA(self.g, cfg.ema_half_life, cfg.ema_rampup) if cfg.ema_half_life > 0 else None
        # foreach Adam: one kernel per tensor group rather than per parameter (the fused variant is
        # CUDA-only for some dtypes and no faster on CPU for nets this size).
        self.opt_g = torch.optim.Adam(self.g.parameters(), lr=cfg.lr_g, betas=(cfg.beta1_g, cfg.beta2_g),
                                      eps=cfg.adam_eps, foreach=True)
        self.opt_d = torch.optim.Adam(self.d.parameters(), lr=cfg.lr_d, betas=(cfg.beta1_d, cfg.beta2_d),
                                      eps=cfg.adam_eps, foreach=True)
        self.gan_step = GANStep(cfg, self.g, self.d, self.opt_g, self.opt_d, self.device, warn=self.dist.warn,
                                replica=self.dist.replica(self.batch, self.device))
        self.progress = Progress()
        # The fixed grid latents come from their own generator so they never shift the training RNG.
        grid_rng = torch.Generator().manual_seed(cfg.seed + 1)
        self.fixed_z = sample_latent(cfg.sample_grid, cfg.latent_dim, cfg.latent_dist, generator=grid_rng)
        self.data_rng = torch.Generator().manual_seed(cfg.seed)
        self._stop_requested = False  # every rank's decision: set from _signalled and the deadline, together
        self._signalled = False  # this process got SIGINT/SIGTERM
        self.evaluator = self._make_evaluator() if cfg.eval_every else None
        self.tb = None  # TensorBoardLog while fit() runs, when wanted
        if cfg.tensorboard == "on":
            from gankit.tensorboard_log import tensorboard_available
            if not tensorboard_available():
                raise UserError("--tensorboard on: the tensorboard package is not installed; "
                                "pip install tensorboard (or 'gankit[tensorboard]'), or use --tensorboard auto")
        self._report_failed = False
        self.health = LiveHealth()
        self._worst_loss: Tensor | None = None  # largest |loss| since the last divergence check, on the device
        self._grid_diversity: float | None = None  # per-pixel spread of the latest sample grid

    def _conditional_classes(self) -> int:
        """Classes G and D are conditioned on: 0 unless --conditioning asks, then the data's."""
        cfg, data = self.cfg, self.data
        if cfg.conditioning == "none":
            return 0
        if data.labels is None or data.num_classes < 2:
            raise UserError(f"--conditioning {cfg.conditioning} needs labelled images with at least 2 classes; "
                            f"{data.name} has none (an image folder gets labels from class sub-folders). "
                            f"Use --conditioning none")
        return data.num_classes

    @property
    def sampler(self) -> torch.nn.Module:
        """The G that samples, grids and evaluations use: the EMA of G's weights when kept."""
        return self.ema.module if self.ema is not None else self.g

    def _make_evaluator(self):
        from gankit.metrics.evaluate import Evaluator, make_extractor, parse_metrics
        cfg = self.cfg
        if not self.dist.is_main:  # the other ranks only extract features of their share of the images
            return make_extractor("classifier", cfg.dataset, device=str(self.device))
        return Evaluator(cfg.dataset, metrics=parse_metrics(cfg.eval_metrics), n_floor=cfg.eval_n,
                         data_dir=cfg.data_dir, classes=cfg.classes or None, image_size=cfg.image_size,
                         channels=cfg.channels, device=str(self.device))

    # ---------------------------------------------------------------- state
    def state_dict(self) -> dict:
        p = self.progress
        rng = {"torch": torch.get_rng_state(), "data": self.data_rng.get_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        rng.update(self.dist.shared_rng_state())  # several processes: the stream they share
        return {
            "gankit_version": gankit.__version__,
            "config": self.cfg.to_dict(),
            "preset": self.preset,
            "image_shape": list(self.data.image_shape),
            "num_classes": self.data.num_classes,
            "generator": self.g.state_dict(),
            "generator_ema": self.ema.module.state_dict() if self.ema is not None else None,
            "ema": {"images_seen": self.ema.images_seen} if self.ema is not None else None,
            "discriminator": self.d.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "progress": {"step": p.step, "epoch": p.epoch, "position": p.position,
                         "images_seen": p.images_seen, "seconds": p.seconds, "best_fid": p.best_fid,
                         "lr_scale": p.lr_scale, "rollbacks": p.rollbacks},
            "permutation": p.permutation,
            "rng": rng,
            "fixed_z": self.fixed_z,
            "processes": _processes(self),
        }

    def load_state_dict(self, state: dict) -> None:
        self.g.load_state_dict(state["generator"])
        if self.ema is not None:
            self.ema.load_state_dict({"module": state["generator_ema"], **state["ema"]})
        self.d.load_state_dict(state["discriminator"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        p = state["progress"]
        self.progress = Progress(step=p["step"], epoch=p["epoch"], position=p["position"],
                                 images_seen=p["images_seen"], seconds=p["seconds"],
                                 best_fid=p.get("best_fid"), lr_scale=p.get("lr_scale", 1.0),
                                 rollbacks=p.get("rollbacks", 0), permutation=state["permutation"])
        torch.set_rng_state(state["rng"]["torch"])
        self.data_rng.set_state(state["rng"]["data"])
        if "cuda" in state["rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng"]["cuda"], self.device)
        self.dist.set_shared_rng_state(state["rng"])
        self.fixed_z = state["fixed_z"]

    def save_checkpoint(self) -> Path:
        """Write a checkpoint; it also becomes the state a divergence rolls back to."""
        path = ckpt_io.checkpoint_path(self.run_dir, self.progress.step)
        state = self.state_dict()

        def write() -> None:  # rank 0; the others wait, and learn of a failure
            try:
                ckpt_io.save_atomic(state, path)
            except OSError as exc:
                raise disk_error(exc, self.run_dir, path.parent) from None
            ckpt_io.prune(self.run_dir, self.cfg.keep_checkpoints)

        self.dist.on_main(write)
        self._good_state = copy.deepcopy(state)  # each rank its own, with its own BatchNorm statistics
        return path

    # ---------------------------------------------------------------- divergence
    def _set_learning_rates(self) -> None:
        factor = lr_factor(self.cfg, self.progress.step, self.total_steps) * self.progress.lr_scale
        for opt, base in ((self.opt_g, self.cfg.lr_g), (self.opt_d, self.cfg.lr_d)):
            for group in opt.param_groups:
                group["lr"] = base * factor

    def _divergence(self, d_loss: Tensor, g_loss: Tensor, check_now: bool, wants_stop: bool = False
                    ) -> str | None:
        """Why the losses since the last check show divergence, or None; at a check it also settles
        `_stop_requested` from `wants_stop` (a signal, the deadline).

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
        self._stop_requested = any(row[2] for row in rows)
        for rank, row in enumerate(rows):
            where = f" on rank {rank}" if len(rows) > 1 else ""
            for name, value in zip(("d_loss", "g_loss"), row[:2]):
                if value != value or value == float("inf"):
                    return f"{name} is {value}{where}"
                if value > self.cfg.loss_limit:
                    return f"|{name}| reached {value:.3g}{where}, beyond --loss-limit {self.cfg.loss_limit:g}"
        return None

    def _nonfinite_weights(self) -> str | None:
        """Name of a weight or buffer (e.g. a BatchNorm running variance) holding NaN/Inf, or None.
        The losses catch most divergence; this catches what the losses do not see."""
        for net_name, net in (("G", self.g), ("D", self.d)):
            for name, t in list(net.named_parameters()) + list(net.named_buffers()):
                if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                    return f"{net_name}'s {name} holds NaN/Inf"
        return None

    def _roll_back(self, reason: str, metrics_path: Path) -> None:
        """Return to the last good state with lower learning rates, or stop after too many tries."""
        cfg, bad_step = self.cfg, self.progress.step
        rollbacks, scale = self.progress.rollbacks + 1, self.progress.lr_scale * cfg.rollback_lr_factor
        if rollbacks > cfg.max_rollbacks:
            raise RunFailed(
                f"training diverged at step {bad_step} ({reason}) after {cfg.max_rollbacks} rollbacks with "
                f"learning rates lowered to {self.progress.lr_scale:g}x. The last good checkpoint is intact. "
                f"Try lower --lr-d/--lr-g, --loss lsgan, --real-label 0.9, or --d-dropout 0.3; "
                f"--max-rollbacks allows more tries.")
        self.load_state_dict(copy.deepcopy(self._good_state))
        self.progress.rollbacks, self.progress.lr_scale = rollbacks, scale
        good_step = self.progress.step
        if self.dist.is_main:
            _truncate_metrics(metrics_path, good_step)
            _remove_samples_after(self.run_dir, good_step)
            event = {"step": good_step, "event": "rollback", "diverged_at": bad_step, "reason": reason,
                     "lr_scale": scale, "rollbacks": rollbacks}
            with open(metrics_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(event) + "\n")
        message = (f"warning: {reason} at step {bad_step}; rolled back to step {good_step} with learning rates "
                   f"x{scale:g} (rollback {rollbacks} of at most {cfg.max_rollbacks})")
        if not self.quiet:
            from tqdm import tqdm
            tqdm.write(message)

    # ---------------------------------------------------------------- data
    def _next_real_batch(self, images: Tensor, labels: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """This process's real batch: its slice of the next global batch of the epoch's permutation
        (every rank draws the same permutation; rank r takes the r-th `batch` images of each global batch)."""
        p, b, n = self.progress, self.batch, self.global_batch
        if p.permutation is None or p.position + n > len(p.permutation):
            if p.permutation is not None:
                p.epoch += 1
            p.permutation = torch.randperm(len(self.data), generator=self.data_rng)
            p.position = 0
        start = p.position + self.dist.rank * b
        idx = p.permutation[start:start + b].to(self.device)
        p.position += n
        p.images_seen += n
        return to_float(images.index_select(0, idx)), labels.index_select(0, idx) if labels is not None else None

    # ---------------------------------------------------------------- one step
    def noise_sigma(self) -> float:
        """Instance noise's std at this step: annealed linearly to zero at the last step."""
        return self.cfg.instance_noise * max(0.0, 1.0 - self.progress.step / self.total_steps)

    def train_step(self, images: Tensor, stats: dict, labels: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """`d_steps` D updates on the next real batches, one G update, G's EMA; returns the
        detached losses. `labels` (on the device) are needed by a conditional G/D only."""
        self._set_learning_rates()
        self.dist.reseed(self.cfg.seed, self.progress.step)  # several processes: this rank's own noise
        reals = [self._next_real_batch(images, labels) for _ in range(self.cfg.d_steps)]
        losses = self.gan_step(reals, self.noise_sigma(), stats, self.progress.step)
        if self.ema is not None:
            self.ema.update(self.g, self.global_batch)  # the half-life counts every process's images
        self.progress.step += 1
        return losses

    def device_labels(self) -> Tensor | None:
        return self.data.labels.to(self.device) if self.num_classes else None

    # ---------------------------------------------------------------- schedule
    def _is_sample_step(self, step: int, epoch_ended: bool) -> bool:
        cfg = self.cfg
        every = cfg.sample_every_early if step <= cfg.sample_early_until else cfg.sample_every
        return step % every == 0 or epoch_ended or step == self.total_steps or self._stop_requested

    def sample_grid(self) -> None:
        """Draw the fixed latents with G in eval mode (BatchNorm running stats), as the seeds do."""
        if not self.dist.is_main:
            return
        y = grid_labels(len(self.fixed_z), self.num_classes)
        images = generate(self.sampler, self.fixed_z, self.device, y=y)
        if len(images) > 1 and self.progress.step > 0:  # reported once, in the next log line
            self._grid_diversity = float(images.float().std(0).mean())
        nrow = class_row_length(len(self.fixed_z), self.num_classes) if self.num_classes else None
        picture = viz.grid(images, nrow=nrow, scale=2 if self.data.image_shape[1] <= 32 else 1)
        path = self.run_dir / "samples" / f"step_{self.progress.step:08d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        picture.save(path)
        if self.tb is not None:
            array = torch.from_numpy(np.array(picture))
            self.tb.image_grid(self.progress.step, array.unsqueeze(0) if array.dim() == 2 else array.permute(2, 0, 1))

    def evaluate(self, metrics_file) -> None:
        """Score eval_n images from fixed latents (G in eval mode), log them, keep the best checkpoint.
        In several processes each draws its share of the images and extracts their features, and rank
        0 scores them all."""
        cfg, p = self.cfg, self.progress
        z = sample_latent(cfg.eval_n, cfg.latent_dim, cfg.latent_dist,
                          generator=torch.Generator().manual_seed(cfg.seed + 2))  # never the training RNG
        y = (torch.randint(0, self.num_classes, (cfg.eval_n,), generator=torch.Generator().manual_seed(cfg.seed + 3))
             if self.num_classes else None)
        self.dist.broadcast_buffers(self.sampler)  # rank 0's BatchNorm statistics: the ones its checkpoints hold
        images = generate(self.sampler, self.dist.part(z), self.device, y=None if y is None else self.dist.part(y))
        extract = self.evaluator.extractor if self.dist.is_main else self.evaluator
        shares = self.dist.gather(extract(images))
        if not self.dist.is_main:
            return
        features = np.concatenate([f for f, _ in shares])
        logits = None if shares[0][1] is None else np.concatenate([lg for _, lg in shares])
        result = self.evaluator.score_features(features, logits)
        record = {"step": p.step, "images_seen": p.images_seen, "time_s": round(p.seconds, 3),
                  "eval_n": cfg.eval_n, **result.metrics,
                  **{f"floor_{k}": v for k, v in result.floor.items() if not isinstance(v, list)}}
        metrics_file.write(json.dumps(record) + "\n")
        metrics_file.flush()
        if self.tb is not None:
            self.tb.scalars(record)
        fid = result.metrics.get("fid")
        if fid is not None and (p.best_fid is None or fid < p.best_fid):
            p.best_fid = fid
            state = self.state_dict()
            state["eval"] = result.to_dict()
            ckpt_io.save_atomic(state, self.run_dir / "checkpoints" / "best.pt")
        if not self.quiet:
            shown = ", ".join(f"{k} {v:.4g}" for k, v in result.metrics.items() if isinstance(v, float))
            from tqdm import tqdm
            tqdm.write(f"eval at step {p.step}: {shown} (best FID {p.best_fid:.4g})" if p.best_fid is not None
                       else f"eval at step {p.step}: {shown}")

    def plot_metrics(self, records: list[dict]) -> None:
        evals = [r for r in records if "eval_n" in r]
        if not evals:
            return
        series = {}
        for key in ("fid", "floor_fid"):
            points = [(r["step"], r[key]) for r in evals if key in r]
            if points:
                series["FID" if key == "fid" else "FID of real data"] = ([x for x, _ in points], [y for _, y in points])
        if series:
            viz.line_plot(series, self.run_dir / "eval.png", title="FID during training (lower is better)",
                          xlabel="step")

    def _open_tensorboard(self):
        from gankit.tensorboard_log import TensorBoardLog, tensorboard_available
        wanted = self.cfg.tensorboard
        if not self.dist.is_main or wanted == "off" or (wanted == "auto" and not tensorboard_available()):
            return None
        # On resume from step S, events the interrupted process wrote after S are dropped (purge_step
        # drops that step and later, and the log keeps step S itself).
        return TensorBoardLog(self.run_dir, purge_step=self.progress.step + 1 if self.progress.step else None)

    def refresh_report(self) -> None:
        """report.html is a view: a bug in drawing it must never stop training."""
        if not self.cfg.report:
            return
        try:
            from gankit.report import write_report
            write_report(self.run_dir)
        except OSError:
            raise
        except Exception as exc:  # noqa: BLE001 - see docstring
            if not self._report_failed:
                print(f"warning: could not refresh report.html ({type(exc).__name__}: {exc})", file=sys.stderr)
            self._report_failed = True

    def write_gif(self) -> None:
        if not self.dist.is_main:
            return
        frames = sorted((self.run_dir / "samples").glob("step_*.png"))
        if frames:
            viz.save_gif(frames, self.run_dir / "progress.gif")

    # ---------------------------------------------------------------- run
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
            from tqdm import tqdm
            tqdm.write(message)

    def _install_signal_handlers(self):
        """First SIGINT/SIGTERM: finish the step, checkpoint, exit cleanly. Second: stop at once."""
        previous = {}

        def handler(signum, frame):
            if self._signalled:
                signal.signal(signum, previous.get(signum, signal.SIG_DFL))
                raise KeyboardInterrupt
            self._signalled = True  # acted on at the next check, by every rank together (_divergence)

        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                previous[sig] = signal.signal(sig, handler)
            except ValueError:  # not the main thread (e.g. inside a test runner thread)
                pass
        return previous

    def fit(self) -> dict:
        """Train to `total_steps`, writing samples, metrics and checkpoints. Returns a summary."""
        cfg, p = self.cfg, self.progress
        images = self.data.images.to(self.device)  # once, for the whole run
        labels = self.device_labels()
        metrics_path = self.run_dir / "metrics.jsonl"
        if p.step >= self.total_steps:
            self._log(f"already at step {p.step} of {self.total_steps}: nothing to do "
                      f"(raise --steps or --epochs to train further)")
            return self.summary()
        self.tb = self._open_tensorboard()
        if p.step == 0:
            self.sample_grid()  # the noise G starts from
        self._good_state = copy.deepcopy(self.state_dict())  # what a divergence rolls back to
        previous = self._install_signal_handlers()
        bar = None
        if not self.quiet:
            from tqdm import tqdm
            bar = tqdm(total=self.total_steps, initial=p.step, unit="step", dynamic_ncols=True, smoothing=0.1)
        stats = self._zero_stats()
        tick_start, tick_images = time.perf_counter(), 0
        stopped_early = False
        deadline = time.perf_counter() + cfg.max_minutes * 60 if cfg.max_minutes else float("inf")
        try:
            with self._open_metrics(metrics_path) as metrics_file:
                while p.step < self.total_steps:
                    d_loss, g_loss = self.train_step(images, stats, labels)
                    wants_stop = self._signalled or time.perf_counter() > deadline
                    # Several processes check only at steps every rank knows to be checks (each step
                    # on the CPU): there they agree, and a stop wanted in between waits for the next.
                    check_now = (self.device.type == "cpu" or p.step % cfg.log_every == 0
                                 or p.step % cfg.checkpoint_every == 0 or p.step == self.total_steps
                                 or (wants_stop and not self.dist.active))
                    reason = self._divergence(d_loss, g_loss, check_now, wants_stop)
                    if reason:
                        self._roll_back(reason, metrics_path)
                        p = self.progress
                        stats, tick_start, tick_images = self._zero_stats(), time.perf_counter(), 0
                        if bar is not None:
                            bar.n = p.step
                            bar.refresh()
                        continue
                    tick_images += self.global_batch * cfg.d_steps
                    # An epoch ends when the next batch would not fit: look ahead so the grid is drawn now.
                    epoch_ended = p.position + self.global_batch > len(self.data)
                    if p.step % cfg.log_every == 0 or p.step == self.total_steps or self._stop_requested:
                        elapsed = time.perf_counter() - tick_start
                        p.seconds += elapsed
                        record = self._record(stats, tick_images / max(elapsed, 1e-9))
                        metrics_file.write(json.dumps(record) + "\n")
                        for warning in self.health.check(record):
                            metrics_file.write(json.dumps({"step": p.step, "event": "warning", "message": warning}) + "\n")
                            self._warn(warning)
                        metrics_file.flush()
                        if self.tb is not None:
                            self.tb.scalars(record)
                            if self.gan_step.last_logits is not None:
                                self.tb.histograms(p.step, *self.gan_step.last_logits)
                        stats = self._zero_stats()
                        tick_start, tick_images = time.perf_counter(), 0
                        if bar is not None:
                            bar.set_postfix(d=f"{record['d_loss']:.3f}", g=f"{record['g_loss']:.3f}",
                                            refresh=False)
                    if bar is not None:
                        bar.update(1)
                    if self._is_sample_step(p.step, epoch_ended):
                        self.sample_grid()
                    if cfg.eval_every and (p.step % cfg.eval_every == 0 or p.step == self.total_steps):
                        self.evaluate(metrics_file)
                    if p.step % cfg.checkpoint_every == 0 or p.step == self.total_steps or self._stop_requested:
                        reason = self.dist.first(self._nonfinite_weights())  # never let a NaN into a checkpoint
                        if reason:
                            self._roll_back(reason, metrics_path)
                            p = self.progress
                            stats, tick_start, tick_images = self._zero_stats(), time.perf_counter(), 0
                            continue
                        metrics_file.flush()
                        self.save_checkpoint()
                        if self.dist.is_main:
                            records = read_metrics(metrics_path)
                            viz.plot_training(records, self.run_dir / "losses.png",
                                              title=f"{self.preset or 'custom'} on {self.data.name}")
                            self.plot_metrics(records)
                            self.refresh_report()
                    if self._stop_requested:
                        stopped_early = True
                        break
            self.write_gif()
        except OSError as exc:  # disk full, folder made read-only, ... while logging or drawing
            raise disk_error(exc, self.run_dir) from None
        finally:
            if bar is not None:
                bar.close()
            if self.tb is not None:
                self.tb.close()
                self.tb = None
            for sig, old in previous.items():
                signal.signal(sig, old)
        if stopped_early and self.dist.is_main:  # even with -q: a script must learn that the run is not finished
            print(f"stopped at step {p.step} of {self.total_steps}; checkpoint saved. "
                  f"Continue with: {self.dist.command(f'train --resume {self.run_dir}')}", flush=True)
        return self.summary()

    _zero_stats = staticmethod(GANStep.zero_stats)

    def _open_metrics(self, path: Path):
        """metrics.jsonl for appending; on ranks other than 0, a file that keeps nothing."""
        return open(path if self.dist.is_main else os.devnull, "a", encoding="utf-8")

    def _record(self, stats: dict, images_per_s: float) -> dict:
        p = self.progress
        n_d = max(float(stats["d_updates"]), 1.0)
        # One transfer for all statistics of the tick.
        keys = ("d_loss", "g_loss", "d_real", "d_fake", "d_acc_real", "d_acc_fake", "d_sign_real")
        if self.gan_step.aux_classes:
            keys += ("d_class_loss",)
        grad_norms = [_grad_norm(self.g), _grad_norm(self.d)]  # of the tick's last G and D updates
        values = torch.stack([torch.as_tensor(stats[k], dtype=torch.float32, device=self.device)
                              for k in keys] + grad_norms)
        values = self.dist.mean(values).tolist()  # several processes: the global batch's statistics
        grad_values, values = values[len(keys):], values[:len(keys)]
        g_updates = n_d / self.cfg.d_steps
        record = {"step": p.step, "epoch": round(p.epoch + p.position / len(self.data), 4),
                  "images_seen": p.images_seen, "time_s": round(p.seconds, 3)}
        for k, v in zip(keys, values):
            record[k] = v / (g_updates if k == "g_loss" else n_d)
        record["g_grad_norm"], record["d_grad_norm"] = grad_values
        if self.probe is not None:
            record.update({k: round(v, 4) for k, v in self.probe.measure(self.d, self.gan_step.loss.threshold).items()})
        if self._grid_diversity is not None:
            record["grid_diversity"], self._grid_diversity = round(self._grid_diversity, 3), None
        record["lr_g"] = self.opt_g.param_groups[0]["lr"]
        record["lr_d"] = self.opt_d.param_groups[0]["lr"]
        record["images_per_s"] = round(images_per_s, 1)
        return record

    def summary(self) -> dict:
        p = self.progress
        return {"run_dir": str(self.run_dir), "step": p.step, "total_steps": self.total_steps,
                "epochs": round(p.epoch + p.position / len(self.data), 3), "images_seen": p.images_seen,
                "seconds": round(p.seconds, 1)}


def _grad_norm(net: torch.nn.Module) -> Tensor:
    """L2 norm of all of a net's current gradients (0 when none are kept), on the device."""
    grads = [p.grad for p in net.parameters() if p.grad is not None]
    if not grads:
        return torch.zeros((), device=next(net.parameters()).device)
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))


def read_metrics(path: Path) -> list[dict]:
    """The records of a metrics.jsonl file (a torn last line from a crash is ignored)."""
    records = []
    if not Path(path).exists():
        return records
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop log lines written after the checkpoint we resume from: those steps will be redone."""
    if path.exists():
        kept = [r for r in read_metrics(path) if r.get("step", 0) <= step]
        path.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")


def _remove_samples_after(run_dir: Path, step: int) -> None:
    """Sample grids of steps that will be trained again."""
    for png in (Path(run_dir) / "samples").glob("step_*.png"):
        if int(png.stem.split("_")[1]) > step:
            png.unlink()


def default_run_dir(preset: str | None) -> Path:
    return Path("runs") / f"{preset or 'custom'}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def write_run_files(run: Run) -> None:
    """config.json: the resolved config plus what a reader needs to know about the run."""
    import platform
    info = {
        "gankit_version": gankit.__version__,
        "preset": run.preset,
        "config": run.cfg.to_dict(),
        "dataset": {"name": run.data.name, "source": run.data.source, "images": len(run.data),
                    "image_shape": list(run.data.image_shape), "num_classes": run.data.num_classes},
        "total_steps": run.total_steps,
        "processes": _processes(run),
        "environment": {"torch": torch.__version__, "python": platform.python_version(),
                        "device": str(run.device)},
        "created": datetime.now().isoformat(timespec="seconds"),
    }
    _write_json_atomic(run.run_dir / "config.json", info)


def _processes(run: Run) -> dict:
    """How many processes train the run and how the batch is shared among them."""
    return {"world_size": run.dist.world_size, "batch_per_process": run.batch, "global_batch": run.global_batch}


def _write_json_atomic(path: Path, data: dict) -> None:
    """config.json is what --resume reads first: never leave it half-written."""
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def disk_error(exc: OSError, run_dir: Path, where: Path | None = None) -> RunFailed:
    """The message for a write that failed: which folder, why, what is intact, what to do."""
    newest = ckpt_io.latest(run_dir)
    kept = f"{newest.name} is intact" if newest else "no checkpoint was written yet"
    return RunFailed(f"cannot write into {where or exc.filename or run_dir} ({exc.strerror or exc}); {kept}. "
                     f"Free some space or fix the folder's permissions, then continue with: "
                     f"gankit train --resume {run_dir}")


def start(cfg: Config, run_dir: Path, *, preset: str | None, quiet: bool = False, dist: Dist | None = None) -> dict:
    """Train a new run into `run_dir` (which must not hold a run already). `dist`: this process's
    place among several (gankit.distributed); rank 0 alone touches the run directory."""
    run_dir, dist = Path(run_dir), dist or Dist()

    def refuse_existing() -> None:
        if (run_dir / "config.json").exists():
            raise UserError(f"--out {run_dir} already holds a run; continue it with --resume {run_dir} "
                            f"or choose another --out")

    def make_run_dir() -> None:
        try:
            run.run_dir.mkdir(parents=True, exist_ok=True)
            write_run_files(run)
        except OSError as exc:
            raise disk_error(exc, run.run_dir) from None

    dist.on_main(refuse_existing)
    run = Run(cfg, run_dir, preset=preset, quiet=quiet, dist=dist)  # may raise UserError before any file is made
    dist.on_main(make_run_dir)
    _announce(run, f"training {run.total_steps} steps")
    return run.fit()


def resume(run_dir: Path, overrides: dict, *, quiet: bool = False, dist: Dist | None = None) -> dict:
    """Continue the run in `run_dir` from its newest checkpoint; overrides may only change
    length and logging fields (RESUMABLE_FIELDS). The number of processes may differ from the
    run's (`dist`, gankit.distributed): rank 0 reads the checkpoint and sends it to the others."""
    run_dir, dist = Path(run_dir), dist or Dist()

    def read_config() -> tuple[dict, Config, Config]:
        info_path = run_dir / "config.json"
        if not info_path.exists():
            raise UserError(f"--resume {run_dir}: no config.json there; is it a gankit run directory?")
        info = json.loads(info_path.read_text(encoding="utf-8"))
        saved = make_config(info["config"])
        wanted = make_config(info["config"], overrides)
        changed = {k: v for k, v in diff(saved, wanted).items() if k not in RESUMABLE_FIELDS}
        if changed:
            lines = ", ".join(f"{k}: run has {a!r}, you asked {b!r}" for k, (a, b) in changed.items())
            raise UserError(f"--resume {run_dir}: that run was made with another config ({lines}). "
                            f"Drop those flags to continue it, or start a new run with --out")
        return info, saved, wanted

    info, saved, wanted = dist.on_main(read_config)
    run = Run(wanted, run_dir, preset=info.get("preset"), quiet=quiet, dist=dist)
    _prepare_resume(run, info, wanted != saved)
    return run.fit()


def _prepare_resume(run: Run, info: dict, config_changed: bool) -> None:
    """Load the newest intact checkpoint into `run` and tidy what the interrupted process left
    (rank 0 does the tidying and reading, and sends the checkpoint to the other ranks)."""
    run_dir = run.run_dir

    def tidy_and_read() -> tuple[str | None, dict | None, bool]:
        try:
            for stray in ckpt_io.remove_stray_temporaries(run_dir):
                print(f"removed {stray.name}: a checkpoint that was being written when the process died",
                      file=sys.stderr)
            ckpt, state, skipped = ckpt_io.newest_intact(run_dir)
            for line in skipped:  # always shown: the user should know a checkpoint was damaged
                print(line, file=sys.stderr)
            step = state["progress"]["step"] if state is not None else 0
            _truncate_metrics(run_dir / "metrics.jsonl", step)
            _remove_samples_after(run_dir, step)
            if config_changed or info.get("processes") != _processes(run):
                info["config"] = run.cfg.to_dict()
                info["total_steps"] = run.total_steps
                info["processes"] = _processes(run)
                _write_json_atomic(run_dir / "config.json", info)
        except OSError as exc:
            raise disk_error(exc, run_dir) from None
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


def _announce(run: Run, what: str) -> None:
    d = run.data
    c, h, w = d.image_shape
    run._log(f"data: {d.name}, {len(d)} images {c}x{h}x{w} ({d.source})")
    run._log(f"model: {run.cfg.arch}, G {count_params(run.g):,} params, D {count_params(run.d):,} params; "
             f"loss {run.cfg.loss}; {describe_batch(run.batch, run.dist.world_size)}; device {run.device}, "
             f"{dtype_name(run.gan_step.dtype)} arithmetic")
    run._log(f"run directory: {run.run_dir}; {what}")
