"""Groups of pictures that are one thing drawn several times, so that a held-out split keeps them together.

Game sprite sheets hold every animation frame of a unit as its own file (wesnoth's
``undead/ghoul.png``, ``undead/ghoul-attack-1.png``, ``undead/ghoul-defend.png``). Split at random,
frames of one unit land on both sides, and the held-out pictures' FID against the training ones
(the floor) measures how alike two frames are, not how alike two units are: the floor is a lie.

The ``name`` rule: pictures under the same top-level folder whose file names begin with the same
word (up to the first "-", "_", "." or digit) are one group. It over-groups on purpose
(``soulless-bat`` and ``soulless-wolf`` are one group): a unit's frames must never be split, and
putting two similar units on the same side only makes the floor stricter.
"""

from __future__ import annotations

import re

from gankit.errors import UserError

RULES = ("picture", "name")  # picture: every picture is its own group (today's random split)
_FIRST_WORD = re.compile(r"[^-_.0-9]+")


def name_group(name: str) -> str:
    """The group key of a picture path under the ``name`` rule."""
    parts = name.split("/")
    stem = parts[-1].lower()
    word = _FIRST_WORD.match(stem)
    return f"{parts[0] if len(parts) > 1 else ''}/{word.group(0) if word else stem}"


def picture_groups(names, rule: str) -> list[str]:
    """A group key per picture name under ``rule`` (one of RULES)."""
    if rule == "picture":
        return list(names)
    if rule == "name":
        return [name_group(n) for n in names]
    raise UserError(f"--holdout-groups {rule}: give one of {', '.join(RULES)} (name: frames whose file names "
                    "begin with the same word are held out together)")
