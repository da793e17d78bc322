"""Four-channel (RGBA, `--alpha keep`) images end to end: compositing, channel conversion, every net
family, PNGs, grids, GIFs, TensorBoard, array files, the feature extractors, and a tiny run that
trains, samples and is evaluated."""

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

import gankit
from gankit.cli import main
from gankit.data import open_dataset
from gankit.data.arrays import to_uint8_nchw
from gankit.data.transforms import LUMA_601, convert_channels
from gankit.errors import UserError
from gankit.images import flatten_alpha, save_png
from gankit.metrics.classifier import ClassifierExtractor
from gankit.metrics.evaluate import RGBA_NOTE
from gankit.metrics.inception import InceptionExtractor
from gankit.metrics.reference import reference_and_floor
from gankit.nets import ARCHS, build
from gankit.nets.spec import NetSpec, validate_spec
from gankit.run.pictures import grid, save_gif, save_grid


def rgba(n=3, h=5, w=6, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 4, h, w), generator=g, dtype=torch.uint8)


def pixel(r, g, b, a) -> torch.Tensor:
    """One RGBA pixel as a [1, 4, 1, 1] image."""
    return torch.tensor([r, g, b, a], dtype=torch.uint8).view(1, 4, 1, 1)


# ------------------------------------------------------------------ flatten_alpha


def test_flatten_alpha_at_known_values():
    assert flatten_alpha(pixel(10, 20, 30, 0)).flatten().tolist() == [255, 255, 255]  # background
    assert flatten_alpha(pixel(10, 20, 30, 255)).flatten().tolist() == [10, 20, 30]  # the colour
    assert flatten_alpha(pixel(10, 20, 30, 0), background=0).flatten().tolist() == [0, 0, 0]
    # alpha 128: (c * 128 + bg * 127) / 255, rounded to nearest
    assert flatten_alpha(pixel(0, 255, 100, 128)).flatten().tolist() == [127, 255, 177]  # 45185/255 = 177.2
    assert flatten_alpha(pixel(255, 0, 100, 128), background=0).flatten().tolist() == [128, 0, 50]  # 50.2
    # alpha 1: (200 + 255 * 254) / 255 = 254.78 rounds up to 255 (truncating would give 254);
    # (0 + 255 * 254) / 255 = 254 exactly
    assert flatten_alpha(pixel(200, 200, 200, 1)).flatten().tolist() == [255, 255, 255]
    assert flatten_alpha(pixel(0, 0, 0, 1)).flatten().tolist() == [254, 254, 254]


def test_flatten_alpha_rounds_to_nearest_on_every_input():
    c = torch.arange(256).view(-1, 1).expand(256, 256)
    a = torch.arange(256).view(1, -1).expand(256, 256)
    for background in (0, 255, 100):
        images = torch.stack([c, c, c, a]).to(torch.uint8).unsqueeze(0)  # [1, 4, 256, 256]
        got = flatten_alpha(images, background=background)[0, 0].double()
        exact = (c * a + background * (255 - a)).double() / 255
        assert (got - exact).abs().max() <= 0.5


def test_flatten_alpha_keeps_leading_dims_and_rejects_other_images():
    assert flatten_alpha(rgba()[0]).shape == (3, 5, 6)  # one CHW image
    assert flatten_alpha(rgba().view(1, 3, 4, 5, 6)).shape == (1, 3, 3, 5, 6)
    with pytest.raises(ValueError, match="RGBA"):
        flatten_alpha(torch.zeros(1, 3, 2, 2, dtype=torch.uint8))
    with pytest.raises(ValueError, match="RGBA"):
        flatten_alpha(torch.zeros(1, 4, 2, 2))


# ------------------------------------------------------------------ convert_channels


