"""Real batches for D: the dataset on the device once, served by index from a per-epoch permutation,
so the loop never waits on a DataLoader. The permutation and its position are part of the training
state (gankit.state.Progress), so a resumed run draws the same batches."""

from __future__ import annotations

import torch
from torch import Tensor

from gankit.data import ImageSet
from gankit.distributed import Dist
from gankit.images import to_float
from gankit.state import Progress


class RealBatches:
    """This process's share of every global batch of real images (and labels, for a conditional run)."""

    def __init__(self, data: ImageSet, device: torch.device, dist: Dist, batch: int, global_batch: int,
                 conditional: bool):
        self.size, self.device, self.rank = len(data), device, dist.rank
        self.batch, self.global_batch = batch, global_batch
        self.images = data.images.to(device)  # once, for the whole run
        self.labels = data.labels.to(device) if conditional else None

    def next(self, progress: Progress, rng: torch.Generator) -> tuple[Tensor, Tensor | None]:
        """Rank r's slice of the next global batch of the epoch's permutation: every rank draws the
        same permutation and takes the r-th `batch` images of each global batch."""
        p, b, n = progress, self.batch, self.global_batch
        if p.permutation is None or p.position + n > len(p.permutation):
            if p.permutation is not None:
                p.epoch += 1
            p.permutation = torch.randperm(self.size, generator=rng)
            p.position = 0
        start = p.position + self.rank * b
        idx = p.permutation[start:start + b].to(self.device)
        p.position += n
        p.images_seen += n
        labels = self.labels.index_select(0, idx) if self.labels is not None else None
        return to_float(self.images.index_select(0, idx)), labels

    def epoch_ends_after(self, progress: Progress) -> bool:
        """Whether the next batch would not fit in this epoch (look ahead, so the grid is drawn now)."""
        return progress.position + self.global_batch > self.size
