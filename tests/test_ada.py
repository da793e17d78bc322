"""ADA: each op at known inputs, shapes, ranges, gradients, alpha; p's controller at known r_t;
p rising on a memorised set; the flags; a resumed ADA run equal to a straight one; the logs."""

import json
import math

import pytest
import torch

from gankit.augment.ada import ADA_LENGTH, AdaptiveAugment, ada_for_config, auto_length
from gankit.augment.ada_ops import (
    ADA_OPS,
    COLOUR_OPS,
    DEFAULT_ADA_OPS,
    ada_augment,
    flip_x,
    parse_ada_ops,
    rotate90,
    rotate_hue,
    scale,
)
from gankit.augment.diffaugment import adjust_brightness, adjust_contrast, adjust_saturation
from gankit.cli import main
from gankit.config import make_config
from gankit.errors import UserError
from gankit.nets import build
from gankit.nets.spec import net_spec
from gankit.run.checkpoint import latest, load
from gankit.run.report import render_report
from gankit.run.tensorboard_log import scalar_tag
from gankit.training.step import GANStep

GEOMETRIC = ("xflip", "rot90", "translation", "scale", "cutout")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Tiny nets and batches: one thread is faster than several, and steadier on a busy machine.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def images(n=8, c=3, side=16, seed=1):
    """Images in [-1, 1] with no pixel near 0, so pixels an op fills with 0 are easy to find."""
    x = torch.rand(n, c, side, side, generator=torch.Generator().manual_seed(seed)) * 1.8 - 0.9
    return torch.where(x.abs() < 0.05, torch.full_like(x, 0.5), x)


def seeded(op, x, p, seed=0):
    torch.manual_seed(seed)
    return ada_augment(x, (op,), torch.tensor(float(p)))


# --- the op names ------------------------------------------------------------------------------

@pytest.mark.parametrize("text, ops", [
    ("none", ()), ("", ()), ("default", DEFAULT_ADA_OPS),
    ("hue, XFLIP", ("xflip", "hue")),  # ADA's order, whatever the order named
    ("default,cutout", ADA_OPS),
])
def test_parse_ops(text, ops):
    assert parse_ada_ops(text) == ops


def test_default_ops_are_adas_bgc_without_cutout():
    assert "cutout" not in DEFAULT_ADA_OPS and set(DEFAULT_ADA_OPS) | {"cutout"} == set(ADA_OPS)


@pytest.mark.parametrize("text", ["flip", "xflip,colour", "default,,hue"])
def test_unknown_op_names_the_flag_and_lists_the_ops(text):
    with pytest.raises(UserError, match="--ada") as err:
        parse_ada_ops(text)
    assert all(op in str(err.value) for op in ADA_OPS)


# --- the deterministic ops at known inputs ----------------------------------------------------

def test_flip_x_mirrors_only_the_chosen_images():
    x = torch.arange(2 * 1 * 2 * 3, dtype=torch.float32).view(2, 1, 2, 3)
    out = flip_x(x, torch.tensor([True, False]))
    assert out[0].tolist() == [[[2.0, 1.0, 0.0], [5.0, 4.0, 3.0]]]
    assert torch.equal(out[1], x[1])


def test_rotate90_turns_counter_clockwise():
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).expand(4, 1, 2, 2)
    out = rotate90(x, torch.tensor([0, 1, 2, 3]))
    assert out[0, 0].tolist() == [[1, 2], [3, 4]]
    assert out[1, 0].tolist() == [[2, 4], [1, 3]]
    assert out[2, 0].tolist() == [[4, 3], [2, 1]]
    assert out[3, 0].tolist() == [[3, 1], [4, 2]]


def test_scale_two_reads_the_centre_half_bilinearly():
    ramp = torch.arange(4, dtype=torch.float32).expand(1, 1, 4, 4)  # value = column
    out = scale(ramp, torch.tensor([2.0]))
    torch.testing.assert_close(out[0, 0, 1], torch.tensor([0.75, 1.25, 1.75, 2.25]))


def test_hue_turn_of_a_third_cycles_the_channels_and_keeps_grey():
    rgb = torch.tensor([0.9, -0.3, 0.1]).view(1, 3, 1, 1)
    out = rotate_hue(rgb, torch.tensor([2 * math.pi / 3]))
    torch.testing.assert_close(out.flatten(), torch.tensor([0.1, 0.9, -0.3]), atol=1e-6, rtol=0)
    grey = torch.full((1, 3, 2, 2), 0.4)
    torch.testing.assert_close(rotate_hue(grey, torch.tensor([1.234])), grey, atol=1e-6, rtol=0)
    one_channel = images(c=1)
    assert rotate_hue(one_channel, torch.ones(8)) is one_channel


