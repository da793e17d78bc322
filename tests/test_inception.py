"""gankit.metrics.inception: the FID network's layout, finding and safely loading its weights, the extractor.

The real weights cannot be fetched in tests, so most tests use a randomly initialised network saved
in the same format; one test checks the real file where it is on disk.
"""

from __future__ import annotations

import hashlib
import os
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gankit.errors import UserError
from gankit.metrics import inception
from gankit.metrics.inception import (
    WEIGHTS_FILENAME,
    WEIGHTS_URL,
    FIDInceptionV3,
    InceptionExtractor,
    find_weights,
    load_inception,
    weights_search_paths,
)

# Looked up before any test moves HOME: the real file, if this machine has it.
REAL_WEIGHTS = next((p for p in weights_search_paths(os.environ.get("GANKIT_TEST_INCEPTION")) if p.is_file()), None)


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """An empty home directory and no weights variables (conftest blocks the network)."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for var in (inception.WEIGHTS_ENV, "TORCH_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)


def liven(model: nn.Module) -> nn.Module:
    """Random weights *and* BatchNorm statistics, so features carry signal and every tensor counts.

    PyTorch's default init shrinks activations layer after layer and leaves running_mean/var at
    0/1, so a loader that dropped the buffers would go unnoticed; these values catch that.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_(0, 0.1)
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model.eval()


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """(path, model): a live random FID network and its state dict saved as the weights file is."""
    torch.manual_seed(0)
    model = liven(FIDInceptionV3())
    path = tmp_path_factory.mktemp("weights") / WEIGHTS_FILENAME
    torch.save(model.state_dict(), path)
    return path, model


def uint8_images(n: int, channels: int = 3, seed: int = 0) -> torch.Tensor:
    """Random uint8 images, 40x24: not square and not 299x299, so the resize is exercised."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, channels, 40, 24), generator=g, dtype=torch.uint8)


# Two test images, the first grey (the same value in R, G and B). Inception on CPU costs about a
# second per image, so outputs are computed once (fixtures below) and shared between tests.
IMAGES = torch.cat([uint8_images(1, channels=1, seed=1).repeat(1, 3, 1, 1), uint8_images(1, seed=2)])


@pytest.fixture(scope="module")
def reference(saved):
    """(pool3, logits) of the saved network itself on the first image, scaled to [0, 1]."""
    with torch.no_grad():
        return saved[1](IMAGES[:1].float() / 255)


@pytest.fixture(scope="module")
def extractor(saved):
    return InceptionExtractor(weights=str(saved[0]))


@pytest.fixture(scope="module")
def extracted(extractor):
    """The extractor's (features, logits) of IMAGES, one image per batch."""
    return extractor(IMAGES, batch_size=1)


# ---------------------------------------------------------------- the network


# Sub-layers (BasicConv2d) of each block type, as named in torchvision's Inception3 and hence in
# the pytorch-fid file.
A = ["branch1x1", "branch5x5_1", "branch5x5_2", "branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3", "branch_pool"]
B = ["branch3x3", "branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"]
C = ["branch1x1", "branch7x7_1", "branch7x7_2", "branch7x7_3", *(f"branch7x7dbl_{i}" for i in range(1, 6)),
     "branch_pool"]
D = ["branch3x3_1", "branch3x3_2"] + [f"branch7x7x3_{i}" for i in range(1, 5)]
E = ["branch1x1", "branch3x3_1", "branch3x3_2a", "branch3x3_2b", "branch3x3dbl_1", "branch3x3dbl_2",
     "branch3x3dbl_3a", "branch3x3dbl_3b", "branch_pool"]
LAYOUT = {"Conv2d_1a_3x3": [""], "Conv2d_2a_3x3": [""], "Conv2d_2b_3x3": [""], "Conv2d_3b_1x1": [""],
          "Conv2d_4a_3x3": [""], "Mixed_5b": A, "Mixed_5c": A, "Mixed_5d": A, "Mixed_6a": B, "Mixed_6b": C,
          "Mixed_6c": C, "Mixed_6d": C, "Mixed_6e": C, "Mixed_7a": D, "Mixed_7b": E, "Mixed_7c": E}
BN = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]


