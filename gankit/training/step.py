"""The arithmetic of one training step: (1) update D `d_steps` times, (2) update G once.

loop.py decides when and on which batches; this file decides how, as phases with one path each:

    d_main          D's loss on a real and a fake batch (and ACGAN's class loss)
    d_regularisers  WGAN-GP's penalty; R1 on reals and R2 on fakes, lazily every r1_every updates; LeCam
    g_main          G's loss; a relativistic loss judges each fake against a real image
    after the step  ADA's p; G's EMA is the loop's (gankit/training/ema.py)

How D is called is chosen once, when the step is built: real and fake in one call where D has no
BatchNorm (one large product instead of two half-sized ones; gankit/training/d_calls.py), and D's
update either as one optimiser step or as Keras' two (`--d-split-update`, seed 000). G's step
scores the fakes of D's last update instead of drawing new ones (`--reuse-fakes`, pytorch/examples'
order), which saves a forward pass of G. Nothing is read back to the host here: statistics are
summed on the device.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gankit.augment.ada import AdaptiveAugment, ada_for_config
from gankit.augment.diffaugment import diff_augment, parse_augment_policy
from gankit.config import Config
from gankit.nets.latents import sample_latent
from gankit.training.compute import autocast, compiled, mixes_images, resolve_precision, to_channels_last, warn_stderr
from gankit.training.d_calls import CallEach, Judged, OneCall
from gankit.training.distributed import Replica
from gankit.training.lecam import LeCamAnchors
from gankit.training.losses import LOSSES, Loss, gradient_penalty

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
                 replica: Replica | None = None, ada: AdaptiveAugment | None = None,
                 lecam: LeCamAnchors | None = None):
        self.cfg, self.g, self.d, self.opt_g, self.opt_d, self.device = cfg, g, d, opt_g, opt_d, device
        # what of D learns in D's update (--freeze-d keeps its first layers): G's update turns it off and back on
        self._d_learning = [p for p in d.parameters() if p.requires_grad]
        self.loss: Loss = LOSSES[cfg.loss]
        self.dtype = resolve_precision(cfg.precision, device)
        self.num_classes = int(getattr(g, "num_classes", 0))
        self.aux_classes = int(getattr(d, "aux_classes", 0))
        policy = parse_augment_policy(cfg.augment)
        self.ada = ada if ada is not None else ada_for_config(cfg, device)
        self.lecam = lecam if lecam is not None or cfg.lecam_weight == 0 else LeCamAnchors(device)
        # What D's inputs go through, in order (--augment and --ada are exclusive; config.py checks)
        self.d_augments = ([functools.partial(diff_augment, policy=policy)] if policy else []) + (
            [self.ada] if self.ada is not None else [])
        to_channels_last(g, cfg.channels_last)
        to_channels_last(d, cfg.channels_last)
        # --- several processes (gankit.training.distributed): one of N replicas, nets wrapped in DDP ---
        self.replica = replica or Replica(cfg.batch_size)
        wrap = self.replica.wrap or (lambda net: net)
        self.g_call = compiled(wrap(g), device, cfg.compile, warn=warn)
        self.d_call = compiled(wrap(d), device, cfg.compile, warn=warn)  # D's own step
        # G's step calls D's own module, never its DDP wrapper: D's weights are frozen there, and a
        # call through the wrapper would make DDP wait for D's gradients (and fail at D's next step).
        self.d_frozen_call = compiled(d, device, cfg.compile, warn=warn) if self.replica.wrap else self.d_call
        # --- end several processes ---
        # Where D has no BatchNorm, real and fake go through it in one call (gankit/training/d_calls.py).
        self.d_calls = CallEach() if cfg.d_split_update or mixes_images(d) else OneCall()
        self.d_phase = self._d_split if cfg.d_split_update else self._d_together
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
        for augment in self.d_augments:
            x = augment(x)
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

    def _fakes(self, n: int, keep_graph: bool) -> tuple[Tensor, Tensor | None]:
        """n of G's images and their labels; attached to G's graph only when `keep_graph`."""
        fake_y = self.fake_labels(n)
        with torch.set_grad_enabled(keep_graph and torch.is_grad_enabled()):
            fake = self._g(self.latent(n), fake_y)
        return fake, fake_y

    # ---------------------------------------------------------------- the step
    def __call__(self, real_batches: list[tuple[Tensor, Tensor | None]], noise_sigma: float, stats: dict,
                 step: int = 0) -> tuple[Tensor, Tensor]:
        """One step on `d_steps` real batches (float images in [-1, 1], labels or None); `step`
        is the index of this step (lazy R1 and R2 run when step * d_steps + i is a multiple of
        r1_every). Returns (D loss, G loss), detached."""
        cfg = self.cfg
        for i, (real, real_y) in enumerate(real_batches):
            keep_graph = cfg.reuse_fakes and i == len(real_batches) - 1
            lazy_turn = (step * len(real_batches) + i) % cfg.r1_every == 0
            d_loss, fake, fake_y = self.update_d(real, real_y, noise_sigma, stats, keep_graph=keep_graph,
                                                 with_penalties=lazy_turn)
        # A relativistic loss pairs G's fakes with the reals of D's last update.
        real, real_y = real_batches[-1] if self.loss.relativistic else (None, None)
        if not cfg.reuse_fakes:
            fake = fake_y = None
        g_loss = self.update_g(fake, fake_y, noise_sigma, stats, real=real, real_y=real_y)
        if self.ada is not None:
            self.ada.end_step()
        return d_loss, g_loss

    def update_d(self, real: Tensor, real_y: Tensor | None, noise_sigma: float, stats: dict, *,
                 keep_graph: bool = False, with_penalties: bool = False) -> tuple[Tensor, Tensor, Tensor | None]:
        """(1) update D: real images towards "real", G's images towards "fake". `with_penalties`:
        this update is the lazy R1 (reals) and R2 (fakes) penalties' turn, for those whose gamma is
        above 0. Returns D's loss, the fakes (still attached to G's graph when `keep_graph`, for G's
        step to reuse) and their labels."""
        n = real.shape[0]
        fake, fake_y = self._fakes(n, keep_graph)
        targets = self._targets(n)
        judge = functools.partial(self._d, noise_sigma=noise_sigma)
        batches = [(real, real_y), (fake.detach(), fake_y)]
        loss, judged, class_loss = self.d_phase(judge, batches, targets, with_penalties)
        self._count_d(stats, loss, judged, class_loss, n)
        return loss.detach(), fake, fake_y

    def d_main(self, judge, batches, targets, penalised: tuple[bool, bool]):
        """D's own loss on a real and a fake batch (and ACGAN's class loss): (loss, D's verdict,
        class loss or None). `penalised` says which batch a gradient penalty will need."""
        judged = self.d_calls.judge(judge, batches, grad_of=penalised)
        (real_logits, fake_logits), (real_cls, fake_cls) = judged.logits, judged.class_logits
        loss = self.loss.d_loss(real_logits, fake_logits, *targets)
        class_loss = None
        if real_cls is not None:
            class_loss = F.cross_entropy(real_cls, batches[0][1]) + F.cross_entropy(fake_cls, batches[1][1])
        return loss, judged, class_loss

    def d_regularisers(self, judged, batches, penalised: tuple[bool, bool]) -> list[Tensor]:
        """The terms D's regularisers add to its loss this update, in order: WGAN-GP's gradient
        penalty (every update), then R1 on reals and R2 on fakes where `penalised` (lazily: gamma/2 *
        E|grad D|^2, weighted r1_every times to keep its average strength; StyleGAN2, appendix B),
        then LeCam's (every update, from the logits D's loss used)."""
        cfg, terms = self.cfg, []
        (real, real_y), (fake, _) = batches
        if self.loss.gradient_penalty:
            terms.append(cfg.gp_weight * gradient_penalty(lambda x: self._d(x, real_y, 0.0)[0], real, fake))
        if any(penalised):
            r1, r2 = self.d_calls.penalties(judged, penalised)
            gammas = (cfg.r1_gamma, cfg.r2_gamma)
            terms += [cfg.r1_every * (gamma / 2) * value for gamma, value in zip(gammas, (r1, r2)) if value is not None]
        if self.lecam is not None:
            terms.append(cfg.lecam_weight * self.lecam.penalty(*judged.logits))
        return terms

    def _d_together(self, judge, batches, targets, with_penalties: bool):
        """D's loss, its regularisers and its class loss, summed into one optimiser step."""
        penalised = (with_penalties and self.cfg.r1_gamma > 0, with_penalties and self.cfg.r2_gamma > 0)
        loss, judged, class_loss = self.d_main(judge, batches, targets, penalised)
        total = loss
        for term in self.d_regularisers(judged, batches, penalised):
            total = total + term
        if class_loss is not None:
            total = total + self.cfg.acgan_weight * class_loss
        self._apply(self.opt_d, total)
        return loss, judged, class_loss

    def _d_split(self, judge, batches, targets, with_penalties: bool):
        """Keras' two train_on_batch calls (seed 000): an optimiser step on the real half-loss, then
        one on the fake half, D judging each batch after the other's update. No regulariser."""
        (real, real_y), (fake, fake_y) = batches
        real_logits, _ = judge(real, real_y)
        half = self.loss.real_term(real_logits, targets[0])
        self._apply(self.opt_d, half)
        fake_logits, _ = judge(fake, fake_y)
        other = self.loss.fake_term(fake_logits, targets[1])
        self._apply(self.opt_d, other)
        return (half + other).detach(), Judged([real_logits, fake_logits], [None, None], [real, fake]), None

    @torch.no_grad()
    def _count_d(self, stats: dict, loss: Tensor, judged, class_loss: Tensor | None, n: int) -> None:
        """Adds D's update to the step's statistics, on the device."""
        real_logits, fake_logits = (x.detach() for x in judged.logits)
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

    def update_g(self, fake: Tensor | None, fake_y: Tensor | None, noise_sigma: float, stats: dict, *,
                 real: Tensor | None = None, real_y: Tensor | None = None) -> Tensor:
        """(2) update G: make D call G's images real. D's weights get no gradients here. `fake`:
        the fakes of D's last update, still attached to G's graph, or None to draw new ones.

        A relativistic loss judges the i-th fake against the i-th image of `real` (labels
        `real_y`), which it needs; other losses ignore it."""
        if self.loss.relativistic and real is None:
            raise ValueError(f"--loss {self.loss.name} pairs G's images with real ones: pass update_g a real batch")
        if fake is None:
            fake, fake_y = self._fakes(real.shape[0] if self.loss.relativistic else self.replica.batch, True)
        self.d.requires_grad_(False)
        try:
            loss, total = self.g_main(fake, fake_y, noise_sigma, real, real_y)
            self._apply(self.opt_g, total)
        finally:
            for p in self._d_learning:
                p.requires_grad_(True)
        stats["g_loss"] += loss.detach()
        return loss.detach()

    def g_main(self, fake, fake_y, noise_sigma, real, real_y) -> tuple[Tensor, Tensor]:
        """G's loss (and with ACGAN's class loss, the total G minimises), D judging through its own
        module. The loss says what it needs: a relativistic one judges the fakes against the reals."""
        judge = functools.partial(self._d, noise_sigma=noise_sigma, call=self.d_frozen_call)
        batches = [(fake, fake_y)] if not self.loss.relativistic else [(real.detach(), real_y), (fake, fake_y)]
        judged = self.d_calls.judge(judge, batches)
        logits, class_logits = judged.logits[-1], judged.class_logits[-1]
        loss = self.loss.generator_loss(logits, judged.logits[0] if self.loss.relativistic else None)
        if class_logits is None:
            return loss, loss
        return loss, loss + self.cfg.acgan_weight * F.cross_entropy(class_logits, fake_y)