@pytest.mark.parametrize("op, neutral", [
    (lambda x, n: adjust_brightness(x, torch.zeros(n)), "brightness 0"),
    (lambda x, n: adjust_contrast(x, torch.ones(n)), "contrast x1"),
    (lambda x, n: adjust_saturation(x, torch.ones(n)), "saturation x1"),
    (lambda x, n: rotate_hue(x, torch.zeros(n)), "hue 0"),
    (lambda x, n: scale(x, torch.ones(n)), "scale x1"),
    (lambda x, n: rotate90(x, torch.zeros(n, dtype=torch.long)), "no turn"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_ops_at_neutral_values_give_the_image_back(op, neutral):
    x = images()
    torch.testing.assert_close(op(x, 8), x, atol=1e-5, rtol=0)  # grid_sample rounds its coordinates


# --- the random ops: shapes, ranges, p, gradients, alpha --------------------------------------

@pytest.mark.parametrize("op", ADA_OPS)
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_each_op_keeps_shape_and_dtype_and_p0_is_the_identity(op, channels):
    x = images(c=channels)
    out = seeded(op, x, 1.0)
    assert out.shape == x.shape and out.dtype == x.dtype and torch.isfinite(out).all()
    assert torch.equal(seeded(op, x, 0.0), x)  # to the bit


def test_p0_with_every_op_is_the_identity_and_p1_changes_every_image():
    x = images(n=32)
    assert torch.equal(ada_augment(x, ADA_OPS, 0.0), x)
    torch.manual_seed(0)
    out = ada_augment(x, ADA_OPS, 1.0)
    assert all(not torch.allclose(a, b) for a, b in zip(out, x))


@pytest.mark.parametrize("op", ADA_OPS)
def test_p1_applies_the_op_to_nearly_every_image(op):
    x = images(n=64)
    changed = [(a - b).abs().max() > 1e-4 for a, b in zip(seeded(op, x, 1.0), x)]
    # rot90 draws no turn for a quarter of the images, translation no shift for 1 in 25 at 16 px
    assert sum(changed) >= (40 if op == "rot90" else 56), op


def test_xflip_at_p1_flips_all_and_at_half_flips_about_half():
    x = images(n=400, side=4)
    assert torch.equal(seeded("xflip", x, 1.0), x.flip(3))
    flipped = (seeded("xflip", x, 0.5) != x).flatten(1).any(1).float().mean()
    assert 0.4 < flipped < 0.6


@pytest.mark.parametrize("op", ["xflip", "rot90", "translation", "scale", "cutout"])
def test_geometric_ops_stay_within_the_inputs_range_and_zero(op):
    x = images()
    out = seeded(op, x, 1.0)
    assert out.min() >= min(x.min(), 0) - 1e-6 and out.max() <= max(x.max(), 0) + 1e-6


def test_flips_and_turns_only_move_pixels():
    x = images()
    for op in ("xflip", "rot90"):
        out = seeded(op, x, 1.0)
        assert torch.equal(out.flatten(1).sort(1).values, x.flatten(1).sort(1).values), op


@pytest.mark.parametrize("op", ADA_OPS)
def test_gradient_reaches_the_images(op):
    x = images(c=3).requires_grad_(True)
    weights = torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
    (seeded(op, x, 1.0) * weights).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("fn", [lambda x: scale(x, torch.tensor([1.3, 0.8], dtype=torch.float64)),
                                lambda x: rotate_hue(x, torch.tensor([0.7, -2.0], dtype=torch.float64))],
                         ids=["scale", "hue"])
def test_gradcheck_of_the_differentiable_maps(fn):
    x = torch.rand(2, 3, 5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    assert torch.autograd.gradcheck(fn, (x,))


def test_rgba_colour_ops_leave_alpha_and_uncovered_pixels_are_transparent():
    x = images(n=16, c=4)
    x[:, 3] = 1.0  # opaque everywhere
    for op in COLOUR_OPS:
        assert torch.equal(seeded(op, x, 1.0)[:, 3], x[:, 3]), op
    for op in ("translation", "cutout"):
        out = seeded(op, x, 1.0)
        uncovered = out[:, 3] < 1
        assert uncovered.any(), op
        assert (out[:, 3][uncovered] == -1).all(), op  # transparent, not half so
        assert (out[:, :3].abs().sum(1)[uncovered] == 0).all(), op
    shrunk = seeded("scale", x, 1.0)
    assert shrunk[:, 3].min() < 0  # a zoom out uncovers transparent border


def test_rot90_keeps_non_square_images_their_shape():
    x = torch.rand(32, 3, 8, 12) * 2 - 1
    out = seeded("rot90", x, 1.0)
    assert out.shape == x.shape
    assert all(torch.equal(a, b) or torch.equal(a, b.flip(1, 2)) for a, b in zip(out, x))


# --- the controller of p ------------------------------------------------------------------------

def feed(ada, r_values, images=16):
    """One D update per step with r_t = each value; p after each step."""
    out = []
    for r in r_values:
        ada.observe(torch.tensor(float(r)), images)
        ada.end_step()
        out.append(float(ada.p))
    return out


def test_p_moves_by_the_images_of_an_interval_over_the_length():
    ada = AdaptiveAugment("default", torch.device("cpu"), length=640, interval=4)
    ps = feed(ada, [1.0] * 12)
    # moves only at the end of each interval, by 4 steps x 16 images / 640 = 0.1
    assert ps == pytest.approx([0, 0, 0, 0.1, 0.1, 0.1, 0.1, 0.2, 0.2, 0.2, 0.2, 0.3], abs=1e-6)
    ps = feed(ada, [0.5] * 8)  # below the target 0.6: down at the same speed
    assert ps[-1] == pytest.approx(0.1, abs=1e-6)
    assert feed(ada, [0.2] * 40)[-1] == 0.0  # clamped at 0
    assert feed(ada, [0.9] * 4 * 20)[-1] == 1.0  # clamped at 1


def test_the_interval_mean_decides_not_each_update():
    ada = AdaptiveAugment("default", torch.device("cpu"), length=64, interval=2)
    feed(ada, [1.0, 0.0])  # mean 0.5 < 0.6: would stay at 0
    assert float(ada.p) == 0.0
    feed(ada, [1.0, 0.3])  # mean 0.65: up by 32/64
    assert float(ada.p) == pytest.approx(0.5)


def test_p_stays_at_zero_while_d_cannot_tell():
    ada = AdaptiveAugment("default", torch.device("cpu"), length=1000, interval=4)
    noise = torch.rand(400, generator=torch.Generator().manual_seed(0)) * 0.8 - 0.4  # r_t in [-0.4, 0.4]
    assert max(feed(ada, noise.tolist())) == 0.0


def test_fixed_p_never_moves():
    ada = AdaptiveAugment("default", torch.device("cpu"), fixed_p=0.3, length=10, interval=1)
    assert feed(ada, [1.0] * 10 + [-1.0] * 10) == [pytest.approx(0.3)] * 20


def test_processes_average_r_t_before_p_moves():
    seen = []

    def mean(t):  # stands in for Dist.mean: the other process saw r_t = -1
        seen.append(float(t))
        return (t - 1) / 2

    ada = AdaptiveAugment("default", torch.device("cpu"), length=16, interval=1, mean=mean)
    feed(ada, [1.0])
    assert seen == [1.0] and float(ada.p) == 0.0  # the mean over processes is 0 < 0.6


@pytest.mark.parametrize("total, length", [(None, ADA_LENGTH), (100_000, 5_000), (300_000, 15_000),
                                           (10**9, ADA_LENGTH), (10, 1)])
def test_automatic_length_is_a_twentieth_of_the_run_at_most_adas(total, length):
    assert auto_length(total) == length


def test_config_gives_the_length_or_the_automatic_one():
    auto = ada_for_config(make_config({"ada": "default"}), torch.device("cpu"), total_images=200_000)
    assert auto.length == 10_000 and auto.adaptive and float(auto.p) == 0.0
    given = ada_for_config(make_config({"ada": "xflip", "ada_length": 777, "ada_p": 0.25}), torch.device("cpu"))
    assert (given.length, given.adaptive, given.ops) == (777, False, ("xflip",))
    assert float(given.p) == pytest.approx(0.25)
    assert ada_for_config(make_config({}), torch.device("cpu")) is None


# --- in training ------------------------------------------------------------------------------------

def test_p_rises_while_d_memorises_a_tiny_set():
    cfg = make_config({"arch": "dcgan-small", "width": 16, "batch_size": 8, "precision": "fp32", "device": "cpu",
                       "ada": "default", "ada_length": 200, "ada_interval": 1})
    torch.manual_seed(0)
    g, d = build(net_spec(cfg, (1, 28, 28)))
    step = GANStep(cfg, g, d, torch.optim.Adam(g.parameters(), 1e-4, betas=(0.5, 0.999)),
                   torch.optim.Adam(d.parameters(), 4e-3, betas=(0.5, 0.999)), torch.device("cpu"))
    reals = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1  # the whole set
    ps = []
    for i in range(60):
        step([(reals, None)], 0.0, GANStep.zero_stats(), i)
        ps.append(float(step.ada.p))
    assert max(ps) >= 0.1 and sum(ps[30:]) / 30 > 0.05 and ps[-1] > 0


TINY = ["--width", "8", "--batch-size", "16", "--log-every", "2", "--sample-every", "4", "--sample-every-early", "2",
        "--sample-early-until", "4", "--checkpoint-every", "3", "--sample-grid", "16", "--tensorboard", "off"]
# An interval of 3 steps leaves one step of an unfinished interval in the checkpoint at step 4;
# a short length makes p move within 7 steps.
ADA = ["--ada", "default,cutout", "--ada-length", "64", "--ada-interval", "3", "--ada-target", "0.3"]


def train(tmp_path, name, *extra):
    out = tmp_path / name
    assert main(["train", "-q", "--out", str(out), *TINY, *ADA, *extra]) == 0
    return out


def test_resumed_ada_run_equals_straight_run_and_logs_p(tmp_path):
    straight = train(tmp_path, "straight", "--steps", "7")
    interrupted = train(tmp_path, "interrupted", "--steps", "4")
    assert load(latest(interrupted))["ada"]["steps"] == 1  # mid-interval
    assert main(["train", "-q", "--resume", str(interrupted), "--steps", "7"]) == 0
    a, b = load(latest(straight)), load(latest(interrupted))
    assert a["progress"]["step"] == b["progress"]["step"] == 7
    for net in ("generator", "discriminator"):
        for key in a[net]:
            assert torch.equal(a[net][key], b[net][key]), (net, key)
    assert torch.equal(a["ada"]["p"], b["ada"]["p"]) and torch.equal(a["ada"]["sign_sum"], b["ada"]["sign_sum"])
    assert a["ada"]["steps"] == b["ada"]["steps"]
    lines = [json.loads(line) for line in (straight / "metrics.jsonl").read_text().splitlines()]
    train_lines = [r for r in lines if "event" not in r]
    assert all(0 <= r["ada_p"] <= 1 for r in train_lines)
    assert train_lines[-1]["ada_p"] == pytest.approx(float(a["ada"]["p"]), abs=1e-6)
    assert "Adaptive augmentation (ADA)" in render_report(straight)
    assert scalar_tag("ada_p", train_lines[-1]) == "augment/ada_p"


def test_checkpoints_without_ada_state_still_load():
    from gankit.training.distributed import Dist
    from gankit.training.state import TrainingState

    def state(**fields):
        cfg = make_config({"arch": "dcgan-small", "width": 8, "sample_grid": 4, **fields})
        torch.manual_seed(0)
        g, d = build(net_spec(cfg, (1, 28, 28)))
        return TrainingState(cfg, g, d, torch.device("cpu"), Dist(), {"config": cfg.to_dict()})

    old = state().state_dict()
    del old["ada"]  # as gankit wrote them before ADA
    state().load_state_dict(old)
    with_ada = state(ada="default")
    with_ada.load_state_dict(old)
    assert float(with_ada.ada.p) == 0.0


def test_a_run_without_ada_logs_no_p(tmp_path):
    out = tmp_path / "plain"
    assert main(["train", "-q", "--out", str(out), *TINY, "--steps", "2"]) == 0
    assert all("ada_p" not in json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines())
    assert load(latest(out))["ada"] is None
    assert "Adaptive augmentation (ADA)" not in render_report(out)


# --- the flags ------------------------------------------------------------------------------------

@pytest.mark.parametrize("layer, flag", [
    ({"ada": "flip"}, "--ada"),
    ({"ada": "default", "augment": "color"}, "--ada"),
    ({"ada": "default", "ada_p": 1.5}, "--ada-p"),
    ({"ada": "default", "ada_p": -0.1}, "--ada-p"),
    ({"ada": "default", "ada_target": 1.0}, "--ada-target"),
    ({"ada": "default", "ada_target": 0}, "--ada-target"),
    ({"ada": "default", "ada_length": 0}, "--ada-length"),
    ({"ada": "default", "ada_interval": 0}, "--ada-interval"),
    ({"ada_p": 0.5}, "--ada-p"),
    ({"ada_length": 1000}, "--ada-length"),
])
def test_bad_ada_settings_name_the_flag(layer, flag):
    with pytest.raises(UserError, match=flag):
        make_config(layer)


def test_ada_with_diffaugment_says_to_pick_one(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "x"), "--ada", "default", "--augment", "color"]) == 2
    err = capsys.readouterr().err
    assert "--ada" in err and "--augment" in err and "pick one" in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_flags_come_from_the_config():
    cfg = make_config({"ada": "xflip,rot90", "ada_p": "0.2", "ada_target": "0.5", "ada_length": "1e4",
                       "ada_interval": "8"})
    assert (cfg.ada, cfg.ada_p, cfg.ada_target, cfg.ada_length, cfg.ada_interval) == ("xflip,rot90", 0.2, 0.5,
                                                                                       10_000, 8)
    assert make_config({"ada": "default", "ada_p": "none"}).ada_p is None