def test_layout_matches_the_pytorch_fid_file():
    model = FIDInceptionV3()
    sd = model.state_dict()
    convs = [f"{block}.{sub}." if sub else f"{block}." for block, subs in LAYOUT.items() for sub in subs]
    expected = {c + "conv.weight" for c in convs} | {c + "bn." + b for c in convs for b in BN}
    expected |= {"fc.weight", "fc.bias"}
    assert set(sd) == expected
    assert len(convs) == 94
    shapes = {
        "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3),
        "Conv2d_4a_3x3.conv.weight": (192, 80, 3, 3),
        "Mixed_5b.branch_pool.conv.weight": (32, 192, 1, 1),
        "Mixed_6b.branch7x7_2.conv.weight": (128, 128, 1, 7),
        "Mixed_6e.branch7x7dbl_2.conv.weight": (192, 192, 7, 1),
        "Mixed_7a.branch3x3_2.conv.weight": (320, 192, 3, 3),
        "Mixed_7b.branch3x3dbl_1.conv.weight": (448, 1280, 1, 1),
        "Mixed_7c.branch_pool.conv.weight": (192, 2048, 1, 1),
        "Mixed_7c.branch_pool.bn.running_var": (192,),
        "fc.weight": (1008, 2048),
        "fc.bias": (1008,),
    }
    assert {k: tuple(sd[k].shape) for k in shapes} == shapes
    # torchvision documents 27,161,264 parameters for inception_v3 (1000 classes, with AuxLogits).
    # AuxLogits holds 98,560 + 2,459,136 + 769,000 = 3,326,696 of them, leaving 23,834,568; 1008
    # classes instead of 1000 add 8 * 2048 + 8 = 16,392 to fc. The FID blocks add no parameters.
    assert sum(p.numel() for p in model.parameters()) == 23_850_960
    assert all(isinstance(m.eps, float) and m.eps == 0.001 for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert not any(m.bias is not None for m in model.modules() if isinstance(m, nn.Conv2d))


def test_pool_branches_follow_tensorflow():
    """Average pools leave the padding out of the mean; Mixed_7c's pool branch takes the maximum."""
    model = FIDInceptionV3()
    ones = torch.ones(1, 4, 5, 5)
    for name in ("Mixed_5b", "Mixed_6b", "Mixed_7b"):
        # Counting the zero padding (torchvision) would give 4/9 in the corners.
        assert torch.equal(getattr(model, name).pool(ones), ones), name
    x = torch.randn(1, 4, 5, 5)
    assert torch.equal(model.Mixed_7c.pool(x), F.max_pool2d(x, 3, stride=1, padding=1))


# ---------------------------------------------------------------- loading


def test_load_restores_every_tensor(saved):
    loaded = load_inception(str(saved[0]), download=False)
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    want = saved[1].state_dict()
    got = loaded.state_dict()
    assert got.keys() == want.keys()
    assert all(torch.equal(got[k], want[k]) for k in want)  # BatchNorm statistics included


def test_directory_as_weights_path(saved):
    assert find_weights(str(saved[0].parent), download=False) == saved[0]


def test_missing_batchnorm_counters_are_accepted(saved, tmp_path):
    """Files from older PyTorch lack num_batches_tracked; it is unused in eval mode."""
    path, original = saved
    sd = {k: v for k, v in original.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(sd, tmp_path / "old.pth")
    loaded = load_inception(tmp_path / "old.pth", download=False)
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in sd.items())


def test_wrong_keys_named(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"encoder.weight": torch.zeros(3), "fc.weight": torch.zeros(10, 2048)}, path)
    with pytest.raises(UserError) as e:
        load_inception(path, download=False)
    msg = str(e.value)
    assert str(path) in msg and WEIGHTS_FILENAME in msg and "--inception-weights" in msg
    assert "missing keys Conv2d_1a_3x3.conv.weight, Conv2d_1a_3x3.bn.weight" in msg
    assert "(+" in msg and "more)" in msg  # only the first few are listed
    assert "unexpected keys encoder.weight" in msg
    assert "fc.weight has shape [10, 2048], expected [1008, 2048]" in msg


def test_torchvision_imagenet_weights_refused(saved, tmp_path):
    """torchvision's own Inception weights (1000 classes, aux classifier) are not the FID network."""
    sd = dict(saved[1].state_dict())
    sd.update({"fc.weight": torch.zeros(1000, 2048), "fc.bias": torch.zeros(1000),
               "AuxLogits.fc.weight": torch.zeros(1000, 768)})
    torch.save(sd, tmp_path / "inception_v3_google.pth")
    with pytest.raises(UserError, match=r"inception_v3_google\.pth: not the FID Inception weights") as e:
        load_inception(tmp_path / "inception_v3_google.pth", download=False)
    assert "unexpected keys AuxLogits.fc.weight" in str(e.value)
    assert "fc.bias has shape [1000], expected [1008]" in str(e.value)
    assert "missing" not in str(e.value)


