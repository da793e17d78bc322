"""The pieces gankit's self-contained HTML pages (report.html, compare's page) are made of.

Every picture is inlined as a base64 data URI, so a page loads nothing from anywhere.
"""

from __future__ import annotations

import base64
import html
import io

from PIL import Image


def escape(value: object) -> str:
    return html.escape(str(value), quote=True)


def data_uri(png_bytes: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes).decode("ascii")


def image_uri(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    return data_uri(buf.getvalue())


def fmt(value: object, sep: str = ", ") -> str:
    """A cell's text: 4 significant digits for floats, '-' for missing, lists joined by `sep`."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return sep.join(map(str, value)) if value else "()"
    return str(value)


def table(header: list[str], rows: list[list], cls: str = "") -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def duration(seconds: float) -> str:
    """'1h 02m 03s' or '2m 03s'."""
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h {m:02d}m {s:02d}s" if h else f"{m}m {s:02d}s"
