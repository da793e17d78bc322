"""The arithmetic of one training step: (1) update D `d_steps` times, (2) update G once.

train.py decides when and on which batches; this file decides how. Where the maths allows,
work is shared: real and fake images go through D in one call when D has no BatchNorm (one
large product instead of two half-sized ones), and G's step scores the fakes of D's last step
instead of drawing new ones (`--reuse-fakes`, pytorch/examples' order), which saves a forward
pass of G. Nothing is read back to the host here: statistics are summed on the device.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gankit.config import Config
from gankit.distributed import Replica
from gankit.losses import LOSSES, Loss, gradient_penalty
from gankit.models import sample_latent
from gankit.speed import autocast, compiled, has_batchnorm, resolve_precision, to_channels_last, warn_stderr

STAT_KEYS = ("d_loss", "g_loss", "d_real", "d_fake", "d_acc_real", "d_acc_fake", "d_updates")


class GANStep:
    """Updates G and D in place. Holds references to the nets and optimisers, no state of its own,
    so loading a checkpoint into the nets (resume, rollback) needs nothing from it."""

    def __init__(self, cfg: Config, g: nn.Module, d: nn.Module, opt_g: torch.optim.Optimizer,
                 opt_d: torch.optim.Optimizer, device: torch.device, *, warn=warn_stderr,
                 replica: Replica | None = None):
        self.cfg, self.g, self.d, self.opt_g, self.opt_d, self.device = cfg, g, d, opt_g, opt_d, device
        self.loss: Loss = LOSSES[cfg.loss]
        self.dtype = resolve_precision(cfg.precision, device)
        to_channels_last(g, cfg.channels_last)
        to_channels_last(d, cfg.channels_last)
        # --- several processes (gankit.distributed): one of N replicas, nets wrapped in DDP ---
        self.replica = replica or Replica(cfg.batch_size)
        wrap = self.replica.wrap or (lambda net: net)
        self.g_call = compiled(wrap(g), device, cfg.compile, warn=warn)
        self.d_call = compiled(wrap(d), device, cfg.compile, warn=warn)  # D's own step
        # G's step calls D's own module, never its DDP wrapper: D's weights are frozen there, and a
        # call through the wrapper would make DDP wait for D's gradients (and fail at D's next step).
        self.d_frozen_call = compiled(d, device, cfg.compile, warn=warn) if self.replica.wrap else self.d_call
        # --- end several processes ---
        self.joint_d = not cfg.d_split_update and not has_batchnorm(d)
        self.last_logits: tuple[Tensor, Tensor] | None = None  # for TensorBoard's histograms

    @staticmethod
    def zero_stats() -> dict:
        return {k: 0.0 for k in STAT_KEYS}

    # ---------------------------------------------------------------- pieces
    def latent(self, n: int) -> Tensor:
        """n latents: this replica's slice of the global batch's (all of them in one process)."""
        return self.replica.draw(n, lambda m, rng: sample_latent(m, self.cfg.latent_dim, self.cfg.latent_dist,
                                                                 self.device, generator=rng))

    def _uniform(self, n: int) -> Tensor:
        return self.replica.draw(n, lambda m, rng: torch.rand(m, device=self.device, generator=rng))

    def _g(self, z: Tensor) -> Tensor:
        with autocast(self.device, self.dtype):
            return self.g_call(z).float()

    def _d(self, x: Tensor, noise_sigma: float, call=None) -> Tensor:
        """D's logits, float32, through `call` (default: D's own step's). Instance noise (Sønderby
        et al.) blurs both distributions early."""
        if noise_sigma > 0:
            x = x + noise_sigma * torch.randn_like(x)
        if self.cfg.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(self.device, self.dtype):
            return (call or self.d_call)(x).float()

    def _targets(self, n: int) -> tuple[Tensor, Tensor]:
        cfg = self.cfg
        real = torch.full((n,), cfg.real_label, device=self.device)
        fake = torch.full((n,), cfg.fake_label, device=self.device)
        if cfg.label_flip > 0:
            flip_r = self._uniform(n) < cfg.label_flip
            flip_f = self._uniform(n) < cfg.label_flip
            real, fake = torch.where(flip_r, fake, real), torch.where(flip_f, real, fake)
        return real, fake

    @staticmethod
    def _apply(opt: torch.optim.Optimizer, loss: Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    # ---------------------------------------------------------------- the step
    def __call__(self, real_batches: list[Tensor], noise_sigma: float, stats: dict) -> tuple[Tensor, Tensor]:
        """One step on `d_steps` real batches (float, [-1, 1]); returns (D loss, G loss), detached."""
        fake = None
        for i, real in enumerate(real_batches):
            keep_graph = self.cfg.reuse_fakes and i == len(real_batches) - 1
            d_loss, fake = self.update_d(real, noise_sigma, stats, keep_graph=keep_graph)
        g_loss = self.update_g(fake if self.cfg.reuse_fakes else None, noise_sigma, stats)
        return d_loss, g_loss

    def update_d(self, real: Tensor, noise_sigma: float, stats: dict, *, keep_graph: bool = False
                 ) -> tuple[Tensor, Tensor]:
        """(1) update D: real images towards "real", G's images towards "fake". Returns D's loss and
        the fakes (still attached to G's graph when `keep_graph`, for G's step to reuse)."""
        n = real.shape[0]
        if keep_graph:
            fake = self._g(self.latent(n))
        else:
            with torch.no_grad():
                fake = self._g(self.latent(n))
        fake_in = fake.detach()
        real_t, fake_t = self._targets(n)
        if self.cfg.d_split_update:
            # Keras' two train_on_batch calls (seed 000): two optimiser steps on half-losses.
            real_logits = self._d(real, noise_sigma)
            half = self.loss.real_term(real_logits, real_t)
            self._apply(self.opt_d, half)
            fake_logits = self._d(fake_in, noise_sigma)
            other = self.loss.fake_term(fake_logits, fake_t)
            self._apply(self.opt_d, other)
            loss = (half + other).detach()
        else:
            if self.joint_d:
                real_logits, fake_logits = self._d(torch.cat([real, fake_in]), noise_sigma).split(n)
            else:
                real_logits, fake_logits = self._d(real, noise_sigma), self._d(fake_in, noise_sigma)
            loss = self.loss.d_loss(real_logits, fake_logits, real_t, fake_t)
            if self.loss.gradient_penalty:
                loss = loss + self.cfg.gp_weight * gradient_penalty(lambda x: self._d(x, 0.0), real, fake_in)
            self._apply(self.opt_d, loss)
        with torch.no_grad():
            self.last_logits = (real_logits.detach(), fake_logits.detach())
            r, f = self.loss.readout(real_logits.detach()), self.loss.readout(fake_logits.detach())
            stats["d_loss"] += loss.detach()
            stats["d_real"] += r.mean()
            stats["d_fake"] += f.mean()
            stats["d_acc_real"] += (r > self.loss.threshold).float().mean()
            stats["d_acc_fake"] += (f <= self.loss.threshold).float().mean()
            stats["d_updates"] += 1
        return loss.detach(), fake

    def update_g(self, fake: Tensor | None, noise_sigma: float, stats: dict) -> Tensor:
        """(2) update G: make D call G's images real. D's weights get no gradients here."""
        if fake is None:
            fake = self._g(self.latent(self.replica.batch))
        self.d.requires_grad_(False)
        try:
            loss = self.loss.g_loss(self._d(fake, noise_sigma, self.d_frozen_call))
            self._apply(self.opt_g, loss)
        finally:
            self.d.requires_grad_(True)
        stats["g_loss"] += loss.detach()
        return loss.detach()
