"""Dataset names, and ``open_dataset``: turn a name or a path into an ImageSet."""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from gankit.data import cifar, embedded, mnist
from gankit.data.arrays import read_arrays
from gankit.data.folder import read_folder
from gankit.data.imageset import ImageSet
from gankit.data.transforms import apply_transforms
from gankit.errors import UserError

SPLITS = ("train", "test", "train+test")
_DOWNLOADS = "not found (downloads on first use)"


@dataclass(frozen=True)
class _Entry:
    description: str
    # (splits to read, data_dir, download allowed) -> ImageSet
    open: Callable[[list[str], str | None, bool], ImageSet]
    # data_dir -> where it is, without downloading or creating anything
    availability: Callable[[str | None], str]
    has_splits: bool = True


def _idx_opener(name: str) -> Callable[[list[str], str | None, bool], ImageSet]:
    def opener(splits: list[str], data_dir: str | None, download: bool) -> ImageSet:
        return mnist.open_idx_dataset(mnist.DATASETS[name], splits, data_dir, download)

    return opener


def _idx_availability(name: str) -> Callable[[str | None], str]:
    def availability(data_dir: str | None) -> str:
        ds = mnist.DATASETS[name]
        stems = [s for pair in mnist.SPLIT_FILES.values() for s in pair]
        found, _ = mnist.find_files(ds, stems, data_dir)
        where = ", ".join(dict.fromkeys(str(p.parent) for p in found.values()))
        if len(found) == len(stems):
            return f"found in {where}"
        if found:
            missing = ", ".join(s for s in stems if s not in found)
            return f"partly found in {where} (missing {missing}: downloads on first use)"
        return _DOWNLOADS

    return availability


def _cifar_availability(data_dir: str | None) -> str:
    files = [f for split in cifar.SPLIT_FILES.values() for f in split]
    source, _ = cifar.find_source(files, data_dir)
    return f"found in {source}" if source is not None else _DOWNLOADS


def _mnist_5k_availability(data_dir: str | None) -> str:
    path = embedded.DATA_FILE
    return f"shipped with gankit ({path})" if path.is_file() else "missing from this install: reinstall gankit"


_REGISTRY: dict[str, _Entry] = {
    embedded.NAME: _Entry(
        embedded.DESCRIPTION,
        lambda splits, data_dir, dl: embedded.open_mnist_5k(),
        _mnist_5k_availability,
        has_splits=False,
    ),
    **{
        name: _Entry(ds.description, _idx_opener(name), _idx_availability(name))
        for name, ds in mnist.DATASETS.items()
    },
    cifar.NAME: _Entry(cifar.DESCRIPTION, cifar.open_cifar10, _cifar_availability),
}

# Other spellings people type; normalised names map to registered ones.
_ALIASES = {"fashionmnist": "fashion-mnist", "cifar-10": "cifar10", "mnist5k": "mnist-5k"}


def dataset_names() -> list[str]:
    """Registered dataset names, the offline default first."""
    return list(_REGISTRY)


def describe_datasets(data_dir: str | None = None) -> list[tuple[str, str, str]]:
    """(name, one-line description, availability) per registered dataset.

    Availability says where the data was found, or that it downloads on first use, or
    what to install. Only looks: never downloads or creates anything.
    """
    return [(name, e.description, e.availability(data_dir)) for name, e in _REGISTRY.items()]


def open_dataset(
    spec: str,
    *,
    data_dir: str | None = None,
    split: str = "train",
    classes: Sequence[int] | None = None,
    image_size: int | None = None,
    channels: int | None = None,
    download: bool = True,
    skip_bad: bool = True,
    fit: str = "crop",
    alpha: str = "white",
    progress: bool = True,
) -> ImageSet:
    """Open a dataset by registered name, or by path (image folder, ``.npy``/``.npz`` file).

    ``split`` is "train", "test" or "train+test" (both, train first). Sources without a
    split of their own (folders, arrays, mnist-5k) give all their images for "train" and
    "train+test", and refuse "test". Then, in order: keep only ``classes`` (labels keep
    their values), convert to ``channels`` (1 or 3), resize to ``image_size`` square
    (shorter side, centre crop). ``download`` allows fetching a missing named dataset into
    the cache (``$GANKIT_DATA`` or ``~/.cache/gankit/datasets``). A registered name wins
    over a same-named path; write ``./name`` for the path.

    ``skip_bad``, ``fit`` and ``alpha`` apply to pictures (an image folder, or a ZIP of
    pictures such as StyleGAN2-ADA's): unreadable files are skipped and counted in ``source``
    (with ``skip_bad`` False the first raises), non-square pictures are fitted by ``fit``, and
    transparency is handled by ``alpha`` (see :mod:`gankit.data.decode`); such a source is
    decoded once into a cache and memory-mapped (:mod:`gankit.data.prepare`). Other sources
    ignore them: they are arrays already, so the trainer can pass its flags whatever the source.
    ``progress`` False decodes pictures without a progress bar or notes (``gankit train -q``).
    """
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")
    if channels is not None and channels not in (1, 3):
        raise UserError(f"channels must be 1 (grey) or 3 (RGB), got {channels}")
    if image_size is not None and (isinstance(image_size, bool) or int(image_size) != image_size or image_size < 1):
        raise UserError(f"image size must be a positive whole number of pixels, got {image_size}")
    splits = ["train", "test"] if split == "train+test" else [split]

    name = _canonical(spec)
    if name in _REGISTRY:
        entry = _REGISTRY[name]
        if not entry.has_splits:
            _refuse_test(name, split)
        ds = entry.open(splits, data_dir, download)
    else:
        ds = _open_path(spec, split, image_size, skip_bad, fit, alpha, progress)
    return apply_transforms(ds, classes=classes, image_size=image_size, channels=channels)


def _canonical(spec: str) -> str:
    key = spec.strip().lower().replace("_", "-")
    return _ALIASES.get(key, key)


def _refuse_test(name: str, split: str) -> None:
    if split == "test":
        raise UserError(
            f"{name} has no test split (it is a single set of images); use --split train "
            "(or train+test), which gives all of its images"
        )


def _open_path(spec: str, split: str, image_size: int | None, skip_bad: bool, fit: str, alpha: str,
               progress: bool) -> ImageSet:
    path = Path(spec).expanduser()
    if path.is_dir() or (path.is_file() and path.suffix.lower() == ".zip"):
        _refuse_test(spec, split)
        ds = read_folder(path, image_size=image_size, skip_bad=skip_bad, fit=fit, alpha=alpha, progress=progress)
        return dataclasses.replace(ds, name=spec)
    if path.is_file():
        if path.suffix.lower() not in (".npy", ".npz"):
            raise UserError(
                f"{spec}: unsupported file type {path.suffix or '(none)'}: a dataset path must be "
                "an image folder, a .zip of pictures or a .npy/.npz file"
            )
        _refuse_test(spec, split)
        return dataclasses.replace(read_arrays(path), name=spec)
    names = dataset_names()
    close = difflib.get_close_matches(_canonical(spec), names, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise UserError(
        f"unknown dataset {spec!r} (and no such file or directory).{hint} Valid names: "
        f"{', '.join(names)}. A path to an image folder, a .zip of pictures or a .npy/.npz file also works."
    )
