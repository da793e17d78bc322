"""Pictures as users bring them: every mode, transparency policy, fit, orientation, animation and
container (folder, dataset.json, StyleGAN2-ADA ZIP), on files these tests write; and the decode-once
cache: reuse, invalidation, clearing and its size bound."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, features

from gankit.data import decode as decode_mod
from gankit.data import open_dataset, prepare
from gankit.data.decode import BadPicture, decode
from gankit.data.listing import list_pictures
from gankit.errors import UserError

RED, BLUE = (255, 0, 0), (0, 0, 255)


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """Each test its own cache, so that counts of prepared sets are this test's."""
    monkeypatch.setenv("GANKIT_CACHE", str(tmp_path / "gankit-cache"))


def png_bytes(img: Image.Image, **save) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=save.pop("format", "PNG"), **save)
    return buf.getvalue()


def px(picture, y=0, x=0) -> tuple:
    return tuple(int(v) for v in picture.pixels[:, y, x])


# ---------------------------------------------------------------- modes


def test_grey_modes_give_one_channel_with_depth_scaled():
    assert px(decode(png_bytes(Image.new("L", (3, 3), 77)), None)) == (77,)
    assert px(decode(png_bytes(Image.new("1", (3, 3), 1)), None)) == (255,)
    sixteen = Image.fromarray(np.full((3, 3), 65535, np.uint16))  # a 16-bit scan, white
    assert px(decode(png_bytes(sixteen), None)) == (255,)
    half = Image.fromarray(np.full((3, 3), 257 * 100, np.uint16))
    assert px(decode(png_bytes(half), None)) == (100,)
    as_float = Image.fromarray(np.full((2, 2), 0.5, np.float32))  # mode F in [0, 1]
    assert px(decode(png_bytes(as_float, format="TIFF"), None)) == (128,)
    sixteen_as_i = Image.fromarray(np.array([[0, 257], [2570, 65535]], np.int32))  # how some Pillows open 16-bit PNGs
    assert decode(png_bytes(sixteen_as_i, format="TIFF"), None).pixels[0].tolist() == [[0, 1], [10, 255]]
    wide = Image.fromarray(np.array([[0, 100_000], [200_000, 400_000]], np.int32))  # beyond 16 bits: own range
    assert decode(png_bytes(wide, format="TIFF"), None).pixels[0].tolist() == [[0, 64], [128, 255]]


def test_colour_modes_give_rgb():
    cmyk = Image.new("CMYK", (2, 2), (0, 255, 255, 0))  # full magenta + yellow ink: red
    assert px(decode(png_bytes(cmyk, format="JPEG", quality=100), None))[0] > 240
    palette = Image.new("RGB", (2, 2), BLUE).convert("P")
    assert px(decode(png_bytes(palette), None)) == BLUE
    grey_palette = Image.new("L", (2, 2), 90).convert("P")  # every entry grey: one channel
    assert decode(png_bytes(grey_palette), None).pixels.shape == (1, 2, 2)


@pytest.mark.parametrize("alpha, expected", [("white", (255, 255, 255)), ("black", (0, 0, 0)),
                                             ("keep", (255, 0, 0, 0))])
def test_transparent_pixels_by_alpha_policy(alpha, expected):
    img = Image.new("RGBA", (4, 4), (255, 0, 0, 0))  # red, fully transparent: hidden colour
    img.putpixel((1, 1), (0, 0, 255, 255))
    pic = decode(png_bytes(img), None, alpha=alpha)
    assert px(pic) == expected
    assert px(pic, 1, 1) == (BLUE if alpha != "keep" else (*BLUE, 255))


def test_half_transparent_blends_with_the_background():
    img = Image.new("RGBA", (2, 2), (0, 0, 0, 128))
    assert px(decode(png_bytes(img), None)) == (127, 127, 127)


