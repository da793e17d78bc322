"""LeCam regularisation (Tseng et al. 2021): D's outputs kept near the moving anchors of each other.

    R = E[relu(D(x_real) - a_fake)^2] + E[relu(a_real - D(G(z)))^2]

a_real and a_fake are exponential moving averages (decay 0.99) of D's mean logits on real and on
G's images. Where D starts to win, its logits on the two sides drift apart without bound; R pulls
each side back towards the other's average, which Tseng et al. show bounds a LeCam divergence
and keeps D from memorising a small training set (ImageNet at 10%, BigGAN: FID 43.0 -> 27.5).
It costs no extra pass through D: the logits of D's own update are reused. The anchors are
training state: they go into every checkpoint, so a resumed run continues them exactly.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor

ANCHOR_DECAY = 0.99  # Tseng et al.'s and StudioGAN's


class LeCamAnchors:
    """The two anchors, on the device; `mean` averages a tensor over the processes that train the
    run (gankit.training.distributed.Dist.mean), so every process holds the same anchors."""

    def __init__(self, device: torch.device, *, decay: float = ANCHOR_DECAY,
                 mean: Callable[[Tensor], Tensor] | None = None):
        self.decay, self.mean = decay, mean or (lambda t: t)
        self.real = torch.zeros((), device=device)
        self.fake = torch.zeros((), device=device)

    def penalty(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        """Moves the anchors with this update's logits, then returns R for them (with gradients
        through the logits, none through the anchors)."""
        with torch.no_grad():
            means = self.mean(torch.stack([real_logits.mean(), fake_logits.mean()]).float())
            self.real = self.decay * self.real + (1 - self.decay) * means[0]
            self.fake = self.decay * self.fake + (1 - self.decay) * means[1]
        return F.relu(real_logits - self.fake).pow(2).mean() + F.relu(self.real - fake_logits).pow(2).mean()

    def state_dict(self) -> dict[str, Any]:
        return {"real": self.real.detach().clone(), "fake": self.fake.detach().clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.real = state["real"].to(self.real.device).clone()
        self.fake = state["fake"].to(self.fake.device).clone()
