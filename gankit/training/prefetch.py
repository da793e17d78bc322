"""Batches gathered on the host (from RAM or a memory-mapped file) and copied to the device, the next
one while the current one trains.

The caller says which batch comes next (`ahead`) and asks for each batch it serves (`take`); a
batch fetched ahead is used only when it is the one asked for, keyed by the permutation tensor
itself (held, so its identity cannot pass to another tensor) and the start index. So a rollback
or a resume, which put another permutation or position in place, just get their batch gathered
then: what is served never depends on what was fetched ahead.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

import torch
from torch import Tensor


class HostGather:
    """uint8 images [N, C, H, W] in host memory, served by index on `device`."""

    def __init__(self, images: Tensor, device: torch.device):
        self.images, self.device = images, device
        self.cuda = device.type == "cuda"
        # Copies run on their own stream so that they overlap the training kernels of the default one.
        self.stream = torch.cuda.Stream(device) if self.cuda else None
        self._pool: ThreadPoolExecutor | None = None
        self._ahead: tuple[Tensor, int, Future] | None = None

    def take(self, permutation: Tensor, start: int, size: int) -> Tensor:
        """Images `permutation[start:start + size]` on the device, ready for the current stream."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead[0] is permutation and ahead[1] == start:
            batch, ready = ahead[2].result()
        else:  # nothing ahead, or not this batch: an epoch began, a rollback, a resume
            batch, ready = self._load(permutation[start:start + size])
        if ready is not None:
            stream = torch.cuda.current_stream(self.device)
            stream.wait_event(ready)
            batch.record_stream(stream)  # made on the copy stream, used on this one
        return batch

    def ahead(self, permutation: Tensor, start: int, size: int) -> None:
        """Start gathering `permutation[start:start + size]` in the background, for the next `take`."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gankit-batches")
        self._ahead = (permutation, start, self._pool.submit(self._load, permutation[start:start + size]))

    def close(self) -> None:
        """Drop what was fetched ahead and end the background thread (a later `ahead` starts another)."""
        self._ahead = None
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def _load(self, idx: Tensor) -> tuple[Tensor, torch.cuda.Event | None]:
        """(the batch on the device, the event its copy completes at on CUDA, else None)."""
        if not self.cuda:
            # numpy's gather, not torch's: a torch op in this thread would start a second OpenMP team
            # whose threads spin beside the training ones (on 2 cores: a sixth of the speed lost).
            return torch.from_numpy(self.images.numpy().take(idx.numpy(), axis=0)), None
        # Gathered straight into pinned memory, the copy is asynchronous; the caching host allocator
        # does not hand this buffer out again until the copy that reads it has finished.
        pinned = torch.empty((len(idx), *self.images.shape[1:]), dtype=self.images.dtype, pin_memory=True)
        torch.index_select(self.images, 0, idx, out=pinned)
        with torch.cuda.stream(self.stream):
            batch = pinned.to(self.device, non_blocking=True)
            ready = torch.cuda.Event()
            ready.record(self.stream)
        return batch, ready
