"""Decode a folder (or ZIP) of pictures once into a memory-mappable uint8 array, and reuse it.

A prepared set is a directory in the cache holding ``images.npy`` (uint8 [N, C, S, S], readable
with ``np.load(..., mmap_mode="r")``), ``labels.npy`` when there are labels, and
``manifest.json``: the source, a fingerprint of its file list (names, sizes, modification
times), the size, channels, fit and alpha policy, the class names, and every skipped file with
its reason. A later run with the same source and policy reuses it when the fingerprint still
matches, and decodes again when a picture was added, removed or rewritten.

Where: ``$GANKIT_CACHE/prepared`` (default ``~/.cache/gankit/prepared``). Bounded: after each
new set, the least recently used sets are removed while the total passes
``$GANKIT_PREPARED_LIMIT_GB`` (default 10). ``gankit prepare --list`` shows them and
``gankit prepare --clear`` removes them.

Imports no torch: decoding runs in worker processes that should start fast.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import statistics
import sys
import time
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from gankit.data.decode import BadPicture, decode, header_size
from gankit.data.listing import PictureList
from gankit.errors import UserError

FORMAT = "gankit-prepared/1"
LIMIT_ENV, DEFAULT_LIMIT_GB = "GANKIT_PREPARED_LIMIT_GB", 10.0
# A folder of pictures of many sizes trains at one of these sizes unless --image-size says
# otherwise: 64 when most pictures are at least that large, else 32. Both suit the conv nets
# and a CPU; larger costs 4x per doubling.
AUTO_SIZES = (32, 64)
# Fewer pictures than this decode in this process: starting workers would cost more.
_POOL_FROM = 256


def cache_root() -> Path:
    """``$GANKIT_CACHE/prepared``, or ``~/.cache/gankit/prepared``."""
    root = os.environ.get("GANKIT_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "gankit") / "prepared"


@dataclass(frozen=True)
class Prepared:
    """A prepared set on disk: its directory and manifest."""

    directory: Path
    manifest: dict
    reused: bool  # True when an earlier decode was reused

    @property
    def images_file(self) -> Path:
        return self.directory / "images.npy"

    def images(self, mode: str = "c") -> np.ndarray:
        """The images, memory-mapped (``mode`` "c": writable copy-on-write pages, disk untouched)."""
        return np.load(self.images_file, mmap_mode=mode)

    def labels(self) -> np.ndarray | None:
        path = self.directory / "labels.npy"
        return np.load(path) if path.is_file() else None


def prepare(pictures: PictureList, size: int | None = None, fit: str = "crop", alpha: str = "white", *,
            workers: int | None = None, progress: bool = True, say: Callable[[str], None] | None = None,
            announce: bool = True) -> Prepared:
    """The prepared set of ``pictures`` at ``size`` (None: their own size when all share one
    square size, else one of AUTO_SIZES), decoding only when no valid one is cached.

    ``say`` (default: stderr) gets the notes, and after a decode a summary line unless not
    ``announce``. Raises UserError when most files are unreadable (a wrong folder, not a few bad files).
    """
    say = say or _stderr
    directory = cache_root() / _key(pictures, size, fit, alpha)
    found = _valid(directory, pictures.fingerprint)
    if found is not None:
        os.utime(directory / "manifest.json")  # marks it recently used, for the size bound
        return Prepared(directory, found, reused=True)
    start = time.perf_counter()
    names = pictures.names
    target, size_note = (size, None) if size is not None else _auto_size(pictures)
    if size_note:
        say(size_note)
    tmp = directory.with_name(f"{directory.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        manifest = _decode_all(pictures, target, fit, alpha, tmp, workers, progress)
        manifest["decode_seconds"] = round(time.perf_counter() - start, 2)
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
        _install(tmp, directory)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if announce:
        say(_summary(manifest, len(names)))
    _evict(keep=directory)
    return Prepared(directory, manifest, reused=False)


def _decode_all(pictures: PictureList, size: int, fit: str, alpha: str, out: Path,
                workers: int | None, progress: bool) -> dict:
    """Decode every picture into ``out``; returns the manifest (without timing)."""
    from tqdm import tqdm

    n = len(pictures.names)
    channels = 4 if alpha == "keep" else 3
    staging = np.lib.format.open_memmap(out / "staging.npy", mode="w+", dtype=np.uint8,
                                        shape=(n, channels, size, size))
    kept, skipped, upscaled, all_grey = [], [], 0, True
    jobs = [(pictures.kind, str(pictures.root), pictures.location(name), size, fit, alpha) for name in pictures.names]
    bar = tqdm(total=n, desc="decoding pictures", unit="pic", disable=not progress, file=sys.stderr,
               mininterval=0.5, leave=False)
    with _mapper(n, workers) as mapper:
        for i, (pixels, reason, up) in enumerate(mapper(_decode_job, jobs, chunksize=16)):
            bar.update(1)
            if pixels is None:
                skipped.append({"file": pictures.names[i], "reason": reason})
                continue
            if pixels.shape[0] == 1:
                pixels = np.repeat(pixels, channels, axis=0)
            else:
                all_grey = False
            staging[len(kept)] = pixels
            kept.append(i)
            upscaled += up
    bar.close()
    if len(skipped) * 2 > n:
        raise UserError(
            f"{pictures.root}: {len(skipped)} of {n} image files are unreadable "
            f"({_first_reasons(skipped)}); skipping is for a few bad files, so check that this is the right folder"
        )
    final_channels = 1 if all_grey and alpha != "keep" else channels
    images = np.lib.format.open_memmap(out / "images.npy", mode="w+", dtype=np.uint8,
                                       shape=(len(kept), final_channels, size, size))
    for a in range(0, len(kept), 1024):  # copy in chunks: the staging array may exceed RAM
        images[a:a + 1024] = staging[a:min(a + 1024, len(kept)), :final_channels]
    images.flush()
    del images, staging
    (out / "staging.npy").unlink()
    labels = None
    if pictures.labels is not None:
        labels = np.asarray([pictures.labels[i] for i in kept], dtype=np.int64)
        np.save(out / "labels.npy", labels)
    return {
        "format": FORMAT, "source": str(pictures.root.resolve()), "kind": pictures.kind,
        "fingerprint": pictures.fingerprint, "files": n, "kept": len(kept),
        "size": size, "channels": final_channels, "fit": fit, "alpha": alpha,
        "labelled_by": pictures.labelled_by,
        "class_names": list(pictures.class_names) if pictures.class_names else None,
        "num_labels": None if labels is None else int(labels.max()) + 1 if len(labels) else 0,
        "upscaled": upscaled, "skipped": skipped, "bytes": len(kept) * final_channels * size * size,
    }


def _decode_job(job: tuple) -> tuple[np.ndarray | None, str | None, bool]:
    kind, root, location, size, fit, alpha = job
    try:
        picture = decode(_open(kind, root, location), size, fit, alpha)
    except BadPicture as e:
        return None, str(e), False
    except Exception as e:  # noqa: BLE001 - e.g. MemoryError on a huge but legal picture: skip it
        return None, f"{type(e).__name__}: {e}", False
    return picture.pixels, None, picture.upscaled


_ZIPS: dict[tuple, zipfile.ZipFile] = {}  # one open ZipFile per archive (as it is now), per process


def _open(kind: str, root: str, location: str):
    if kind == "folder":
        return location
    st = os.stat(root)
    key = (root, st.st_size, st.st_mtime_ns)  # a rewritten archive is opened anew
    if key not in _ZIPS:
        for old in [k for k in _ZIPS if k[0] == root]:
            _ZIPS.pop(old).close()
        _ZIPS[key] = zipfile.ZipFile(root)
    zf = _ZIPS[key]
    try:
        return zf.read(location)
    except (KeyError, zipfile.BadZipFile, OSError, EOFError, zlib.error) as e:
        raise BadPicture(f"{type(e).__name__}: {e}") from None


class _mapper:
    """A context giving ``map(fn, items, chunksize)``: worker processes for many pictures, else
    this process. Workers are spawned (not forked): the parent may hold torch's threads."""

    def __init__(self, n: int, workers: int | None):
        if workers is None:
            workers = min(os.cpu_count() or 1, 8) if n >= _POOL_FROM else 0
        self.pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn")) if workers > 1 else None

    def __enter__(self):
        if self.pool is None:
            return lambda fn, items, chunksize: map(fn, items)
        return self.pool.map

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)


