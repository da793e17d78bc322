"""The FID Inception-v3 network in plain PyTorch, its weights file, and a batch feature extractor.

FID and Inception Score numbers are comparable with published ones only when they come from the
exact network of the original TensorFlow FID code. pytorch-fid ported it to PyTorch as
``pt_inception-2015-12-05-6726825d.pth``: torchvision's Inception3 layout with 1008 classes, no
auxiliary classifier, and pooling changes that reproduce TensorFlow (`avg_pool_tf`,
`max_pool_same`). The layer names below match that file's state-dict keys, so it loads unchanged.

The file is read with ``torch.load(weights_only=True)``: it may hold tensors and plain containers
only, so a hostile file cannot run code while loading.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gankit.errors import UserError
from gankit.images import flatten_alpha

WEIGHTS_FILENAME = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{WEIGHTS_FILENAME}"
# torch.hub's naming convention (what its check_hash verifies): the hex digits at the end of the
# file name are the start of the file's SHA-256.
WEIGHTS_SHA256_PREFIX = "6726825d"
# Directory searched for the file, and downloaded into, before ~/.cache/gankit/weights.
WEIGHTS_ENV = "GANKIT_WEIGHTS"
# Seconds to wait for the connection and for each read: an offline machine fails fast.
DOWNLOAD_TIMEOUT_S = 15.0
INPUT_SIZE = 299
FEATURE_DIM = 2048
NUM_CLASSES = 1008


# ---------------------------------------------------------------- the network


class BasicConv2d(nn.Module):
    """Conv (no bias) + BatchNorm (eps 1e-3, as TensorFlow) + ReLU; keys ``conv.*`` and ``bn.*``."""

    def __init__(self, cin: int, cout: int, kernel_size, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


def avg_pool_tf(x):
    """3x3 stride-1 average pool that, like TensorFlow's, leaves the zero padding out of the mean.

    torchvision counts the padding; the FID network was trained without it (pytorch-fid's patch).
    """
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


def max_pool_same(x):
    """3x3 stride-1 max pool keeping the size: the pool branch of the FID network's last block."""
    return F.max_pool2d(x, 3, stride=1, padding=1)


class InceptionA(nn.Module):
    """35x35 block: 1x1, 5x5, double 3x3 and pool branches (pytorch-fid's FIDInceptionA)."""

    pool = staticmethod(avg_pool_tf)

    def __init__(self, cin: int, pool_features: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 64, 1)
        self.branch5x5_1 = BasicConv2d(cin, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool_features, 1)

    def forward(self, x):
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), b5, b3, self.branch_pool(self.pool(x))], 1)


class InceptionB(nn.Module):
    """Grid reduction 35x35 -> 17x17 (Mixed_6a); unchanged from torchvision."""

    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x):
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), b3, F.max_pool2d(x, 3, stride=2)], 1)


class InceptionC(nn.Module):
    """17x17 block with factorised 7x7 convolutions (pytorch-fid's FIDInceptionC)."""

    pool = staticmethod(avg_pool_tf)

    def __init__(self, cin: int, channels_7x7: int):
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(cin, 192, 1)
        self.branch7x7_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x):
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        b7d = x
        for i in range(1, 6):
            b7d = getattr(self, f"branch7x7dbl_{i}")(b7d)
        return torch.cat([self.branch1x1(x), b7, b7d, self.branch_pool(self.pool(x))], 1)


class InceptionD(nn.Module):
    """Grid reduction 17x17 -> 8x8 (Mixed_7a); unchanged from torchvision."""

    def __init__(self, cin: int):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x):
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([b3, b7, F.max_pool2d(x, 3, stride=2)], 1)


class InceptionE(nn.Module):
    """8x8 block with split 1x3/3x1 convolutions (pytorch-fid's FIDInceptionE_1 and _2).

    ``pool`` is the pool branch's pooling: `avg_pool_tf` for Mixed_7b, and `max_pool_same` for
    Mixed_7c, where the TensorFlow graph has a max pool (the FID network's quirk, kept on purpose).
    """

    def __init__(self, cin: int, pool=avg_pool_tf):
        super().__init__()
        self.pool = pool
        self.branch1x1 = BasicConv2d(cin, 320, 1)
        self.branch3x3_1 = BasicConv2d(cin, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x):
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        b3d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        b3d = torch.cat([self.branch3x3dbl_3a(b3d), self.branch3x3dbl_3b(b3d)], 1)
        return torch.cat([self.branch1x1(x), b3, b3d, self.branch_pool(self.pool(x))], 1)


