"""`gankit eval IMAGES --dataset FOLDER`: the reference pictures are read as the extractor's own
pictures were (its size, fit and alpha), so real pictures read that way score at the floor.

The folder holds transparent pictures and the extractor was trained on them composited onto black
(`--alpha black`) at 16 px: reading the reference any other way puts real pictures far above it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from test_contrastive import discs, stripes

from gankit.cli import main
from gankit.data import open_dataset

BIG = 48   # the pictures' own size in the folder
SMALL = 16  # the size runs and the extractor read them at


@pytest.fixture(scope="module")
def folder_and_extractor(tmp_path_factory):
    """A folder of two classes of 48-px pictures and a classifier trained on them read at 16 px."""
    root = tmp_path_factory.mktemp("images")
    folder = root / "shapes"
    for name, images in (("discs", discs(120, 40, side=BIG)), ("stripes", stripes(120, 41, side=BIG))):
        (folder / name).mkdir(parents=True)
        for k, image in enumerate(images.permute(0, 2, 3, 1).numpy()):
            # the background (the colour of the corner) transparent
            alpha = np.where((image == image[0, 0]).all(axis=2), 0, 255).astype(np.uint8)
            Image.fromarray(np.dstack([image, alpha]), "RGBA").save(folder / name / f"{k:03d}.png")
    out = root / "shapes-16.pt"
    assert main(["train-evaluator", "--dataset", str(folder), "--image-size", str(SMALL), "--alpha", "black",
                 "--epochs", "2", "--out", str(out), "-q"]) == 0
    return root, folder, out


def scored(root, target, folder, out, *extra) -> dict:
    path = root / "result.json"
    assert main(["eval", str(target), "--dataset", str(folder), "--evaluator", str(out), "-n", "240",
                 "--metrics", "fid", "--json", str(path), *extra]) == 0
    return json.loads(path.read_text())


def test_real_pictures_at_the_extractors_size_score_at_the_floor(folder_and_extractor, capsys):
    root, folder, out = folder_and_extractor
    real = real_pictures(root, folder)
    result = scored(root, real, folder, out)
    assert result["protocol"]["reference_read"] == f"reference pictures read at {SMALL} px, --fit crop, --alpha black"
    assert result["metrics"]["fid"] < 2 * result["floor"]["fid"] + 0.1
    printed = capsys.readouterr().out
    assert f"read at {SMALL} px" in printed


def real_pictures(root, folder):
    """The folder's pictures as `gankit train --image-size 16 --alpha black` reads them, as an array."""
    path = root / "real-16.npz"
    if not path.exists():
        real = open_dataset(str(folder), image_size=SMALL, alpha="black")
        np.savez(path, images=real.images.permute(0, 2, 3, 1).numpy())
    return path


def test_picture_flags_change_how_the_reference_is_read(folder_and_extractor, capsys):
    root, folder, out = folder_and_extractor
    at_floor = scored(root, real_pictures(root, folder), folder, out)
    on_white = scored(root, real_pictures(root, folder), folder, out, "--image-size", str(BIG), "--alpha", "white")
    assert on_white["protocol"]["reference_read"] == f"reference pictures read at {BIG} px, --fit crop, --alpha white"
    # the same real pictures against a reference read otherwise: far from the floor
    assert on_white["metrics"]["fid"] > 10 * at_floor["metrics"]["fid"]


def test_picture_flags_are_refused_for_a_run_and_checked(folder_and_extractor, tmp_path, capsys):
    root, folder, out = folder_and_extractor
    np.savez(tmp_path / "x.npz", images=np.zeros((4, SMALL, SMALL, 3), np.uint8))
    assert main(["eval", str(tmp_path / "x.npz"), "--dataset", str(folder), "--image-size", "0"]) == 2
    assert "--image-size" in capsys.readouterr().err
    run = tmp_path / "run"
    assert main(["train", "-q", "--out", str(run), "--width", "8", "--batch-size", "16", "--steps", "1",
                 "--sample-grid", "4"]) == 0
    assert main(["eval", str(run), "-n", "20", "--image-size", "32"]) == 2
    err = capsys.readouterr().err
    assert "--image-size" in err and "drop the flag" in err and "Traceback" not in err
    assert not (run / "eval.json").exists()
