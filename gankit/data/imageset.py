"""The in-memory dataset every reader returns."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch


@dataclass
class ImageSet:
    """A whole dataset held as one uint8 tensor, plus optional integer labels.

    ``images`` is uint8 ``[N, C, H, W]`` with C in {1, 3, 4} (4 = RGBA, from ``--alpha keep``);
    ``labels`` is int64 ``[N]`` or None. ``mmap_file`` names the prepared ``.npy`` file that
    ``images`` is memory-mapped from (its pages are read from disk on use), else None: the
    images are in memory. Whoever replaces ``images`` with a copy sets it back to None.
    Labels keep the values of the source (a class filter does not renumber them), so
    ``num_classes`` is the size of the source's label space, not the number of labels present.
    """

    images: torch.Tensor
    labels: torch.Tensor | None
    name: str
    source: str
    class_names: list[str] | None = None
    mmap_file: str | None = None

    def __post_init__(self) -> None:
        # These are programming errors in a reader, not user mistakes: fail loudly here rather
        # than in a training loop far away.
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(
                f"ImageSet.images must be uint8 [N, C, H, W], got {self.images.dtype} "
                f"{tuple(self.images.shape)}"
            )
        if self.images.shape[1] not in (1, 3, 4):
            raise ValueError(f"ImageSet.images must have 1, 3 or 4 channels, got {self.images.shape[1]}")
        self.images = self.images.contiguous()
        if self.labels is not None:
            if self.labels.dim() != 1 or len(self.labels) != len(self.images):
                raise ValueError(
                    f"ImageSet.labels must be [N] with N={len(self.images)}, "
                    f"got {tuple(self.labels.shape)}"
                )
            self.labels = self.labels.to(torch.int64).contiguous()

    def __len__(self) -> int:
        """Number of images."""
        return int(self.images.shape[0])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """Shape of one image, ``(C, H, W)``."""
        c, h, w = self.images.shape[1:]
        return int(c), int(h), int(w)

    @property
    def num_classes(self) -> int:
        """Size of the label space: 0 without labels, else len(class_names) or max label + 1."""
        if self.labels is None:
            return 0
        if self.class_names is not None:
            return len(self.class_names)
        return int(self.labels.max().item()) + 1 if len(self.labels) else 0

    def to(self, device: torch.device | str) -> ImageSet:
        """Return a copy whose images and labels live on ``device`` (moved once, here)."""
        labels = None if self.labels is None else self.labels.to(device)
        images = self.images.to(device)
        return dataclasses.replace(self, images=images, labels=labels,
                                   mmap_file=self.mmap_file if images is self.images else None)