class FIDInceptionV3(nn.Module):
    """The FID Inception-v3: images in [0, 1] -> (pool3 features [N, 2048], logits [N, 1008]).

    Preprocessing is pytorch-fid's: bilinear resize to 299x299 (align_corners=False, no
    antialiasing), then scaling to [-1, 1]. pool3 is the global average of Mixed_7c's output, the
    features FID uses; the logits (fc on pool3) feed the Inception Score.
    """

    def __init__(self):
        super().__init__()
        # Registered in forward order; the max pools have no weights, so no keys in the file.
        trunk = {
            "Conv2d_1a_3x3": BasicConv2d(3, 32, 3, stride=2),
            "Conv2d_2a_3x3": BasicConv2d(32, 32, 3),
            "Conv2d_2b_3x3": BasicConv2d(32, 64, 3, padding=1),
            "maxpool1": nn.MaxPool2d(3, stride=2),
            "Conv2d_3b_1x1": BasicConv2d(64, 80, 1),
            "Conv2d_4a_3x3": BasicConv2d(80, 192, 3),
            "maxpool2": nn.MaxPool2d(3, stride=2),
            "Mixed_5b": InceptionA(192, pool_features=32),
            "Mixed_5c": InceptionA(256, pool_features=64),
            "Mixed_5d": InceptionA(288, pool_features=64),
            "Mixed_6a": InceptionB(288),
            "Mixed_6b": InceptionC(768, channels_7x7=128),
            "Mixed_6c": InceptionC(768, channels_7x7=160),
            "Mixed_6d": InceptionC(768, channels_7x7=160),
            "Mixed_6e": InceptionC(768, channels_7x7=192),
            "Mixed_7a": InceptionD(768),
            "Mixed_7b": InceptionE(1280),
            "Mixed_7c": InceptionE(2048, pool=max_pool_same),
        }
        for name, layer in trunk.items():
            self.add_module(name, layer)
        self._trunk = tuple(trunk)
        self.fc = nn.Linear(FEATURE_DIM, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        x = 2 * x - 1
        for name in self._trunk:
            x = getattr(self, name)(x)
        pool3 = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return pool3, self.fc(pool3)


# ---------------------------------------------------------------- finding and loading the weights


def weights_search_paths(explicit: str | os.PathLike | None) -> list[Path]:
    """Where the weights file is looked for, in order.

    ``explicit`` (--inception-weights; a directory means the file inside it), then
    ``$GANKIT_WEIGHTS/<name>``, ``~/.cache/gankit/weights/<name>`` and torch hub's checkpoint
    directory (``~/.cache/torch/hub/checkpoints/<name>``), where pytorch-fid downloads it.
    """
    paths: list[Path] = []
    if explicit is not None:
        p = Path(explicit).expanduser()
        paths.append(p / WEIGHTS_FILENAME if p.is_dir() else p)
    if os.environ.get(WEIGHTS_ENV):
        paths.append(Path(os.environ[WEIGHTS_ENV]).expanduser() / WEIGHTS_FILENAME)
    paths.append(_gankit_cache() / WEIGHTS_FILENAME)
    paths.append(Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILENAME)
    return list(dict.fromkeys(paths))  # the same directory twice is searched once


def _gankit_cache() -> Path:
    return Path.home() / ".cache" / "gankit" / "weights"


def _download_dir() -> Path:
    """$GANKIT_WEIGHTS when set (e.g. a home directory that is read-only), else gankit's cache."""
    env = os.environ.get(WEIGHTS_ENV)
    return Path(env).expanduser() if env else _gankit_cache()


def find_weights(weights: str | os.PathLike | None = None, download: bool = True) -> Path:
    """The weights file to use: found on disk, else downloaded; UserError says how to get it."""
    paths = weights_search_paths(weights)
    if weights is not None and not paths[0].is_file():
        # A path the user typed that is wrong must not be replaced silently by another file.
        raise UserError(
            f"--inception-weights: no such file {paths[0]}; pass the path of {WEIGHTS_FILENAME} "
            f"(download it from {WEIGHTS_URL})"
        )
    for p in paths:
        if p.is_file():
            return p
    failure = "Downloading was not allowed."
    if download:
        try:
            return _download(WEIGHTS_URL, _download_dir() / WEIGHTS_FILENAME)
        except UserError as e:
            failure = f"Download failed: {e}."
    searched = "\n".join(f"  {p}" for p in paths)
    raise UserError(
        f"cannot find the FID Inception weights {WEIGHTS_FILENAME}; looked for:\n{searched}\n{failure}\n"
        f"Download it from {WEIGHTS_URL} and pass --inception-weights PATH, or put it in one of the places above."
    )


def _download(url: str, dest: Path) -> Path:
    """Fetch ``url`` into ``dest`` via a temporary file that is renamed only once verified.

    On failure the temporary file and the directories this call created are removed again, so a
    UserError leaves the disk as it was.
    """
    created = [d for d in (dest.parent, *dest.parent.parents) if not d.exists()]  # deepest first
    tmp = None
    try:
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"cannot create {dest.parent}: {e.strerror or e}") from None
        # One line on stderr says why the program is waiting (the file is about 90 MB).
        print(f"downloading {url} -> {dest}", file=sys.stderr)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
                    expected = response.headers.get("Content-Length")
                    size = 0
                    while chunk := response.read(1 << 20):
                        out.write(chunk)
                        digest.update(chunk)
                        size += len(chunk)
            except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
                raise UserError(f"could not download {url}: {getattr(e, 'reason', None) or e}") from None
        if expected is not None and size != int(expected):
            raise UserError(f"download of {url} stopped after {size} of {expected} bytes")
        if not digest.hexdigest().startswith(WEIGHTS_SHA256_PREFIX):
            raise UserError(
                f"checksum mismatch for {url}: SHA-256 {digest.hexdigest()} does not start with "
                f"{WEIGHTS_SHA256_PREFIX}; nothing was saved"
            )
        os.replace(tmp, dest)
        return dest
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        for d in created:
            try:
                d.rmdir()
            except OSError:
                break  # something else landed there meanwhile: leave it
        raise


