"""GAN losses as pure functions of D's logits (and, for WGAN-GP and R1, of D itself for the penalty).

D always returns raw logits; the seeds' final sigmoid lives here, inside the numerically stable
`binary_cross_entropy_with_logits` / `softplus`. Targets are tensors so that label smoothing and
label flips are just other target values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor


def bce_real(real_logits: Tensor, target: Tensor) -> Tensor:
    """D's cross-entropy on real images (target 1, or 0.98 with seed 002's smoothing)."""
    return F.binary_cross_entropy_with_logits(real_logits, target)


def bce_fake(fake_logits: Tensor, target: Tensor) -> Tensor:
    """D's cross-entropy on G's images (target 0)."""
    return F.binary_cross_entropy_with_logits(fake_logits, target)


def nonsaturating_g_loss(fake_logits: Tensor) -> Tensor:
    """-log D(G(z)): G's target is "real" (what every seed does in code)."""
    return F.softplus(-fake_logits).mean()


def minimax_g_loss(fake_logits: Tensor) -> Tensor:
    """log(1 - D(G(z))), the loss of Goodfellow et al.'s minimax game; its gradient vanishes when D wins."""
    return -F.softplus(fake_logits).mean()


def lsgan_term(logits: Tensor, target: Tensor) -> Tensor:
    """Least squares (Mao et al.; seed 003): 1/2 E[(D(x) - target)^2], for real and fake alike."""
    return 0.5 * ((logits - target) ** 2).mean()


def lsgan_g_loss(fake_logits: Tensor) -> Tensor:
    """1/2 E[(D(G(z)) - 1)^2]."""
    return 0.5 * ((fake_logits - 1.0) ** 2).mean()


def wgan_real(real_logits: Tensor, target: Tensor) -> Tensor:
    """The critic's -E[D(x)]; WGAN has no labels, so the target is ignored."""
    return -real_logits.mean()


def wgan_fake(fake_logits: Tensor, target: Tensor) -> Tensor:
    """The critic's E[D(G(z))]."""
    return fake_logits.mean()


def wgan_g_loss(fake_logits: Tensor) -> Tensor:
    """G's -E[D(G(z))]: raise the critic's score of its images."""
    return -fake_logits.mean()


def hinge_real(real_logits: Tensor, target: Tensor) -> Tensor:
    """Hinge loss (Lim & Ye 2017; SNGAN, BigGAN): D's E[relu(1 - D(x))]. No labels: target ignored.

    D stops pushing a real image once its logit passes +1, so the logits stay in a margin
    instead of growing without bound as the cross-entropy's do.
    """
    return F.relu(1.0 - real_logits).mean()


def hinge_fake(fake_logits: Tensor, target: Tensor) -> Tensor:
    """D's E[relu(1 + D(G(z)))]: zero once a fake's logit is below -1. The target is ignored."""
    return F.relu(1.0 + fake_logits).mean()


def hinge_g_loss(fake_logits: Tensor) -> Tensor:
    """G's -E[D(G(z))], the same as WGAN's (the hinge is on D's side only)."""
    return -fake_logits.mean()


def gradient_penalty(d: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor, generator: torch.Generator | None = None
                     ) -> Tensor:
    """WGAN-GP: E[(||grad_x D(x_hat)||_2 - 1)^2] on random interpolates of real and fake.

    create_graph=True so that the penalty's own gradient reaches D's weights.
    """
    alpha = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype,
                       generator=generator)
    mixed = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    out = d(mixed)
    (grad,) = torch.autograd.grad(out.sum(), mixed, create_graph=True)
    norms = grad.flatten(1).norm(2, dim=1)
    return ((norms - 1) ** 2).mean()


def r1_penalty(d_out_real: Tensor, real: Tensor) -> Tensor:
    """R1 (Mescheder et al. 2018): E_x ||grad_x D(x)||^2 on real images only.

    `d_out_real` are D's logits [N] for `real`, and `real` must have had `requires_grad_(True)`
    before that forward pass (the gradient is taken back through it, not by a second pass).
    The graph is kept (create_graph=True) so that the penalty's own gradient reaches D's
    weights. Returns the plain mean; the caller scales it as StyleGAN2 does,
    loss_D += gamma / 2 * k * r1_penalty(...), where k is the lazy interval (the penalty is
    computed only every k-th D step, so it is weighted k times to keep its average strength).
    D must treat the images of a batch independently (no BatchNorm in D in train mode),
    since the gradient of the summed logits is taken.
    """
    if not real.requires_grad:
        raise ValueError("r1_penalty needs real.requires_grad_(True) set before D's forward pass")
    (grad,) = torch.autograd.grad(d_out_real.sum(), real, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()


@dataclass(frozen=True)
class Loss:
    """A loss family. D's loss is real_term + fake_term (kept apart so D can also be updated on the
    two halves separately, as Keras code does); G's loss; how to read D's output."""

    name: str
    real_term: Callable[[Tensor, Tensor], Tensor]
    fake_term: Callable[[Tensor, Tensor], Tensor]
    g_loss: Callable[[Tensor], Tensor]
    # D's output as a number a person reads: a probability for cross-entropy, the raw score otherwise.
    readout: Callable[[Tensor], Tensor]
    # D calls an image real when readout > threshold.
    threshold: float
    gradient_penalty: bool = False

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor, real_target: Tensor, fake_target: Tensor) -> Tensor:
        return self.real_term(real_logits, real_target) + self.fake_term(fake_logits, fake_target)


def _identity(x: Tensor) -> Tensor:
    return x


LOSSES: dict[str, Loss] = {
    "bce": Loss("bce", bce_real, bce_fake, nonsaturating_g_loss, torch.sigmoid, 0.5),
    "minimax": Loss("minimax", bce_real, bce_fake, minimax_g_loss, torch.sigmoid, 0.5),
    "lsgan": Loss("lsgan", lsgan_term, lsgan_term, lsgan_g_loss, _identity, 0.5),
    "wgan-gp": Loss("wgan-gp", wgan_real, wgan_fake, wgan_g_loss, _identity, 0.0, gradient_penalty=True),
    # The hinge's margins sit at -1 and +1 around a decision boundary at 0: D calls logit > 0 real.
    "hinge": Loss("hinge", hinge_real, hinge_fake, hinge_g_loss, _identity, 0.0),
}
