"""DiffAugment: the policy parser, each op at known inputs, the random ranges, gradients, seeds."""

import pytest
import torch

from gankit.augment.diffaugment import (
    AUGMENT_OPS,
    adjust_brightness,
    adjust_contrast,
    adjust_saturation,
    cut_out,
    cutout_size,
    diff_augment,
    parse_augment_policy,
    random_color,
    random_cutout,
    random_translation,
    translate,
)
from gankit.errors import UserError

ALL = "color,translation,cutout"


def seeded(seed=0):
    return torch.Generator().manual_seed(seed)


def images(n=4, c=3, side=16, seed=1):
    """Images in [-1, 1] with no pixel exactly 0, so zeroed pixels are easy to find."""
    x = torch.rand(n, c, side, side, generator=seeded(seed)) * 1.8 - 0.9
    return torch.where(x.abs() < 0.05, torch.full_like(x, 0.5), x)


# --- the policy -------------------------------------------------------------------------------

@pytest.mark.parametrize("text, ops", [
    ("", ()), ("none", ()), (" None ", ()),
    ("color", ("color",)),
    ("color,translation,cutout", ("color", "translation", "cutout")),
    ("cutout, Color", ("cutout", "color")),
])
def test_parse_policy(text, ops):
    assert parse_augment_policy(text) == ops


@pytest.mark.parametrize("text", ["colour", "color,flip", "color,,cutout", "none,color", "cutout,cutout"])
def test_bad_policy_names_the_flag(text):
    with pytest.raises(UserError, match="--augment") as err:
        parse_augment_policy(text)
    assert "color" in str(err.value)  # says what would work


def test_diff_augment_rejects_a_bad_policy_too():
    with pytest.raises(UserError, match="--augment"):
        diff_augment(images(), "translate")


# --- shapes, dtype, gradient, seeds ------------------------------------------------------------

@pytest.mark.parametrize("policy", ["color", "translation", "cutout", ALL])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shape_dtype_and_gradient(policy, channels, dtype):
    x = images(c=channels, side=12).to(dtype).requires_grad_(True)
    out = diff_augment(x, policy, seeded())
    assert out.shape == x.shape and out.dtype == dtype
    # A weighted sum, so that color's per-image mean-centring does not cancel the gradient.
    weights = torch.rand(out.shape, generator=seeded(5), dtype=dtype)
    (out * weights).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_empty_policy_returns_the_input():
    x = images()
    assert diff_augment(x, "") is x and diff_augment(x, "none") is x and diff_augment(x, ()) is x


def test_same_seed_same_result_and_other_seed_differs():
    x = images(n=8)
    a = diff_augment(x, ALL, seeded(3))
    b = diff_augment(x, ALL, seeded(3))
    c = diff_augment(x, ALL, seeded(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_global_seed_is_used_without_a_generator():
    x = images(n=8)
    torch.manual_seed(7)
    a = diff_augment(x, ALL)
    torch.manual_seed(7)
    assert torch.equal(a, diff_augment(x, ALL))


def test_policy_tuple_and_string_agree():
    x = images()
    assert torch.equal(diff_augment(x, ("translation", "cutout"), seeded()),
                       diff_augment(x, "translation,cutout", seeded()))


def test_draws_differ_per_image():
    x = images(n=1).expand(16, -1, -1, -1)  # the same image 16 times
    for policy in AUGMENT_OPS:
        out = diff_augment(x, policy, seeded())
        assert len({tuple(o.flatten().tolist()) for o in out}) > 4, policy


# --- color -------------------------------------------------------------------------------------

def test_color_ops_at_known_values():
    x = torch.tensor([[[[0.2, -0.4]], [[0.5, 0.1]], [[-0.1, 0.0]]]])  # [1, 3, 1, 2]
    torch.testing.assert_close(adjust_brightness(x, torch.tensor([0.3])), x + 0.3)
    grey = x.mean(dim=1, keepdim=True)  # per-pixel channel mean: [0.2, -0.1]
    torch.testing.assert_close(adjust_saturation(x, torch.tensor([2.0])), grey + 2 * (x - grey))
    torch.testing.assert_close(adjust_saturation(x, torch.tensor([0.0])), grey.expand_as(x))
    mean = x.mean()  # 0.05
    torch.testing.assert_close(adjust_contrast(x, torch.tensor([1.5])), mean + 1.5 * (x - mean))
    # Pixel (0, 0) of channel 0 by hand: contrast 0.5 around the mean 0.05.
    assert adjust_contrast(x, torch.tensor([0.5]))[0, 0, 0, 0].item() == pytest.approx(0.05 + 0.5 * 0.15)


def test_saturation_leaves_grey_images_alone():
    x = images(c=1)
    assert torch.equal(adjust_saturation(x, torch.full((4,), 1.7)), x)


def test_color_of_a_flat_image_is_a_brightness_shift_in_range():
    # On a constant image saturation and contrast do nothing, leaving brightness: U(-0.5, 0.5).
    out = random_color(torch.zeros(400, 3, 2, 2), seeded())
    per_image = out[:, 0, 0, 0]
    assert torch.equal(out, per_image.view(-1, 1, 1, 1).expand_as(out))
    assert per_image.min() >= -0.5 and per_image.max() <= 0.5
    assert per_image.min() < -0.4 and per_image.max() > 0.4  # it uses the whole range


def test_color_factor_ranges():
    # Image i: channel values (-a, 0, a) at every pixel; saturation and contrast scale a.
    n = 400
    x = torch.zeros(n, 3, 1, 1)
    x[:, 0], x[:, 2] = -0.5, 0.5
    out = random_color(x, seeded(2))
    spread = (out[:, 2] - out[:, 0]).flatten() / 1.0  # = saturation * contrast
    assert spread.min() >= 0 and spread.max() <= 2 * 1.5
    assert spread.max() > 2.0  # both factors above 1 sometimes


# --- translation -------------------------------------------------------------------------------

def test_translate_by_known_shifts():
    x = torch.arange(1.0, 26.0).view(1, 1, 5, 5).repeat(3, 2, 1, 1)  # values 1..25, no zeros
    out = translate(x, torch.tensor([1, -2, 0]), torch.tensor([2, 0, -1]))
    want0 = torch.zeros(5, 5)
    want0[1:, 2:] = x[0, 0, :4, :3]  # down 1, right 2
    want1 = torch.zeros(5, 5)
    want1[:3, :] = x[0, 0, 2:, :]  # up 2
    want2 = torch.zeros(5, 5)
    want2[:, :4] = x[0, 0, :, 1:]  # left 1
    for i, want in enumerate((want0, want1, want2)):
        for c in range(2):
            assert torch.equal(out[i, c], want)


def test_translate_zero_is_identity_and_keeps_the_gradient():
    x = images().requires_grad_(True)
    out = translate(x, torch.zeros(4, dtype=torch.long), torch.zeros(4, dtype=torch.long))
    assert torch.equal(out, x)
    out.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))