def test_rgba_to_rgb_and_grey_composites_onto_white():
    images = rgba()
    rgb = convert_channels(images, 3)
    assert torch.equal(rgb, flatten_alpha(images))
    grey = convert_channels(images, 1)
    luma = (rgb.double() * torch.tensor(LUMA_601, dtype=torch.float64).view(1, 3, 1, 1)).sum(1, keepdim=True)
    assert grey.shape == (3, 1, 5, 6) and (grey.double() - luma).abs().max() <= 0.5 + 1e-4
    transparent = rgba()
    transparent[:, 3] = 0
    assert (convert_channels(transparent, 1) == 255).all() and (convert_channels(transparent, 3) == 255).all()


def test_grey_and_rgb_to_rgba_are_opaque_and_round_trip():
    rgb = rgba()[:, :3].contiguous()
    grey = rgba()[:, :1].contiguous()
    for images in (rgb, grey):
        out = convert_channels(images, 4)
        assert out.shape == (3, 4, 5, 6) and (out[:, 3] == 255).all()
        assert torch.equal(convert_channels(out, images.shape[1]), images)
    assert torch.equal(convert_channels(grey, 4)[:, :3], grey.expand(-1, 3, -1, -1))


def test_convert_channels_handles_no_images():
    empty = torch.zeros(0, 4, 5, 6, dtype=torch.uint8)
    assert convert_channels(empty, 3).shape == (0, 3, 5, 6)
    assert convert_channels(empty, 1).shape == (0, 1, 5, 6)


# ------------------------------------------------------------------ nets

# The smallest side each family takes.
SIDES = {"mlp": 8, "dcgan-small": 8, "infogan": 16, "dcgan": 16, "resnet": 28, "r3gan": 28}


def test_every_family_is_covered():
    assert set(SIDES) == set(ARCHS)


@pytest.mark.parametrize("conditioning", ["none", "projection", "acgan"])
@pytest.mark.parametrize("arch", sorted(SIDES))
def test_every_family_makes_and_judges_rgba_images(arch, conditioning):
    side = SIDES[arch]
    classes = 0 if conditioning == "none" else 3
    spec = NetSpec(arch=arch, image_shape=(4, side, side), latent_dim=8, width=8, g_widths=(16,), d_widths=(16,),
                   num_classes=classes, conditioning=conditioning)
    g, d = build(spec)
    z, y = torch.randn(2, 8), (torch.tensor([0, 2]) if classes else None)
    x = g(z, y) if classes else g(z)
    assert x.shape == (2, 4, side, side) and x.min() >= -1 and x.max() <= 1
    out = d(x, y) if classes else d(x)
    logit = out[0] if isinstance(out, tuple) else out
    assert logit.shape == (2,)


def test_other_channel_counts_are_refused_naming_the_flag():
    with pytest.raises(UserError, match="--channels"):
        validate_spec(NetSpec(arch="mlp", image_shape=(2, 8, 8)))


# ------------------------------------------------------------------ files and pictures


def test_save_png_rgba_round_trip(tmp_path):
    image = rgba()[0]
    save_png(image, tmp_path / "a.png")
    with Image.open(tmp_path / "a.png") as im:
        assert im.mode == "RGBA"
        assert torch.equal(torch.from_numpy(np.array(im)).permute(2, 0, 1), image)


def test_grid_of_rgba_has_transparent_padding(tmp_path):
    images = rgba(n=3, h=3, w=4)
    picture = grid(images, nrow=2, padding=2)
    assert picture.mode == "RGBA" and picture.size == (2 * 4 + 3 * 2, 2 * 3 + 3 * 2)
    a = np.asarray(picture)
    assert torch.equal(torch.from_numpy(a[2:5, 8:12].copy()).permute(2, 0, 1), images[1])
    assert (a[:2, :, 3] == 0).all() and (a[:, :2, 3] == 0).all()  # the frame
    assert (a[7:10, 8:12, 3] == 0).all()  # the unused fourth cell
    save_grid(images, tmp_path / "g.png")
    save_grid(images, tmp_path / "g.jpg")  # JPEG has no alpha: composited onto white
    with Image.open(tmp_path / "g.png") as png, Image.open(tmp_path / "g.jpg") as jpg:
        assert (png.mode, jpg.mode) == ("RGBA", "RGB")


