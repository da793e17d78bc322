"""Fetch one URL into one file, verifying its checksum before the file appears."""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from gankit.errors import UserError

# Seconds to wait for a connection or for each read; short so an offline machine fails fast.
TIMEOUT_S = 10.0
_CHUNK = 1 << 20


class NetworkError(UserError):
    """The URL could not be fetched (offline, DNS failure, HTTP error, timeout)."""


class ChecksumError(UserError):
    """The bytes fetched do not match the published checksum."""


def download(
    url: str,
    dest: str | os.PathLike,
    *,
    md5: str | None = None,
    sha256: str | None = None,
    timeout: float = TIMEOUT_S,
    quiet: bool = False,
) -> Path:
    """Download ``url`` to ``dest`` and return ``dest`` once its checksum matches.

    At least one of ``md5``/``sha256`` is required. The bytes go to a temporary file next
    to ``dest`` that is renamed only after the checksum matches, so ``dest`` never holds a
    partial or wrong file. On any failure the temporary file, and any directory this call
    created, are removed; raises :class:`NetworkError` or :class:`ChecksumError`.
    """
    if md5 is None and sha256 is None:
        raise ValueError("download() needs an md5 or sha256 checksum")
    dest = Path(dest)
    created = _missing_ancestors(dest.parent)
    tmp_name: str | None = None
    try:
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"cannot create download directory {dest.parent}: {e.strerror or e}") from None
        if not quiet:
            # Downloads take a while; one line on stderr says why the program is waiting.
            print(f"downloading {url} -> {dest}", file=sys.stderr)
        digest_md5 = hashlib.md5(usedforsecurity=False) if md5 else None
        digest_sha = hashlib.sha256() if sha256 else None
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    while chunk := response.read(_CHUNK):
                        out.write(chunk)
                        if digest_md5:
                            digest_md5.update(chunk)
                        if digest_sha:
                            digest_sha.update(chunk)
            except (urllib.error.URLError, OSError, ValueError) as e:
                reason = getattr(e, "reason", None) or e
                raise NetworkError(f"could not download {url}: {reason}") from None
        for algo, digest, want in (("md5", digest_md5, md5), ("sha256", digest_sha, sha256)):
            if digest is not None and digest.hexdigest() != want.lower():
                raise ChecksumError(
                    f"checksum mismatch for {url}: {algo} is {digest.hexdigest()}, expected {want} "
                    "(the download was corrupted or the file changed upstream); nothing was saved"
                )
        os.replace(tmp_name, dest)
        tmp_name = None
        return dest
    except BaseException:
        if tmp_name is not None:
            Path(tmp_name).unlink(missing_ok=True)
        for d in reversed(created):  # deepest first
            try:
                d.rmdir()
            except OSError:
                break  # not empty (another file landed there) or already gone: leave it
        raise


def _missing_ancestors(path: Path) -> list[Path]:
    """``path`` and its parents that do not exist yet, shallowest first."""
    missing: list[Path] = []
    p = path
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    return list(reversed(missing))
