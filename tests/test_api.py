"""The Python API (`gankit.train`, `gankit.load`, `gankit.evaluate`): the same results as the
command line, since both share one code path, and a cheap `import gankit`."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import gankit
from gankit.cli import main

TINY = {"steps": 3, "width": 8, "batch_size": 16, "sample_grid": 16, "log_every": 1, "checkpoint_every": 3,
        "tensorboard": "off"}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The default preset (class-conditional on the digits, with an EMA of G), tiny."""
    return gankit.train(out=tmp_path_factory.mktemp("api") / "run", quiet=True, **TINY)


def test_import_gankit_does_not_import_torch():
    code = ("import sys, gankit; assert 'torch' not in sys.modules; "
            "assert callable(gankit.train) and 'torch' not in sys.modules; "
            "print(sorted(n for n in gankit.__all__))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "'evaluate', 'load', 'train'" in done.stdout


def test_package_is_marked_typed():
    root = Path(gankit.__file__).parent
    assert (root / "py.typed").is_file()
    assert '"py.typed"' in (root.parent / "pyproject.toml").read_text()


def test_train_returns_the_run(run):
    assert isinstance(run, gankit.TrainedRun)
    assert (run.run_dir / "config.json").is_file() and Path(run) == run.run_dir  # path-like
    assert run.summary["step"] == 3 and run.summary["images_seen"] == 3 * 16
    assert run.preset == "default" and run.config.conditioning == "projection"  # auto, resolved
    assert run.config.width == 8 and "step 3 of 3" in repr(run)


def test_train_resolves_the_config_exactly_as_the_cli(tmp_path, capsys):
    fields = {"lr_g": 1e-4, "g_widths": (16, 32), "d_widths": [32, 16], "steps": 5, "dataset": "mnist-5k"}
    name, cfg = gankit.api.resolve_run(preset="mlp-gan", config_file=None, fields=fields)
    assert main(["train", "--preset", "mlp-gan", "--lr-g", "1e-4", "--g-widths", "16,32", "--d-widths", "32,16",
                 "--steps", "5", "--dataset", "mnist-5k", "--dry-run"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown.pop("length") == "5 steps (640 real images)"  # --dry-run also says how long, in its unit
    assert shown == {"preset": name, "config": cfg.to_dict()}
    toml = tmp_path / "run.toml"
    toml.write_text('preset = "dcgan"\n[optim]\nlr_d = 3e-4\n')
    name, cfg = gankit.api.resolve_run(preset=None, config_file=toml, fields={"lr_d": 1e-4})
    assert name == "dcgan" and cfg.lr_d == 1e-4 and cfg.arch == "dcgan"  # keywords win over the file


def test_train_rejects_unknown_fields_and_presets_before_writing(tmp_path):
    with pytest.raises(gankit.UserError, match="unknown config field 'lr'"):
        gankit.train(out=tmp_path / "x", lr=1e-3)
    with pytest.raises(gankit.UserError, match="unknown preset 'nope'"):
        gankit.train("nope", out=tmp_path / "x")
    with pytest.raises(gankit.UserError, match="--resume continues"):
        gankit.train("dcgan", resume=tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_train_resumes_a_run(run, tmp_path):
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(run.run_dir, copy)
    more = gankit.train(resume=copy, steps=5, quiet=True)
    assert more.run_dir == copy and more.summary["step"] == 5


def test_load_a_run_a_checkpoint_and_an_export_draw_the_same(run, tmp_path):
    from gankit.run.checkpoint import latest
    assert main(["export", str(run.run_dir), "--out", str(tmp_path / "exported")]) == 0
    gens = [run.generator, gankit.load(run.run_dir), gankit.load(latest(run.run_dir)), gankit.load(tmp_path / "exported")]
    first = gens[0].sample(12, seed=3)
    assert first.dtype == torch.uint8 and first.shape == (12, 1, 28, 28)
    for g in gens[1:]:
        assert torch.equal(g.sample(12, seed=3), first)
    g = gens[0]
    assert g.uses_ema and g.num_classes == 10 and g.image_shape == (1, 28, 28) and "10 classes" in repr(g)


def test_sample_matches_the_cli_and_takes_classes(run, tmp_path):
    g = run.generator
    assert main(["sample", str(run.run_dir), "-n", "10", "--out", str(tmp_path / "s.npz"), "-q"]) == 0
    from_cli = np.load(tmp_path / "s.npz")["images"]  # NHWC
    assert np.array_equal(from_cli, g.sample(10, seed=0).permute(0, 2, 3, 1).numpy())
    assert main(["sample", str(run.run_dir), "-n", "3", "--class", "7", "--out", str(tmp_path / "k.npz"), "-q"]) == 0
    assert np.array_equal(np.load(tmp_path / "k.npz")["images"], g.sample(3, classes=7, seed=0).permute(0, 2, 3, 1).numpy())
    assert not torch.equal(g.sample(8), g.sample(8))  # seed=None: fresh draws
    assert g.sample(3, classes=[1, 2, 3]).shape == (3, 1, 28, 28)
    assert g.sample(2, by_class=True).shape == (20, 1, 28, 28)
    with pytest.raises(gankit.UserError, match="knows classes 0..9"):
        g.sample(2, classes=10)
    with pytest.raises(gankit.UserError, match="one class per image"):
        g.sample(4, classes=[1, 2])


def test_grid_is_a_pil_image_a_notebook_shows(run):
    picture = run.generator.grid(10, by_class=True, scale=2, seed=0)
    assert isinstance(picture, Image.Image) and hasattr(picture, "_repr_png_")
    assert picture.size == (2 * (10 * 30 + 2), 2 * (10 * 30 + 2))  # a row of 10 per class, 2 px padding


def test_interpolate_returns_walks_and_writes_them(run, tmp_path):
    walk = run.generator.interpolate(rows=3, steps=4, seed=0, out=tmp_path / "walk.gif")
    assert walk.shape == (3, 4, 1, 28, 28) and walk.dtype == torch.uint8
    assert Image.open(tmp_path / "walk.gif").n_frames == 4 + 2
    assert torch.equal(walk, run.generator.interpolate(rows=3, steps=4, seed=0))


def test_evaluate_a_run_images_and_an_array(run, capsys):
    scores = gankit.evaluate(run, n=100, metrics=["fid", "kid"])
    assert isinstance(scores, dict) and set(scores) >= {"fid", "kid"} and scores["fid"] > 0
    assert scores.floor["fid"] < scores["fid"] and scores.protocol["generated"] == 100
    assert scores.eval_json == run.run_dir / "eval.json"
    assert json.loads(scores.eval_json.read_text())["metrics"]["fid"] == pytest.approx(scores["fid"])
    assert "FID" in scores.table()
    # the CLI prints the same numbers for the same run and seed
    assert main(["eval", str(run.run_dir), "-n", "100", "--metrics", "fid,kid", "--no-floor"]) == 0
    assert f"{scores['fid']:.2f}" in capsys.readouterr().out
    images = run.generator.sample(100, seed=0)
    from_tensor = gankit.evaluate(images, dataset="mnist-5k", n=100, metrics="fid", floor=False)
    from_nhwc = gankit.evaluate(images.permute(0, 2, 3, 1).numpy(), dataset="mnist-5k", n=100, metrics="fid",
                                floor=False)
    assert from_tensor["fid"] == pytest.approx(from_nhwc["fid"]) and from_tensor.eval_json is None
    with pytest.raises(gankit.UserError, match="--dataset"):
        gankit.evaluate(images)