def test_gif_of_rgba_frames_is_composited_onto_white(tmp_path):
    images = rgba(n=2, h=4, w=4)
    images[0, 3] = 0  # the first image fully transparent
    images[1, :3], images[1, 3] = 0, 255  # the second opaque black
    frames = [grid(images, nrow=2, padding=1), grid(images.flip(0), nrow=2, padding=1)]
    save_gif(frames, tmp_path / "p.gif")
    with Image.open(tmp_path / "p.gif") as gif:
        first = np.asarray(gif.convert("RGB"))
    assert (first[0] == 255).all()  # the transparent frame: white
    assert (first[1:5, 1:5] == 255).all()  # the transparent image: white
    assert (first[1:5, 6:10] == 0).all()  # the opaque black one stays black


def test_tensorboard_keeps_rgba(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import IMAGES, EventAccumulator

    from gankit.run.tensorboard_log import TensorBoardLog

    log = TensorBoardLog(tmp_path)
    picture = rgba()[0]
    log.image_grid(7, picture)
    log.close()
    acc = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={IMAGES: 0})
    acc.Reload()
    png = acc.Images("samples/fixed_grid")[0].encoded_image_string
    with Image.open(io.BytesIO(png)) as im:
        assert im.mode == "RGBA"
        assert torch.equal(torch.from_numpy(np.array(im)).permute(2, 0, 1), picture)


def test_arrays_with_four_channels_in_either_layout(tmp_path):
    nchw = rgba(n=4, h=9, w=7).numpy()
    assert np.array_equal(to_uint8_nchw(nchw, "x"), nchw)
    assert np.array_equal(to_uint8_nchw(nchw.transpose(0, 2, 3, 1), "x"), nchw)
    # 1 and 3 are told first, as before RGBA: [N, 4, 5, 3] is still 4-pixel-high RGB
    assert to_uint8_nchw(np.zeros((2, 4, 5, 3), np.uint8), "x").shape == (2, 3, 4, 5)
    np.save(tmp_path / "x.npy", nchw.transpose(0, 2, 3, 1))
    ds = open_dataset(str(tmp_path / "x.npy"))
    assert ds.image_shape == (4, 9, 7) and torch.equal(ds.images, torch.from_numpy(nchw))
    assert open_dataset(str(tmp_path / "x.npy"), channels=3).image_shape == (3, 9, 7)


# ------------------------------------------------------------------ feature extractors


def test_classifier_features_of_rgba_are_those_of_the_white_composite():
    ext = ClassifierExtractor("mnist")  # a grey classifier: RGBA -> white composite -> luma
    images = rgba(n=4, h=28, w=28)
    features, logits = ext(images)
    want_features, want_logits = ext(flatten_alpha(images))
    assert np.array_equal(features, want_features) and np.array_equal(logits, want_logits)


class _Recorder(torch.nn.Module):
    """Stands in for Inception-v3 (91 MB of weights): returns the images it was given."""

    def forward(self, x):
        self.seen = x
        return x.flatten(1), x.flatten(1)[:, :2]


def test_inception_extractor_composites_rgba_onto_white():
    ext = InceptionExtractor.__new__(InceptionExtractor)  # no weights file needed for the wiring
    ext.device, ext.model = torch.device("cpu"), _Recorder()
    images = rgba(n=2)
    ext(images)
    assert torch.equal(ext.model.seen, flatten_alpha(images).float() / 255)


# ------------------------------------------------------------------ a run, end to end


@pytest.fixture(scope="module")
def rgba_data(tmp_path_factory):
    """32 labelled 8x8 RGBA images: class 1 is half transparent."""
    folder = tmp_path_factory.mktemp("rgba")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (32, 8, 8, 4), dtype=np.uint8)
    labels = np.arange(32) % 2
    images[labels == 1, :, :4, 3] = 0
    np.savez(folder / "rgba.npz", images=images, labels=labels)
    return folder


