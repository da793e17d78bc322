"""The training state: everything a step depends on, and the checkpoint dict made of it.

G, D, G's EMA, both optimisers, the progress counters, the data order, every random stream, the
fixed grid latents and ADA's augmentation probability. A checkpoint is `state_dict()` (nanoGPT's
shape: one flat dict, opened with `torch.load(path, weights_only=True)`), and `load_state_dict()`
of it makes a resumed run compute exactly what an uninterrupted one would have, with any number of
processes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import Tensor, nn

from gankit.augment.ada import ada_for_config
from gankit.config import Config
from gankit.nets.latents import sample_latent
from gankit.training.distributed import Dist
from gankit.training.ema import GeneratorEMA
from gankit.training.lecam import LeCamAnchors


@dataclass
class Progress:
    """Where the run is: the counters that, with the RNG states, make resume exact."""

    step: int = 0  # G updates done
    epoch: int = 0  # completed passes over the data
    position: int = 0  # index into `permutation` of the next real batch
    images_seen: int = 0  # real images shown to D
    seconds: float = 0.0  # training time over every process that trained the run (resumes included)
    eval_seconds: float = 0.0  # time spent evaluating during training, kept off `seconds`
    best_fid: float | None = None  # lowest FID of the evaluations so far (checkpoints/best.pt holds it)
    lr_scale: float = 1.0  # learning rates are multiplied by this after rollbacks from divergence
    rollbacks: int = 0  # how often the run rolled back from NaN/Inf or exploding losses
    permutation: Tensor | None = None  # this epoch's order of the images (checkpointed on its own key)

    def counters(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "permutation"}

    @classmethod
    def from_checkpoint(cls, counters: dict[str, Any], permutation: Tensor | None) -> "Progress":
        known = {f.name for f in fields(cls)}  # files of older versions lack the newer counters
        return cls(**{k: v for k, v in counters.items() if k in known}, permutation=permutation)


class TrainingState:
    """The nets being trained, their optimisers and EMA, and the run's counters and random streams.

    Build G and D right after `torch.manual_seed(cfg.seed)`; nothing here draws from torch's default
    generator, so the streams a step uses start where a plain script's would."""

    def __init__(self, cfg: Config, g: nn.Module, d: nn.Module, device: torch.device, dist: Dist,
                 about: dict[str, Any], total_images: int | None = None):
        self.cfg, self.g, self.d, self.device, self.dist = cfg, g, d, device, dist
        self.about = about  # what the checkpoint says of the run besides the state (config, preset, shape...)
        self.ema = GeneratorEMA(g, cfg.ema_half_life, cfg.ema_rampup) if cfg.ema_half_life > 0 else None
        # foreach Adam: one kernel per tensor group rather than per parameter (the fused variant is
        # CUDA-only for some dtypes and no faster on CPU for nets this size).
        self.opt_g = torch.optim.Adam(g.parameters(), lr=cfg.lr_g, betas=(cfg.beta1_g, cfg.beta2_g),
                                      eps=cfg.adam_eps, foreach=True)
        self.opt_d = torch.optim.Adam(d.parameters(), lr=cfg.lr_d, betas=(cfg.beta1_d, cfg.beta2_d),
                                      eps=cfg.adam_eps, foreach=True)
        # ADA's p; `total_images` (the run's length) sets how fast it may move unless --ada-length does.
        self.ada = ada_for_config(cfg, device, total_images, mean=dist.mean)
        self.lecam = LeCamAnchors(device, mean=dist.mean) if cfg.lecam_weight > 0 else None
        self.progress = Progress()
        self.data_rng = torch.Generator().manual_seed(cfg.seed)  # the order of the real images
        # The fixed grid latents come from their own generator so they never shift the training RNG.
        grid_rng = torch.Generator().manual_seed(cfg.seed + 1)
        self.fixed_z = sample_latent(cfg.sample_grid, cfg.latent_dim, cfg.latent_dist, generator=grid_rng)

    @property
    def sampler(self) -> nn.Module:
        """The G that samples, grids and evaluations use: the EMA of G's weights when kept."""
        return self.ema.module if self.ema is not None else self.g

    def set_learning_rates(self, factor: float) -> None:
        """Both learning rates at `factor` (the schedule's) times the rollbacks' reduction."""
        factor *= self.progress.lr_scale
        for opt, base in ((self.opt_g, self.cfg.lr_g), (self.opt_d, self.cfg.lr_d)):
            for group in opt.param_groups:
                group["lr"] = base * factor

    def state_dict(self) -> dict[str, Any]:
        rng = {"torch": torch.get_rng_state(), "data": self.data_rng.get_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        rng.update(self.dist.shared_rng_state())  # several processes: the stream they share
        return {
            **self.about,
            "generator": self.g.state_dict(),
            "generator_ema": self.ema.module.state_dict() if self.ema is not None else None,
            "ema": {"images_seen": self.ema.images_seen} if self.ema is not None else None,
            "discriminator": self.d.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "progress": self.progress.counters(),
            "permutation": self.progress.permutation,
            "rng": rng,
            "fixed_z": self.fixed_z,
            "ada": self.ada.state_dict() if self.ada is not None else None,
            **({"lecam": self.lecam.state_dict()} if self.lecam is not None else {}),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.g.load_state_dict(state["generator"])
        if self.ema is not None:
            self.ema.load_state_dict({"module": state["generator_ema"], **state["ema"]})
        self.d.load_state_dict(state["discriminator"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.progress = Progress.from_checkpoint(state["progress"], state["permutation"])
        torch.set_rng_state(state["rng"]["torch"])
        self.data_rng.set_state(state["rng"]["data"])
        if "cuda" in state["rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng"]["cuda"], self.device)
        self.dist.set_shared_rng_state(state["rng"])
        self.fixed_z = state["fixed_z"]
        if self.ada is not None and state.get("ada") is not None:  # files of older versions have no "ada"
            self.ada.load_state_dict(state["ada"])
        if self.lecam is not None:
            self.lecam.load_state_dict(state["lecam"])
