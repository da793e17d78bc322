"""Faults inside a run: a NaN mid-training, a run that keeps diverging, a full or failing disk."""

import errno
import hashlib
import io
import json
import os
import shutil
import subprocess

import pytest
import torch

import gankit.run.checkpoint as ckpt_io
from gankit.cli import main
from gankit.config import make_config
from gankit.nets import build
from gankit.nets.spec import net_spec
from gankit.presets import preset
from gankit.training.loop import Run

TINY = ["--width", "8", "--batch-size", "16", "--log-every", "1", "--sample-every", "100",
        "--sample-every-early", "100", "--checkpoint-every", "3", "--sample-grid", "4", "-q"]


def records(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def poison_generator_at(monkeypatch, steps):
    """Make G's weights NaN just before each step in `steps` (counted from 1)."""
    original = Run.train_step

    def train_step(self, stats):
        if self.progress.step + 1 in steps:
            steps.discard(self.progress.step + 1) if isinstance(steps, set) else None
            with torch.no_grad():
                next(self.state.g.parameters()).fill_(float("nan"))
        return original(self, stats)

    monkeypatch.setattr(Run, "train_step", train_step)


def test_nan_rolls_back_lowers_learning_rates_and_finishes(tmp_path, monkeypatch, capsys):
    poison_generator_at(monkeypatch, {5})
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), *TINY, "--steps", "8"]) == 0
    events = [r for r in records(out) if r.get("event") == "rollback"]
    assert len(events) == 1
    assert events[0]["step"] == 3 and events[0]["diverged_at"] == 5 and events[0]["lr_scale"] == 0.5
    assert "nan" in events[0]["reason"]
    state = ckpt_io.load(ckpt_io.latest(out))
    assert state["progress"]["step"] == 8 and state["progress"]["rollbacks"] == 1
    assert state["progress"]["lr_scale"] == 0.5
    assert all(torch.isfinite(t).all() for t in state["generator"].values() if t.is_floating_point())
    assert state["opt_g"]["param_groups"][0]["lr"] == pytest.approx(0.5 * preset("default")["lr_g"])
    # the log holds each step once: lines after the rollback point were replaced by the redone steps
    steps = [r["step"] for r in records(out) if "d_loss" in r]
    assert steps == list(range(1, 9))


def test_run_that_keeps_diverging_stops_with_a_diagnosis(tmp_path, monkeypatch, capsys):
    poison_generator_at(monkeypatch, range(5, 10_000))  # every step from 5 on
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), *TINY, "--steps", "20", "--max-rollbacks", "2"]) == 1
    err = capsys.readouterr().err
    assert "diverged at step 5" in err and "after 2 rollbacks" in err and "Traceback" not in err
    assert ckpt_io.load(ckpt_io.latest(out))["progress"]["step"] == 3  # the last good state is on disk
    assert len([r for r in records(out) if r.get("event") == "rollback"]) == 2


def test_failing_checkpoint_write_keeps_the_previous_one(tmp_path, monkeypatch, capsys):
    real_save = torch.save
    calls = {"n": 0}

    def save(obj, f, *args, **kwargs):
        if isinstance(obj, dict) and "integrity" in obj:  # a checkpoint, not a tensor of one
            calls["n"] += 1
            if calls["n"] == 2:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(ckpt_io.torch, "save", save)
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), *TINY, "--steps", "9"]) == 1
    err = capsys.readouterr().err
    assert "No space left on device" in err and str(out / "checkpoints") in err
    assert "ckpt_00000003.pt is intact" in err and "--resume" in err
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["ckpt_00000003.pt"]  # no temporary left
    monkeypatch.setattr(ckpt_io.torch, "save", real_save)
    assert main(["train", "--resume", str(out), "-q"]) == 0
    assert ckpt_io.load(ckpt_io.latest(out))["progress"]["step"] == 9


def test_a_write_error_wrapped_by_the_writer_reaches_the_caller_as_oserror(tmp_path):
    """torch.save's zip writer reports a full disk as a RuntimeError whose context is the OSError;
    atomic_write hands callers the OSError, and leaves the old file and no temporary behind."""
    from gankit.atomic import atomic_write
    target = tmp_path / "weights.pt"
    target.write_bytes(b"old")

    def torch_like_write(f):
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc] unexpected pos")

    with pytest.raises(OSError) as caught:
        atomic_write(target, torch_like_write)
    assert caught.value.errno == errno.ENOSPC
    with pytest.raises(RuntimeError):  # a RuntimeError of its own stays what it is
        atomic_write(target, lambda f: (_ for _ in ()).throw(RuntimeError("bug")))
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["weights.pt"]