@pytest.fixture(scope="module")
def run_dir(rgba_data):
    out = rgba_data / "run"
    assert main(["train", "-q", "--out", str(out), "--dataset", str(rgba_data / "rgba.npz"), "--alpha", "keep",
                 "--arch", "mlp", "--g-widths", "16,32", "--d-widths", "32,16", "--steps", "3", "--batch-size", "8",
                 "--sample-grid", "4", "--log-every", "1", "--checkpoint-every", "3", "--tensorboard", "off"]) == 0
    return out


def test_a_run_on_rgba_data_trains_and_shows_rgba(run_dir):
    info = json.loads((run_dir / "config.json").read_text())
    assert info["dataset"]["image_shape"] == [4, 8, 8]
    with Image.open(run_dir / "samples" / "step_00000003.png") as im:
        assert im.mode == "RGBA"
    with Image.open(run_dir / "progress.gif") as gif:
        assert gif.n_frames == 2
    assert main(["report", str(run_dir)]) == 0


def test_sample_writes_rgba_pngs_and_grid(run_dir, tmp_path):
    assert main(["sample", str(run_dir), "-n", "3", "--out", str(tmp_path / "pngs"), "-q"]) == 0
    assert main(["sample", str(run_dir), "-n", "4", "--out", str(tmp_path / "grid.png"), "-q"]) == 0
    files = sorted((tmp_path / "pngs").glob("*.png"))
    assert len(files) == 3
    for path in [*files, tmp_path / "grid.png"]:
        with Image.open(path) as im:
            assert im.mode == "RGBA", path


@pytest.fixture(scope="module")
def evaluator_file(rgba_data):
    clf = rgba_data / "clf.pt"
    assert main(["train-evaluator", "--dataset", str(rgba_data / "rgba.npz"), "--out", str(clf),
                 "--epochs", "1"]) == 0
    return clf


def test_eval_of_an_rgba_run_with_its_own_classifier(evaluator_file, run_dir, capsys):
    assert main(["eval", str(run_dir), "-n", "20", "--evaluator", str(evaluator_file), "--metrics", "fid,kid"]) == 0
    assert RGBA_NOTE in capsys.readouterr().out
    result = json.loads((run_dir / "eval.json").read_text())
    assert result["protocol"]["alpha"] == RGBA_NOTE and np.isfinite(result["metrics"]["fid"])


def test_eval_reads_real_pictures_as_the_run_was_trained_on_them(evaluator_file, run_dir, monkeypatch):
    seen = {}

    def spy(dataset, **options):
        seen.update(options)
        return reference_and_floor(dataset, **options)

    monkeypatch.setattr("gankit.metrics.evaluate.reference_and_floor", spy)
    gankit.evaluate(run_dir, n=20, metrics="fid", evaluator=evaluator_file, cache=False)
    assert seen["alpha"] == "keep" and seen["fit"] == "crop"


def test_diffaugment_on_rgba_leaves_alpha_to_space_and_fills_transparent():
    from gankit.augment.diffaugment import diff_augment

    x = torch.ones(6, 4, 8, 8, requires_grad=True)  # white, opaque
    g = torch.Generator().manual_seed(0)
    colour = diff_augment(x, "color", generator=g)
    assert torch.equal(colour[:, 3], x[:, 3]) and not torch.equal(colour[:, :3], x[:, :3])
    cut = diff_augment(x, "cutout", generator=torch.Generator().manual_seed(0))
    holes = cut[:, :3].eq(0).all(dim=1)  # where the colour was zeroed
    assert holes.any() and torch.equal(cut[:, 3][holes], torch.full_like(cut[:, 3][holes], -1.0))
    moved = diff_augment(x, "translation", generator=torch.Generator().manual_seed(3))
    assert set(moved[:, 3].unique().tolist()) <= {-1.0, 1.0}
    moved.sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape
