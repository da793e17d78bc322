"""GAN losses as pure functions of D's logits (and, for WGAN-GP, R1 and R2, of D itself for the penalty).

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


def squared_gradient_norms(d_out: Tensor, images: Tensor) -> Tensor:
    """||grad_x D(x_i)||^2 for each image x_i of `images`: [N].

    `d_out` are D's logits [N] for `images`, and `images` must have had `requires_grad_(True)`
    before that forward pass (the gradient is taken back through it, not by a second pass).
    The gradient of the summed logits is taken, so D must treat the images of a batch
    independently (no BatchNorm in D in train mode); a batch of real and fake images judged in
    one call then gives each image its own gradient, and both penalties come from one backward
    pass. The graph is kept (create_graph=True) so that a penalty's own gradient reaches D's
    weights.
    """
    if not images.requires_grad:
        raise ValueError("the gradient penalty needs images.requires_grad_(True) set before D's forward pass")
    (grad,) = torch.autograd.grad(d_out.sum(), images, create_graph=True)
    return grad.pow(2).flatten(1).sum(1)


def zero_centred_penalty(d_out: Tensor, images: Tensor) -> Tensor:
    """E_x ||grad_x D(x)||^2: R1 on real images (Mescheder et al. 2018), R2 on G's (R3GAN, Huang
    et al. 2024, uses both with the same gamma).

    Returns the plain mean; the caller scales it as StyleGAN2 does,
    loss_D += gamma / 2 * k * penalty, where k is the lazy interval (the penalty is computed
    only every k-th D step, so it is weighted k times to keep its average strength). R2 on G's
    images takes them detached from G (D's step does not train G) but with requires_grad set.
    """
    return squared_gradient_norms(d_out, images).mean()


# The same penalty on the two halves of D's batch; the names say which half.
r1_penalty = zero_centred_penalty
r2_penalty = zero_centred_penalty


def relativistic_pair_loss(should_win: Tensor, should_lose: Tensor) -> Tensor:
    """RpGAN (Jolicoeur-Martineau 2019; R3GAN's loss): E_i[f(D(loser_i) - D(winner_i))] with
    f(t) = softplus(t) = log(1 + e^t), the i-th logit of each side judged against the i-th of the
    other. D's loss is this with reals to win over fakes; G's, with the roles swapped.

    Only the difference of a pair counts, so D cannot lower its loss by scoring every image
    higher or lower, and each fake is pushed just past its own real partner, which is what
    Huang et al. find to remove the mode dropping of the non-saturating loss.
    """
    return F.softplus(should_lose - should_win).mean()


@dataclass(frozen=True)
class Loss:
    """A loss family. D's loss is real_term + fake_term (kept apart so D can also be updated on the
    two halves separately, as Keras code does); G's loss; how to read D's output.

    A relativistic loss (`pair_loss` set) judges the i-th real and the i-th fake together and
    cannot be split: real_term, fake_term and g_loss are None, D's loss is
    pair_loss(real, fake) and G's pair_loss(fake, real), so G's step needs D's logits on a real
    batch too. `d_loss` and `generator_loss` serve both kinds.
    """

    name: str
    real_term: Callable[[Tensor, Tensor], Tensor] | None
    fake_term: Callable[[Tensor, Tensor], Tensor] | None
    g_loss: Callable[[Tensor], Tensor] | None
    # D's output as a number a person reads: a probability for cross-entropy, the raw score otherwise.
    readout: Callable[[Tensor], Tensor]
    # D calls an image real when readout > threshold.
    threshold: float
    gradient_penalty: bool = False
    # (logits that should win, logits that should lose) -> loss, pairing them by index.
    pair_loss: Callable[[Tensor, Tensor], Tensor] | None = None

    @property
    def relativistic(self) -> bool:
        return self.pair_loss is not None

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor, real_target: Tensor, fake_target: Tensor) -> Tensor:
        if self.pair_loss is not None:  # no labels: the targets are ignored
            return self.pair_loss(real_logits, fake_logits)
        return self.real_term(real_logits, real_target) + self.fake_term(fake_logits, fake_target)

    def generator_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        """G's loss; `real_logits`, D's logits on the reals paired with the fakes, only a
        relativistic loss needs (and it must have them)."""
        if self.pair_loss is None:
            return self.g_loss(fake_logits)
        if real_logits is None:
            raise ValueError(f"--loss {self.name} judges each fake against a real image: pass D's logits on a "
                             f"real batch as real_logits")
        return self.pair_loss(fake_logits, real_logits)


def _identity(x: Tensor) -> Tensor:
    return x


LOSSES: dict[str, Loss] = {
    "bce": Loss("bce", bce_real, bce_fake, nonsaturating_g_loss, torch.sigmoid, 0.5),
    "minimax": Loss("minimax", bce_real, bce_fake, minimax_g_loss, torch.sigmoid, 0.5),
    "lsgan": Loss("lsgan", lsgan_term, lsgan_term, lsgan_g_loss, _identity, 0.5),
    "wgan-gp": Loss("wgan-gp", wgan_real, wgan_fake, wgan_g_loss, _identity, 0.0, gradient_penalty=True),
    # The hinge's margins sit at -1 and +1 around a decision boundary at 0: D calls logit > 0 real.
    "hinge": Loss("hinge", hinge_real, hinge_fake, hinge_g_loss, _identity, 0.0),
    # D's logits are raw scores whose differences matter; > 0 keeps d_acc and r_t meaning "called real".
    "rpgan": Loss("rpgan", None, None, None, _identity, 0.0, pair_loss=relativistic_pair_loss),
}
