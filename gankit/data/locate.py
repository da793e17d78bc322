"""Where named datasets are looked for on disk, in order."""

from __future__ import annotations

import os
from pathlib import Path

# Roots where operating-system packages put datasets; each dataset lives in <root>/<name>.
# Debian's `dataset-fashion-mnist` installs /usr/share/datasets/fashion-mnist. Module level so
# tests (and unusual systems) can replace it.
SYSTEM_DIRS: tuple[str, ...] = ("/usr/share/datasets", "/usr/local/share/datasets")

# Environment variable naming the download cache root (default ~/.cache/gankit/datasets).
CACHE_ENV = "GANKIT_DATA"


def cache_root() -> Path:
    """Root of the download cache: ``$GANKIT_DATA`` or ``~/.cache/gankit/datasets``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "gankit" / "datasets"


def cache_dir(name: str) -> Path:
    """Directory where dataset ``name`` is downloaded to (not created here)."""
    return cache_root() / name


def search_dirs(name: str, data_dir: str | os.PathLike | None, subdirs: tuple[str, ...] = ()) -> list[Path]:
    """Directories to search for dataset ``name``, most specific first, without duplicates.

    Order: ``data_dir``, ``data_dir/<name>``, ``data_dir/<s>`` for each extra sub-directory
    (e.g. torchvision's ``FashionMNIST/raw``), then ``<system root>/<name>`` for each system
    root, then the cache directory. Nothing is created.
    """
    dirs: list[Path] = []
    if data_dir is not None:
        base = Path(data_dir).expanduser()
        dirs += [base, base / name] + [base / s for s in subdirs]
    dirs += [Path(root) / name for root in SYSTEM_DIRS]
    dirs.append(cache_dir(name))
    unique: list[Path] = []
    for d in dirs:
        if d not in unique:
            unique.append(d)
    return unique


def find_first(dirs: list[Path], filenames: tuple[str, ...]) -> Path | None:
    """First existing file among ``dir/filename`` for each dir in order, each filename in order."""
    for d in dirs:
        for fn in filenames:
            p = d / fn
            if p.is_file():
                return p
    return None


def data_dir_hint(dirs: list[Path]) -> str:
    """The shared tail of every 'file not found' message: where we looked and what to do."""
    listed = "\n".join(f"  {d}" for d in dirs)
    return (
        f"Directories searched, in order:\n{listed}\n"
        "Put the files in one of these directories, or pass --data-dir DIR to point to "
        "the directory that holds them."
    )