@pytest.mark.parametrize("content", [b"not a model\n", b"hi", b"", "truncated"],
                         ids=["text", "garbage", "empty", "truncated"])
def test_non_torch_file(saved, tmp_path, content):
    path = tmp_path / "bad.pth"
    path.write_bytes(saved[0].read_bytes()[:4096] if content == "truncated" else content)
    with pytest.raises(UserError, match="not a PyTorch weights file") as e:
        load_inception(path, download=False)
    assert str(path) in str(e.value) and "--inception-weights" in str(e.value)


def test_tensor_instead_of_state_dict(tmp_path):
    torch.save(torch.zeros(3), tmp_path / "t.pth")
    with pytest.raises(UserError, match=r"t\.pth: holds a Tensor, not a state dict"):
        load_inception(tmp_path / "t.pth", download=False)


class Payload:
    """Pickles as a call to os.system: what a hostile weights file would contain."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_hostile_pickle_refused_without_running(tmp_path):
    marker = tmp_path / "payload_ran"
    path = tmp_path / "evil.pth"
    torch.save({"fc.weight": Payload(f"touch {shlex.quote(str(marker))}")}, path)
    with pytest.raises(UserError, match=r"evil\.pth: .*refusing to load them"):
        load_inception(path, download=False)
    assert not marker.exists()
    # The payload is live: an unrestricted load does run it, so the check above means something.
    torch.load(path, weights_only=False)
    assert marker.exists()


# ---------------------------------------------------------------- finding and downloading


def test_search_paths_in_order(tmp_path, monkeypatch):
    home = Path(os.environ["HOME"])
    monkeypatch.setenv(inception.WEIGHTS_ENV, str(tmp_path / "w"))
    assert weights_search_paths("my.pth") == [
        Path("my.pth"),
        tmp_path / "w" / WEIGHTS_FILENAME,
        home / ".cache" / "gankit" / "weights" / WEIGHTS_FILENAME,
        home / ".cache" / "torch" / "hub" / "checkpoints" / WEIGHTS_FILENAME,  # where pytorch-fid puts it
    ]
    monkeypatch.delenv(inception.WEIGHTS_ENV)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    assert weights_search_paths(None)[1:] == [tmp_path / "th" / "hub" / "checkpoints" / WEIGHTS_FILENAME]


def test_first_existing_file_wins(tmp_path, monkeypatch):
    monkeypatch.setenv(inception.WEIGHTS_ENV, str(tmp_path / "w"))
    hub = weights_search_paths(None)[-1]
    hub.parent.mkdir(parents=True)
    hub.touch()
    assert find_weights(None, download=False) == hub  # pytorch-fid's download is reused
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / WEIGHTS_FILENAME).touch()
    assert find_weights(None, download=False) == tmp_path / "w" / WEIGHTS_FILENAME


def test_explicit_path_must_exist(tmp_path):
    hub = weights_search_paths(None)[-1]
    hub.parent.mkdir(parents=True)
    hub.touch()  # not silently used instead of the file the user named
    with pytest.raises(UserError, match=r"--inception-weights: no such file .*nope\.pth"):
        load_inception(tmp_path / "nope.pth")


def test_absent_offline_says_where_to_get_it():
    with pytest.raises(UserError) as e:
        load_inception(download=False)
    msg = str(e.value)
    assert WEIGHTS_FILENAME in msg and WEIGHTS_URL in msg and "--inception-weights PATH" in msg
    assert "Downloading was not allowed" in msg
    for p in weights_search_paths(None):
        assert str(p) in msg


def test_failed_download_leaves_nothing():
    home = Path(os.environ["HOME"])
    with pytest.raises(UserError, match="could not download .*network disabled") as e:
        load_inception()
    assert WEIGHTS_URL in str(e.value) and "--inception-weights" in str(e.value)
    assert not home.exists()  # not even the cache directory was left behind


def test_download_verified_then_reused(saved, monkeypatch):
    path, original = saved
    monkeypatch.setattr(inception, "WEIGHTS_URL", path.as_uri())
    monkeypatch.setattr(inception, "WEIGHTS_SHA256_PREFIX", hashlib.sha256(path.read_bytes()).hexdigest()[:8])
    loaded = load_inception()
    cached = Path(os.environ["HOME"]) / ".cache" / "gankit" / "weights" / WEIGHTS_FILENAME
    assert cached.read_bytes() == path.read_bytes()
    assert [p.name for p in cached.parent.iterdir()] == [WEIGHTS_FILENAME]  # no temporary file left
    assert torch.equal(loaded.fc.weight, original.fc.weight)
    monkeypatch.setattr(inception, "WEIGHTS_URL", "https://unreachable.invalid/x.pth")
    assert find_weights() == cached  # found on disk, not fetched again


def test_download_with_wrong_checksum_leaves_nothing(tmp_path, monkeypatch, capsys):
    (tmp_path / "fake.pth").write_bytes(b"not the weights")
    monkeypatch.setattr(inception, "WEIGHTS_URL", (tmp_path / "fake.pth").as_uri())
    monkeypatch.setenv(inception.WEIGHTS_ENV, str(tmp_path / "w" / "eights"))  # downloads go here when set
    with pytest.raises(UserError, match="checksum mismatch .*does not start with 6726825d; nothing was saved"):
        load_inception()
    assert f"-> {tmp_path / 'w' / 'eights' / WEIGHTS_FILENAME}" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()  # neither the file nor the directories made for it


# ---------------------------------------------------------------- the extractor


def test_extractor_gives_the_networks_outputs(saved, extractor, extracted, reference):
    """Loaded weights, uint8 -> [0, 1] scaling and batching reproduce the original module exactly."""
    feats, logits = extracted
    assert feats.dtype == np.float64 and feats.shape == (2, 2048)
    assert logits.dtype == np.float64 and logits.shape == (2, 1008)
    np.testing.assert_array_equal(feats[:1], reference[0].double().numpy())
    np.testing.assert_array_equal(logits[:1], reference[1].double().numpy())
    assert not np.allclose(feats[0], feats[1])  # different images, different features
    assert (feats >= 0).all()  # pool3 averages ReLU outputs
    weight, bias = saved[1].fc.weight.detach().double().numpy(), saved[1].fc.bias.detach().double().numpy()
    np.testing.assert_allclose(logits, feats @ weight.T + bias, rtol=1e-4, atol=1e-4)  # logits = fc(pool3)
    assert (extractor.name, extractor.feature_dim, extractor.num_classes) == ("inception-v3", 2048, 1008)
    assert extractor.weights_path == saved[0]


def test_extractor_grey_equals_repeated_rgb(extractor, extracted):
    grey = IMAGES[:1, :1]  # [1, 1, H, W]
    feats, logits = extractor(grey)
    np.testing.assert_array_equal(feats[0], extracted[0][0])
    np.testing.assert_array_equal(logits[0], extracted[1][0])


def test_extractor_empty_and_bad_input(extractor):
    feats, logits = extractor(uint8_images(0))
    assert feats.shape == (0, 2048) and logits.shape == (0, 1008)
    with pytest.raises(ValueError, match="uint8"):
        extractor(torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match=r"\[1, 2, 8, 8\]"):  # 4 channels are RGBA, taken since --alpha keep
        extractor(torch.zeros(1, 2, 8, 8, dtype=torch.uint8))


# ---------------------------------------------------------------- the real file


@pytest.mark.skipif(REAL_WEIGHTS is None, reason=f"{WEIGHTS_FILENAME} is not on this machine (set "
                    "GANKIT_TEST_INCEPTION to its path, or put it in ~/.cache/gankit/weights)")
def test_real_weights_file_matches_exactly():
    state = torch.load(REAL_WEIGHTS, map_location="cpu", weights_only=True)
    expected = FIDInceptionV3().state_dict()
    counters = {k for k in expected if k.endswith("num_batches_tracked")}
    # Exact key set; the BatchNorm counters are the one thing a file may leave out (see _load).
    assert set(state) - counters == set(expected) - counters
    assert set(state) <= set(expected)
    assert all(state[k].shape == expected[k].shape for k in state)
    assert hashlib.sha256(REAL_WEIGHTS.read_bytes()).hexdigest().startswith(inception.WEIGHTS_SHA256_PREFIX)
    extract = InceptionExtractor(weights=str(REAL_WEIGHTS))
    feats, logits = extract(uint8_images(2))
    assert np.isfinite(feats).all() and np.isfinite(logits).all()