def _can_mount_tmpfs(path):
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def test_full_disk_on_a_real_tmpfs(tmp_path, capsys):
    disk = tmp_path / "disk"
    disk.mkdir()
    if not _can_mount_tmpfs(disk):
        pytest.skip("needs root and `mount -t tmpfs` to make a small real disk")
    try:
        out = disk / "run"
        assert main(["train", "--out", str(out), *TINY, "--steps", "3"]) == 0
        good = ckpt_io.latest(out)
        with open(disk / "filler", "wb", buffering=0) as f:  # fill what is left of the 16 MB
            try:
                while True:
                    f.write(b"\0" * 4096)
            except OSError:
                pass
        assert main(["train", "--resume", str(out), "--steps", "9", "-q"]) == 1
        err = capsys.readouterr().err
        assert "No space left on device" in err and "Traceback" not in err
        assert ckpt_io.latest(out) == good and ckpt_io.load(good)["progress"]["step"] == 3
        assert not list((out / "checkpoints").glob("*.tmp"))
        (disk / "filler").unlink()
        assert main(["train", "--resume", str(out), "--steps", "9", "-q"]) == 0
        assert ckpt_io.load(ckpt_io.latest(out))["progress"]["step"] == 9
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


def test_checkpoint_from_an_unknown_format_names_its_version(tmp_path):
    path = tmp_path / "future.pt"
    torch.save({"format": "gankit-checkpoint/9", "gankit_version": "9.0.0", "sha256": "", "payload": torch.zeros(1)},
               path)
    with pytest.raises(Exception, match="gankit 9.0.0"):
        ckpt_io.load(path)


def test_damaged_checkpoint_fails_its_checksum(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), *TINY, "--steps", "3"]) == 0
    path = ckpt_io.latest(out)
    state = torch.load(path, weights_only=True)
    weight = next(iter(state["generator"].values()))
    weight.view(-1)[0] += 1  # one changed number: torch.load still reads the file
    torch.save(state, path)
    with pytest.raises(Exception, match="checksum mismatch"):
        ckpt_io.load(path)


def test_a_checkpoint_opens_with_plain_torch_load(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), *TINY, "--steps", "3"]) == 0
    state = torch.load(ckpt_io.latest(out), weights_only=True)
    for key in ("generator", "discriminator", "generator_ema", "opt_g", "opt_d", "config", "progress"):
        assert key in state, key
    assert state["integrity"]["format"] == ckpt_io.FORMAT and len(state["integrity"]["sha256"]) == 64
    cfg = make_config(state["config"])
    classes = state["num_classes"] if cfg.conditioning != "none" else 0
    g = build(net_spec(cfg, tuple(state["image_shape"]), classes))[0]
    g.load_state_dict(state["generator"])  # the weights fit the net the config describes
    verified = ckpt_io.load(ckpt_io.latest(out))
    assert "integrity" not in verified and torch.equal(verified["fixed_z"], state["fixed_z"])


def test_checkpoints_of_the_first_format_still_load(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), *TINY, "--steps", "3"]) == 0
    path = ckpt_io.latest(out)
    state = ckpt_io.load(path)
    buffer = io.BytesIO()  # the first format: the state as a torch.save payload beside its SHA-256
    torch.save(state, buffer)
    payload = buffer.getvalue()
    torch.save({"format": "gankit-checkpoint/1", "gankit_version": "0.1.0",
                "sha256": hashlib.sha256(payload).hexdigest(),
                "payload": torch.frombuffer(bytearray(payload), dtype=torch.uint8)}, path)
    old = ckpt_io.load(path)
    assert old["progress"] == state["progress"] and torch.equal(old["permutation"], state["permutation"])
    assert main(["train", "--resume", str(out), "--steps", "4", "-q"]) == 0
    assert ckpt_io.load(ckpt_io.latest(out))["progress"]["step"] == 4


def test_nan_in_a_batchnorm_buffer_is_caught_before_it_reaches_a_checkpoint(tmp_path, monkeypatch):
    # A running variance is invisible to the training losses (BatchNorm uses batch statistics
    # there) but would poison every sample drawn in eval mode.
    original = Run.train_step

    def train_step(self, stats):
        if self.progress.step + 1 == 5 and not getattr(self, "_poisoned", False):
            self._poisoned = True
            bn = next(m for m in self.state.g.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm))
            bn.running_var.fill_(float("nan"))
        return original(self, stats)

    monkeypatch.setattr(Run, "train_step", train_step)
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), *TINY, "--steps", "8"]) == 0
    events = [r for r in records(out) if r.get("event") == "rollback"]
    assert len(events) == 1 and "running_var" in events[0]["reason"] and events[0]["diverged_at"] == 6
    for path in (out / "checkpoints").glob("ckpt_*.pt"):
        state = ckpt_io.load(path)
        assert all(torch.isfinite(t).all() for t in state["generator"].values() if t.is_floating_point())


def test_divergence_between_checks_is_remembered_until_the_next_check(tmp_path):
    # On a GPU the losses are read only at log lines and checkpoints; a NaN in between must
    # still be reported then, even if later steps look fine.
    from gankit.config import make_config
    run = Run(make_config({"width": 8, "batch_size": 16, "steps": 10}), tmp_path / "r", quiet=True)
    one = torch.tensor(1.0)
    assert run.guard.check(torch.tensor(float("nan")), one, check_now=False) is None
    assert run.guard.check(one, one, check_now=False) is None
    assert run.guard.check(one, one, check_now=True) == "d_loss is nan"
    assert run.guard.check(one, one, check_now=True) is None  # the check resets the memory
    run.guard.check(one, torch.tensor(-5e6), check_now=False)
    assert "beyond --loss-limit" in run.guard.check(one, one, check_now=True)
