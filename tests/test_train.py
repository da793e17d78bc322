"""The command line end to end on the embedded dataset: train, resume, sample, interpolate,
and the promise that an interrupted-and-resumed run equals one that ran straight through."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from gankit.cli import main
from gankit.data import open_dataset
from gankit.nets.latents import grid_labels
from gankit.run.checkpoint import latest, load

# Tiny networks keep each run to about a second on a laptop CPU.
TINY = ["--width", "8", "--batch-size", "16", "--log-every", "2", "--sample-every", "4",
        "--sample-every-early", "2", "--sample-early-until", "4", "--checkpoint-every", "3", "--sample-grid", "16"]
TINY_MLP = ["--g-widths", "16,32", "--d-widths", "32,16"]


def train(tmp_path, name, *extra):
    out = tmp_path / name
    code = main(["train", "-q", "--out", str(out), *TINY, *extra])
    assert code == 0
    return out


def final_weights(run_dir):
    state = load(latest(run_dir))
    return state["progress"]["step"], state["generator"], state["discriminator"]


def test_train_writes_a_complete_run_directory(tmp_path):
    run = train(tmp_path, "run", "--steps", "6")
    info = json.loads((run / "config.json").read_text())
    assert info["gankit_version"] and info["preset"] == "default"
    assert info["config"]["batch_size"] == 16 and info["dataset"]["name"] == "mnist-5k"
    assert info["dataset"]["images"] == 5000
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [2, 4, 6]
    for r in lines:  # each line: the 2 updates since the last one, of 16 images each
        # D's accuracies are means of 0/1 verdicts on 32 images; r_t = P(real) - P(fake) on the reals
        for key in ("d_acc_real", "d_acc_fake"):
            assert 0 <= r[key] <= 1 and r[key] * 32 == pytest.approx(round(r[key] * 32), abs=1e-4), (key, r)
        assert r["d_sign_real"] == pytest.approx(2 * r["d_acc_real"] - 1, abs=1e-5)
        assert 0 < r["d_fake"] < 1 and 0 < r["d_real"] < 1  # bce: D's outputs are probabilities
        assert r["d_loss"] > 0 and r["g_loss"] > 0 and r["images_per_s"] > 0
    assert lines[-1]["images_seen"] == 6 * 16
    # step 0 (the starting noise), the early schedule, then the end
    assert sorted(p.name for p in (run / "samples").iterdir()) == [
        f"step_{s:08d}.png" for s in (0, 2, 4, 6)]
    assert Image.open(run / "progress.gif").n_frames == 4
    assert Image.open(run / "losses.png").size[0] > 100
    # checkpoints every 3 steps and at the end, keeping the newest 3
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["ckpt_00000003.pt", "ckpt_00000006.pt"]
    state = load(run / "checkpoints" / "ckpt_00000006.pt")
    assert state["gankit_version"] == info["gankit_version"] and state["progress"]["step"] == 6


@pytest.mark.parametrize("extra", [
    [],  # seed 004's DCGAN (BatchNorm in G, uniform noise, Keras lr decay off here)
    ["--preset", "mlp-gan-scratch", "--dataset", "mnist-5k", *TINY_MLP],  # dropout + label smoothing
    # (instance noise and linear lr decay follow the run's total length, so they are left out here)
    ["--preset", "mlp-gan", "--dataset", "mnist-5k", *TINY_MLP, "--label-flip", "0.1",
     "--lr-decay", "keras-time", "--lr-decay-rate", "0.01"],  # split D update
    ["--arch", "dcgan", "--loss", "wgan-gp", "--d-steps", "2"],
    # the stabilisers: their RNG draws (augmentation, labels) and state (EMA, lazy R1's schedule)
    ["--arch", "resnet", "--conditioning", "acgan", "--spectral-norm", "--loss", "hinge", "--augment",
     "color,translation,cutout", "--r1-gamma", "1", "--r1-every", "2", "--ema-half-life", "100",
     "--ema-rampup", "0.5"],
], ids=["dcgan-small", "mlp-dropout", "mlp-split-tricks", "dcgan-wgan-gp", "resnet-stabilisers"])
def test_resumed_run_equals_straight_run(tmp_path, extra):
    straight = train(tmp_path, "straight", "--steps", "7", *extra)
    interrupted = train(tmp_path, "interrupted", "--steps", "4", *extra)
    assert main(["train", "-q", "--resume", str(interrupted), "--steps", "7"]) == 0
    step_a, g_a, d_a = final_weights(straight)
    step_b, g_b, d_b = final_weights(interrupted)
    assert step_a == step_b == 7
    for key in g_a:
        assert torch.equal(g_a[key], g_b[key]), key
    for key in d_a:
        assert torch.equal(d_a[key], d_b[key]), key
    ema_a, ema_b = load(latest(straight))["generator_ema"], load(latest(interrupted))["generator_ema"]
    assert (ema_a is None) == (ema_b is None)
    for key in ema_a or {}:
        assert torch.equal(ema_a[key], ema_b[key]), key
    # the log of the resumed run continues without gaps or repeats
    steps = [json.loads(line)["step"] for line in (interrupted / "metrics.jsonl").read_text().splitlines()
             if "event" not in json.loads(line)]
    assert steps == [2, 4, 6, 7]


def test_resume_says_where_it_is_and_stops_when_done(tmp_path, capsys):
    run = train(tmp_path, "run", "--steps", "3")
    assert main(["train", "--resume", str(run), "--steps", "3"]) == 0
    assert "already at step 3 of 3" in capsys.readouterr().out


def test_resume_refuses_another_config(tmp_path, capsys):
    run = train(tmp_path, "run", "--steps", "3")
    before = sorted(p.name for p in run.rglob("*"))
    assert main(["train", "--resume", str(run), "--lr-g", "0.1"]) == 2
    err = capsys.readouterr().err
    assert "lr_g" in err and "another config" in err and "Traceback" not in err
    assert sorted(p.name for p in run.rglob("*")) == before


def test_sample_to_npz_folder_and_grid(tmp_path, capsys):
    run = train(tmp_path, "run", "--steps", "3")
    assert main(["sample", str(run), "-n", "10", "--out", str(tmp_path / "s.npz"), "-q"]) == 0
    arr = np.load(tmp_path / "s.npz")["images"]
    assert arr.shape == (10, 28, 28, 1) and arr.dtype == np.uint8
    assert main(["sample", str(latest(run)), "-n", "5", "--out", str(tmp_path / "pngs"), "-q"]) == 0
    assert sorted(p.name for p in (tmp_path / "pngs").iterdir()) == [f"{i:06d}.png" for i in range(5)]
    assert Image.open(tmp_path / "pngs" / "000000.png").size == (28, 28)
    assert main(["sample", str(run), "-n", "9", "--out", str(tmp_path / "g.png"), "--nrow", "3"]) == 0
    assert Image.open(tmp_path / "g.png").size == (3 * 28 + 4 * 2, 3 * 28 + 4 * 2)
    assert "wrote a grid of 9 images" in capsys.readouterr().out
    # the same seed draws the same images
    assert main(["sample", str(run), "-n", "10", "--out", str(tmp_path / "t.npz"), "-q"]) == 0
    assert np.array_equal(np.load(tmp_path / "t.npz")["images"], arr)


def test_interpolate_gif_and_grid(tmp_path):
    run = train(tmp_path, "run", "--steps", "3")
    assert main(["interpolate", str(run), "--out", str(tmp_path / "w.gif"), "--rows", "4", "--steps", "5", "-q"]) == 0
    assert Image.open(tmp_path / "w.gif").n_frames == 5 + 3  # forward, then back without repeating the ends
    assert main(["interpolate", str(run), "--out", str(tmp_path / "w.png"), "--rows", "2", "--steps", "6", "-q"]) == 0
    assert Image.open(tmp_path / "w.png").size[0] > Image.open(tmp_path / "w.png").size[1]


def test_python_dash_m_runs_the_same_cli(tmp_path):
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-m", "gankit", "presets"], capture_output=True, text=True, check=True)
    assert "dcgan-small" in out.stdout and "infogan-lsgan" in out.stdout


def test_dry_run_prints_config_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "never"
    assert main(["train", "--preset", "infogan-lsgan", "--lr-d", "5e-4", "--steps", "9", "--dry-run",
                 "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["preset"] == "infogan-lsgan"
    assert printed["config"]["lr_d"] == 5e-4 and printed["config"]["steps"] == 9
    assert printed["config"]["epochs"] is None  # --steps replaced the preset's epochs
    assert not out.exists()


@pytest.mark.parametrize("argv, message", [
    (["train", "--preset", "nope"], "valid presets"),
    (["train", "--dataset", "nope"], "mnist"),
    (["train", "--loss", "nope"], "wgan-gp"),
    (["train", "--batch-size", "0"], "--batch-size"),
    (["train", "--lr-g", "-1"], "--lr-g"),
    (["train", "--batch-size", "6000"], "larger than the dataset"),
    (["train", "--arch", "dcgan", "--image-size", "30"], "--image-size"),
    (["train", "--config", "missing.toml"], "missing.toml"),
    (["sample", "no-such-run", "--out", "x.png"], "no-such-run"),
    (["train", "--resume", "no-such-run"], "no-such-run"),
    (["train", "--resume", "no-such-run", "--dry-run"], "no-such-run"),
])
def test_bad_input_exits_2_without_traceback_or_files(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_out_dir_holding_a_run_is_not_overwritten(tmp_path, capsys):
    run = train(tmp_path, "run", "--steps", "2")
    assert main(["train", "--out", str(run), "--steps", "2"]) == 2
    assert "--resume" in capsys.readouterr().err


def test_keep_only_some_classes(tmp_path):
    run = train(tmp_path, "run", "--steps", "2", "--classes", "3")
    info = json.loads((run / "config.json").read_text())
    threes = int((open_dataset("mnist-5k").labels == 3).sum())
    assert 400 < threes < 600 and info["dataset"]["images"] == threes


def test_presets_and_datasets_commands(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    for name in ("default", "mlp-gan", "mlp-gan-tf", "mlp-gan-scratch", "infogan-lsgan", "dcgan-small", "dcgan"):
        assert f"\n{name} " in "\n" + out
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert "mnist-5k" in out and "fashion-mnist" in out and "cifar10" in out


def test_train_on_an_npz_path_with_colour_images(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "toy.npz", images=rng.integers(0, 256, (40, 16, 16, 3), dtype=np.uint8))
    run = train(tmp_path, "run", "--dataset", str(tmp_path / "toy.npz"), "--arch", "mlp", *TINY_MLP,
                "--steps", "3", "--batch-size", "8")
    info = json.loads((run / "config.json").read_text())
    assert info["dataset"]["image_shape"] == [3, 16, 16]
    assert main(["sample", str(run), "-n", "4", "--out", str(tmp_path / "s.npz"), "-q"]) == 0
    assert np.load(tmp_path / "s.npz")["images"].shape == (4, 16, 16, 3)


def test_max_minutes_stops_with_a_resumable_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), *TINY, "--steps", "100000", "--max-minutes", "0.0001"]) == 0
    text = capsys.readouterr().out
    assert "Continue with: gankit train --resume" in text
    step = load(latest(out))["progress"]["step"]
    assert 1 <= step < 100000


def test_folder_with_a_bad_file_stops_or_skips_per_flag(tmp_path, capsys):
    folder = tmp_path / "pics"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(20):
        Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8)).save(folder / f"{i}.png")
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    args = ["--dataset", str(folder), "--arch", "mlp", *TINY_MLP, "--steps", "2", "--batch-size", "4"]
    assert main(["train", "-q", "--out", str(tmp_path / "a"), *TINY, *args, "--skip-bad-images", "false"]) == 2
    err = capsys.readouterr().err
    assert "broken.png" in err and "--skip-bad-images" in err
    assert not (tmp_path / "a").exists()
    run = train(tmp_path, "b", *args)  # skipping is the default
    info = json.loads((run / "config.json").read_text())
    assert info["dataset"]["images"] == 20 and "skipped 1" in info["dataset"]["source"]


def test_export_to_safetensors_and_sample_from_it(tmp_path):
    run = train(tmp_path, "run", "--steps", "3")
    assert main(["export", str(run), "--out", str(tmp_path / "shared")]) == 0
    desc = json.loads((tmp_path / "shared" / "config.json").read_text())
    assert desc["format"] == "gankit-generator/1" and desc["step"] == 3 and desc["image_shape"] == [1, 28, 28]
    for source, name in ((run, "a.npz"), (tmp_path / "shared", "b.npz"),
                         (tmp_path / "shared" / "model.safetensors", "c.npz")):
        assert main(["sample", str(source), "-n", "6", "--out", str(tmp_path / name), "-q"]) == 0
    a, b, c = (np.load(tmp_path / n)["images"] for n in ("a.npz", "b.npz", "c.npz"))
    assert np.array_equal(a, b) and np.array_equal(a, c)
    # an exported generator is scored like a run, not mistaken for a folder of images
    assert main(["eval", str(tmp_path / "shared"), "-n", "50", "--metrics", "fid", "--no-floor"]) == 0


def test_export_reader_refuses_a_foreign_description(tmp_path, capsys):
    run = train(tmp_path, "run", "--steps", "2")
    assert main(["export", str(run), "--out", str(tmp_path / "shared")]) == 0
    (tmp_path / "shared" / "config.json").write_text(json.dumps({"format": "other/7", "gankit_version": "7.0"}))
    assert main(["sample", str(tmp_path / "shared"), "-n", "2", "--out", str(tmp_path / "x.npz")]) == 2
    assert "gankit 7.0" in capsys.readouterr().err


def test_training_writes_tensorboard_events(tmp_path):
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator",
                                      reason="the tensorboard package is not installed")
    run = train(tmp_path, "run", "--steps", "4", "--tensorboard", "on")
    events = accumulator.EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "images": 0,
                                                                                  "histograms": 0})
    events.Reload()
    tags = events.Tags()
    assert {"loss/d", "loss/g", "D/real", "D/fake"} <= set(tags["scalars"])
    assert [e.step for e in events.Scalars("loss/d")] == [2, 4]
    assert "samples/fixed_grid" in tags["images"]
    assert {"D/logits_real", "D/logits_fake"} <= set(tags["histograms"])


def test_conditional_run_with_ema_samples_by_class(tmp_path, capsys):
    out = train(tmp_path, "cond", "--arch", "resnet", "--conditioning", "projection", "--spectral-norm",
                "--loss", "hinge", "--ema-half-life", "500", "--augment", "translation,cutout",
                "--r1-gamma", "0.1", "--r1-every", "2", "--steps", "4", "--tensorboard", "off")
    state = load(latest(out))
    assert state["generator_ema"] is not None and state["num_classes"] == 10
    ema, raw = state["generator_ema"], state["generator"]
    assert any(not torch.equal(ema[k], raw[k]) for k in raw if raw[k].is_floating_point())
    grid = tmp_path / "three.png"
    assert main(["sample", str(out), "-n", "4", "--class", "3", "--out", str(grid)]) == 0
    assert "EMA weights" in capsys.readouterr().out
    rows = tmp_path / "rows.png"
    assert main(["sample", str(out), "-n", "2", "--by-class", "--out", str(rows), "-q"]) == 0
    w, h = Image.open(rows).size
    assert h > w  # 10 rows of 2
    assert main(["sample", str(out), "-n", "2", "--class", "10", "--out", str(grid)]) == 2
    assert "--class 10" in capsys.readouterr().err
    # The training grid has a class per row, every row full: 16 latents and 10 classes give 10 rows
    # of one (28-px cells, padding 2, drawn at twice the size), not 16 cells in rows of one.
    with Image.open(out / "samples" / "step_00000004.png") as picture:
        assert picture.size == (2 * (1 * 30 + 2), 2 * (10 * 30 + 2))


def test_a_grid_with_a_class_per_row_has_only_full_rows():
    labels = grid_labels(64, 10)
    assert labels.tolist() == [k for k in range(10) for _ in range(6)]  # 10 rows of 6, not 64 in rows of 6
    assert grid_labels(16, 10).tolist() == list(range(10))
    assert grid_labels(5, 10).tolist() == list(range(5))  # fewer images than classes: a row each
    assert grid_labels(64, 0) is None


def test_class_flags_on_an_unconditional_generator_are_refused(tmp_path, capsys):
    out = train(tmp_path, "plain", "--steps", "2", "--tensorboard", "off", "--conditioning", "none")
    assert main(["sample", str(out), "-n", "2", "--class", "1", "--out", str(tmp_path / "x.png")]) == 2
    assert "--conditioning" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_conditioning_needs_labels(tmp_path, capsys):
    images = np.zeros((40, 28, 28), dtype=np.uint8)
    np.save(tmp_path / "unlabelled.npy", images)
    code = main(["train", "-q", "--out", str(tmp_path / "r"), *TINY, "--dataset", str(tmp_path / "unlabelled.npy"),
                 "--conditioning", "acgan", "--steps", "1"])
    assert code == 2 and "--conditioning" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
