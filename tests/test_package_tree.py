"""The guide's code tree is the package's: docs/guide.md holds what tools/package_tree.py prints."""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("package_tree", REPO / "tools" / "package_tree.py")
package_tree = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(package_tree)

FIX = "python tools/package_tree.py --write"


def test_the_guides_tree_is_the_one_the_code_gives():
    guide = (REPO / "docs" / "guide.md").read_text(encoding="utf-8")
    assert package_tree.current_block(guide) is not None, (
        f"docs/guide.md lost its package tree markers {package_tree.BEGIN!r} ... {package_tree.END!r}")
    changes = package_tree.diff()
    assert not changes, f"docs/guide.md's package tree is out of date; run `{FIX}`:\n{changes}"


def test_every_module_says_what_it_holds():
    assert package_tree.undescribed() == [], "give these a docstring: its first sentence is their line in the guide"


def test_the_tree_shows_every_module_and_package():
    lines = package_tree.tree().splitlines()
    labels = [line.strip().split()[0] for line in lines if line[:1] != " " or line[:package_tree.NAME_COLUMN].strip()]
    assert labels[0] == "gankit/"
    shown = [label for label in labels if label.endswith((".py", "/"))]
    for path in sorted((REPO / "gankit").rglob("*.py")):
        name = path.parent.name + "/" if path.name == "__init__.py" else path.name
        assert name in shown, f"{path.relative_to(REPO)} is missing from the tree"


def test_first_sentence():
    first = package_tree.first_sentence
    assert first("One line.") == "One line"
    assert first("The ops (Karras et al. 2020, StyleGAN2-ADA). More here.") == \
        "The ops (Karras et al. 2020, StyleGAN2-ADA)"
    assert first("Calls gankit.nets.build, e.g. a dcgan. Then more.") == "Calls gankit.nets.build, e.g. a dcgan"
    assert first("A sentence that goes\non over two lines.\n\nA second paragraph.") == \
        "A sentence that goes on over two lines"
    assert first("Does it agree? Yes.") == "Does it agree?"
    assert first(None) == "" and first("   ") == ""


def test_write_rewrites_only_the_block(tmp_path):
    guide = tmp_path / "guide.md"
    guide.write_text(f"# Guide\n\nBefore.\n\n{package_tree.BEGIN}\n```\nold tree\n```\n{package_tree.END}\n\nAfter.\n",
                     encoding="utf-8")
    assert package_tree.write(guide)
    text = guide.read_text(encoding="utf-8")
    assert text.startswith("# Guide\n\nBefore.\n\n") and text.endswith("\n\nAfter.\n")
    assert package_tree.current_block(text) == package_tree.block(package_tree.tree())
    assert not package_tree.write(guide)  # a second write changes nothing
    assert package_tree.diff(guide) == ""