def _auto_size(pictures: PictureList) -> tuple[int, str | None]:
    """(the size for pictures without --image-size, a note to print or None)."""
    sizes = []
    for name in pictures.names:
        try:
            sizes.append(header_size(_open(pictures.kind, str(pictures.root), pictures.location(name))))
        except BadPicture:
            continue  # the decode that follows records the reason
    if not sizes:
        return AUTO_SIZES[0], None
    if len(set(sizes)) == 1 and sizes[0][0] == sizes[0][1]:
        return sizes[0][0], None
    shorter = statistics.median(min(w, h) for w, h in sizes)
    size = AUTO_SIZES[-1] if shorter >= AUTO_SIZES[-1] else AUTO_SIZES[0]
    what = "differ in size" if len(set(sizes)) > 1 else f"are {sizes[0][0]} x {sizes[0][1]}, not square"
    return size, (f"{pictures.root}: the pictures {what} (median shorter side {shorter:g} px): "
                  f"preparing them at {size} x {size}; pass --image-size to choose")


def _key(pictures: PictureList, size: int | None, fit: str, alpha: str) -> str:
    """The cache directory's name: the source's name, then a hash of the source and the policy."""
    spec = json.dumps([FORMAT, str(pictures.root.resolve()), pictures.kind, size, fit, alpha])
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in pictures.root.name)[:40]
    return f"{stem}-{hashlib.sha256(spec.encode()).hexdigest()[:16]}"