def load_inception(weights: str | os.PathLike | None = None, download: bool = True, device="cpu") -> FIDInceptionV3:
    """The FID Inception-v3 with the pytorch-fid weights, in eval mode, without gradients.

    ``weights`` is --inception-weights (a file, or a directory holding it); when None the file is
    searched for (`weights_search_paths`) and, if ``download``, fetched into the cache.
    """
    return _load(find_weights(weights, download), device)


def _load(path: Path, device) -> FIDInceptionV3:
    fix = f"get the right file from {WEIGHTS_URL} and pass --inception-weights PATH"
    try:
        # weights_only: tensors and plain containers only, never arbitrary pickled objects.
        state = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror or e}") from None
    except Exception as e:  # noqa: BLE001 - garbage input fails in many ways; all mean "not the file"
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
        if "Weights only load failed" in reason:
            reason = "it holds Python objects, not only tensors; refusing to load them, as that could run code"
        raise UserError(f"{path}: not a PyTorch weights file ({reason}); {fix}") from None
    if not isinstance(state, Mapping):
        raise UserError(f"{path}: holds a {type(state).__name__}, not a state dict; {fix}")
    model = FIDInceptionV3()
    problems = _state_dict_problems(state, model.state_dict())
    if problems:
        raise UserError(f"{path}: not the FID Inception weights {WEIGHTS_FILENAME}: {problems}; {fix}")
    # strict=False only for num_batches_tracked, which `_state_dict_problems` allowed to be absent.
    model.load_state_dict(state, strict=False)
    return model.to(device).eval().requires_grad_(False)


def _state_dict_problems(state: Mapping, expected: Mapping[str, torch.Tensor], show: int = 5) -> str:
    """What keeps ``state`` from loading into a model with state dict ``expected`` ('' if nothing).

    BatchNorm's num_batches_tracked counters may be absent: they only matter in training, and
    files saved by older PyTorch versions do not have them.
    """

    def first(items: list[str]) -> str:
        more = f" (+{len(items) - show} more)" if len(items) > show else ""
        return ", ".join(items[:show]) + more

    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [str(k) for k in state if k not in expected]
    wrong = []
    for k, want in expected.items():
        got = state.get(k)
        if got is None:
            continue
        if not isinstance(got, torch.Tensor):
            wrong.append(f"{k} is a {type(got).__name__}, not a tensor")
        elif got.shape != want.shape:
            wrong.append(f"{k} has shape {list(got.shape)}, expected {list(want.shape)}")
    parts = [f"missing keys {first(missing)}" if missing else "",
             f"unexpected keys {first(unexpected)}" if unexpected else "",
             f"wrong entries: {first(wrong)}" if wrong else ""]
    return "; ".join(p for p in parts if p)


# ---------------------------------------------------------------- the extractor


class InceptionExtractor:
    """uint8 images -> float64 pool3 features [N, 2048] and logits [N, 1008], in batches."""

    name = "inception-v3"
    feature_dim = FEATURE_DIM
    num_classes = NUM_CLASSES

    def __init__(self, weights: str | os.PathLike | None = None, device="cpu", download: bool = True):
        self.device = torch.device(device)
        self.weights_path = find_weights(weights, download)  # the file used, for fingerprints
        self.model = _load(self.weights_path, self.device)

    @torch.no_grad()
    def __call__(self, images_uint8: torch.Tensor, batch_size: int = 100) -> tuple[np.ndarray, np.ndarray]:
        """Features and logits of uint8 images [N, C, H, W], C 1 (grey, repeated to RGB), 3, or 4
        (RGBA, composited onto white by ``gankit.images.flatten_alpha``: Inception takes RGB)."""
        x = images_uint8
        if not isinstance(x, torch.Tensor) or x.dtype != torch.uint8 or x.ndim != 4 or x.shape[1] not in (1, 3, 4):
            shape = list(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"expected a uint8 tensor [N, 1, 3 or 4, H, W], got {getattr(x, 'dtype', '')} {shape}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.model.eval()
        feats, logits = [], []
        for start in range(0, len(x), batch_size):
            batch = x[start:start + batch_size].to(self.device)
            if batch.shape[1] == 4:
                batch = flatten_alpha(batch)
            # Same float conversion as torchvision's ToTensor in pytorch-fid: x / 255 in float32.
            batch = batch.to(torch.float32).div(255).expand(-1, 3, -1, -1)
            pool3, logit = self.model(batch)
            feats.append(pool3.cpu().double().numpy())
            logits.append(logit.cpu().double().numpy())
        if not feats:
            return np.zeros((0, self.feature_dim)), np.zeros((0, self.num_classes))
        return np.concatenate(feats), np.concatenate(logits)
