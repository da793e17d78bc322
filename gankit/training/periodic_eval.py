"""Evaluation during training (--eval-every steps, --eval-at-minutes of training time), logged to metrics.jsonl.

FID and the other scores of `eval_n` images from fixed latents, with the images seen and the
training clock; the checkpoint with the best FID is kept as checkpoints/best.pt. The features are
the dataset's shipped classifier's, or those of the file --eval-evaluator names."""

from __future__ import annotations

import time
from typing import Callable, TextIO

import numpy as np
import torch

from gankit.config import Config
from gankit.nets.latents import generate, sample_latent
from gankit.run import checkpoint as ckpt_io
from gankit.run.rundir import RunDir, append_record
from gankit.training.distributed import Dist
from gankit.training.state import TrainingState


class TrainingEvaluator:
    """Scores the run's sampler. In several processes each draws its share of the images and extracts
    their features, and rank 0 scores them all."""

    def __init__(self, cfg: Config, dist: Dist, device: torch.device, num_classes: int):
        from gankit.metrics.evaluate import Evaluator, make_extractor, parse_metrics

        self.cfg, self.dist, self.device, self.num_classes = cfg, dist, device, num_classes
        if dist.is_main:
            self.evaluator = Evaluator(cfg.dataset, metrics=parse_metrics(cfg.eval_metrics), n_floor=cfg.eval_n,
                                       data_dir=cfg.data_dir, classes=cfg.classes or None,
                                       image_size=cfg.image_size, channels=cfg.channels, fit=cfg.fit,
                                       alpha=cfg.alpha, evaluator=cfg.eval_evaluator, device=str(device))
            self.extract = self.evaluator.extractor
        else:  # the other ranks only extract features of their share of the images
            self.evaluator = None
            self.extract = make_extractor("classifier", cfg.dataset, evaluator=cfg.eval_evaluator, device=str(device))

    def __call__(self, state: TrainingState, metrics_file: TextIO, rundir: RunDir, tb=None,
                 say: Callable[[str], None] | None = None, *, seconds: float | None = None,
                 mark_minutes: float | None = None) -> float:
        """Score, log the record (and mirror it to `tb`), keep best.pt, and `say` the scores; return
        the seconds it took. seconds: the training clock now (default: the last log line's);
        mark_minutes: the --eval-at-minutes mark that called it."""
        start = time.perf_counter()
        self._evaluate(state, metrics_file, rundir, tb, say, state.progress.seconds if seconds is None else seconds,
                       mark_minutes, start)
        return time.perf_counter() - start

    def _evaluate(self, state: TrainingState, metrics_file: TextIO, rundir: RunDir, tb, say, seconds: float,
                  mark_minutes: float | None, start: float) -> None:
        cfg, p = self.cfg, state.progress
        z = sample_latent(cfg.eval_n, cfg.latent_dim, cfg.latent_dist,
                          generator=torch.Generator().manual_seed(cfg.seed + 2))  # never the training RNG
        y = (torch.randint(0, self.num_classes, (cfg.eval_n,), generator=torch.Generator().manual_seed(cfg.seed + 3))
             if self.num_classes else None)
        self.dist.broadcast_buffers(state.sampler)  # rank 0's BatchNorm statistics: the ones its checkpoints hold
        images = generate(state.sampler, self.dist.part(z), self.device, y=None if y is None else self.dist.part(y))
        shares = self.dist.gather(self.extract(images))
        if not self.dist.is_main:
            return
        features = np.concatenate([f for f, _ in shares])
        logits = None if shares[0][1] is None else np.concatenate([lg for _, lg in shares])
        result = self.evaluator.score_features(features, logits)
        record = {"step": p.step, "images_seen": p.images_seen, "time_s": round(seconds, 3),
                  **({"mark_minutes": mark_minutes} if mark_minutes is not None else {}),
                  "eval_n": cfg.eval_n, "extractor": result.protocol["extractor"], **result.metrics,
                  **{f"floor_{k}": v for k, v in result.floor.items() if not isinstance(v, list)},
                  # what this evaluation cost, up to its record (best.pt after it is not counted)
                  "eval_s": round(time.perf_counter() - start, 3)}
        append_record(metrics_file, record)
        metrics_file.flush()
        if tb is not None:
            tb.scalars(record)
        fid = result.metrics.get("fid")
        if fid is not None and (p.best_fid is None or fid < p.best_fid):
            p.best_fid = fid
            ckpt_io.save_atomic({**state.state_dict(), "eval": result.to_dict()}, rundir.best_checkpoint)
        if say is not None:
            shown = ", ".join(f"{k} {v:.4g}" for k, v in result.metrics.items() if isinstance(v, float))
            best = f" (best FID {p.best_fid:.4g})" if p.best_fid is not None else ""
            say(f"eval at step {p.step}: {shown}{best}")
