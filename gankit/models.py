"""The glue between a Config and the networks: which NetSpec it means, and its latent noise."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from gankit.config import Config
from gankit.nets import NetSpec


def net_spec(cfg: Config, image_shape: tuple[int, int, int], num_classes: int = 0) -> NetSpec:
    """The network description a config asks for, for images of `image_shape` (C, H, W) with
    labels in [0, num_classes) (used only when the config asks for conditioning)."""
    return NetSpec(arch=cfg.arch, image_shape=tuple(image_shape), latent_dim=cfg.latent_dim,
                   g_widths=tuple(cfg.g_widths), d_widths=tuple(cfg.d_widths), width=cfg.width,
                   g_batchnorm=cfg.g_batchnorm, bn_momentum=cfg.bn_momentum, bn_eps=cfg.bn_eps,
                   d_dropout=cfg.d_dropout, init=cfg.init, num_classes=num_classes,
                   conditioning=cfg.conditioning, spectral_norm=cfg.spectral_norm)


def sample_latent(n: int, dim: int, dist: str, device: torch.device | str = "cpu",
                  generator: torch.Generator | None = None) -> Tensor:
    """n latent vectors: N(0, I) or U(-1, 1)^dim."""
    if dist == "uniform":
        return torch.rand(n, dim, device=device, generator=generator) * 2 - 1
    return torch.randn(n, dim, device=device, generator=generator)


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
    from gankit.images import to_uint8

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


def pick_device(name: str) -> torch.device:
    """"auto" -> CUDA if present, then Apple's MPS, else the CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        from gankit.errors import UserError
        raise UserError("--device cuda: this PyTorch build sees no CUDA GPU; use --device cpu or auto")
    return torch.device(name)


def steps_for_epochs(epochs: float, batches_per_epoch: int, d_steps: int) -> int:
    """G updates that make D see the data `epochs` times (each D update takes one real batch)."""
    return max(1, math.ceil(epochs * batches_per_epoch / d_steps))
