"""A directory of image files: class sub-folders, or one flat folder without labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gankit.data.imageset import ImageSet
from gankit.data.transforms import resize_square
from gankit.errors import UserError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
# Pillow modes that hold one grey value per pixel; everything else is read as RGB.
_GREY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}


def is_image_file(path: Path) -> bool:
    """True for a visible regular file with one of :data:`IMAGE_EXTENSIONS` (any case)."""
    # Hidden files are skipped: macOS "._name.png" companions look like images but are not.
    return not path.name.startswith(".") and path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file()


def list_images(root: Path) -> tuple[list[tuple[Path, int | None]], list[str] | None]:
    """The image files under ``root`` with their label, and the class names (None if flat).

    A folder with sub-folders that contain images is a class folder: each such sub-folder,
    in sorted order, is one class. Otherwise the folder's own images are used, unlabelled.
    """
    entries = sorted(p for p in _listdir(root) if not p.name.startswith("."))
    loose = [p for p in entries if is_image_file(p)]
    classes = []
    for d in (p for p in entries if p.is_dir()):
        files = sorted(p for p in _listdir(d) if is_image_file(p))
        if files:
            classes.append((d.name, files))
    if not classes:
        return [(p, None) for p in loose], None
    if loose:
        raise UserError(
            f"{root} has both class sub-folders ({', '.join(n for n, _ in classes[:3])}...) and "
            f"{len(loose)} image(s) directly inside it (e.g. {loose[0].name}); move those images "
            "into a class sub-folder, or point to a folder that has only one of the two"
        )
    return [(p, i) for i, (_, files) in enumerate(classes) for p in files], [n for n, _ in classes]


def _listdir(d: Path) -> list[Path]:
    """The entries of ``d``; UserError naming it when it cannot be listed (permissions)."""
    try:
        return list(d.iterdir())
    except OSError as e:
        raise UserError(f"{d}: cannot list the folder: {e.strerror or e}") from None


def read_image(path: Path) -> np.ndarray:
    """One image as uint8 [C, H, W], C = 1 for grey modes, else 3 (alpha is dropped)."""
    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            if mode in ("P", "PA"):
                # Palette images are grey when every palette entry is; decide by content.
                rgb = np.asarray(img.convert("RGB"))
                if (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all():
                    return rgb[None, :, :, 0].copy()
                return rgb.transpose(2, 0, 1).copy()
            if mode in _GREY_MODES:
                return np.asarray(img.convert("L"))[None].copy()
            return np.asarray(img.convert("RGB")).transpose(2, 0, 1).copy()
    except Exception as e:  # Pillow's decoders raise many types (OSError, SyntaxError, ValueError, ...)
        raise UserError(f"{path}: unreadable image ({type(e).__name__}: {e})") from None


def read_folder(root: str | Path, *, image_size: int | None = None, skip_bad: bool = False) -> ImageSet:
    """Read every image under ``root`` into an ImageSet (see :func:`list_images` for labels).

    All images become RGB if any is colour, else grey. They must share one size, unless
    ``image_size`` is given: then each is resized (shorter side, centre crop) as it is read.
    Without ``skip_bad`` the first unreadable file raises UserError naming it. With
    ``skip_bad``, unreadable files are skipped, and ``source`` gives their count and names
    up to three; but when more than half of the files are unreadable it still raises: that
    many is a wrong folder or a wrong format, not a few damaged images worth skipping.
    """
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: not a directory")
    items, class_names = list_images(root)
    if not items:
        raise UserError(
            f"{root}: no images found (looked for {', '.join(IMAGE_EXTENSIONS)} files in the folder "
            "and in its sub-folders)"
        )
    arrays, labels, paths, bad = [], [], [], []
    for path, label in items:
        try:
            arrays.append(read_image(path))
        except UserError as e:
            if not skip_bad:
                raise UserError(f"{e}; to skip unreadable images, pass --skip-bad-images") from None
            bad.append(path)
            continue
        labels.append(label)
        paths.append(path)
    if len(bad) * 2 > len(items):
        raise UserError(
            f"{root}: {len(bad)} of {len(items)} image files are unreadable ({_some(bad)}); "
            "skipping is only for a few bad files, so check that this is the right folder"
        )

    sizes = {a.shape[1:] for a in arrays}
    if len(sizes) > 1:
        if image_size is None:
            first = arrays[0].shape[1:]
            j = next(i for i, a in enumerate(arrays) if a.shape[1:] != first)
            raise UserError(
                f"images in {root} differ in size: {paths[0]} is {first[1]}x{first[0]}, "
                f"{paths[j]} is {arrays[j].shape[2]}x{arrays[j].shape[1]} (width x height); "
                "pass --image-size S to resize them all to S x S"
            )
        tensors = [resize_square(torch.from_numpy(a)[None], image_size)[0] for a in arrays]
    else:
        tensors = [torch.from_numpy(a) for a in arrays]
    if any(t.shape[0] == 3 for t in tensors):
        # Mixed grey and colour: grey becomes RGB by repeating its channel (exact, lossless).
        tensors = [t.expand(3, -1, -1) for t in tensors]
    source = f"image folder {root} ({len(tensors)} images"
    source += f", {len(class_names)} class sub-folders)" if class_names else ")"
    if bad:
        source += f"; skipped {len(bad)} unreadable file(s): {_some(bad)}"
    return ImageSet(
        images=torch.stack(tensors),
        labels=None if class_names is None else torch.tensor(labels, dtype=torch.int64),
        name=str(root),
        source=source,
        class_names=class_names,
    )


def _some(paths: list[Path], n: int = 3) -> str:
    """Up to ``n`` paths, comma-separated, with "..." when there are more."""
    return ", ".join(str(p) for p in paths[:n]) + (", ..." if len(paths) > n else "")
