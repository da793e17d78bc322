"""Pictures as users bring them (a folder, or a ZIP as StyleGAN2-ADA writes it) as an ImageSet.

Listing and labels: gankit.data.listing. Decoding each picture by the stated policy (modes,
transparency, orientation, fit): gankit.data.decode. Decoding once into a memory-mapped cache,
reused while the files are unchanged: gankit.data.prepare. This module joins them and applies
the policy for unreadable files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from gankit.data.imageset import ImageSet
from gankit.data.listing import IMAGE_EXTENSIONS, is_image_file, list_pictures
from gankit.data.prepare import prepare, reason_kinds
from gankit.errors import UserError

__all__ = ["IMAGE_EXTENSIONS", "is_image_file", "read_folder"]


def read_folder(root: str | Path, *, image_size: int | None = None, fit: str = "crop", alpha: str = "white",
                skip_bad: bool = True, progress: bool = True) -> ImageSet:
    """Every picture of a folder or ZIP ``root`` as an ImageSet memory-mapped from its prepared cache.

    Grey pictures stay one channel when all are grey; otherwise all are RGB (RGBA with
    ``alpha="keep"``). ``image_size`` None keeps the pictures' size when they all share one
    square size, else prepares them at 32 or 64 (see gankit.data.prepare). Unreadable files
    are skipped and counted in ``source``; with ``skip_bad`` False the first one raises
    UserError instead. Most of the files unreadable always raises: that is a wrong folder.
    ``progress`` False decodes without a progress bar or notes on stderr.
    """
    root = Path(root)
    if not root.exists():
        raise UserError(f"{root}: no such folder or file")
    pictures = list_pictures(root)
    # Quiet (progress False): no bar and no notes; what was skipped is still in `source`.
    prepared = prepare(pictures, image_size, fit, alpha, progress=progress, announce=progress,
                       say=None if progress else (lambda _: None))
    m = prepared.manifest
    if m["skipped"] and not skip_bad:
        first = m["skipped"][0]
        raise UserError(f"{root / first['file']}: unreadable image ({first['reason']}); "
                        f"{len(m['skipped'])} of {m['files']} files are unreadable. To skip them, "
                        "drop --skip-bad-images false (skipping is the default)")
    labels = prepared.labels()
    source = f"{'ZIP' if pictures.kind == 'zip' else 'image folder'} {root} ({m['kept']} pictures"
    source += {"class sub-folders": f", {len(m['class_names'] or [])} class sub-folders",
               "dataset.json": f", labels from {pictures.root.name + ':' if pictures.kind == 'zip' else ''}dataset.json"
               }.get(m["labelled_by"], "")
    source += f"; prepared at {m['size']} px, --fit {m['fit']}, --alpha {m['alpha']}"
    if m["upscaled"]:
        source += f"; {m['upscaled']} upscaled"
    if m["skipped"]:
        source += (f"; skipped {len(m['skipped'])} unreadable ({reason_kinds(m['skipped'])}): "
                   f"{_some([s['file'] for s in m['skipped']])}")
    source += ")"
    return ImageSet(
        images=torch.from_numpy(prepared.images()),
        labels=None if labels is None else torch.from_numpy(labels.astype(np.int64)),
        name=str(root),
        source=source,
        class_names=list(m["class_names"]) if m["class_names"] else None,
        mmap_file=str(prepared.images_file),
    )


def _some(names: list[str], n: int = 3) -> str:
    """Up to ``n`` names, comma-separated, with "..." when there are more."""
    return ", ".join(names[:n]) + (", ..." if len(names) > n else "")
