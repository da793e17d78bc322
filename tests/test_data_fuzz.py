"""Fuzz the dataset readers: bad data must give a UserError naming the file, never a crash.

Every test feeds corrupted input to a reader and accepts exactly two outcomes: an ImageSet
(the damage happened to leave a valid file) or a UserError whose message names the file at
fault. Any other exception escaping is a reader bug. Failing reads must also leave the disk
as it was. Examples are few and derandomized so the run is short and the same everywhere.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
import tarfile
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from gankit.data import ImageSet, cifar, locate, mnist, open_dataset
from gankit.data.arrays import read_arrays
from gankit.data.cifar import parse_batch
from gankit.data.idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx
from gankit.errors import UserError

FUZZ = settings(
    max_examples=100,
    deadline=None,  # file I/O timings vary on shared CI machines; speed is not under test
    derandomize=True,  # the same examples on every run, so a CI failure reproduces locally
    database=None,  # nothing to replay: derandomized runs already repeat exactly
    suppress_health_check=[HealthCheck.too_slow],
)


@pytest.fixture(scope="module", autouse=True)
def _offline():
    """Keep named datasets off the real system dirs, the real cache and the network."""
    with tempfile.TemporaryDirectory() as cache, pytest.MonkeyPatch.context() as mp:
        mp.setattr(locate, "SYSTEM_DIRS", ())
        mp.setenv(locate.CACHE_ENV, cache)
        yield


@contextmanager
def workdir():
    """A fresh directory per hypothesis example (pytest's tmp_path is per test, not per example)."""
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``root`` with its size and mtime, to prove a read wrote nothing."""
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


def check(read, root: Path, *blame: Path) -> ImageSet | UserError:
    """Run ``read()``; allow only success or a UserError naming one of ``blame``; check that
    nothing under ``root`` (nor the cache) changed. Returns the ImageSet or the error."""
    cache = Path(os.environ[locate.CACHE_ENV])
    before = snapshot(root), snapshot(cache)
    try:
        result = read()
    except UserError as e:  # any other type propagates and fails the test: that is the bug
        assert any(str(p) in str(e) for p in blame), f"message names none of {blame}: {e}"
        result = e
    assert (snapshot(root), snapshot(cache)) == before, "a read changed files on disk"
    if isinstance(result, ImageSet):
        assert result.images.shape[0] > 0 and min(result.images.shape[2:]) > 0
    return result


# ---------------------------------------------------------------- IDX (MNIST layout)


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    """An IDX file of ``array`` (uint8) with the given magic number."""
    return struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_mnist(d: Path, gz: bool) -> dict[str, Path]:
    """Small valid MNIST train files in ``d``: {"images": path, "labels": path}."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (3, 28, 28), dtype=np.uint8)
    y = np.array([0, 5, 9], dtype=np.uint8)
    out = {}
    for key, stem, data in (
        ("images", mnist.SPLIT_FILES["train"][0], idx_bytes(x, IMAGES_MAGIC)),
        ("labels", mnist.SPLIT_FILES["train"][1], idx_bytes(y, LABELS_MAGIC)),
    ):
        path = d / (stem + (".gz" if gz else ""))
        path.write_bytes(gzip.compress(data) if gz else data)
        out[key] = path
    return out


@FUZZ
@given(data=st.binary(max_size=300), gz=st.booleans(), magic=st.sampled_from([IMAGES_MAGIC, LABELS_MAGIC]))
def test_idx_random_bytes(data, gz, magic):
    with workdir() as d:
        path = d / "file-idx3-ubyte"
        path.write_bytes(gzip.compress(data) if gz else data)

        def read():
            read_idx(path, magic)
            raise UserError(f"{path}: (valid by chance)")  # so check() sees a named outcome

        check(read, d, path)


@FUZZ
@given(
    which=st.sampled_from(["images", "labels"]),
    gz=st.booleans(),
    damage=st.sampled_from(["truncate", "header byte", "any byte", "gzip truncate"]),
    pos=st.integers(0, 10_000),
    value=st.integers(0, 255),
)
def test_idx_damaged_mnist(which, gz, damage, pos, value):
    with workdir() as d:
        files = write_mnist(d, gz)
        path = files[which]
        raw = path.read_bytes()
        plain = gzip.decompress(raw) if gz else raw
        if damage == "truncate":
            plain = plain[: pos % len(plain)]
        elif damage == "header byte":  # magic number and dimensions
            header = 8 if which == "labels" else 16
            plain = bytearray(plain)
            plain[pos % header] = value
        if damage == "any byte" and gz:  # corrupt the compressed stream itself
            raw = bytearray(raw)
            raw[pos % len(raw)] ^= value or 1
        elif damage == "gzip truncate" and gz:
            raw = raw[: pos % len(raw)]
        else:
            raw = gzip.compress(bytes(plain)) if gz else bytes(plain)
        path.write_bytes(bytes(raw))
        result = check(lambda: open_dataset("mnist", data_dir=str(d), download=False), d, path)
        if isinstance(result, ImageSet):
            assert result.images.shape[1:] == (1, 28, 28)


def test_idx_zero_sized_dimensions_refused(tmp_path):
    """A header that says 0 images, or 0 x 0 pixels, is a valid IDX file but no dataset."""
    for shape in [(0, 28, 28), (3, 0, 0)]:
        files = write_mnist(tmp_path, gz=False)
        files["images"].write_bytes(idx_bytes(np.zeros(shape, np.uint8), IMAGES_MAGIC))
        files["labels"].write_bytes(idx_bytes(np.zeros(shape[0], np.uint8), LABELS_MAGIC))
        with pytest.raises(UserError) as e:
            open_dataset("mnist", data_dir=str(tmp_path), download=False)
        assert str(files["images"]) in str(e.value)


def test_idx_huge_dimensions_do_not_overflow(tmp_path):
    """Dims whose product overflows int64 must still be reported as a wrong length."""
    path = tmp_path / "x-idx3-ubyte"
    path.write_bytes(struct.pack(">4I", IMAGES_MAGIC, 2**32 - 1, 2**32 - 1, 2**32 - 1))
    with pytest.raises(UserError, match=str((2**32 - 1) ** 3)):
        read_idx(path, IMAGES_MAGIC)


# ---------------------------------------------------------------- image folders

# (mode, file suffix) pairs Pillow can write; CMYK only goes into JPEG.
MODES = [
    ("L", ".png"), ("RGB", ".png"), ("RGBA", ".png"), ("P", ".png"), ("I;16", ".png"),
    ("1", ".png"), ("LA", ".png"), ("CMYK", ".jpg"), ("RGB", ".jpg"), ("L", ".bmp"),
    ("P", ".gif"), ("RGB", ".webp"),
]


def write_image(path: Path, mode: str, size: tuple[int, int], seed: int) -> None:
    """A noise image (noise so that compressed data fills most of the file)."""
    rng = np.random.default_rng(seed)
    rgb = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    img = rgb.convert(mode) if mode not in ("I;16",) else rgb.convert("L").convert("I;16")
    img.save(path)


def broken_image_bytes(kind: str, seed: int) -> bytes:
    """Bytes that no image decoder accepts: half an image, a zero-byte file, or noise."""
    if kind == "empty":
        return b""
    if kind == "noise":
        return np.random.default_rng(seed).integers(0, 256, 64, dtype=np.uint8).tobytes()
    buf = io.BytesIO()
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(buf, format=kind)
    return buf.getvalue()[: len(buf.getvalue()) // 2]


good_images = st.lists(
    st.tuples(st.sampled_from(MODES), st.integers(1, 12), st.integers(1, 12)), min_size=0, max_size=5
)
bad_images = st.lists(st.sampled_from(["PNG", "JPEG", "empty", "noise"]), max_size=4)


@FUZZ
@given(good=good_images, bad=bad_images, skip_bad=st.booleans(), resize=st.booleans(), classes=st.booleans())
def test_folder_fuzz(good, bad, skip_bad, resize, classes):
    with workdir() as d:
        root = d / "imgs"
        root.mkdir()
        bad_paths = []
        for i, ((mode, suffix), w, h) in enumerate(good):
            sub = root / f"c{i % 2}" if classes else root
            sub.mkdir(exist_ok=True)
            write_image(sub / f"good{i}{suffix}", mode, (w, h), i)
        for i, kind in enumerate(bad):
            sub = root / f"c{i % 2}" if classes else root
            sub.mkdir(exist_ok=True)
            path = sub / f"bad{i}{'.jpg' if kind == 'JPEG' else '.png'}"
            path.write_bytes(broken_image_bytes(kind, i))
            bad_paths.append(path)

        result = check(
            lambda: open_dataset(str(root), image_size=8 if resize else None, skip_bad=skip_bad),
            d, root, *bad_paths,
        )
        total = len(good) + len(bad)
        if isinstance(result, ImageSet):
            assert len(result) == len(good)
            if bad:
                assert f"skipped {len(bad)} unreadable" in result.source
                assert bad_paths[0].relative_to(root).as_posix() in result.source
        elif bad and len(bad) * 2 > total:
            assert f"{len(bad)} of {total} image files are unreadable" in str(result)
        elif bad and not skip_bad:
            assert "--skip-bad-images" in str(result)
        else:  # no bad file: only an empty folder may fail (other sizes are fitted)
            assert not good


def test_skip_bad_names_at_most_three(tmp_path):
    for i in range(8):
        write_image(tmp_path / f"ok{i}.png", "L", (4, 4), i)
    for i in range(4):
        (tmp_path / f"bad{i}.png").write_bytes(b"")
    ds = open_dataset(str(tmp_path), skip_bad=True)
    assert len(ds) == 8
    assert "skipped 4 unreadable" in ds.source and ds.source.endswith(", ...)")
    assert sum(f"bad{i}.png" in ds.source for i in range(4)) == 3


def test_skip_bad_refuses_when_most_files_are_bad(tmp_path):
    write_image(tmp_path / "ok.png", "L", (4, 4), 0)
    for i in range(2):
        (tmp_path / f"bad{i}.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(UserError, match="2 of 3 image files are unreadable"):
        open_dataset(str(tmp_path), skip_bad=True)


def test_skip_bad_ignored_by_array_files(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((2, 4, 4), np.uint8))
    assert len(open_dataset(str(tmp_path / "x.npy"), skip_bad=True)) == 2


@pytest.mark.parametrize("layout", ["empty", "text only", "empty class folders", "hidden images only"])
def test_folders_without_images(tmp_path, layout):
    if layout == "text only":
        (tmp_path / "notes.txt").write_text("hi")
        (tmp_path / "data.csv").write_text("1,2")
    elif layout == "empty class folders":
        (tmp_path / "a" / "deeper").mkdir(parents=True)
        (tmp_path / "b").mkdir()
    elif layout == "hidden images only":
        write_image(tmp_path / "._x.png", "L", (4, 4), 0)
    with pytest.raises(UserError, match="no images found") as e:
        open_dataset(str(tmp_path), skip_bad=True)
    assert str(tmp_path) in str(e.value)


# ---------------------------------------------------------------- .npy / .npz


def array_of(kind: str, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """An array of a troublesome dtype or value range."""
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    values = {
        "uint8": lambda: rng.integers(0, 256, n).astype(np.uint8),
        "bool": lambda: rng.integers(0, 2, n).astype(bool),
        "complex": lambda: rng.random(n) + 1j,
        "int64 big": lambda: rng.integers(-(2**62), 2**62, n),
        "int16 ok": lambda: rng.integers(0, 256, n).astype(np.int16),
        "float nan": lambda: np.where(np.arange(n) % 2 == 0, np.nan, 0.5),  # NaN first
        "float ok": lambda: rng.random(n).astype(np.float32),
        "float16 inf": lambda: np.full(n, np.inf, np.float16),
        "str": lambda: np.array(["a"] * n),
        "uint64 huge": lambda: np.full(n, 2**64 - 1, np.uint64),
        "datetime": lambda: np.zeros(n, "datetime64[s]"),
        "timedelta": lambda: np.arange(n).astype("timedelta64[s]"),
    }[kind]()
    return values.reshape(shape)


DTYPES = ["uint8", "bool", "complex", "int64 big", "int16 ok", "float nan", "float ok", "float16 inf",
          "str", "uint64 huge", "datetime", "timedelta"]
shapes = st.lists(st.integers(0, 4), min_size=0, max_size=5).map(tuple)


@FUZZ
@given(data=st.binary(max_size=300), suffix=st.sampled_from([".npy", ".npz"]))
def test_array_file_random_bytes(data, suffix):
    with workdir() as d:
        path = d / f"x{suffix}"
        path.write_bytes(data)
        check(lambda: open_dataset(str(path)), d, path)


@FUZZ
@given(kind=st.sampled_from(DTYPES), shape=shapes, cut=st.none() | st.integers(0, 400))
def test_npy_fuzz(kind, shape, cut):
    with workdir() as d:
        path = d / "x.npy"
        np.save(path, array_of(kind, shape, 0))
        if cut is not None:  # a download or copy that stopped part way
            path.write_bytes(path.read_bytes()[:cut])
        result = check(lambda: open_dataset(str(path)), d, path)
        if isinstance(result, ImageSet):
            assert kind in ("uint8", "int16 ok", "float ok")


@FUZZ
@given(
    image_key=st.sampled_from(["images", "x", "other"]),
    image_kind=st.sampled_from(DTYPES),
    image_shape=shapes,
    label_key=st.sampled_from([None, "labels", "y"]),
    label_kind=st.sampled_from(DTYPES),
    label_shape=shapes,
    cut=st.none() | st.integers(0, 2000),
)
def test_npz_fuzz(image_key, image_kind, image_shape, label_key, label_kind, label_shape, cut):
    with workdir() as d:
        path = d / "x.npz"
        arrays = {image_key: array_of(image_kind, image_shape, 0)}
        if label_key:
            arrays[label_key] = array_of(label_kind, label_shape, 1)
        np.savez_compressed(path, **arrays)
        if cut is not None:
            path.write_bytes(path.read_bytes()[:cut])
        result = check(lambda: open_dataset(str(path)), d, path)
        if isinstance(result, ImageSet) and label_key and result.labels is not None:
            assert len(result.labels) == len(result)


class _Mkdir:
    """Pickles into a call of os.mkdir: what a hostile file would do."""

    def __init__(self, target: str):
        self.target = target

    def __reduce__(self):
        return (os.mkdir, (self.target,))


@pytest.mark.parametrize("suffix", [".npy", ".npz"])
@pytest.mark.parametrize("where", ["images", "labels"])
def test_object_arrays_refused_without_unpickling(tmp_path, suffix, where):
    hostile = np.array([_Mkdir(str(tmp_path / "pwned"))], dtype=object)
    path = tmp_path / f"x{suffix}"
    if suffix == ".npy":
        np.save(path, hostile, allow_pickle=True)
    else:
        arrays = {"images": np.zeros((1, 4, 4), np.uint8), "labels": np.zeros(1, np.int64)}
        arrays[where] = hostile
        np.savez(path, **arrays)
    with pytest.raises(UserError) as e:
        open_dataset(str(path))
    assert str(path) in str(e.value)
    assert not (tmp_path / "pwned").exists()


def test_npz_inside_npy_name(tmp_path):
    """A zip archive saved under a .npy name is still read (np.load goes by content)."""
    path = tmp_path / "x.npy"
    with open(path, "wb") as f:
        np.savez(f, images=np.zeros((2, 4, 4), np.uint8), labels=np.array([0, 1]))
    ds = check(lambda: read_arrays(path), tmp_path, path)
    assert isinstance(ds, ImageSet) and ds.labels.tolist() == [0, 1]


def test_npz_corrupt_member_data(tmp_path):
    """Damage inside a compressed member (not the zip directory) must still name the file."""
    path = tmp_path / "x.npz"
    np.savez_compressed(path, images=np.random.default_rng(0).integers(0, 256, (8, 16, 16), dtype=np.uint8))
    with zipfile.ZipFile(path) as z:
        info = z.infolist()[0]
    raw = bytearray(path.read_bytes())
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    for i in range(start + 20, start + 60):
        raw[i] ^= 0x55
    path.write_bytes(bytes(raw))
    with pytest.raises(UserError, match=str(path)):
        open_dataset(str(path))


# ---------------------------------------------------------------- CIFAR-10 batches

plain_values = st.recursive(
    st.none() | st.integers() | st.floats() | st.binary(max_size=8) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.binary(max_size=6), inner, max_size=3),
    max_leaves=8,
)
cifar_data = st.sampled_from(["ok", "wrong width", "float", "empty", "3d"]).map(
    lambda k: {
        "ok": np.zeros((2, 3072), np.uint8),
        "wrong width": np.zeros((2, 100), np.uint8),
        "float": np.zeros((2, 3072), np.float32),
        "empty": np.zeros((0, 3072), np.uint8),
        "3d": np.zeros((2, 3, 1024), np.uint8),
    }[k]
)


@FUZZ
@given(data=st.binary(max_size=300))
def test_cifar_batch_random_bytes(data):
    with pytest.raises(UserError, match="batch_x"):
        parse_batch(data, "batch_x")


@FUZZ
@given(
    data=cifar_data | plain_values,
    labels=plain_values | st.lists(st.integers(-(2**70), 2**70), max_size=3),
    key_type=st.sampled_from([bytes, str]),
    drop=st.sampled_from([None, "data", "labels"]),
    extra=plain_values,
)
def test_cifar_batch_dicts(data, labels, key_type, drop, extra):
    batch = {key_type(b"data" if key_type is bytes else "data"): data}
    batch[b"labels" if key_type is bytes else "labels"] = labels
    batch = {k: v for k, v in batch.items() if drop is None or drop not in str(k)}
    batch[b"extra"] = extra
    try:
        x, y = parse_batch(pickle.dumps(batch, protocol=2), "batch_x")
    except UserError as e:
        assert "batch_x" in str(e)
    else:
        assert x.shape[1:] == (3, 32, 32) and len(x) == len(y) > 0


@FUZZ
@given(which=st.sampled_from(["data_batch_3", "batches.meta"]), data=st.binary(max_size=200) | plain_values.map(pickle.dumps))
def test_cifar_dataset_with_a_bad_file(which, data):
    with workdir() as d:
        batches = d / cifar.BATCH_DIR
        batches.mkdir()
        rng = np.random.default_rng(0)
        for name in [*cifar.SPLIT_FILES["train"], "batches.meta"]:
            batch = {b"data": rng.integers(0, 256, (2, 3072), dtype=np.uint8), b"labels": [1, 2]}
            (batches / name).write_bytes(pickle.dumps(batch, protocol=2))
        (batches / which).write_bytes(data)
        result = check(lambda: open_dataset("cifar10", data_dir=str(d), download=False), d, batches / which)
        if which == "batches.meta":  # class names are cosmetic: a bad meta file never refuses data
            assert isinstance(result, ImageSet) and len(result.class_names) == 10


@FUZZ
@given(cut=st.integers(0, 4000), flip=st.none() | st.integers(0, 4000), fmt=st.sampled_from(["gz", "bz2", "xz"]))
def test_cifar_archive_damaged(cut, flip, fmt):
    with workdir() as d:
        path = d / cifar.ARCHIVE
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode=f"w:{fmt}") as tar:
            for name in cifar.SPLIT_FILES["train"]:
                data = pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [0]}, protocol=2)
                info = tarfile.TarInfo(f"{cifar.BATCH_DIR}/{name}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        raw = bytearray(buf.getvalue())
        if flip is not None:
            raw[flip % len(raw)] ^= 0xFF
        path.write_bytes(bytes(raw[: max(1, cut % (len(raw) + 1))]))
        check(lambda: open_dataset("cifar10", data_dir=str(d), download=False), d, path)


@pytest.mark.parametrize("suffix", [".npy", ".npz"])
def test_array_header_claiming_terabytes(tmp_path, suffix):
    """numpy allocates what the header claims before reading: that must not escape as MemoryError."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False, "shape": (2**40, 28, 28)})
    npy = header.getvalue() + b"\0" * 64
    path = tmp_path / f"x{suffix}"
    if suffix == ".npy":
        path.write_bytes(npy)
    else:
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("images.npy", npy)
    with pytest.raises(UserError, match=str(path)):
        open_dataset(str(path))


@pytest.mark.parametrize("shape", [(2, 0, 5), (2, 5, 0), (2, 3, 0, 4)])
@pytest.mark.parametrize("dtype", [np.uint8, np.int64, np.float32])
def test_arrays_with_empty_images_refused(tmp_path, shape, dtype):
    """N images of 0 pixels: numpy's min() would fail on them, and resizing would divide by 0."""
    path = tmp_path / "x.npy"
    np.save(path, np.zeros(shape, dtype))
    with pytest.raises(UserError, match="holds no images") as e:
        open_dataset(str(path))
    assert str(path) in str(e.value)
