"""D's overfitting signal: how much more often D calls training images real than unseen ones.

ADA (Karras et al. 2020) watches the gap between D's outputs on training and on held-out real
images: while D generalises, both sets look alike to it; when it starts memorising the training
set, it keeps accepting training images and begins to reject unseen ones. Early in a run, or on a
large dataset, the gap stays near 0.

At each log line D judges a fixed set of training images and an equal set of held-out images in
one call (so BatchNorm, if D has it, normalises them together), without gradients, without
augmentation or instance noise, and with D's BatchNorm statistics left as they were. The gap is
the share of training images D calls real minus the share of held-out images it calls real.

Held-out images come from the dataset's test split when it has one and the run does not train on
it (nothing changes for training), else from `--holdout N` training images set aside before
training. Without either the signal is not measured.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gankit.data import ImageSet
from gankit.images import to_float

PROBE_SIZE = 256  # images per side: a share's standard error is at most 0.03 at this size


def split_holdout(data: ImageSet, n: int, seed: int) -> tuple[ImageSet, ImageSet]:
    """(training images, `n` held-out images), drawn by a seeded permutation."""
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed + 7))
    held, kept = order[:n].sort().values, order[n:].sort().values

    def subset(idx: Tensor) -> ImageSet:
        labels = data.labels[idx] if data.labels is not None else None
        return ImageSet(images=data.images[idx], labels=labels, name=data.name, source=data.source,
                        class_names=data.class_names)

    return subset(kept), subset(held)


class HeldOutProbe:
    """D's accuracy on fixed training and held-out real images, and their gap."""

    def __init__(self, train: ImageSet, held: ImageSet, seed: int, device: torch.device, *, conditional: bool):
        n = min(PROBE_SIZE, len(train), len(held))
        rng = torch.Generator().manual_seed(seed + 11)
        pick_train = torch.randperm(len(train), generator=rng)[:n]
        pick_held = torch.randperm(len(held), generator=rng)[:n]
        self.images = torch.cat([train.images[pick_train], held.images[pick_held]]).to(device)
        # Labels only for a class-conditional D, which takes them as its second argument.
        labelled = conditional and train.labels is not None and held.labels is not None
        self.labels = torch.cat([train.labels[pick_train], held.labels[pick_held]]).to(device) if labelled else None
        self.n = n

    @torch.no_grad()
    def measure(self, d: nn.Module, threshold: float) -> dict[str, float]:
        """{"d_acc_train_probe", "d_acc_heldout", "d_heldout_gap"} for D as it is now."""
        buffers = {name: b.clone() for name, b in d.named_buffers()}  # BatchNorm statistics stay as they were
        x = to_float(self.images)
        # D's dropout draws from the training RNG: fork it, so that a resumed run (which measures at
        # other steps when it was stopped between log lines) draws the same numbers as a straight one.
        with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
            out = d(x) if self.labels is None else d(x, self.labels)
        for name, b in d.named_buffers():
            b.copy_(buffers[name])
        logits = (out[0] if isinstance(out, tuple) else out).float().reshape(-1)
        judged_real = (logits > threshold).float()
        train_acc, held_acc = judged_real[:self.n].mean().item(), judged_real[self.n:].mean().item()
        return {"d_acc_train_probe": train_acc, "d_acc_heldout": held_acc, "d_heldout_gap": train_acc - held_acc}