def test_palette_and_grey_with_a_transparent_index():
    p = Image.new("P", (2, 2), 1)
    p.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    p.putpixel((0, 0), 0)
    data = png_bytes(p, transparency=1)  # index 1 (red) is transparent
    white = decode(data, None)
    assert px(white, 0, 0) == (0, 0, 0) and px(white, 1, 1) == (255, 255, 255)
    assert px(decode(data, None, alpha="keep"), 1, 1) == (255, 0, 0, 0)
    la = Image.new("LA", (2, 2), (40, 0))
    assert decode(png_bytes(la), None).pixels.shape == (1, 2, 2)  # grey stays grey
    assert px(decode(png_bytes(la), None)) == (255,)
    grey_trns = png_bytes(Image.new("L", (2, 2), 7), transparency=7)
    assert px(decode(grey_trns, None, alpha="black")) == (0,)


def test_exif_orientation_is_applied():
    img = Image.new("RGB", (16, 8), BLUE)  # stored 16 wide, 8 high, red in the top-left quarter
    img.paste(RED, (0, 0, 8, 4))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to view"
    data = png_bytes(img, format="JPEG", quality=100, exif=exif.tobytes())
    pic = decode(data, None)
    assert pic.pixels.shape == (3, 16, 8)  # shown 8 wide, 16 high
    assert px(pic, 2, 6)[0] > 200 and px(pic, 2, 1)[2] > 200  # the top-left quarter went to the top-right
    assert decode_mod.header_size(data) == (8, 16)


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_first_frame_of_an_animation(fmt):
    if fmt == "WEBP" and not features.check("webp"):
        pytest.skip("this Pillow was built without WebP")
    frames = [Image.new("RGB", (4, 4), c) for c in (RED, BLUE)]
    data = png_bytes(frames[0], format=fmt, save_all=True, append_images=frames[1:], duration=100,
                     **({"lossless": True} if fmt == "WEBP" else {}))
    assert Image.open(io.BytesIO(data)).n_frames == 2
    assert px(decode(data, None))[0] > 240 and px(decode(data, None))[2] < 15


# ---------------------------------------------------------------- fit


