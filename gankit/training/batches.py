"""Real batches for D, served by index from a per-epoch permutation, so the loop never waits on a
DataLoader. The permutation and its position are part of the training state (gankit.training.state.Progress),
so a resumed run draws the same batches.

The set lives where --data-placement says (gankit.training.placement): on the device, gathered there; or in
host RAM or a memory-mapped file, gathered on the host (gankit.training.prefetch) with the next batch fetched
while the current one trains. The order, the counters and the data RNG's draws are the same whichever
serves them, so the weights after any step are too, bit for bit.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gankit.data import ImageSet
from gankit.images import to_float
from gankit.training.distributed import Dist
from gankit.training.placement import Placement, place
from gankit.training.prefetch import HostGather
from gankit.training.state import Progress


class RealBatches:
    """This process's share of every global batch of real images (and labels, for a conditional run)."""

    def __init__(self, data: ImageSet, device: torch.device, dist: Dist, batch: int, global_batch: int,
                 conditional: bool, placement: str = "device"):
        self.size, self.device, self.rank = len(data), device, dist.rank
        self.batch, self.global_batch = batch, global_batch
        self.placement: Placement = place(placement, data, device, dist.local_world_size)
        # Labels are 8 bytes an image: on the device whatever the placement.
        self.labels = data.labels.to(device) if conditional else None
        self.images: Tensor | None = None  # the set on the device ("device"), else None
        self.host: HostGather | None = None
        if self.placement.where == "device":
            self.images = data.images.to(device)  # once, for the whole run
            if data.mmap_file is not None and self.images is data.images:  # on the CPU "device" means in RAM
                self.images = data.images.clone()
        else:
            self.host = HostGather(_host_images(data, self.placement.where, device), device)

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
        idx = p.permutation[start:start + b]
        if self.host is None:
            idx = idx.to(self.device)
            images = self.images.index_select(0, idx)
        else:
            images = self.host.take(p.permutation, start, b)
        p.position += n
        p.images_seen += n
        if self.host is not None and p.position + n <= len(p.permutation):
            # The next batch of this epoch; at an epoch's end the next permutation is drawn by the
            # next call, from the data RNG, as with every placement.
            self.host.ahead(p.permutation, p.position + self.rank * b, b)
        labels = self.labels.index_select(0, idx.to(self.device)) if self.labels is not None else None
        return to_float(images), labels

    def epoch_ends_after(self, progress: Progress) -> bool:
        """Whether the next batch would not fit in this epoch (look ahead, so the grid is drawn now)."""
        return progress.position + self.global_batch > self.size

    def close(self) -> None:
        """End the background gathering, if any (a later `next` works on and starts it again)."""
        if self.host is not None:
            self.host.close()


def _host_images(data: ImageSet, where: str, device: torch.device) -> Tensor:
    """The images the host gathers batches from: the mapped file itself for "mmap"; for "host" a
    copy in RAM (pinned for CUDA, whose copies from pinned memory run asynchronously), or the
    images as they are when already in RAM."""
    if where == "mmap":
        return data.images
    if device.type == "cuda":
        return data.images.pin_memory()
    return data.images.clone() if data.mmap_file is not None else data.images
