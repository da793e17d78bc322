"""Latent noise and G run over it: drawing z, truncating it, walking between two latents, drawing
images in batches, and the labels of a class-per-row sample grid."""

from __future__ import annotations

import torch
from torch import Tensor

from gankit.errors import UserError
from gankit.images import to_uint8


def sample_latent(n: int, dim: int, dist: str, device: torch.device | str = "cpu",
                  generator: torch.Generator | None = None) -> Tensor:
    """n latent vectors: N(0, I) or U(-1, 1)^dim."""
    if dist == "uniform":
        return torch.rand(n, dim, device=device, generator=generator) * 2 - 1
    return torch.randn(n, dim, device=device, generator=generator)


def check_truncation(psi: float, flag: str = "--truncation") -> float:
    """psi as a float in [0, 1], or a UserError naming `flag`: 1 leaves z as drawn, 0 gives every
    latent the prior's mean."""
    try:
        value = float(psi)
    except (TypeError, ValueError):
        raise UserError(f"{flag} {psi!r}: give a number between 0 and 1 (1 = no truncation)") from None
    if not 0.0 <= value <= 1.0:  # also refuses NaN
        raise UserError(f"{flag} {psi}: give a number between 0 and 1 (1 = no truncation, 0.7 a common choice)")
    return value


def truncate(z: Tensor, psi: float) -> Tensor:
    """The truncation trick: z pulled toward the prior's mean, mean + psi * (z - mean).

    Both priors gankit draws from have mean 0, so this is z * psi: for N(0, I) it is StyleGAN's
    psi (toward the mean latent; no net here has a mapping network whose mean would differ from
    z's), and for U(-1, 1) it shrinks the cube toward its centre, so truncated latents stay inside
    the support G was trained on. A class-conditional G keeps its class input as given: only z is
    pulled, toward the same mean for every class. psi = 1 returns z itself (the same bits).
    """
    psi = check_truncation(psi)
    return z if psi == 1.0 else z * psi


def interpolate_latents(a: Tensor, b: Tensor, steps: int, dist: str) -> Tensor:
    """[len(a), steps, dim] points from a to b: spherical for Gaussian noise (it keeps the norm
    typical of the prior, so middle frames are not washed out), straight lines for uniform."""
    t = torch.linspace(0, 1, steps, device=a.device).view(1, steps, 1)
    a_, b_ = a.unsqueeze(1), b.unsqueeze(1)
    if dist == "uniform":
        return a_ + (b_ - a_) * t
    cos = (torch.nn.functional.normalize(a, dim=1) * torch.nn.functional.normalize(b, dim=1)).sum(1)
    omega = torch.arccos(cos.clamp(-1 + 1e-7, 1 - 1e-7)).view(-1, 1, 1)
    so = torch.sin(omega)
    out = torch.sin((1 - t) * omega) / so * a_ + torch.sin(t * omega) / so * b_
    # Nearly parallel vectors: slerp's formula is 0/0 there, and a straight line is the same path.
    parallel = (omega.abs() < 1e-4).expand_as(out)
    return torch.where(parallel, a_ + (b_ - a_) * t, out)


@torch.no_grad()
def generate(g: torch.nn.Module, z: Tensor, device: torch.device | str, batch_size: int = 500,
             y: Tensor | None = None) -> Tensor:
    """uint8 images [N, C, H, W] on the CPU for latents z (and class labels y, for a conditional
    G), drawn in batches with G in eval mode (BatchNorm's running statistics, as the seeds' preview
    code does); G's mode is restored."""
    was_training = g.training
    g.eval()
    labels = y.split(batch_size) if y is not None else [None] * len(z.split(batch_size))
    try:
        out = [to_uint8(g(chunk.to(device)) if yc is None else g(chunk.to(device), yc.to(device))).cpu()
               for chunk, yc in zip(z.split(batch_size), labels)]
    finally:
        g.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.uint8)


def class_row_length(n: int, num_classes: int) -> int:
    """Images per row of a grid of at most n images with a class per row."""
    return max(1, n // num_classes)


def grid_labels(n: int, num_classes: int) -> Tensor | None:
    """Labels for a sample grid of at most n images with class k on row k, every row full: 10 classes
    and n = 64 give 10 rows of 6 (60 images); fewer images than classes give one row per image.
    None for an unconditional G (which draws all n)."""
    if num_classes <= 0:
        return None
    per_row = class_row_length(n, num_classes)
    rows = min(num_classes, n // per_row)
    return torch.arange(rows).repeat_interleave(per_row)