def halves(w: int, h: int) -> bytes:
    """A picture whose left half is red and right half blue."""
    arr = np.zeros((h, w, 3), np.uint8)
    arr[:, : w // 2] = RED
    arr[:, w // 2:] = BLUE
    return png_bytes(Image.fromarray(arr))


def test_fit_crop_pad_stretch():
    crop = decode(halves(16, 8), 8, fit="crop")  # the centre 8 x 8: half red, half blue
    assert crop.pixels.shape == (3, 8, 8) and px(crop, 4, 0)[0] > 200 and px(crop, 4, 7)[2] > 200
    pad = decode(halves(16, 8), 8, fit="pad")  # scaled to 8 x 4, white bands above and below
    assert px(pad, 0, 4) == (255, 255, 255) and px(pad, 7, 4) == (255, 255, 255)
    assert px(pad, 4, 0)[0] > 200 and px(pad, 4, 7)[2] > 200
    assert px(decode(halves(16, 8), 8, fit="pad", alpha="keep"), 0, 4)[3] == 0  # transparent padding
    stretch = decode(halves(16, 8), 8, fit="stretch")  # every row spans the whole picture
    assert px(stretch, 0, 0)[0] > 200 and px(stretch, 7, 7)[2] > 200
    assert not crop.upscaled
    assert decode(halves(4, 4), 8).upscaled


def test_decompression_bomb_is_refused(monkeypatch):
    monkeypatch.setattr(decode_mod, "PIXEL_LIMIT", 100)
    with pytest.raises(BadPicture, match="decompression bomb"):
        decode(png_bytes(Image.new("L", (20, 20))), 8)
    assert decode(png_bytes(Image.new("L", (10, 10))), 8).pixels.shape == (1, 8, 8)


def test_unreadable_bytes_give_a_reason():
    with pytest.raises(BadPicture, match="UnidentifiedImageError"):
        decode(b"not a picture", 8)


# ---------------------------------------------------------------- folders and ZIPs


def write(path: Path, img: Image.Image, fmt: str = "PNG") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format=fmt)


def mixed_folder(root: Path) -> Path:
    """Two classes of pictures as they come: sizes, modes, transparency, a broken file."""
    write(root / "cats" / "a.png", Image.new("RGBA", (30, 20), (255, 0, 0, 0)))
    write(root / "cats" / "deeper" / "b.jpg", Image.new("RGB", (40, 40), RED), "JPEG")
    write(root / "dogs" / "c.png", Image.new("L", (12, 50), 30))
    write(root / "dogs" / "d.gif", Image.new("P", (64, 64)))
    (root / "dogs" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    return root


def test_a_folder_as_it_comes_trains_without_preparation(tmp_path, capsys):
    ds = open_dataset(str(mixed_folder(tmp_path / "pics")))
    assert ds.images.shape == (4, 3, 32, 32) and ds.class_names == ["cats", "dogs"]
    assert ds.labels.tolist() == [0, 0, 1, 1]  # "deeper" pictures belong to their top class
    assert ds.images[0].flatten().tolist() == [255] * 3 * 32 * 32  # transparent red -> white
    assert "skipped 1 unreadable" in ds.source and "broken.png" in ds.source and "upscaled" in ds.source
    assert ds.mmap_file and Path(ds.mmap_file).is_file()
    err = capsys.readouterr().err
    assert "--image-size" in err and "skipped 1" in err
    with pytest.raises(UserError, match="broken.png.*--skip-bad-images"):
        open_dataset(str(tmp_path / "pics"), skip_bad=False)


def test_most_files_unreadable_is_an_error_that_caches_nothing(tmp_path):
    write(tmp_path / "ok.png", Image.new("L", (4, 4)))
    for i in range(2):
        (tmp_path / f"bad{i}.png").write_bytes(b"nope")
    with pytest.raises(UserError, match="2 of 3 image files are unreadable"):
        open_dataset(str(tmp_path))
    assert not prepare.prepared_sets()


def stylegan_zip(path: Path, labels: list[int] | None) -> Path:
    """A ZIP laid out as StyleGAN2-ADA's dataset_tool.py writes it: 00000/img00000000.png, ...
    in folders of 1000, and dataset.json with [name, label] pairs (or null)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        names = []
        for idx in range(5):
            idx_str = f"{idx:08d}"
            name = f"{idx_str[:5]}/img{idx_str}.png"
            zf.writestr(name, png_bytes(Image.new("RGB", (8, 8), (idx * 50, 0, 0))))
            names.append(name)
        pairs = None if labels is None else [[n, lab] for n, lab in zip(names, labels)]
        zf.writestr("dataset.json", json.dumps({"labels": pairs}))
    return path


def test_stylegan2_ada_zip_with_labels(tmp_path):
    ds = open_dataset(str(stylegan_zip(tmp_path / "ds.zip", [0, 2, 1, 2, 0])))
    assert ds.images.shape == (5, 3, 8, 8) and ds.labels.tolist() == [0, 2, 1, 2, 0] and ds.num_classes == 3
    assert ds.images[:, 0, 0, 0].tolist() == [0, 50, 100, 150, 200]  # in the archive's order
    assert "dataset.json" in ds.source


def test_stylegan2_ada_zip_without_labels(tmp_path):
    ds = open_dataset(str(stylegan_zip(tmp_path / "ds.zip", None)))
    assert ds.labels is None and len(ds) == 5


def test_dataset_json_in_a_folder_gives_the_labels(tmp_path):
    for i, name in enumerate(["00000/img00000000.png", "00000/img00000001.png", "00000/img00000002.png"]):
        write(tmp_path / name, Image.new("L", (4, 4), i))
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": [
        ["00000/img00000000.png", 1], ["00000/img00000001.png", 0], ["00000/img00000002.png", 1]]}))
    ds = open_dataset(str(tmp_path))
    assert ds.labels.tolist() == [1, 0, 1] and ds.class_names is None
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": [["00000/img00000000.png", 1]]}))
    with pytest.raises(UserError, match="2 picture\\(s\\) have no label"):
        open_dataset(str(tmp_path))
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": [["00000/img00000000.png", [0.0, 1.0]]]}))
    with pytest.raises(UserError, match="class numbers"):
        open_dataset(str(tmp_path))


def test_a_zip_of_class_folders(tmp_path):
    with zipfile.ZipFile(tmp_path / "c.zip", "w") as zf:
        for cls, colour in (("red", RED), ("blue", BLUE)):
            zf.writestr(f"{cls}/x.png", png_bytes(Image.new("RGB", (4, 4), colour)))
        zf.writestr("__MACOSX/red/._x.png", b"junk")
    ds = open_dataset(str(tmp_path / "c.zip"))
    assert ds.class_names == ["blue", "red"] and ds.labels.tolist() == [0, 1]


# ---------------------------------------------------------------- the cache


def count_decodes(monkeypatch) -> list:
    calls = []
    real = prepare.decode

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(prepare, "decode", counting)
    return calls


def test_cache_is_reused_and_invalidated(tmp_path, monkeypatch):
    root = tmp_path / "pics"
    for i in range(3):
        write(root / f"{i}.png", Image.new("RGB", (6, 6), (i, 0, 0)))
    calls = count_decodes(monkeypatch)
    first = open_dataset(str(root))
    assert len(calls) == 3
    again = open_dataset(str(root))
    assert len(calls) == 3 and np.array_equal(first.images.numpy(), again.images.numpy())  # reused
    write(root / "1.png", Image.new("RGB", (6, 6), (99, 0, 0)))  # rewritten: size or mtime changes
    os.utime(root / "1.png", ns=(1, 1))
    assert open_dataset(str(root)).images[1, 0, 0, 0] == 99 and len(calls) == 6
    write(root / "3.png", Image.new("RGB", (6, 6)))  # one more picture
    assert len(open_dataset(str(root))) == 4 and len(calls) == 10
    (root / "0.png").unlink()  # one fewer
    assert len(open_dataset(str(root))) == 3
    open_dataset(str(root), fit="pad")  # another policy: a set of its own
    assert len(prepare.prepared_sets()) == 2


def test_a_damaged_cache_is_decoded_again(tmp_path, monkeypatch):
    write(tmp_path / "p" / "a.png", Image.new("L", (4, 4), 5))
    ds = open_dataset(str(tmp_path / "p"))
    Path(ds.mmap_file).write_bytes(Path(ds.mmap_file).read_bytes()[:-5])  # truncated
    calls = count_decodes(monkeypatch)
    assert open_dataset(str(tmp_path / "p")).images.sum() == 5 * 16 and len(calls) == 1


def test_clear_and_the_size_bound(tmp_path, monkeypatch):
    for name in ("a", "b", "c"):
        write(tmp_path / name / "x.png", Image.new("RGB", (32, 32)))
        open_dataset(str(tmp_path / name))
        os.utime(prepare.prepared_sets()[0][0] / "manifest.json", (1e9, 1e9 + ord(name)))  # a oldest
    assert len(prepare.prepared_sets()) == 3
    one_set = 3 * 32 * 32 + 1000
    monkeypatch.setenv(prepare.LIMIT_ENV, str(2.5 * one_set / 1e9))
    write(tmp_path / "d" / "x.png", Image.new("RGB", (32, 32)))
    open_dataset(str(tmp_path / "d"))
    left = sorted(Path(m["source"]).name for _, m, _ in prepare.prepared_sets())
    assert left == ["c", "d"]  # the least recently used went first
    assert [p.name.split("-")[0] for p in prepare.clear(tmp_path / "c")] == ["c"]
    assert len(prepare.clear()) == 1 and not prepare.prepared_sets()


def test_worker_processes_decode_the_same_pixels(tmp_path):
    root = mixed_folder(tmp_path / "pics")
    pictures = list_pictures(root)
    here = prepare.prepare(pictures, 16, workers=0, progress=False)
    prepare.clear()
    pooled = prepare.prepare(pictures, 16, workers=2, progress=False)
    assert not pooled.reused and np.array_equal(here.images(), pooled.images())
    assert here.manifest["skipped"] == pooled.manifest["skipped"]


def test_gankit_prepare_command(tmp_path):
    root = mixed_folder(tmp_path / "pics")
    env = {**os.environ, "GANKIT_CACHE": str(tmp_path / "cache")}

    def gankit(*args):
        return subprocess.run([sys.executable, "-m", "gankit", *args], capture_output=True, text=True, env=env)

    first = gankit("prepare", str(root), "--image-size", "16", "--alpha", "keep")
    assert first.returncode == 0, first.stderr
    assert "4 of 5 pictures at 16 x 16, 4 channel(s)" in first.stdout and "skipped 1" in first.stdout
    manifest = json.loads(next((tmp_path / "cache" / "prepared").glob("*/manifest.json")).read_text())
    assert manifest["skipped"][0]["file"] == "dogs/broken.png" and manifest["class_names"] == ["cats", "dogs"]
    assert manifest["alpha"] == "keep" and manifest["fit"] == "crop" and manifest["fingerprint"]
    assert gankit("prepare", str(root), "--image-size", "16", "--alpha", "keep").stdout.startswith("reused")
    assert "1 prepared set(s)" in gankit("prepare", "--list").stdout
    assert "removed 1" in gankit("prepare", "--clear").stdout
    bad = gankit("prepare", str(tmp_path / "nowhere"))
    assert bad.returncode == 2 and "nowhere" in bad.stderr


TUXPAINT = Path("/usr/share/tuxpaint/stamps")


@pytest.mark.skipif(not TUXPAINT.is_dir(), reason="needs Debian's tuxpaint-stamps-default "
                    "(apt-get install tuxpaint-stamps-default): real transparent PNGs")
def test_real_transparent_stamps_come_out_on_white(tmp_path):
    """Real clip art: wherever a stamp's corner is transparent, its prepared corner is white, not a
    black box (the classic bug of dropping alpha instead of compositing)."""
    stamps = TUXPAINT / "seasonal"
    ds = open_dataset(str(stamps), image_size=32, fit="stretch")  # corners stay corners
    pictures = list_pictures(stamps)
    assert len(ds) == len(pictures.names) > 10
    transparent_corner = []
    for name in pictures.names:  # stamps whose top-left tenth is wholly transparent
        with Image.open(pictures.location(name)) as img:
            w, h = img.size
            block = np.asarray(img.convert("RGBA"))[: h // 10 + 1, : w // 10 + 1, 3]
            transparent_corner.append(not block.any())
    assert sum(transparent_corner) > 5
    corners = ds.images[:, :, 0, 0]
    for i, transparent in enumerate(transparent_corner):
        if transparent:
            assert corners[i].tolist() == [255, 255, 255], pictures.names[i]


def test_quiet_decoding_prints_nothing(tmp_path, capsys):
    ds = open_dataset(str(mixed_folder(tmp_path / "pics")), progress=False)
    assert capsys.readouterr().err == "" and "skipped 1" in ds.source


def test_a_rewritten_zip_is_read_anew(tmp_path):
    path = stylegan_zip(tmp_path / "ds.zip", None)
    assert open_dataset(str(path)).images[1, 0, 0, 0] == 50
    with zipfile.ZipFile(path, "w") as zf:  # the same name, other pictures
        zf.writestr("a.png", png_bytes(Image.new("RGB", (8, 8), (9, 0, 0))))
        zf.writestr("b.png", png_bytes(Image.new("RGB", (8, 8), (11, 0, 0))))
    os.utime(path, ns=(1, 1))
    assert open_dataset(str(path)).images[:, 0, 0, 0].tolist() == [9, 11]


def test_decoding_workers_start_without_torch():
    """Workers are spawned: what they import is paid once per worker, and torch takes seconds."""
    code = "import sys, gankit.data.prepare; assert 'torch' not in sys.modules, 'torch imported'"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_train_evaluator_reads_a_folder_at_the_runs_size(tmp_path):
    """A folder of many sizes: the evaluation classifier learns the pictures at the size (and fit)
    the runs it scores train at, and its file says how it read them."""
    from gankit.cli import main
    from gankit.metrics.classifier import load_classifier

    root = tmp_path / "pics"
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        for k in range(10):
            side = 20 + 3 * k
            write(root / cls / f"{k}.png", Image.fromarray(rng.integers(0, 256, (side, side + 5, 3), dtype=np.uint8)))
    out = tmp_path / "ev.pt"
    assert main(["train-evaluator", "--dataset", str(root), "--out", str(out), "--epochs", "1",
                 "--image-size", "16", "--fit", "pad", "-q"]) == 0
    meta = load_classifier(out)[1]
    assert meta["image_shape"] == [3, 16, 16] and "--image-size 16 --fit pad" in meta["command"]
