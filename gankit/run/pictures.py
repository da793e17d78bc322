"""Pictures of a run: image grids, progress GIFs and training curves.

Everything is drawn with Pillow alone, so inspecting a run needs nothing beyond
the core dependencies (no matplotlib).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from gankit.images import flatten_alpha

# Distinct colours that stay readable on white (the "tab10" set).
_COLOURS = [
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
]
_MAX_POINTS = 2000  # a 700-px-wide plot cannot show more; drawing more only costs time
_BG, _INK, _GRID = (255, 255, 255), (40, 40, 40), (228, 228, 228)


# --------------------------------------------------------------------------- grids


def grid(images, nrow: int | None = None, padding: int = 2, pad_value: int = 0,
         scale: int = 1) -> Image.Image:
    """Tile uint8 images [N, C, H, W] (tensor or numpy array, C in {1, 3, 4}) into one picture.

    Cells are laid out row by row, `nrow` per row (default ceil(sqrt(N)); at most N).
    As in torchvision's make_grid, `padding` pixels of `pad_value` separate the cells
    and also frame the whole grid, so the picture is
    ``nrow * (W + padding) + padding`` wide and ``rows * (H + padding) + padding`` high.
    `scale` then enlarges the whole picture by an integer factor with nearest-neighbour
    sampling, so small images (28-px digits) stay crisp. Grey images give a mode "L"
    picture, colour images an "RGB" one and RGBA images an "RGBA" one, whose padding is fully
    transparent (colour `pad_value`, alpha 0): an opaque frame would draw lines through a
    picture meant to sit on whatever background shows it.
    """
    arr = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[1] not in (1, 3, 4) or arr.shape[0] == 0:
        raise ValueError(
            "grid expects a non-empty uint8 [N, C, H, W] batch with C in (1, 3, 4) "
            f"(see gankit.images.to_uint8), got dtype {arr.dtype} and shape {tuple(arr.shape)}"
        )
    if (nrow is not None and nrow < 1) or padding < 0 or scale < 1:
        raise ValueError(f"grid needs nrow >= 1, padding >= 0, scale >= 1; got {nrow}, {padding}, {scale}")
    n, c, h, w = arr.shape
    cols = min(n, nrow or math.ceil(math.sqrt(n)))
    rows = math.ceil(n / cols)
    canvas = np.full((rows * (h + padding) + padding, cols * (w + padding) + padding, c),
                     pad_value, dtype=np.uint8)
    if c == 4:
        canvas[:, :, 3] = 0  # transparent padding; the cells overwrite it with their own alpha
    for i, image in enumerate(arr):
        r, col = divmod(i, cols)
        y, x = padding + r * (h + padding), padding + col * (w + padding)
        canvas[y:y + h, x:x + w] = image.transpose(1, 2, 0)
    picture = Image.fromarray(canvas[:, :, 0] if c == 1 else canvas)
    if scale > 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.Resampling.NEAREST)
    return picture


def save_grid(images, path, nrow: int | None = None, scale: int = 1) -> None:
    """Write `grid(images, nrow=nrow, scale=scale)` to `path` (format from the suffix).

    A JPEG cannot hold alpha, so an RGBA grid written as .jpg/.jpeg is composited onto white.
    """
    picture = grid(images, nrow=nrow, scale=scale)
    if Path(path).suffix.lower() in (".jpg", ".jpeg"):
        picture = _opaque(picture)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    picture.save(path)


# --------------------------------------------------------------------------- GIFs


def save_gif(frames: list, path, duration_ms: int = 120, max_frames: int = 120,
             hold_last_ms: int = 1500) -> None:
    """Write frames (PIL images or image file paths) as an animated GIF that loops forever.

    With more than `max_frames` frames an evenly spaced subset is kept, always
    including the first and the last. Each frame shows for `duration_ms`, the last for
    `hold_last_ms` so the final result can be looked at. Frames should share one size.
    Note that the GIF writer merges consecutive identical frames into one.
    """
    if not frames:
        raise ValueError("save_gif needs at least one frame")
    if max_frames < 2:
        raise ValueError(f"save_gif needs max_frames >= 2 to keep the first and last frame, got {max_frames}")
    if len(frames) > max_frames:
        # Spacing is >= 1 here, so the rounded indices are distinct and include both ends.
        keep = np.linspace(0, len(frames) - 1, max_frames).round().astype(int)
        frames = [frames[i] for i in keep]
    loaded = [_load_frame(f) for f in frames]
    # GIF frames are palette images: all-grey runs stay "L" (an exact grey palette);
    # anything else goes through RGB so grey and colour frames can be mixed. GIF has no real
    # alpha (one on/off palette entry at most), so RGBA frames are composited onto white first.
    loaded = [_opaque(im) for im in loaded]
    mode = "L" if all(im.mode == "L" for im in loaded) else "RGB"
    loaded = [im.convert(mode) for im in loaded]
    durations = [duration_ms] * (len(loaded) - 1) + [hold_last_ms]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    loaded[0].save(path, format="GIF", save_all=True, append_images=loaded[1:],
                   duration=durations, loop=0)


def _opaque(image: Image.Image) -> Image.Image:
    """`image` without transparency: RGBA (or any mode with alpha) composited onto white with
    gankit.images.flatten_alpha, the same blend the metrics see; other modes as they are."""
    if "A" not in image.getbands() and "transparency" not in image.info:
        return image
    rgba = torch.from_numpy(np.asarray(image.convert("RGBA")).transpose(2, 0, 1).copy())
    return Image.fromarray(flatten_alpha(rgba).permute(1, 2, 0).contiguous().numpy())


def _load_frame(frame) -> Image.Image:
    if isinstance(frame, Image.Image):
        return frame
    with Image.open(frame) as im:
        im.load()  # read now: the file is closed on leaving the block
        return im.copy()


# --------------------------------------------------------------------------- curves


def plot_training(records: list[dict], path, title: str = "") -> None:
    """Draw training curves from per-step log records into a 900x600 PNG.

    Top panel: "d_loss" and "g_loss" against "step". Bottom panel: "d_real" and
    "d_fake" (D's mean output on real and on fake images) and, when logged,
    "d_acc_real" / "d_acc_fake". Records may lack any of these keys (evaluation lines,
    say); missing, None and non-finite values are skipped per series. With no usable
    values a panel says "no data yet".
    """
    def series(keys):
        steps = [r.get("step") for r in records]
        return {k: (steps, [r.get(k) for r in records]) for k in keys}

    prefix = f"{title} - " if title else ""
    top = line_plot(series(("d_loss", "g_loss")), None, title=prefix + "losses", xlabel="step")
    bottom = line_plot(series(("d_real", "d_fake", "d_acc_real", "d_acc_fake")), None,
                       title=prefix + "discriminator on real / fake", xlabel="step")
    canvas = Image.new("RGB", (top.width, top.height + bottom.height), _BG)
    canvas.paste(top, (0, 0))
    canvas.paste(bottom, (0, top.height))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path, format="PNG")


def line_plot(series: dict, path_or_none, title: str = "", xlabel: str = "",
              size: tuple[int, int] = (900, 300)) -> Image.Image:
    """Draw one panel of line series and return it; also save it as PNG when a path is given.

    `series` maps a legend name to ``(xs, ys)``. Points whose x or y is missing, None
    or not finite are skipped, and a series left empty is left out. Each series gets
    its own colour; long noisy series are drawn faintly with a moving average on top,
    and are thinned to at most ~2000 points. The y axis is widened to "nice" tick
    values. With nothing to draw the panel says "no data yet".
    """
    width, height = size
    image = Image.new("RGB", size, _BG)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    left, top, right, bottom = 64, 24, width - 150, height - 40  # room for ticks and legend

    _put(draw, left, 5, title, font)
    if xlabel:
        _put(draw, (left + right) / 2, height - 5, xlabel, font, ha=0.5, va=1.0)
    cleaned = {}
    for name, (xs, ys) in series.items():
        x, y = _finite_pairs(xs, ys)
        if len(x):
            cleaned[name] = (x, y)
    if not cleaned:
        draw.rectangle((left, top, right, bottom), outline=_INK)
        _put(draw, (left + right) / 2, (top + bottom) / 2, "no data yet", font, ha=0.5, va=0.5)
        return _finish(image, path_or_none)

    all_x = np.concatenate([x for x, _ in cleaned.values()])
    all_y = np.concatenate([y for _, y in cleaned.values()])
    x_lo, x_hi = _span(all_x.min(), all_x.max())
    y_min, y_max = _span(all_y.min(), all_y.max())
    y_step = _nice_step(y_min, y_max, 5)
    # Widen y to whole ticks so the top and bottom gridlines frame the data.
    y_lo, y_hi = math.floor(y_min / y_step) * y_step, math.ceil(y_max / y_step) * y_step

    def px(v):
        return left + (v - x_lo) / (x_hi - x_lo) * (right - left)

    def py(v):
        return bottom - (v - y_lo) / (y_hi - y_lo) * (bottom - top)

    for i in range(round(y_lo / y_step), round(y_hi / y_step) + 1):
        v = i * y_step  # integer multiples avoid labels like 0.30000000000000004
        draw.line((left + 1, py(v), right - 1, py(v)), fill=_GRID)
        _put(draw, left - 6, py(v), _label(v, y_step), font, ha=1.0, va=0.5)
    x_step = _nice_step(x_lo, x_hi, 6)
    for i in range(math.ceil(x_lo / x_step - 1e-9), math.floor(x_hi / x_step + 1e-9) + 1):
        v = i * x_step
        draw.line((px(v), bottom, px(v), bottom + 4), fill=_INK)
        _put(draw, px(v), bottom + 7, _label(v, x_step), font, ha=0.5)

    colours = [_COLOURS[k % len(_COLOURS)] for k in range(len(cleaned))]
    # Faint raw lines first, so no series' noise hides another's main line.
    main = []
    for colour, (x, y) in zip(colours, cleaned.values()):
        window = len(y) // 40  # smooth only series long enough to be noisy
        if window > 1:
            faint = tuple(round(255 - 0.3 * (255 - c)) for c in colour)  # 30% colour on white
            _polyline(draw, px(x), py(y), faint, 1)
            y = _moving_average(y, window)
        main.append((colour, x, y))
    for colour, x, y in main:
        _polyline(draw, px(x), py(y), colour, 2)
    draw.rectangle((left, top, right, bottom), outline=_INK)  # last, so lines do not cover the axes
    for k, (colour, name) in enumerate(zip(colours, cleaned)):
        ly = top + 6 + 16 * k
        draw.line((right + 12, ly, right + 34, ly), fill=colour, width=3)
        _put(draw, right + 40, ly, name, font, va=0.5)
    return _finish(image, path_or_none)


def _finish(image: Image.Image, path_or_none) -> Image.Image:
    if path_or_none is not None:
        Path(path_or_none).parent.mkdir(parents=True, exist_ok=True)
        image.save(path_or_none, format="PNG")
    return image


def _finite_pairs(xs, ys) -> tuple[np.ndarray, np.ndarray]:
    """The (x, y) pairs where both are finite numbers, sorted by x."""
    pairs = [(a, b) for a, b in zip(map(_number, xs), map(_number, ys)) if a is not None and b is not None]
    if not pairs:
        return np.empty(0), np.empty(0)
    x, y = np.array(pairs, dtype=np.float64).T
    order = np.argsort(x, kind="stable")  # evaluation lines may arrive out of step order
    return x[order], y[order]


def _number(value) -> float | None:
    try:
        v = float(value)  # also accepts numpy and 0-d torch scalars
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _span(lo: float, hi: float) -> tuple[float, float]:
    """A range around [lo, hi] that is never empty (a single point still gets an axis)."""
    lo, hi = float(lo), float(hi)
    return (lo - 1.0, hi + 1.0) if hi == lo else (lo, hi)


def _nice_step(lo: float, hi: float, ticks: int) -> float:
    """The smallest 1, 2 or 5 times a power of ten that splits [lo, hi] into at most `ticks` parts."""
    raw = (hi - lo) / ticks
    power = 10.0 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def _label(value: float, step: float) -> str:
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    return f"{value + 0.0:.{decimals}f}"  # + 0.0 turns -0.0 into 0.0


def _moving_average(y: np.ndarray, window: int) -> np.ndarray:
    """Centred mean over about `window` points (no lag behind the raw line); shorter at the ends."""
    sums = np.concatenate([[0.0], np.cumsum(y)])
    i = np.arange(len(y))
    start = np.maximum(0, i - window // 2)
    end = np.minimum(len(y), i + window // 2 + 1)
    return (sums[end] - sums[start]) / (end - start)


def _polyline(draw: ImageDraw.ImageDraw, px: np.ndarray, py: np.ndarray, colour, width: int) -> None:
    if len(px) > _MAX_POINTS:
        keep = np.linspace(0, len(px) - 1, _MAX_POINTS).round().astype(int)
        px, py = px[keep], py[keep]
    if len(px) == 1:  # a line needs two points: show a lone value as a dot
        draw.ellipse((px[0] - 2, py[0] - 2, px[0] + 2, py[0] + 2), fill=colour)
    else:
        draw.line(list(zip(px.tolist(), py.tolist())), fill=colour, width=width)


def _put(draw: ImageDraw.ImageDraw, x: float, y: float, text: str, font,
         ha: float = 0.0, va: float = 0.0) -> None:
    """Draw text with (x, y) at a fraction `ha` of its width and `va` of its height.

    Measured by hand rather than with Pillow's `anchor`, which bitmap fonts lack.
    """
    if not text:
        return
    x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=font)
    draw.text((x - ha * (x1 - x0) - x0, y - va * (y1 - y0) - y0), text, fill=_INK, font=font)
