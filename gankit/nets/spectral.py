"""Spectral normalisation (Miyato et al. 2018) for any discriminator.

Every weight W of D's conv, linear and embedding layers is replaced by W / sigma(W), sigma its
largest singular value, which bounds each layer's Lipschitz constant by 1 and keeps D smooth.
This uses PyTorch's parametrization API (torch.nn.utils.parametrizations.spectral_norm), not
the older hook API: the normalised weight is recomputed on access, the power-iteration vectors
u and v are buffers in the state_dict, and the module survives state_dict round trips and
copy.deepcopy. In train mode each forward pass runs one power iteration to refine sigma;
in eval mode sigma is frozen.
"""

from __future__ import annotations

from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import _SpectralNorm, spectral_norm

SPECTRAL_LAYERS = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)


def apply_spectral_norm(module: nn.Module) -> nn.Module:
    """Spectrally normalise the weight of every layer of `module` in SPECTRAL_LAYERS, in place;
    returns `module`. Layers already normalised are left alone, so calling it twice is harmless.

    Apply it after initialising the weights: re-initialising `layer.weight` afterwards would
    write into the computed (normalised) tensor, not the stored one, and change nothing.
    BatchNorm layers are not touched.
    """
    for layer in list(module.modules()):
        if isinstance(layer, SPECTRAL_LAYERS) and not is_spectral_normalised(layer):
            spectral_norm(layer)
    return module


def is_spectral_normalised(layer: nn.Module) -> bool:
    """Whether `layer`'s weight goes through a spectral-norm parametrization."""
    if not parametrize.is_parametrized(layer, "weight"):
        return False
    return any(isinstance(p, _SpectralNorm) for p in layer.parametrizations.weight)
