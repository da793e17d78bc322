"""Principal directions of a generator's latent space, for the page's sliders (GANSpace).

GANSpace (Härkönen et al. 2020) takes the PCA of latents mapped through G's first layer and
moves z along the directions that explain most of that layer's variance. Every G in gankit
starts with a layer linear in z (a Linear layer, or dcgan's transposed conv on a 1x1 map): h =
W z + b. For a prior with isotropic covariance (N(0, I), or U(-1, 1) at 1/3 per axis) the
covariance of h is proportional to W W^T, so its principal components are exactly W's left
singular vectors, and the z directions that produce them are W's right singular vectors. They
are computed here in closed form, which is the PCA of infinitely many samples, not an estimate.
A G without such a layer gets the PCA of sampled z itself (for an isotropic prior these are
arbitrary orthogonal directions: the sliders still move through the space, just not along
directions that mean more than others).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

MAX_DIRECTIONS = 8  # sliders on the page: the first few carry most of the variance
FALLBACK_SAMPLES = 2000


@dataclass
class Directions:
    """Unit vectors in z space [k, latent_dim], the share of variance each explains, and how
    they were found ("first layer" or "z")."""

    vectors: Tensor
    explained: list[float]
    method: str


def first_layer_weight(g: nn.Module) -> Tensor | None:
    """W [features, latent_dim]: the part of G's first layer that multiplies z, or None when
    G's first weighted layer is not linear in z. A one-hot conditional G takes [z, one_hot(y)]:
    the label's columns only shift the bias, so they are left out."""
    latent_dim, classes = int(g.latent_dim), int(getattr(g, "num_classes", 0) or 0)
    for module in g.modules():
        if isinstance(module, nn.Linear):
            weight = module.weight
        elif isinstance(module, nn.ConvTranspose2d):  # on z as a 1x1 map: each output pixel is linear in z
            weight = module.weight.flatten(1).T
        elif isinstance(module, (nn.Conv2d, nn.Embedding)):
            return None
        else:
            continue
        if weight.shape[1] in (latent_dim, latent_dim + classes):
            return weight[:, :latent_dim].detach().float().cpu()
        return None
    return None


def principal_directions(g: nn.Module, latent_dist: str, k: int = MAX_DIRECTIONS) -> Directions:
    """The first k principal directions of G's latent space, strongest first. Signs are fixed
    (largest component positive) so the same weights always give the same sliders."""
    k = max(1, min(k, int(g.latent_dim)))
    weight = first_layer_weight(g)
    if weight is not None:
        _, s, vh = torch.linalg.svd(weight, full_matrices=False)
        variance, vectors, method = s ** 2, vh, "first layer"
    else:
        rng = torch.Generator().manual_seed(0)
        z = (torch.rand(FALLBACK_SAMPLES, g.latent_dim, generator=rng) * 2 - 1 if latent_dist == "uniform"
             else torch.randn(FALLBACK_SAMPLES, g.latent_dim, generator=rng))
        _, s, vh = torch.linalg.svd(z - z.mean(0), full_matrices=False)
        variance, vectors, method = s ** 2, vh, "z"
    vectors = vectors[:k].clone()
    flip = vectors.gather(1, vectors.abs().argmax(1, keepdim=True)).sign()
    vectors *= torch.where(flip == 0, torch.ones_like(flip), flip)
    share = (variance / variance.sum())[:k]
    return Directions(vectors, [round(float(v), 4) for v in share], method)


def prior_std(latent_dist: str) -> float:
    """One slider unit: the prior's standard deviation along any direction (U(-1, 1): 1/sqrt(3))."""
    return 3 ** -0.5 if latent_dist == "uniform" else 1.0
