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

import torch.nn.functional as F

from gankit.ada import AdaptiveAugment, ada_for_config
from gankit.augment import diff_augment, parse_augment_policy
from gankit.config import Config
from gankit.distributed import Replica
from gankit.losses import LOSSES, Loss, gradient_penalty, squared_gradient_norms, zero_centred_penalty
from gankit.models import sample_latent
from gankit.speed import autocast, compiled, has_batchnorm, resolve_precision, to_channels_last, warn_stderr

STAT_KEYS = ("d_loss", "g_loss", "d_real", "d_fake", "d_acc_real", "d_acc_fake", "d_sign_real", "d_class_loss",
             "d_updates")


class GANStep:
    """Updates G and D in place. Holds references to the nets, optimisers and ADA, no state of its
    own, so loading a checkpoint into those (resume, rollback) needs nothing from it.

    A real batch is (images, labels); labels matter only to a class-conditional G/D, whose fakes
    get labels drawn uniformly. D's regularisers: the loss's own gradient penalty (WGAN-GP), lazy
    R1 on reals and R2 on fakes, DiffAugment or ADA on everything D sees, ACGAN's class loss. A
    relativistic loss (RpGAN) judges each fake against a real image, in G's step too.

    `ada`: the run's AdaptiveAugment (TrainingState keeps it, as it is checkpointed); with --ada on
    and none given, one of ADA's own speed is made here.
    """

    def __init__(self, cfg: Config, g: nn.Module, d: nn.Module, opt_g: torch.optim.Optimizer,
                 opt_d: torch.optim.Optimizer, device: torch.device, *, warn=warn_stderr,
                 replica: Replica | None = None, ada: AdaptiveAugment | None = None):
        self.cfg, self.g, self.d, self.opt_g, self.opt_d, self.device = cfg, g, d, opt_g, opt_d, device
        self.loss: Loss = LOSSES[cfg.loss]
        self.dtype = resolve_precision(cfg.precision, device)
        self.num_classes = int(getattr(g, "num_classes", 0))
        self.aux_classes = int(getattr(d, "aux_classes", 0))
        self.augment = parse_augment_policy(cfg.augment)
        self.ada = ada if ada is not None else ada_for_config(cfg, device)
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

    def fake_labels(self, n: int) -> Tensor | None:
        if not self.num_classes:
            return None
        return self.replica.draw(n, lambda m, rng: torch.randint(0, self.num_classes, (m,), device=self.device,
                                                                 generator=rng))

    def _g(self, z: Tensor, y: Tensor | None) -> Tensor:
        with autocast(self.device, self.dtype):
            out = self.g_call(z) if y is None else self.g_call(z, y)
        return out.float()

    def _d(self, x: Tensor, y: Tensor | None, noise_sigma: float, call=None) -> tuple[Tensor, Tensor | None]:
        """D's logits (and an ACGAN D's class logits), float32, through `call` (default: D's own
        step's). DiffAugment or ADA first (both real and
        fake pass through it, so D never learns the augmentations as a tell), then instance noise
        (Sønderby et al.), which blurs both distributions early."""
        if self.augment:
            x = diff_augment(x, self.augment)
        if self.ada is not None:
            x = self.ada(x)
        if noise_sigma > 0:
            x = x + noise_sigma * torch.randn_like(x)
        if self.cfg.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(self.device, self.dtype):
            call = call if call is not None else self.d_call  # not `or`: a compiled module refuses bool()
            out = call(x) if y is None else call(x, y)
        if self.aux_classes:
            logits, class_logits = out
            return logits.float(), class_logits.float()
        return out.float(), None

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
    def __call__(self, real_batches: list[tuple[Tensor, Tensor | None]], noise_sigma: float, stats: dict,
                 step: int = 0) -> tuple[Tensor, Tensor]:
        """One step on `d_steps` real batches (float images in [-1, 1], labels or None); `step`
        is the index of this step (lazy R1 and R2 run when step * d_steps + i is a multiple of
        r1_every). Returns (D loss, G loss), detached."""
        cfg = self.cfg
        fake = fake_y = None
        penalised = cfg.r1_gamma > 0 or cfg.r2_gamma > 0
        for i, (real, real_y) in enumerate(real_batches):
            keep_graph = cfg.reuse_fakes and i == len(real_batches) - 1
            with_penalties = penalised and (step * len(real_batches) + i) % cfg.r1_every == 0
            d_loss, fake, fake_y = self.update_d(real, real_y, noise_sigma, stats, keep_graph=keep_graph,
                                                 with_penalties=with_penalties)
        # A relativistic loss pairs G's fakes with the reals of D's last update.
        real, real_y = real_batches[-1] if self.loss.relativistic else (None, None)
        if cfg.reuse_fakes:
            g_loss = self.update_g(fake, fake_y, noise_sigma, stats, real=real, real_y=real_y)
        else:
            g_loss = self.update_g(None, None, noise_sigma, stats, real=real, real_y=real_y)
        if self.ada is not None:
            self.ada.end_step()
        return d_loss, g_loss

    def update_d(self, real: Tensor, real_y: Tensor | None, noise_sigma: float, stats: dict, *,
                 keep_graph: bool = False, with_penalties: bool = False) -> tuple[Tensor, Tensor, Tensor | None]:
        """(1) update D: real images towards "real", G's images towards "fake". `with_penalties`:
        this update carries the lazy R1 (reals) and R2 (fakes) penalties whose gamma is above 0.
        Returns D's loss, the fakes (still attached to G's graph when `keep_graph`, for G's step
        to reuse) and their labels."""
        cfg, n = self.cfg, real.shape[0]
        fake_y = self.fake_labels(n)
        if keep_graph:
            fake = self._g(self.latent(n), fake_y)
        else:
            with torch.no_grad():
                fake = self._g(self.latent(n), fake_y)
        fake_in = fake.detach()
        with_r1 = with_penalties and cfg.r1_gamma > 0
        with_r2 = with_penalties and cfg.r2_gamma > 0
        real_t, fake_t = self._targets(n)
        class_loss = None
        if cfg.d_split_update:
            # Keras' two train_on_batch calls (seed 000): two optimiser steps on half-losses.
            real_logits, _ = self._d(real, real_y, noise_sigma)
            half = self.loss.real_term(real_logits, real_t)
            self._apply(self.opt_d, half)
            fake_logits, _ = self._d(fake_in, fake_y, noise_sigma)
            other = self.loss.fake_term(fake_logits, fake_t)
            self._apply(self.opt_d, other)
            loss = (half + other).detach()
        else:
            if self.joint_d:
                both_y = None if real_y is None or fake_y is None else torch.cat([real_y, fake_y])
                # The joined batch is a leaf (neither half requires grad): the penalties' gradients are
                # taken w.r.t. it, so one backward pass gives every real and fake image its own.
                both = torch.cat([real, fake_in]).detach().requires_grad_(with_r1 or with_r2)
                logits, class_logits = self._d(both, both_y, noise_sigma)
                real_logits, fake_logits = logits.split(n)
                real_cls, fake_cls = class_logits.split(n) if class_logits is not None else (None, None)
                if with_r1 or with_r2:
                    norms = squared_gradient_norms(logits, both)
                    r1, r2 = norms[:n].mean(), norms[n:].mean()
            else:
                if with_r1:
                    real = real.detach().requires_grad_(True)
                if with_r2:
                    fake_in = fake_in.requires_grad_(True)  # a leaf: detach() cut it from G's graph
                real_logits, real_cls = self._d(real, real_y, noise_sigma)
                fake_logits, fake_cls = self._d(fake_in, fake_y, noise_sigma)
                r1 = zero_centred_penalty(real_logits, real) if with_r1 else 0.0
                r2 = zero_centred_penalty(fake_logits, fake_in) if with_r2 else 0.0
            loss = self.loss.d_loss(real_logits, fake_logits, real_t, fake_t)
            total = loss
            if self.loss.gradient_penalty:
                total = total + cfg.gp_weight * gradient_penalty(lambda x: self._d(x, real_y, 0.0)[0], real, fake_in)
            if with_r1 or with_r2:
                # Lazy regularisation: gamma/2 * E|grad D|^2 (R1 on reals, R2 on fakes), applied every
                # r1_every-th update, so scaled by r1_every to keep its average strength (StyleGAN2, appendix B).
                if with_r1:
                    total = total + cfg.r1_every * (cfg.r1_gamma / 2) * r1
                if with_r2:
                    total = total + cfg.r1_every * (cfg.r2_gamma / 2) * r2
            if real_cls is not None:
                class_loss = F.cross_entropy(real_cls, real_y) + F.cross_entropy(fake_cls, fake_y)
                total = total + cfg.acgan_weight * class_loss
            self._apply(self.opt_d, total)
        with torch.no_grad():
            real_logits, fake_logits = real_logits.detach(), fake_logits.detach()
            self.last_logits = (real_logits, fake_logits)
            r, f = self.loss.readout(real_logits), self.loss.readout(fake_logits)
            stats["d_loss"] += loss.detach()
            stats["d_real"] += r.mean()
            stats["d_fake"] += f.mean()
            stats["d_acc_real"] += (r > self.loss.threshold).float().mean()
            stats["d_acc_fake"] += (f <= self.loss.threshold).float().mean()
            # ADA's overfitting heuristic r_t = E[sign(D(x_real))]: near 1 when D is sure of every
            # training image, ~0 when it cannot tell (Karras et al. 2020 aim for 0.6).
            sign_real = torch.sign(r - self.loss.threshold).mean()
            stats["d_sign_real"] += sign_real
            if self.ada is not None:
                self.ada.observe(sign_real, n * self.replica.world_size)
            if class_loss is not None:
                stats["d_class_loss"] += class_loss.detach()
            stats["d_updates"] += 1
        return loss.detach(), fake, fake_y

    def update_g(self, fake: Tensor | None, fake_y: Tensor | None, noise_sigma: float, stats: dict, *,
                 real: Tensor | None = None, real_y: Tensor | None = None) -> Tensor:
        """(2) update G: make D call G's images real. D's weights get no gradients here.

        A relativistic loss judges the i-th fake against the i-th image of `real` (labels
        `real_y`), which it needs; other losses ignore it."""
        relativistic = self.loss.relativistic
        if relativistic and real is None:
            raise ValueError(f"--loss {self.loss.name} pairs G's images with real ones: pass update_g a real batch")
        if fake is None:
            n = real.shape[0] if relativistic else self.replica.batch
            fake_y = self.fake_labels(n)
            fake = self._g(self.latent(n), fake_y)
        self.d.requires_grad_(False)
        try:
            real_logits = None
            if not relativistic:
                logits, class_logits = self._d(fake, fake_y, noise_sigma, self.d_frozen_call)
            elif self.joint_d:
                n = real.shape[0]
                both_y = None if real_y is None or fake_y is None else torch.cat([real_y, fake_y])
                both_logits, both_cls = self._d(torch.cat([real.detach(), fake]), both_y, noise_sigma,
                                                self.d_frozen_call)
                real_logits, logits = both_logits.split(n)
                class_logits = None if both_cls is None else both_cls[n:]
            else:
                real_logits, _ = self._d(real.detach(), real_y, noise_sigma, self.d_frozen_call)
                logits, class_logits = self._d(fake, fake_y, noise_sigma, self.d_frozen_call)
            loss = self.loss.generator_loss(logits, real_logits)
            total = loss if class_logits is None else loss + self.cfg.acgan_weight * F.cross_entropy(class_logits, fake_y)
            self._apply(self.opt_g, total)
        finally:
            self.d.requires_grad_(True)
        stats["g_loss"] += loss.detach()
        return loss.detach()

