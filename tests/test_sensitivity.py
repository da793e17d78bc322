"""The sensitivity check of feature extractors: the degradations, and the check's verdict on a small
synthetic set (discs and stripes, 16 px) with stand-in extractors whose blind spots are known."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_contrastive import discs, stripes

from gankit.metrics import degradations as deg
from gankit.metrics.sensitivity import FAMILIES, STRUCTURE_BAR, describe_check, judge, kmeans, sensitivity_check


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def pictures():
    return discs(40, 5)


# ---------------------------------------------------------------- the degradations


def test_tile_shuffle_moves_every_picture_tiles_and_keeps_their_pixels(pictures):
    for tiles in (2, 4):
        out = deg.tile_shuffle(pictures, tiles, seeded())
        assert out.shape == pictures.shape and out.dtype == torch.uint8
        side = 16 // tiles
        for a, b in zip(pictures, out):
            cut = lambda x: sorted(x.unfold(1, side, side).unfold(2, side, side).reshape(3, -1, side, side)  # noqa: E731
                                   .permute(1, 0, 2, 3).reshape(tiles * tiles, -1).tolist())
            assert cut(a) == cut(b)  # the same tiles ...
        moved = [not torch.equal(a, b) for a, b in zip(pictures, out)]
        assert sum(moved) >= len(pictures) - 2  # ... elsewhere (only a picture of equal tiles stays alike)
    assert torch.equal(deg.tile_shuffle(pictures, 2, seeded(3)), deg.tile_shuffle(pictures, 2, seeded(3)))


def test_blend_mixes_each_picture_with_another(pictures):
    average = deg.blend_pairs(pictures, 0.5, seeded())
    assert not any(torch.equal(a, b) for a, b in zip(pictures, average))
    # the average of two pictures lies between them, pixel by pixel: its sum is the mean of two sums
    assert abs(average.double().sum() - pictures.double().sum()) / pictures.double().sum() < 0.01


def test_blur_noise_checkerboard_and_quantising_grow_with_their_strength(pictures):
    def detail(x):  # mean absolute difference of neighbouring pixels
        return (x.double()[..., 1:] - x.double()[..., :-1]).abs().mean().item()

    blurs = [detail(deg.gaussian_blur(pictures, r)) for r in (0.5, 1, 2)]
    assert detail(pictures) > blurs[0] > blurs[1] > blurs[2]
    noises = [(deg.additive_noise(pictures, s, seeded()).double() - pictures.double()).std().item() for s in (8, 16, 32)]
    assert noises[0] < noises[1] < noises[2] and abs(noises[1] - 16) < 3
    board = deg.checkerboard(torch.full((1, 1, 4, 4), 100, dtype=torch.uint8), 10)[0, 0]
    assert board.tolist() == [[90, 110, 90, 110], [110, 90, 110, 90]] * 2
    for levels in (16, 4, 2):
        assert len(torch.unique(deg.quantise(pictures, levels))) <= levels


def test_the_blob_keeps_only_a_four_by_four_layout(pictures):
    def detail(x):
        return (x.double()[..., 1:] - x.double()[..., :-1]).abs().mean().item()

    out = deg.blob(pictures)
    assert out.shape == pictures.shape
    # 4 px per 16: smoother than a blur of radius 1, and far from the pictures
    assert detail(out) < detail(deg.gaussian_blur(pictures, 1)) < detail(pictures)
    assert (out.float() - pictures.float()).abs().mean() > 10
    assert torch.equal(deg.blob(torch.full((2, 3, 16, 16), 77, dtype=torch.uint8)),
                       torch.full((2, 3, 16, 16), 77, dtype=torch.uint8))  # a flat picture stays as it is


# ---------------------------------------------------------------- the check


def layout_and_texture(images):
    """A stand-in extractor that sees a 4x4 layout of colour and the energy of fine detail, but no
    object as a whole."""
    x = images.float() / 255
    small = F.adaptive_avg_pool2d(x, 4).flatten(1)
    dx = (x[..., 1:] - x[..., :-1]).abs().mean((2, 3))
    dy = (x[..., 1:, :] - x[..., :-1, :]).abs().mean((2, 3))
    d2 = (x[..., 2:] - x[..., :-2]).abs().mean((2, 3))
    return torch.cat([small, 4 * dx, 4 * dy, 4 * d2], 1).double().numpy(), None


def random_features(images):
    """An extractor of random features: numbers that do not depend on what the pictures show."""
    rng = np.random.default_rng(int(images.double().sum()) % 100_003)
    return rng.normal(size=(len(images), 16)), None


def colour_statistics(images):
    """Mean and spread of each channel: blind to where anything is."""
    x = images.double() / 255
    return torch.cat([x.mean((2, 3)), x.std((2, 3))], 1).numpy(), None


@pytest.fixture(scope="module")
def synthetic():
    reference = torch.cat([discs(300, 0), stripes(300, 1)])
    held = torch.cat([discs(300, 2), stripes(300, 3)])
    return reference, held


def check_of(extract, synthetic, labels=None):
    reference, held = synthetic
    return sensitivity_check(extract, extract(reference)[0], held, labels)


def test_degradations_score_in_order_of_strength(synthetic):
    check = check_of(layout_and_texture, synthetic)
    rows = check["degradations"]
    assert [r["family"] for r in rows] == [f for f, (_, strengths, _) in FAMILIES.items() for _ in strengths]
    for family in FAMILIES:
        fids = [r["fid"] for r in rows if r["family"] == family]
        assert fids == sorted(fids) and len(set(fids)) == len(fids), family
    assert all(r["fid"] > check["floor_fid"] for r in rows if r["family"] != "quantise")
    # it sees layout and texture but not objects, and the bar says so
    assert not check["passes"] and check["failures"]
    assert all("bar" in reason for reason in check["failures"])


def test_an_extractor_of_random_features_fails(synthetic):
    check = check_of(random_features, synthetic)
    assert not check["passes"]
    barred = [r for r in check["degradations"] if (r["family"], r["strength"]) in (("shuffle", 2), ("blend", 0.5))]
    assert len(barred) == 2 and all(r["times_floor"] < 3 for r in barred)
    assert any("2x2 tiles shuffled" in reason and "bar" in reason for reason in check["failures"])


def test_colour_statistics_do_not_see_a_shuffle(synthetic):
    check = check_of(colour_statistics, synthetic)
    shuffle = next(r for r in check["degradations"] if r["what"] == "2x2 tiles shuffled")
    assert shuffle["times_floor"] < 2 and not check["passes"]


def test_variety_uses_the_labels_where_there_are_some(synthetic):
    labels = torch.cat([torch.zeros(300), torch.ones(300)]).long()
    check = check_of(layout_and_texture, synthetic, labels)
    variety = [r for r in check["degradations"] if r["family"] == "variety"]
    # two classes can only be halved: one strength, 300 pictures of one class
    assert [(r["what"], r["pictures"]) for r in variety] == [("50% of the classes", 300)]
    assert variety[0]["fid"] > 10 * check["floor_fid"]


def test_the_verdict_follows_the_rule():
    def row(family, strength, fid):
        return {"family": family, "what": f"{family} {strength}", "strength": strength, "fid": fid,
                "times_floor": fid / 2.0}

    good = [row("shuffle", 2, 2.0 * STRUCTURE_BAR), row("shuffle", 4, 70.0), row("blend", 0.25, 10.0),
            row("blend", 0.5, 61.0), row("blur", 0.5, 3.0), row("blur", 1, 4.0)]
    assert judge(good, floor=2.0) == []
    low = [row("shuffle", 2, 59.0)] + good[1:]  # 29.5x the floor
    assert judge(low, floor=2.0) == ["shuffle 2: 29.5x the floor, under the 30x bar"]
    falling = good[:4] + [row("blur", 0.5, 4.0), row("blur", 1, 3.0)]
    assert judge(falling, floor=2.0) == ["blur: FID 3 (blur 1) is not above 4 (blur 0.5)"]


def test_the_description_names_the_verdict_and_every_degradation(synthetic):
    check = check_of(random_features, synthetic)
    text = describe_check(check, "x.pt")
    assert text.startswith("extractor check (stored in x.pt): FAILS")
    assert "2x2 tiles shuffled" in text and "blob: 4x4 and back" in text and "why it fails" in text


def test_kmeans_finds_two_obvious_groups():
    rng = np.random.default_rng(0)
    points = np.concatenate([rng.normal(0, 0.1, (50, 3)), rng.normal(5, 0.1, (50, 3))])
    labels = kmeans(points, 2)
    assert len(set(labels[:50])) == 1 and len(set(labels[50:])) == 1 and labels[0] != labels[-1]


# ---------------------------------------------------------------- in the extractor file and in `gankit eval`


@pytest.fixture(scope="module")
def labelled_file(tmp_path_factory):
    """A 2-class array of discs and stripes and a 1-epoch classifier from `gankit train-evaluator`."""
    from gankit.cli import main

    root = tmp_path_factory.mktemp("check")
    images = torch.cat([discs(100, 10), stripes(100, 11)])
    labels = torch.cat([torch.zeros(100), torch.ones(100)]).long()
    np.savez(root / "shapes.npz", images=images.numpy(), labels=labels.numpy())
    np.savez(root / "fake.npz", images=stripes(40, 12).numpy())
    out = root / "shapes-classifier.pt"
    assert main(["train-evaluator", "--dataset", str(root / "shapes.npz"), "--out", str(out), "--epochs", "1",
                 "-q"]) == 0
    return root, out


def test_train_evaluator_stores_the_check_and_eval_prints_it(labelled_file, capsys):
    from gankit.cli import main
    from gankit.metrics.classifier import load_classifier

    root, out = labelled_file
    check = load_classifier(out)[1]["sensitivity"]
    assert check["pictures"] == [160, 40]  # its 160 training pictures against its 40 held out
    assert {r["family"] for r in check["degradations"]} == set(FAMILIES)
    assert isinstance(check["passes"], bool) and check["floor_fid"] >= 0
    capsys.readouterr()
    assert main(["eval", str(root / "fake.npz"), "--dataset", str(root / "shapes.npz"), "--evaluator", str(out),
                 "-n", "40", "--metrics", "fid", "--json", str(root / "e.json")]) == 0
    printed = capsys.readouterr().out
    assert f"extractor check of {out.name}: {'passes' if check['passes'] else 'FAILS'} (2x2 tiles shuffled" in printed
    assert "two pictures averaged" in printed and len(printed.splitlines()) < 20  # one line; the rest in eval.json
    import json
    stored = json.loads((root / "e.json").read_text())["protocol"]["extractor_check"]
    assert stored["floor_fid"] == check["floor_fid"] and stored["file"] == out.name


def test_an_extractor_file_from_before_the_check_still_loads_and_says_so(labelled_file, capsys):
    from gankit.cli import main
    from gankit.metrics.classifier import load_classifier, save_classifier

    root, out = labelled_file
    model, meta = load_classifier(out)
    old = root / "old-classifier.pt"
    save_classifier(model, old, {k: v for k, v in meta.items() if k != "sensitivity"})
    capsys.readouterr()
    assert main(["eval", str(root / "fake.npz"), "--dataset", str(root / "shapes.npz"), "--evaluator", str(old),
                 "-n", "40", "--metrics", "fid"]) == 0
    printed = capsys.readouterr().out
    assert "FID" in printed and "extractor check: none stored in old-classifier.pt" in printed
    assert "gankit train-evaluator --dataset" in printed


def test_the_shipped_classifiers_carry_a_passing_check():
    """gankit/weights/*.check.json, written by tools/check_shipped_extractors.py: what `gankit eval`
    prints for the default extractors of mnist, mnist-5k and fashion-mnist."""
    from pathlib import Path

    import gankit.metrics.classifier as classifier_module
    from gankit.metrics.evaluate import stored_check

    weights = Path(classifier_module.__file__).resolve().parent.parent / "weights"
    for name in ("mnist-classifier.pt", "fashion-mnist-classifier.pt"):
        stored = stored_check({}, weights / name)
        assert "check" in stored, name
        assert stored["check"]["passes"] and stored["check"]["floor_fid"] > 0, name