def _valid(directory: Path, fingerprint: str) -> dict | None:
    """The manifest of a complete prepared set with this fingerprint, or None."""
    try:
        manifest = json.loads((directory / "manifest.json").read_text())
        if manifest.get("format") != FORMAT or manifest.get("fingerprint") != fingerprint:
            return None
        images = np.load(directory / "images.npy", mmap_mode="r")
        want = (manifest["kept"], manifest["channels"], manifest["size"], manifest["size"])
        if images.shape != want or images.dtype != np.uint8:
            return None
        return manifest
    except (OSError, ValueError, KeyError, TypeError):
        return None  # absent, half-written or damaged: decode again


def _install(tmp: Path, directory: Path) -> None:
    """Move a finished set into place; another process may have installed one meanwhile."""
    old = directory.with_name(f"{directory.name}.old-{os.getpid()}")
    if directory.exists():
        directory.rename(old)
    try:
        tmp.rename(directory)
    except OSError:
        pass  # another process won the race: its set is as good as ours
    shutil.rmtree(old, ignore_errors=True)


def prepared_sets() -> list[tuple[Path, dict, float]]:
    """(directory, manifest, last used time) of every prepared set, most recently used first."""
    root = cache_root()
    found = []
    for d in root.iterdir() if root.is_dir() else []:
        try:
            manifest_file = d / "manifest.json"
            found.append((d, json.loads(manifest_file.read_text()), manifest_file.stat().st_mtime))
        except (OSError, ValueError):
            continue
    return sorted(found, key=lambda t: -t[2])


def clear(source: str | Path | None = None) -> list[Path]:
    """Remove the prepared sets of ``source`` (every one when None); returns what was removed."""
    removed = []
    wanted = str(Path(source).resolve()) if source is not None else None
    root = cache_root()
    for d in sorted(root.iterdir()) if root.is_dir() else []:
        if wanted is not None:
            try:
                if str(Path(json.loads((d / "manifest.json").read_text())["source"]).resolve()) != wanted:
                    continue
            except (OSError, ValueError, KeyError):
                continue
        shutil.rmtree(d, ignore_errors=True)
        removed.append(d)
    return removed


def _evict(keep: Path) -> None:
    """Remove the least recently used sets while all of them pass the size limit."""
    try:
        limit = float(os.environ.get(LIMIT_ENV, DEFAULT_LIMIT_GB)) * 1e9
    except ValueError:
        limit = DEFAULT_LIMIT_GB * 1e9
    sets = prepared_sets()
    total = sum(_du(d) for d, _, _ in sets)
    for d, _, _ in reversed(sets):  # least recently used first
        if total <= limit:
            break
        if d != keep:
            total -= _du(d)
            shutil.rmtree(d, ignore_errors=True)


def _du(d: Path) -> int:
    return sum(p.stat().st_size for p in d.iterdir() if p.is_file())


def reason_counts(skipped: list[dict]) -> Counter:
    """How many files were skipped for each kind of reason (the reason's first word)."""
    return Counter(s["reason"].split(":", 1)[0].split(" (", 1)[0] for s in skipped)


def reason_kinds(skipped: list[dict]) -> str:
    """The kinds of reason and their counts, most frequent first: "too large 16, OSError 2"."""
    return ", ".join(f"{kind} {count}" for kind, count in reason_counts(skipped).most_common())


def _first_reasons(skipped: list[dict], n: int = 3) -> str:
    return "; ".join(f"{s['file']}: {s['reason']}" for s in skipped[:n]) + ("; ..." if len(skipped) > n else "")


def _summary(m: dict, n: int) -> str:
    line = (f"prepared {m['kept']} of {n} pictures from {m['source']} at {m['size']} x {m['size']}, "
            f"{m['channels']} channel(s), in {m['decode_seconds']:.1f} s")
    if m["skipped"]:
        line += f"; skipped {len(m['skipped'])} ({reason_kinds(m['skipped'])}), e.g. {_first_reasons(m['skipped'], 2)}"
    if m["upscaled"]:
        line += f"; {m['upscaled']} smaller than {m['size']} px were upscaled"
    return line


def describe(m: dict, directory: Path) -> str:
    """A few lines on a prepared set: what it holds, what was skipped and why, where it is."""
    lines = [f"{m['source']}: {m['kept']} of {m['files']} pictures at {m['size']} x {m['size']}, "
             f"{m['channels']} channel(s), --fit {m['fit']}, --alpha {m['alpha']}, "
             f"labels: {m['labelled_by']}, {m['bytes'] / 1e6:.1f} MB, decoded in {m['decode_seconds']:.1f} s",
             f"  in {directory}"]
    if m["upscaled"]:
        lines.append(f"  upscaled (smaller than {m['size']} px): {m['upscaled']}")
    if m["skipped"]:
        lines.append(f"  skipped {len(m['skipped'])} ({reason_kinds(m['skipped'])}); first: {_first_reasons(m['skipped'])}")
    return "\n".join(lines)


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
