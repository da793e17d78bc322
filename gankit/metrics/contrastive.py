"""A self-supervised feature extractor: a small CNN trained contrastively on the pictures themselves.

For picture folders without labels, where no classifier can be trained, FID and the other
feature-based scores need features that know the pictures. SimCLR's idea gives them: two random
views of each picture (``contrastive_views``) are pulled together and pushed away from the views
of the other pictures in the batch (the NT-Xent loss), so the features keep what survives cropping,
flipping and colour changes: shapes and layout. A projection head is used only in training; the
features are the encoder's ``feature_dim`` outputs, as ``EvalClassifier``'s are.

The FID scale of these features belongs to the file that made them: scores are comparable only
with scores from the same file, never with Inception FIDs from papers.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gankit.atomic import atomic_write
from gankit.data import ImageSet
from gankit.data.transforms import convert_channels
from gankit.errors import UserError
from gankit.metrics.classifier import _check_meta, conv_stages, network_input, read_weights_file
from gankit.metrics.contrastive_views import random_view

KIND = "contrastive"

# Training settings, from a trial on 3,000 openclipart pictures at 32 px on a 2-core CPU. 300 steps
# of 128 pictures (256 views) took 27-28 s of training on 2 free cores (`gankit train-evaluator
# --self-supervised` on tuxpaint's 642 and openclipart's 6,484 training pictures). Over them the loss falls from 4.3 to 3.2, and the check
# on 750 other pictures gains little from 150 steps on (5-NN accuracy over their 22 categories:
# 53% after 30 steps, 56% after 150, 57% after 300; blurred pictures 100x, 121x, 137x the floor
# FID). Temperature 0.2 is within SimCLR's range for small batches.
STEPS = 300
BATCH_SIZE = 128
LR = 2e-3
TEMPERATURE = 0.2
PROJECTION_DIM = 64


class ContrastiveEncoder(nn.Module):
    """``EvalClassifier``'s convolution body and dense feature layer, with a projection head.

    The features are the dense layer's outputs (no ReLU after it, so that their covariance has
    full rank, as for the classifier); the head (ReLU, linear, ReLU, linear) maps them to the
    space where the loss compares views, and is not used for scoring.
    """

    def __init__(self, image_shape: tuple[int, int, int], feature_dim: int = 128,
                 projection_dim: int = PROJECTION_DIM):
        super().__init__()
        c, h, w = (int(v) for v in image_shape)
        if c not in (1, 3) or min(h, w) < 8:
            raise ValueError(f"ContrastiveEncoder needs 1 or 3 channels and at least 8 px, got {image_shape}")
        self.image_shape = (c, h, w)
        self.feature_dim = int(feature_dim)
        self.projection_dim = int(projection_dim)
        self.conv, (c, h, w) = conv_stages(self.image_shape)
        self.dense = nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, self.feature_dim))
        self.projection = nn.Sequential(nn.ReLU(), nn.Linear(self.feature_dim, self.feature_dim), nn.ReLU(),
                                        nn.Linear(self.feature_dim, self.projection_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Float images in [-1, 1], [N, C, H, W] -> features [N, feature_dim]."""
        return self.dense(self.conv(x))


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's loss for projections of two views of the same N pictures ([N, D] each): each view
    must pick its partner among the other 2N - 1 views, by cosine similarity / temperature."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    similarity = z @ z.T / temperature
    similarity.fill_diagonal_(float("-inf"))  # a view is not its own partner
    n = len(z1)
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
    return F.cross_entropy(similarity, partner)


def train_contrastive(train: ImageSet, *, steps: int = STEPS, batch_size: int = BATCH_SIZE, lr: float = LR,
                      temperature: float = TEMPERATURE, seed: int = 0, quiet: bool = False,
                      log_every: int = 50) -> tuple[ContrastiveEncoder, list[float]]:
    """Train a ContrastiveEncoder on ``train``'s images (labels unused); return it in eval mode and
    the mean loss of every ``log_every`` steps.

    Adam with a cosine learning-rate decay; each step draws ``batch_size`` pictures (an epoch's
    order at a time) and two random views of each. RGBA is composited onto white first, as the
    extractor composites what it scores. For a given seed the result is identical from run to run
    on the same machine and number of threads; the caller's global random state is left as it was.
    """
    images = convert_channels(train.images, 3) if train.image_shape[0] == 4 else train.images
    if len(images) < 2:
        raise UserError(f"{train.name}: {len(images)} picture; contrastive training needs at least 2")
    batch_size = min(batch_size, len(images))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        model = ContrastiveEncoder(tuple(images.shape[1:]))
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
        model.train()
        order, position = torch.randperm(len(images), generator=generator), 0
        losses, window, start = [], [], time.perf_counter()
        for step in range(1, steps + 1):
            if position + batch_size > len(order):  # a new epoch: a fresh order, no short batch
                order, position = torch.randperm(len(images), generator=generator), 0
            batch = images[order[position : position + batch_size]]
            position += batch_size
            views = torch.cat([random_view(batch, generator), random_view(batch, generator)])
            z1, z2 = model.projection(model(views)).chunk(2)
            loss = nt_xent(z1, z2, temperature)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            window.append(float(loss.detach()))
            if step % log_every == 0 or step == steps:
                losses.append(sum(window) / len(window))
                window = []
                if not quiet:
                    print(f"step {step}/{steps}  loss {losses[-1]:.4f}  ({time.perf_counter() - start:.0f} s)")
    return model.eval(), losses


