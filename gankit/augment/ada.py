"""Adaptive discriminator augmentation (ADA): augmentations applied as often as D overfits.

After Karras et al. 2020 (StyleGAN2-ADA): the ops of gankit.augment.ada_ops on every image D sees,
each applied with a probability p that follows how sure D is of the training images.

ADA's overfitting signal is r_t = E[sign(D(x_real))] (GANStep sums it as "d_sign_real"): about 0
while D cannot tell training images from fakes, near 1 once it has memorised them. Every
`interval` steps, p moves by sign(mean r_t over those steps - target) x (images D saw in them) /
`length`, and is clamped to [0, 1]: up while D is too sure of the training images, down otherwise.
`length` is therefore the number of images over which p can go from 0 to 1.

ADA's `length` is 500k images, made for runs of tens of millions. gankit's runs are often 50-300k
images in all, where p would hardly move before the end, so by default `length` is the run's total
images / 20 (p can cross [0, 1] in a twentieth of the run), never more than ADA's 500k.

p and the interval's sums stay on the device: deciding which images an op applies to is a
comparison there, and nothing is read back to the host per step. Under several processes the
interval's r_t is averaged over them (one small all-reduce per interval), so every replica keeps the
same p. The state (p and the sums of an unfinished interval) goes into checkpoints, so a resumed
run adjusts p exactly as an uninterrupted one would.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

from gankit.augment.ada_ops import ada_augment, parse_ada_ops

ADA_LENGTH = 500_000  # the paper's: p can cross [0, 1] in 500k images
LENGTH_SHARE = 20  # the automatic length: the run's total images / 20, at most ADA_LENGTH


def auto_length(total_images: int | None) -> int:
    """Images over which p can go from 0 to 1 when --ada-length is not given: a twentieth of the
    run's total images, at most ADA's 500k (all of it when the total is unknown)."""
    if total_images is None:
        return ADA_LENGTH
    return max(1, min(ADA_LENGTH, total_images // LENGTH_SHARE))


class AdaptiveAugment:
    """ADA's augmentation and its probability p, for one run.

    `fixed_p`: hold p there and never adjust it. `mean`: averages a device tensor over the processes
    that train the run (gankit.training.distributed.Dist.mean); None in one process."""

    def __init__(self, ops: tuple[str, ...] | str, device: torch.device, *, fixed_p: float | None = None,
                 target: float = 0.6, length: int = ADA_LENGTH, interval: int = 4,
                 mean: Callable[[Tensor], Tensor] | None = None):
        self.ops = parse_ada_ops(ops) if isinstance(ops, str) else tuple(ops)
        self.device, self.target, self.length, self.interval = device, target, length, interval
        self.adaptive = fixed_p is None
        self.mean = mean or (lambda t: t)
        self.p = torch.tensor(0.0 if fixed_p is None else float(fixed_p), device=device)
        self._start_interval()

    def _start_interval(self) -> None:
        self.sign_sum = torch.zeros((), device=self.device)  # r_t of each D update since the last adjustment
        self.updates = 0  # D updates since then
        self.images = 0  # real images D saw since then, over all processes
        self.steps = 0  # training steps since then

    def __call__(self, x: Tensor) -> Tensor:
        """x through the ops, each applied to each image with probability p."""
        return ada_augment(x, self.ops, self.p)

    def observe(self, sign_real: Tensor, images: int) -> None:
        """One D update's r_t (E[sign D(x_real)] over this process's real images) and how many real
        images the update took over all processes."""
        if self.adaptive:
            self.sign_sum = self.sign_sum + sign_real.detach().float()
            self.updates += 1
            self.images += images

    def end_step(self) -> None:
        """After each training step: every `interval` steps, move p towards keeping r_t at target."""
        if not self.adaptive:
            return
        self.steps += 1
        if self.steps < self.interval:
            return
        if self.updates:
            r_t = self.mean(self.sign_sum / self.updates)
            self.p = (self.p + torch.sign(r_t - self.target) * (self.images / self.length)).clamp(0.0, 1.0)
        self._start_interval()

    def state_dict(self) -> dict[str, Any]:
        return {"p": self.p.detach().clone(), "sign_sum": self.sign_sum.detach().clone(),
                "updates": self.updates, "images": self.images, "steps": self.steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.p = state["p"].to(self.device).clone()
        self.sign_sum = state["sign_sum"].to(self.device).clone()
        self.updates, self.images, self.steps = int(state["updates"]), int(state["images"]), int(state["steps"])


def ada_for_config(cfg: Any, device: torch.device, total_images: int | None = None,
                   mean: Callable[[Tensor], Tensor] | None = None) -> AdaptiveAugment | None:
    """The ADA a Config asks for (None with --ada none); `total_images`, the run's, sets the
    automatic length (ADA's 500k when not known)."""
    ops = parse_ada_ops(cfg.ada)
    if not ops:
        return None
    length = cfg.ada_length if cfg.ada_length is not None else auto_length(total_images)
    return AdaptiveAugment(ops, device, fixed_p=cfg.ada_p, target=cfg.ada_target, length=length,
                           interval=cfg.ada_interval, mean=mean)
