"""Writing a file so that readers see the old version or the whole new one, never half of it.

Checkpoints, config.json, report.html, cached features and shipped weights all go through here:
the data is written to a temporary file in the same folder and renamed over the target.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None], *, durable: bool = False,
                 mode: int = 0o644) -> None:
    """Call `write(file)` on a temporary file beside `path`, then rename it to `path`.

    durable=True also fsyncs the file and the folder, so the rename survives a power cut (for
    checkpoints). On any error the temporary file is removed and the old `path` is untouched.
    `mode` replaces mkstemp's private 0600, since these files are meant to be read and shared.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        # torch.save's zip writer turns a failed write (a full disk) into a RuntimeError whose
        # context is the OSError; callers handle OSError, so they get that.
        if isinstance(exc, RuntimeError) and isinstance(exc.__context__, OSError):
            raise exc.__context__ from None
        raise
    if durable:
        _fsync_dir(path.parent)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def _fsync_dir(folder: Path) -> None:
    # The rename is durable only once the directory entry is on disk.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
