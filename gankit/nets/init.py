"""Weight-initialisation schemes, each the one a tutorial's framework or paper used.

The same architecture trains differently under different inits, so a preset that ports a
tutorial names the tutorial's scheme rather than inheriting PyTorch's defaults.
"""

from __future__ import annotations

from torch import nn

from gankit.errors import UserError

INIT_SCHEMES = ("pytorch", "keras", "xavier", "dcgan")

_WEIGHTED = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)
_BATCHNORM = (nn.BatchNorm1d, nn.BatchNorm2d)


def init_weights(module: nn.Module, scheme: str) -> None:
    """Re-initialise every layer of `module` in place with `scheme` (one of INIT_SCHEMES).

    - "pytorch": leave PyTorch's defaults (kaiming-uniform weights, uniform biases).
    - "keras": what Keras/TF layers do by default (seeds 000, 001, 004): glorot_uniform
      weights and zero biases on dense/conv/transposed-conv layers, BatchNorm weight 1, bias 0.
    - "xavier": what the CS231n GAN notebook does (seed 003): xavier_uniform_ on the weights
      of Linear and ConvTranspose2d only; biases and Conv2d layers keep PyTorch's defaults.
    - "dcgan": Radford et al. 2015, as in pytorch/examples dcgan: conv, transposed-conv and
      linear weights N(0, 0.02), BatchNorm weight N(1, 0.02) and bias 0.

    Embeddings and BatchNorms without their own weight (class-conditional BN, whose per-class
    gain and bias start at 1 and 0) keep what their net gave them.
    """
    if scheme not in INIT_SCHEMES:
        raise UserError(f"unknown --init {scheme!r}; choose one of {', '.join(INIT_SCHEMES)}")
    if scheme == "pytorch":
        return
    for m in module.modules():
        if scheme == "keras":
            if isinstance(m, _WEIGHTED):
                # xavier_uniform_ is glorot_uniform: its limit depends on fan_in + fan_out only,
                # so PyTorch's (out, in) weight layout gives the same distribution as Keras's.
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, _BATCHNORM) and m.affine:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        elif scheme == "xavier":
            if isinstance(m, (nn.Linear, nn.ConvTranspose2d)):
                nn.init.xavier_uniform_(m.weight)
        elif scheme == "dcgan":
            if isinstance(m, _WEIGHTED):
                nn.init.normal_(m.weight, 0.0, 0.02)
                # The paper says nothing of biases (pytorch/examples has none); PyTorch's default
                # bias, up to 1/sqrt(fan_in), would swamp the 0.02-scale weights, so zero it.
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, _BATCHNORM) and m.affine:
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)
