"""The file name of every picture an image folder's ImageSet holds, in its order.

``read_folder`` keeps the pictures of ``list_pictures`` in order, less the unreadable ones it
skipped; this gives the names beside them, for labels and groups made from the paths.
"""

from __future__ import annotations

from pathlib import Path

from gankit.data.listing import list_pictures
from gankit.data.prepare import prepare


def kept_picture_names(root: str | Path, *, image_size: int | None = None, fit: str = "crop",
                       alpha: str = "white") -> list[str] | None:
    """Names (paths inside ``root``) of the pictures ``read_folder`` with the same options holds;
    None when ``root`` is not a folder or ZIP of pictures."""
    root = Path(root).expanduser()
    if not (root.is_dir() or (root.is_file() and root.suffix.lower() == ".zip")):
        return None
    pictures = list_pictures(root)
    # Cheap: the prepared cache read_folder made is found again, nothing is decoded twice.
    manifest = prepare(pictures, image_size, fit, alpha, progress=False, announce=False, say=lambda _: None).manifest
    skipped = {s["file"] for s in manifest["skipped"]}
    return [n for n in pictures.names if n not in skipped]
