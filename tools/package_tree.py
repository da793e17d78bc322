"""Print the code tree of docs/guide.md, each module with its docstring's first sentence.

The tree holds every package and module of gankit, and the scripts of benchmarks/ and tools/.

    python tools/package_tree.py            # print the tree
    python tools/package_tree.py --write    # rewrite the tree in docs/guide.md between its markers
    python tools/package_tree.py --check    # exit 1 when docs/guide.md's tree is not the one printed

The guide's tree is this script's output, so it cannot drift from the package:
tests/test_package_tree.py fails when they differ. A module's description is its docstring's
first sentence: to change what the tree says, change the docstring. Standard library only; no
module is imported (the docstrings are read with ast).
"""

from __future__ import annotations

import argparse
import ast
import difflib
import re
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GUIDE = REPO / "docs" / "guide.md"
BEGIN = "<!-- package tree: python tools/package_tree.py --write -->"
END = "<!-- end package tree -->"
ROOTS = ("gankit", "benchmarks", "tools")  # folders the tree shows, in this order
FOLDERS = {  # what the folders that are not packages hold
    "benchmarks": "The scripts behind the tables of docs/measurements.md; their results in results/",
    "tools": "Scripts that write (and check) files kept in the repository",
}
NAME_COLUMN = 26  # descriptions start here
WIDTH = 100  # and wrap before this

# A sentence ends at a full stop or question mark followed by a space and a capital, a quote or a
# bracket; "et al. 2020", "e.g. a" and "gankit.nets.build" do not end one.
_SENTENCE_END = re.compile(r"(?<!\bal)(?<!\be\.g)(?<!\bi\.e)[.?](?=\s+[A-Z`\"'(\[])")


def first_sentence(doc: str | None) -> str:
    """The first sentence of a docstring's first paragraph, on one line, without its full stop."""
    if not doc or not doc.strip():
        return ""
    paragraph = " ".join(doc.strip().split("\n\n")[0].split())
    m = _SENTENCE_END.search(paragraph)
    sentence = paragraph[:m.start() + 1] if m else paragraph
    return sentence[:-1] if sentence.endswith(".") else sentence


def _script_comment(path: Path) -> str:
    """A shell script's description: its leading comment (after the #! line), as one paragraph."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#!"):
            continue
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    return "\n".join(lines)


def describe(path: Path) -> str:
    """What the tree says about one file or folder (a package is described by its __init__.py)."""
    if path.is_dir():
        init = path / "__init__.py"
        return describe(init) if init.is_file() else FOLDERS.get(path.name, "")
    if path.suffix == ".sh":
        return first_sentence(_script_comment(path))
    return first_sentence(ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"), str(path))))


def _shown(path: Path) -> bool:
    if path.name.startswith((".", "_")) and path.name not in ("__init__.py", "__main__.py"):
        return False
    if path.is_dir():
        return (path / "__init__.py").is_file()  # packages; data folders (weights/, results/) are not code
    return path.suffix in (".py", ".sh") and path.name != "__init__.py"


def entries(root: Path, depth: int = 0) -> list[tuple[int, Path, str]]:
    """(depth, path, description) for a folder and what is under it: modules first, then packages."""
    rows = [(depth, root, describe(root))]
    children = sorted((p for p in root.iterdir() if _shown(p)), key=lambda p: (p.is_dir(), p.name))
    for child in children:
        if child.is_dir():
            rows += entries(child, depth + 1)
        else:
            rows.append((depth + 1, child, describe(child)))
    return rows


def tree(repo: Path = REPO) -> str:
    """The tree as the guide shows it (without the markers and the fence)."""
    lines = []
    for root in ROOTS:
        for depth, path, about in entries(repo / root):
            label = "  " * depth + path.name + ("/" if path.is_dir() else "")
            about = about or "(no docstring)"
            wrapped = textwrap.wrap(about, WIDTH - NAME_COLUMN, break_long_words=False, break_on_hyphens=False)
            if len(label) + 2 > NAME_COLUMN:
                lines.append(label)
            else:
                lines.append(label.ljust(NAME_COLUMN) + wrapped.pop(0))
            lines += [" " * NAME_COLUMN + rest for rest in wrapped]
    return "\n".join(lines) + "\n"


def undescribed(repo: Path = REPO) -> list[str]:
    """The files and packages the tree shows without a description (no docstring)."""
    return [str(path.relative_to(repo)) for root in ROOTS
            for _depth, path, about in entries(repo / root) if not about]


def block(text: str) -> str:
    """The guide's block: the markers around a fenced tree."""
    return f"{BEGIN}\n```\n{text}```\n{END}"


def current_block(guide_text: str) -> str | None:
    """The block as the guide holds it now, or None when its markers are missing."""
    start, end = guide_text.find(BEGIN), guide_text.find(END)
    if start < 0 or end < start:
        return None
    return guide_text[start:end + len(END)]


def write(guide: Path = GUIDE, repo: Path = REPO) -> bool:
    """Rewrite the guide's block; True when it changed."""
    text = guide.read_text(encoding="utf-8")
    old = current_block(text)
    if old is None:
        raise SystemExit(f"{guide}: no block between {BEGIN!r} and {END!r}; put the two markers where the tree goes")
    new = block(tree(repo))
    if old == new:
        return False
    guide.write_text(text.replace(old, new, 1), encoding="utf-8")
    return True


def diff(guide: Path = GUIDE, repo: Path = REPO) -> str:
    """What --write would change in the guide, as a unified diff ('' when nothing)."""
    old = current_block(guide.read_text(encoding="utf-8")) or ""
    new = block(tree(repo))
    return "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True),
                                        "docs/guide.md (now)", "python tools/package_tree.py"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="rewrite the tree in docs/guide.md")
    mode.add_argument("--check", action="store_true", help="exit 1 when docs/guide.md's tree differs")
    args = parser.parse_args(argv)
    if args.write:
        print("docs/guide.md: tree rewritten" if write() else "docs/guide.md: tree already up to date")
        return 0
    if args.check:
        changes = diff()
        if changes:
            print(changes + "\nrun `python tools/package_tree.py --write`", file=sys.stderr)
        return 1 if changes else 0
    sys.stdout.write(tree())
    return 0


if __name__ == "__main__":
    sys.exit(main())