def test_random_translation_conserves_pixels():
    # Every output pixel is a pixel of the same image moved by one shift (or a zero from outside);
    # shifts stay within 1/8 of the side (2 px at 16), and the gradient counts the kept pixels.
    x = images(n=32, side=16).requires_grad_(True)
    out = random_translation(x, seeded())
    out.sum().backward()
    for i in range(32):
        matches = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                   if torch.equal(out[i], translate(x[i:i + 1], torch.tensor([dy]), torch.tensor([dx]))[0])]
        assert len(matches) == 1
        dy, dx = matches[0]
        assert (x.grad[i] == 1).sum() == 3 * (16 - abs(dy)) * (16 - abs(dx))
    assert (x.grad == 0).any()  # some image was shifted


# --- cutout ------------------------------------------------------------------------------------

def test_cut_out_zeroes_exactly_the_square():
    x = images(n=2, side=10)
    out = cut_out(x, torch.tensor([2, -3]), torch.tensor([4, 7]), size=5)
    mask = torch.ones(2, 1, 10, 10)
    mask[0, :, 2:7, 4:9] = 0
    mask[1, :, 0:2, 7:10] = 0  # rows -3..1 and columns 7..11, clipped to the image
    assert torch.equal(out, x * mask)


def test_random_cutout_zeroes_one_square_of_half_the_side():
    side = 16
    size = cutout_size(side)
    assert size == 8 and cutout_size(28) == 14 and cutout_size(5) == 3
    x = images(n=200, c=3, side=side).requires_grad_(True)
    out = random_cutout(x, seeded())
    zero = out == 0
    assert torch.equal(zero[:, 0], zero[:, 1]) and torch.equal(zero[:, 0], zero[:, 2])  # all channels
    full = 0
    for i in range(200):
        rows = zero[i, 0].any(dim=1).nonzero().flatten()
        cols = zero[i, 0].any(dim=0).nonzero().flatten()
        assert len(rows) and len(cols)  # the centre is always inside the image
        top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
        # A solid rectangle ...
        assert zero[i, 0].sum() == (bottom - top) * (right - left)
        assert zero[i, 0, top:bottom, left:right].all()
        # ... that is the size x size square, cut only where it meets the border.
        assert bottom - top == size or top == 0 or bottom == side
        assert right - left == size or left == 0 or right == side
        full += int(bottom - top == size and right - left == size)
    assert full > 50
    # Outside the square nothing changed, and the gradient flows there only.
    assert torch.equal(out[~zero], x[~zero])
    out.sum().backward()
    assert torch.equal(x.grad, (~zero).to(x.dtype))
