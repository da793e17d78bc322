import math

import numpy as np
import pytest
import torch
from PIL import Image, ImageSequence

from gankit.images import save_png, to_float, to_uint8
from gankit.run.pictures import grid, line_plot, plot_training, save_gif, save_grid


def constant_batch(n, c=1, h=3, w=4):
    """Image i is filled with the value 10 * (i + 1), so each cell is recognisable."""
    values = torch.arange(1, n + 1, dtype=torch.uint8) * 10
    return values.view(n, 1, 1, 1).expand(n, c, h, w).contiguous()


# --------------------------------------------------------------------------- images


def test_to_float_to_uint8_round_trip_is_exact_on_every_value():
    pixels = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)
    floats = to_float(pixels)
    assert floats.dtype == torch.float32
    assert floats.min().item() == -1.0 and floats.max().item() == 1.0
    assert torch.equal(to_uint8(floats), pixels)


def test_to_uint8_clips_out_of_range_values():
    out = to_uint8(torch.tensor([-3.0, -1.0, 0.0, 1.0, 5.0]))
    assert out.tolist() == [0, 0, 128, 255, 255]


def test_save_png_modes(tmp_path):
    save_png(constant_batch(1, c=1)[0], tmp_path / "grey.png")
    save_png(constant_batch(1, c=3)[0], tmp_path / "sub" / "colour.png")
    with Image.open(tmp_path / "grey.png") as grey, Image.open(tmp_path / "sub" / "colour.png") as colour:
        assert (grey.mode, grey.size) == ("L", (4, 3))
        assert colour.mode == "RGB"
        assert grey.getpixel((0, 0)) == 10 and colour.getpixel((3, 2)) == (10, 10, 10)


# --------------------------------------------------------------------------- grid


def test_grid_geometry_and_cell_contents():
    # 5 images of 3x4 (HxW), 3 per row -> 2 rows; padding 2 between and around cells.
    picture = grid(constant_batch(5), nrow=3, padding=2, pad_value=0)
    assert picture.size == (3 * 4 + 4 * 2, 2 * 3 + 3 * 2)
    assert picture.mode == "L"
    a = np.asarray(picture)
    for i in range(5):
        r, c = divmod(i, 3)
        y, x = 2 + r * (3 + 2), 2 + c * (4 + 2)
        assert (a[y:y + 3, x:x + 4] == 10 * (i + 1)).all(), f"cell of image {i}"
    # The frame, the gaps and the unused sixth cell are padding.
    assert (a[:2] == 0).all() and (a[:, :2] == 0).all() and (a[:, 6:8] == 0).all()
    assert (a[7:10, 14:18] == 0).all()


def test_grid_default_nrow_numpy_input_and_pad_value():
    picture = grid(constant_batch(5).numpy(), padding=1, pad_value=255)
    assert picture.size == (3 * 4 + 4, 2 * 3 + 3)  # ceil(sqrt(5)) = 3 per row
    assert np.asarray(picture)[0, 0] == 255


def test_grid_colour_is_rgb_and_scale_doubles_size():
    batch = constant_batch(4, c=3)
    batch[1, 0] = 200  # image 1 is reddish
    small = grid(batch, nrow=2)
    big = grid(batch, nrow=2, scale=2)
    assert small.mode == big.mode == "RGB"
    assert big.size == (2 * small.width, 2 * small.height)
    assert small.getpixel((2 + 4 + 2, 2)) == (200, 20, 20)
    assert np.array_equal(np.asarray(big)[::2, ::2], np.asarray(small))


def test_grid_rejects_float_images():
    with pytest.raises(ValueError, match="uint8"):
        grid(torch.zeros(2, 1, 3, 3))


def test_save_grid_writes_png(tmp_path):
    save_grid(constant_batch(4), tmp_path / "g.png", nrow=2, scale=3)
    with Image.open(tmp_path / "g.png") as im:
        assert im.size == (3 * (2 * 4 + 6), 3 * (2 * 3 + 6))


# --------------------------------------------------------------------------- gif


def read_gif(path):
    with Image.open(path) as im:
        frames = [(np.asarray(f.convert("L")).copy(), f.info.get("duration")) for f in ImageSequence.Iterator(im)]
        return frames, im.info.get("loop")


def grey_frame(value):
    return Image.new("L", (8, 6), value)


