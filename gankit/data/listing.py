"""Which pictures a source holds, and their labels: a folder, or a ZIP such as StyleGAN2-ADA writes.

Labels come from, in order of precedence:
- a ``dataset.json`` at the top of the folder or ZIP (StyleGAN2-ADA's dataset tool writes
  ``{"labels": [["00000/img00000000.png", 6], ...]}``, or ``"labels": null`` for none);
- class sub-folders: a folder whose sub-folders hold pictures is one class per sub-folder, in
  sorted order, with every picture beneath it at any depth (a ZIP likewise by its top-level
  folders); pictures lying beside the class sub-folders make one more class, "(top level)", first;
- none: the pictures of a flat folder are unlabelled.

Imports neither torch nor the rest of gankit's data code, so that decoding workers start fast.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from gankit.errors import UserError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
LABELS_FILE = "dataset.json"
# The class of the pictures that lie beside class sub-folders rather than in one.
TOP_LEVEL_CLASS = "(top level)"


@dataclass(frozen=True)
class PictureList:
    """The pictures of one source, named by their path inside it (forward slashes), with labels."""

    root: Path  # the folder, or the ZIP file
    kind: str  # "folder" or "zip"
    names: tuple[str, ...]
    labels: tuple[int, ...] | None  # one per name; None: unlabelled
    class_names: tuple[str, ...] | None  # from class sub-folders; None for dataset.json or no labels
    labelled_by: str  # "class sub-folders", "dataset.json" or "none"
    fingerprint: str  # changes when any picture is added, removed, renamed or rewritten

    def location(self, name: str) -> str:
        """What a reader opens for `name`: a file path, or the name inside the ZIP."""
        return str(self.root / name) if self.kind == "folder" else name


def is_image_name(name: str) -> bool:
    """True for a visible file name with one of :data:`IMAGE_EXTENSIONS` (any case)."""
    # Hidden files are skipped: macOS "._name.png" companions look like images but are not.
    base = PurePosixPath(name).name
    return not base.startswith(".") and PurePosixPath(base).suffix.lower() in IMAGE_EXTENSIONS


def is_image_file(path: Path) -> bool:
    """True for a visible regular file with one of :data:`IMAGE_EXTENSIONS`."""
    return is_image_name(path.name) and path.is_file()


def list_pictures(root: str | Path) -> PictureList:
    """The pictures of a folder or a ``.zip`` file, or UserError saying why there are none."""
    root = Path(root)
    if root.is_dir():
        return _list_folder(root)
    if root.is_file() and root.suffix.lower() == ".zip":
        return _list_zip(root)
    raise UserError(f"{root}: not an image folder or a .zip of pictures")


def _list_folder(root: Path) -> PictureList:
    labels_file = root / LABELS_FILE
    if labels_file.is_file():
        names = sorted(p.relative_to(root).as_posix() for p in _walk(root) if is_image_file(p))
        stat = [(n, *_stat(root / n)) for n in names] + [(LABELS_FILE, *_stat(labels_file))]
        labels = _labels_from_json(labels_file.read_bytes(), names, str(labels_file))
        return _picture_list(root, "folder", names, labels, None, "dataset.json" if labels else "none", stat)
    entries = sorted(p for p in _listdir(root) if not p.name.startswith("."))
    loose = [p for p in entries if is_image_file(p)]
    classes = []
    for d in (p for p in entries if p.is_dir()):
        files = [p.relative_to(d).as_posix() for p in _walk(d) if is_image_file(p)]
        if files:
            classes.append((d.name, files))
    if classes and loose:  # as real folders often are: the loose pictures make one more class
        classes.insert(0, (TOP_LEVEL_CLASS, [p.name for p in loose]))
    if classes:
        names = [f if c == TOP_LEVEL_CLASS else f"{c}/{f}" for c, files in classes for f in files]
        labels = [i for i, (_, files) in enumerate(classes) for _ in files]
        class_names = [c for c, _ in classes]
    else:
        names, labels, class_names = [p.name for p in loose], None, None
    stat = [(n, *_stat(root / n)) for n in names]
    return _picture_list(root, "folder", names, labels, class_names,
                         "class sub-folders" if classes else "none", stat)


def _list_zip(path: Path) -> PictureList:
    try:
        with zipfile.ZipFile(path) as zf:
            names = sorted(i.filename for i in zf.infolist()
                           if not i.is_dir() and is_image_name(i.filename) and not i.filename.startswith("__MACOSX/"))
            labels_json = zf.read(LABELS_FILE) if LABELS_FILE in zf.namelist() else None
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise UserError(f"{path}: not a readable ZIP file ({e})") from None
    if labels_json is not None:
        labels = _labels_from_json(labels_json, names, f"{path}:{LABELS_FILE}")
        class_names, labelled_by = None, "dataset.json" if labels else "none"
    else:
        tops = [n.split("/", 1)[0] if "/" in n else TOP_LEVEL_CLASS for n in names]
        folders = sorted({t for t in tops if t != TOP_LEVEL_CLASS})
        if folders and (len(folders) > 1 or TOP_LEVEL_CLASS in tops):  # as a folder's, above
            class_names = ([TOP_LEVEL_CLASS] if TOP_LEVEL_CLASS in tops else []) + folders
            index = {c: i for i, c in enumerate(class_names)}
            labels, labelled_by = [index[t] for t in tops], "class sub-folders"
        else:
            labels, class_names, labelled_by = None, None, "none"
    return _picture_list(path, "zip", names, labels, class_names, labelled_by, [(path.name, *_stat(path))])


def _labels_from_json(raw: bytes, names: list[str], where: str) -> list[int] | None:
    """Class numbers per name from a StyleGAN2-ADA dataset.json, or None for ``"labels": null``."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise UserError(f"{where}: not valid JSON ({e})") from None
    if not isinstance(data, dict) or "labels" not in data:
        raise UserError(f'{where}: expected {{"labels": [[file, class], ...]}} (or "labels": null), '
                        "as StyleGAN2-ADA's dataset tool writes it")
    pairs = data["labels"]
    if pairs is None:
        return None
    try:
        table = {str(name).replace("\\", "/"): label for name, label in pairs}
    except (TypeError, ValueError):
        raise UserError(f'{where}: "labels" must be a list of [file, class] pairs') from None
    bad = [v for v in table.values() if isinstance(v, bool) or not isinstance(v, int) or v < 0]
    if bad:
        raise UserError(f"{where}: labels must be class numbers 0, 1, 2, ...; found {bad[0]!r} "
                        "(vector labels are not supported)")
    missing = [n for n in names if n not in table]
    if missing:
        raise UserError(f"{where}: {len(missing)} picture(s) have no label, e.g. {missing[0]}; "
                        "label every picture, or set \"labels\": null to train without labels")
    return [table[n] for n in names]


def _picture_list(root: Path, kind: str, names: list[str], labels: list[int] | None,
                  class_names: list[str] | None, labelled_by: str, stat: list[tuple]) -> PictureList:
    if not names:
        raise UserError(
            f"{root}: no images found (looked for {', '.join(IMAGE_EXTENSIONS)} files in the "
            f"{'ZIP' if kind == 'zip' else 'folder and in its sub-folders'})"
        )
    digest = hashlib.sha256(json.dumps(stat).encode()).hexdigest()
    return PictureList(root, kind, tuple(names), None if labels is None else tuple(labels),
                       None if class_names is None else tuple(class_names), labelled_by, digest)


def _stat(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def _walk(root: Path):
    """Every file under root, hidden folders skipped."""
    for p in sorted(_listdir(root)):
        if p.name.startswith("."):
            continue
        if p.is_dir():
            yield from _walk(p)
        else:
            yield p


def _listdir(d: Path) -> list[Path]:
    """The entries of ``d``; UserError naming it when it cannot be listed (permissions)."""
    try:
        return list(d.iterdir())
    except OSError as e:
        raise UserError(f"{d}: cannot list the folder: {e.strerror or e}") from None
