"""A request's query string, checked into the values a picture needs.

Every mistake in a request (a missing or unknown parameter, a number out of range) is a
`BadRequest` with a status and a sentence saying what is wrong and what is allowed; the server
sends it as it is. Nothing here touches a generator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from urllib.parse import parse_qs

MAX_IMAGES = 64       # tiles of one grid: enough to browse, small enough to draw at once on a CPU
MAX_SCALE = 8
MAX_STEPS = 32
MAX_SEED = 2 ** 63 - 1
MAX_SHIFT = 10.0      # slider units (prior standard deviations): far past where pictures stay pictures


class BadRequest(Exception):
    """What was wrong with a request, and the HTTP status that says so (4xx)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class PictureRequest:
    """What to draw: which generator, which latents (seed, n, shifts along the directions,
    truncation), which class (-1: each tile its own, fixed by the seed), how large; and for an
    interpolation, the two tiles and the number of steps between them."""

    model: int
    seed: int = 0
    n: int = 16
    truncation: float = 1.0
    class_index: int = -1
    shifts: tuple[float, ...] = ()
    scale: int = 4
    a: int = 0
    b: int = 1
    steps: int = 8
    download: bool = False


GRID_KEYS = {"model", "seed", "n", "psi", "class", "d", "scale", "download"}
INTERPOLATION_KEYS = GRID_KEYS | {"a", "b", "steps"}


def _one(query: dict[str, list[str]], key: str) -> str | None:
    values = query.get(key)
    if values is None:
        return None
    if len(values) != 1:
        raise BadRequest(f"parameter {key!r} given {len(values)} times; give it once")
    return values[0]


def _int(query: dict[str, list[str]], key: str, default: int | None, low: int, high: int) -> int:
    text = _one(query, key)
    if text is None:
        if default is None:
            raise BadRequest(f"parameter {key!r} is missing")
        return default
    try:
        value = int(text)
    except ValueError:
        raise BadRequest(f"parameter {key!r}: {text[:40]!r} is not a whole number") from None
    if not low <= value <= high:
        raise BadRequest(f"parameter {key!r}: {value} is out of range ({low}..{high})")
    return value


def _float(text: str, key: str, low: float, high: float) -> float:
    try:
        value = float(text)
    except ValueError:
        raise BadRequest(f"parameter {key!r}: {text[:40]!r} is not a number") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise BadRequest(f"parameter {key!r}: {text[:40]} is out of range ({low:g}..{high:g})")
    return value


def parse_picture(query_string: str, kind: str, models: int) -> PictureRequest:
    """The PictureRequest of a query string for a "grid" or an "interpolation" picture, with
    `models` generators served; BadRequest for anything missing, unknown or out of range."""
    try:
        query = parse_qs(query_string, keep_blank_values=True, strict_parsing=bool(query_string),
                         max_num_fields=32)
    except ValueError as exc:
        raise BadRequest(f"unreadable query string ({exc})") from None
    allowed = INTERPOLATION_KEYS if kind == "interpolation" else GRID_KEYS
    unknown = sorted(set(query) - allowed)
    if unknown:
        raise BadRequest(f"unknown parameter(s) {', '.join(map(repr, unknown))}; this picture takes "
                         f"{', '.join(sorted(allowed))}")
    n = _int(query, "n", 16, 1, MAX_IMAGES)
    shifts_text = _one(query, "d") or ""
    shifts = tuple(_float(v, "d", -MAX_SHIFT, MAX_SHIFT) for v in shifts_text.split(",")) if shifts_text else ()
    fields = dict(model=_int(query, "model", None, 0, max(0, models - 1)), seed=_int(query, "seed", 0, 0, MAX_SEED),
                  n=n, truncation=_float(_one(query, "psi") or "1", "psi", 0.0, 1.0),
                  class_index=_int(query, "class", -1, -1, 100_000), shifts=shifts,
                  scale=_int(query, "scale", 4, 1, MAX_SCALE), download=(_one(query, "download") or "0") == "1")
    if kind == "interpolation":
        fields.update(a=_int(query, "a", None, 0, n - 1), b=_int(query, "b", None, 0, n - 1),
                      steps=_int(query, "steps", 8, 2, MAX_STEPS))
    return PictureRequest(**fields)