def test_save_gif_subsamples_keeping_first_and_last(tmp_path):
    frames = [grey_frame(10 * i) for i in range(20)]
    save_gif(frames, tmp_path / "run.gif", duration_ms=50, max_frames=6, hold_last_ms=900)
    read, loop = read_gif(tmp_path / "run.gif")
    assert len(read) == 6
    assert loop == 0
    values = [int(a[0, 0]) for a, _ in read]
    assert values[0] == 0 and values[-1] == 190
    assert values == sorted(values)  # evenly spaced, in order
    assert [d for _, d in read] == [50] * 5 + [900]


def test_save_gif_keeps_all_frames_and_mixes_paths_grey_and_rgb(tmp_path):
    Image.new("RGB", (8, 6), (30, 30, 30)).save(tmp_path / "f1.png")
    grey_frame(100).save(tmp_path / "f2.png")
    frames = [grey_frame(0), tmp_path / "f1.png", str(tmp_path / "f2.png"), grey_frame(200)]
    save_gif(frames, tmp_path / "mixed.gif", max_frames=10)
    read, _ = read_gif(tmp_path / "mixed.gif")
    assert [int(a[0, 0]) for a, _ in read] == [0, 30, 100, 200]


def test_save_gif_rejects_no_frames(tmp_path):
    with pytest.raises(ValueError):
        save_gif([], tmp_path / "x.gif")


# --------------------------------------------------------------------------- plots


def records_with_gaps(n=300):
    records = []
    for step in range(0, 10 * n, 10):
        r = {"step": step, "d_loss": 1.0 + math.sin(step / 200), "g_loss": 2.0 + math.cos(step / 150),
             "d_real": 0.7, "d_fake": 0.3 + step / 10000, "d_acc_real": 0.8, "d_acc_fake": 0.6}
        if step % 70 == 0:
            del r["g_loss"]
        if step % 90 == 0:
            r["d_loss"] = float("nan")
        if step % 110 == 0:
            r["d_fake"] = None
        records.append(r)
    records.append({"step": 500, "fid": 12.5})  # an evaluation line with none of the keys
    return records


def colours(image):
    return {c for _, c in image.convert("RGB").getcolors(maxcolors=1 << 24)}


def saturated(cs):
    """Colours that are clearly not grey (line colours, not text or axes)."""
    return {c for c in cs if max(c) - min(c) > 20}


def test_plot_training_draws_both_panels(tmp_path):
    path = tmp_path / "plots" / "training.png"
    plot_training(records_with_gaps(), path, title="mnist")
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size == (900, 600)
        top, bottom = im.crop((0, 0, 900, 300)), im.crop((0, 300, 900, 600))
        assert len(colours(im)) > 10
        assert len(saturated(colours(top))) >= 2  # d_loss and g_loss
        assert len(saturated(colours(bottom))) >= 4  # d_real, d_fake, two accuracies


def test_plot_training_empty_records_still_writes_png(tmp_path):
    plot_training([], tmp_path / "empty.png")
    with Image.open(tmp_path / "empty.png") as im:
        assert im.size == (900, 600)
        assert not saturated(colours(im))  # no curves, only text and frames
        assert len(colours(im)) > 1


def test_line_plot_draws_different_pixels_for_different_data(tmp_path):
    up = line_plot({"a": ([0, 1, 2, 3], [0.0, 1.0, 2.0, 3.0])}, None)
    down = line_plot({"a": ([0, 1, 2, 3], [3.0, 2.0, 1.0, 0.0])}, tmp_path / "down.png")
    assert up.size == (900, 300)
    assert not np.array_equal(np.asarray(up), np.asarray(down))
    with Image.open(tmp_path / "down.png") as im:
        assert np.array_equal(np.asarray(im.convert("RGB")), np.asarray(down))


def test_line_plot_skips_missing_and_non_finite_points():
    with_gaps = line_plot({"a": ([0, 1, 2, None, 4], [1.0, float("nan"), 2.0, 5.0, None])}, None)
    clean = line_plot({"a": ([0, 2], [1.0, 2.0])}, None)
    assert np.array_equal(np.asarray(with_gaps), np.asarray(clean))
    nothing = line_plot({"a": ([0, 1], [float("inf"), None])}, None)
    assert np.array_equal(np.asarray(nothing), np.asarray(line_plot({}, None)))


def test_line_plot_handles_single_points_and_long_series():
    dot = line_plot({"a": ([5], [0.5])}, None, size=(400, 200))
    assert dot.size == (400, 200) and saturated(colours(dot))
    x = np.arange(100_000)
    long = line_plot({"noise": (x.tolist(), np.sin(x / 5000.0) + np.random.default_rng(0).normal(0, 0.3, x.size))},
                     None, title="long", xlabel="step")
    assert len(saturated(colours(long))) >= 2  # faint raw line and the moving average
