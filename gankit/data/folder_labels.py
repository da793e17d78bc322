"""Class labels of a picture folder from deeper folder levels than the top one.

``gankit.data.listing`` labels a folder by its top-level sub-folders. A tree such as openclipart's
(22 categories holding 69 sub-folders) says more: ``animals/birds`` and ``animals/mammals`` are
different things, and a classifier that must tell them apart learns more about shapes. The
evaluator's trainer asks for labels at a depth:

- ``depth`` N (1 is the top level, as ``listing`` labels): a picture's class is the first N
  folders of its path (fewer where it lies higher);
- ``"auto"``: from the top, a folder is split into its sub-folders that hold at least
  ``min_per_class`` pictures each, while the rest of it (pictures beside them and smaller
  sub-folders, kept together as ``FOLDER/(rest)``) is empty or holds as many; otherwise it stays
  one class. Each split sub-folder is considered again, so every branch goes as deep as its
  numbers allow, and no class is smaller than ``min_per_class`` unless its whole top-level
  folder is.

Pure functions of the picture names (paths with forward slashes), so that they are cheap and
tested without pictures.
"""

from __future__ import annotations

from collections import Counter

from gankit.errors import UserError

REST = "(rest)"
MIN_PER_CLASS = 30  # pictures: enough that a class's held-out fifth holds a few of them


def folder_of(name: str, depth: int) -> str:
    """The first ``depth`` folders of a picture's path ("" for a picture at the top)."""
    return "/".join(name.split("/")[:-1][:depth])


def labels_at_depth(names: list[str] | tuple[str, ...], depth: int | str,
                    min_per_class: int = MIN_PER_CLASS) -> tuple[list[int], list[str]]:
    """(a label per name, the class names in sorted order) at ``depth`` (an int >= 1, or "auto")."""
    if depth == "auto":
        classes = [_auto_class(name, names_by_prefix, min_per_class)
                   for names_by_prefix in [_prefix_counts(names)] for name in names]
    elif isinstance(depth, int) and depth >= 1:
        classes = [folder_of(name, depth) or "(top level)" for name in names]
    else:
        raise UserError(f"--label-depth {depth}: give auto or a folder depth of 1 or more (1: the top-level folders)")
    class_names = sorted(set(classes))
    index = {c: i for i, c in enumerate(class_names)}
    return [index[c] for c in classes], class_names


def _prefix_counts(names) -> Counter:
    """Pictures beneath every folder path (each picture counts for each folder above it)."""
    counts: Counter = Counter()
    for name in names:
        folders = name.split("/")[:-1]
        for d in range(1, len(folders) + 1):
            counts["/".join(folders[:d])] += 1
    return counts


def _auto_class(name: str, counts: Counter, min_per_class: int) -> str:
    folders = name.split("/")[:-1]
    if not folders:
        return "(top level)"
    node = folders[0]
    for d in range(2, len(folders) + 1):
        if not _splits(node, counts, min_per_class):
            return node
        child = "/".join(folders[:d])
        if counts[child] < min_per_class:
            return f"{node}/{REST}"
        node = child
    # The picture lies directly in `node`: its own class if node splits, with the rest.
    return f"{node}/{REST}" if _splits(node, counts, min_per_class) else node


def _splits(node: str, counts: Counter, min_per_class: int) -> bool:
    """Whether ``node`` is split: some sub-folder holds enough, and so does the rest (or it is empty)."""
    depth = node.count("/") + 1
    children = [c for c in counts if c.count("/") == depth and c.startswith(node + "/")]
    big = sum(counts[c] for c in children if counts[c] >= min_per_class)
    if not big:
        return False
    rest = counts[node] - big
    return rest == 0 or rest >= min_per_class