# ------------------------------------------------------------------------------ save and load


def save_contrastive(model: ContrastiveEncoder, path: str | Path, meta: dict) -> None:
    """Write ``{"state_dict": ..., "meta": ...}`` to ``path`` (written beside it and renamed).

    ``meta`` gets ``kind`` ("contrastive"), ``image_shape``, ``feature_dim`` and
    ``projection_dim`` added: the kind tells ``--evaluator`` which network the file holds, the
    rest rebuild it. The projection head is saved too, so the file is the whole trained model.
    """
    meta = {**meta, "kind": KIND, "image_shape": list(model.image_shape), "feature_dim": model.feature_dim,
            "projection_dim": model.projection_dim}
    _check_meta(meta)
    state = {"state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}, "meta": meta}
    atomic_write(path, lambda f: torch.save(state, f))


def load_contrastive(path: str | Path) -> tuple[ContrastiveEncoder, dict]:
    """Load a file written by ``save_contrastive``: the model (eval mode) and its meta. Loading
    never runs code from the file (``weights_only=True``); a wrong file raises UserError."""
    path = Path(path)
    state = read_weights_file(path, "evaluator")
    try:
        meta = state["meta"]
        if meta.get("kind") != KIND:
            raise ValueError(f"its kind is {meta.get('kind', 'classifier')!r}")
        model = ContrastiveEncoder(tuple(meta["image_shape"]), meta["feature_dim"], meta["projection_dim"])
        model.load_state_dict(state["state_dict"])
    except Exception as exc:  # noqa: BLE001 - any mismatch means the file is not one of ours
        raise UserError(
            f"{path}: not a gankit contrastive extractor ({type(exc).__name__}: {exc}); "
            "make one with `gankit train-evaluator --self-supervised`"
        ) from None
    return model.eval(), meta


# ---------------------------------------------------------------------------------- extractor


class ContrastiveExtractor:
    """Features of uint8 images from a file written by ``gankit train-evaluator --self-supervised``.

    It makes no class predictions: ``__call__`` returns (features, None) and ``num_classes`` is 0.
    Attributes: ``name`` ("contrastive CNN trained on <dataset>"), ``feature_dim``, ``meta``, ``path``.
    """

    def __init__(self, model: ContrastiveEncoder, meta: dict, path: Path | None = None,
                 device: str | torch.device = "cpu"):
        self.path, self.meta, self.device = path, meta, torch.device(device)
        self.model = model.eval().to(self.device)
        self.dataset = str(meta.get("dataset", path.stem if path else "?"))
        self.name = f"contrastive CNN trained on {self.dataset}"
        self.feature_dim = self.model.feature_dim
        self.num_classes = 0
        self.class_names = None

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> ContrastiveExtractor:
        """The extractor of a file written by ``save_contrastive``."""
        path = Path(path).expanduser()
        model, meta = load_contrastive(path)
        return cls(model, meta, path, device)

    @torch.no_grad()
    def __call__(self, images_uint8: torch.Tensor, batch_size: int = 500) -> tuple[np.ndarray, None]:
        """uint8 images [N, C, H, W] -> (float64 features [N, feature_dim], None); images that do
        not match the network are converted as ``network_input`` says."""
        images = torch.as_tensor(images_uint8)
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] not in (1, 3, 4):
            raise ValueError(f"expected uint8 images [N, 1, 3 or 4, H, W], got {images.dtype} {tuple(images.shape)}")
        features = [self.model(network_input(images[i : i + batch_size], self.model.image_shape, self.device))
                    .double().cpu().numpy() for i in range(0, len(images), batch_size)]
        return (np.concatenate(features) if features else np.zeros((0, self.feature_dim))), None

