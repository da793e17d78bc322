"""How D judges a step's batches: all of them in one call, or one call each.

A D without BatchNorm treats every image of a batch on its own, so real and fake images can go
through it together: one large product instead of two half-sized ones, and the gradient penalties
of both halves from one backward pass. A D with BatchNorm must see them apart (each batch is
normalised by its own statistics, as every seed does). The step picks one of the two when it is
built and then calls `judge` and `penalties` the same way whichever it holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from gankit.training.losses import squared_gradient_norms, zero_centred_penalty

# (images, labels or None) -> (D's logits, an ACGAN D's class logits or None), float32
Judge = Callable[[Tensor, "Tensor | None"], "tuple[Tensor, Tensor | None]"]


@dataclass
class Judged:
    """D's verdict on a step's batches, in the order they were given: each batch's logits and class
    logits (None without ACGAN), and the images they were judged on (leaves that require grad
    where a penalty asked for it). `together` holds the joined call's logits and images, if any."""

    logits: list[Tensor]
    class_logits: list[Tensor | None]
    images: list[Tensor]
    together: tuple[Tensor, Tensor] | None = None


class OneCall:
    """Every batch through D in one call."""

    def judge(self, d: Judge, batches: list[tuple[Tensor, Tensor | None]], grad_of: tuple[bool, ...] = ()
              ) -> Judged:
        """D's logits for `batches`; `grad_of[i]` asks for gradients w.r.t. batch i's images. With
        a gradient asked for, the joined batch is made a leaf (D's step judges images cut from G's
        graph): one backward pass through it gives every image its own gradient. Without, G's
        graph is kept, for G's step."""
        sizes = [x.shape[0] for x, _ in batches]
        labels = [y for _, y in batches]
        joined_y = None if any(y is None for y in labels) else torch.cat(labels)
        joined = torch.cat([x for x, _ in batches])
        if any(grad_of):
            joined = joined.detach().requires_grad_(True)
        logits, class_logits = d(joined, joined_y)
        return Judged(list(logits.split(sizes)),
                      list(class_logits.split(sizes)) if class_logits is not None else [None] * len(batches),
                      list(joined.split(sizes)), together=(logits, joined))

    @staticmethod
    def penalties(judged: Judged, wanted: tuple[bool, ...]) -> list[Tensor | None]:
        """E||grad_x D(x)||^2 over each batch whose `wanted` is set (None for the others), from one
        backward pass through the joined call."""
        logits, joined = judged.together
        norms = squared_gradient_norms(logits, joined).split([len(x) for x in judged.images])
        return [part.mean() if want else None for part, want in zip(norms, wanted)]


class CallEach:
    """Each batch through D in a call of its own, in order."""

    def judge(self, d: Judge, batches: list[tuple[Tensor, Tensor | None]], grad_of: tuple[bool, ...] = ()
              ) -> Judged:
        grad_of = tuple(grad_of) + (False,) * (len(batches) - len(grad_of))
        # detach() cuts a fake from G's graph, so the image is a leaf that may require grad
        images = [x.detach().requires_grad_(True) if want else x for (x, _), want in zip(batches, grad_of)]
        verdicts = [d(x, y) for x, (_, y) in zip(images, batches)]
        return Judged([v[0] for v in verdicts], [v[1] for v in verdicts], images)

    @staticmethod
    def penalties(judged: Judged, wanted: tuple[bool, ...]) -> list[Tensor | None]:
        """E||grad_x D(x)||^2 over each batch whose `wanted` is set, a backward pass for each."""
        return [zero_centred_penalty(logits, x) if want else None
                for logits, x, want in zip(judged.logits, judged.images, wanted)]
