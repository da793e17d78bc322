"""Crash safety of `gankit train`, tested the way a user meets it: a separate training process is
killed with SIGKILL at random moments (including while a checkpoint is being written), stopped
with SIGTERM or a double SIGINT, or resumed from a damaged checkpoint folder. Every time, `--resume`
must finish the run with exactly the weights of a run that was never interrupted.

Each test runs the real command line in subprocesses, because only a separate process can be
killed without taking pytest with it. All processes get OMP_NUM_THREADS=1: the reference and every
resumed run must use the same thread count for CPU float reductions to agree bit for bit, and it
lets the kill trials run side by side on a small machine.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from gankit.run.checkpoint import latest, load

STEPS = 40
# Tiny networks (see test_train.py); a checkpoint every 3 steps gives 14 checkpoint writes per run.
TINY = ["--width", "8", "--batch-size", "16", "--log-every", "2", "--checkpoint-every", "3",
        "--sample-grid", "16"]
CHECKPOINT_WRITES = len(range(3, STEPS + 1, 3)) + (STEPS % 3 != 0)
KILL_TRIALS = 20

# Runs `python -m gankit ...` with fsync slowed down, as on a slow disk: every checkpoint's
# temporary file then lives for a while before its rename, so a test watching the folder can
# reliably SIGKILL the trainer in the middle of a checkpoint write, and a signal sent soon after
# another one still finds the trainer busy. Only timing changes.
SLOW_FSYNC_GANKIT = """
import os, runpy, sys, time
_fsync = os.fsync
def slow_fsync(fd):
    time.sleep(%r)
    _fsync(fd)
os.fsync = slow_fsync
sys.argv[0] = "gankit"
runpy.run_module("gankit", run_name="__main__", alter_sys=True)
"""


def _env(cache: Path) -> dict:
    return dict(os.environ, PYTHONUNBUFFERED="1", GANKIT_CACHE=str(cache),
                OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")


def _launch(args: list[str], log: Path, env: dict, *, fsync_delay: float = 0.0) -> subprocess.Popen:
    """Start `gankit ARGS`; stdout and stderr go to `log` (a file, so a full pipe never blocks it)."""
    head = ([sys.executable, "-c", SLOW_FSYNC_GANKIT % fsync_delay] if fsync_delay
            else [sys.executable, "-m", "gankit"])
    with open(log, "ab") as f:
        return subprocess.Popen(head + args, stdout=f, stderr=subprocess.STDOUT, env=env)


def _run(args: list[str], log: Path, env: dict, timeout: float = 120) -> int:
    proc = _launch(args, log, env)
    try:
        return proc.wait(timeout)
    finally:
        _reap(proc)


def _reap(proc: subprocess.Popen) -> None:
    """Never leave a trainer behind, whatever the test did."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def _tail(log: Path, chars: int = 1500) -> str:
    return log.read_text(errors="replace")[-chars:] if log.exists() else "(no output)"


def _tmp_files(run_dir: Path) -> list[str]:
    folder = run_dir / "checkpoints"
    return sorted(p.name for p in folder.glob("*.tmp")) if folder.is_dir() else []


def _final(run_dir: Path):
    state = load(latest(run_dir))
    return state["progress"]["step"], state["generator"], state["discriminator"]


def _differences(a: dict, b: dict) -> list[str]:
    assert a.keys() == b.keys()
    return [k for k in a if not torch.equal(a[k], b[k])]


def _wait_for(condition, timeout: float, what: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"trainer exited ({proc.returncode}) before {what}:\n{_tail(log)}"
        assert time.monotonic() < deadline, f"no {what} after {timeout} s:\n{_tail(log)}"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return _env(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory, env):
    """A straight run of STEPS steps: (run dir, G state, D state, wall seconds of the process)."""
    run = tmp_path_factory.mktemp("reference") / "run"
    started = time.monotonic()
    code = _run(["train", "-q", "--out", str(run), "--steps", str(STEPS), *TINY], run.with_suffix(".log"), env)
    seconds = time.monotonic() - started
    assert code == 0, _tail(run.with_suffix(".log"))
    step, g, d = _final(run)
    assert step == STEPS
    return run, g, d, seconds


def _kill_trial(i: int, root: Path, env: dict, reference) -> dict:
    """Start the reference's training in a fresh directory, SIGKILL it, finish it, compare.

    Trials 0, 3, 6, ... kill at the moment the k-th checkpoint's temporary file appears (random k);
    the others after a random delay anywhere from right after start to past the end of the run.
    """
    _, ref_g, ref_d, ref_seconds = reference
    rng = random.Random(1000 + i)
    run, log = root / f"trial{i:02d}", root / f"trial{i:02d}.log"
    command = ["train", "-q", "--out", str(run), "--steps", str(STEPS), *TINY]
    info = {"trial": i, "log": log}
    during_write = i % 3 == 0
    proc = _launch(command, log, env, fsync_delay=0.1 if during_write else 0.0)
    try:
        if during_write:
            target = rng.randint(1, CHECKPOINT_WRITES)
            info["kill"] = f"while writing checkpoint #{target}"
            seen: set[str] = set()
            while proc.poll() is None:
                seen.update(_tmp_files(run))
                if len(seen) >= target:
                    proc.kill()
                    break
                time.sleep(0.002)
        else:
            delay = 0.0 if i == 1 else rng.uniform(0, 1.1 * ref_seconds)
            info["kill"] = f"after {delay:.2f} s"
            try:
                proc.wait(delay)
            except subprocess.TimeoutExpired:
                proc.kill()
        proc.wait()
    finally:
        _reap(proc)
    info["killed_rc"] = proc.returncode
    info["tmp_left_by_kill"] = _tmp_files(run)
    info["checkpoint_at_kill"] = latest(run).name if latest(run) else None
    with open(log, "a") as f:
        f.write(f"\n--- killed ({info['kill']}), rc {proc.returncode}; now finishing ---\n")
    # `--resume` needs the run's config.json; a kill before it was written leaves nothing to
    # resume, so the user (and this test) simply starts the same command again.
    if (run / "config.json").exists():
        info["finish"] = "resume"
        info["rc"] = _run(["train", "-q", "--resume", str(run)], log, env)
    else:
        info["finish"] = "restart"
        info["rc"] = _run(command, log, env)
    if info["rc"] == 0:
        step, g, d = _final(run)
        info["step"] = step
        info["diff"] = _differences(ref_g, g) + _differences(ref_d, d)
        info["tmp_after"] = _tmp_files(run)
    return info


# About 40 processes that each import torch: 1 to 3 minutes on two cores, depending on load.
@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_gives_the_straight_run(tmp_path, env, reference):
    """kill -9 can land anywhere: during start-up, between steps, inside a checkpoint write. After
    `gankit train --resume` the run must end at the last step with exactly the reference weights
    and no temporary files left in checkpoints/."""
    workers = max(1, min(4, os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        trials = list(pool.map(lambda i: _kill_trial(i, tmp_path, env, reference), range(KILL_TRIALS)))
    failures = []
    for t in trials:
        problem = None
        if t["rc"] != 0:
            problem = f"finishing ({t['finish']}) exited {t['rc']}"
        elif t["step"] != STEPS:
            problem = f"ended at step {t['step']}, not {STEPS}"
        elif t["diff"]:
            problem = f"weights differ from the straight run: {t['diff'][:5]}"
        elif t["tmp_after"]:
            problem = f"temporary files left after the resume: {t['tmp_after']}"
        if problem:
            failures.append(f"trial {t['trial']} (killed {t['kill']}, checkpoint then: "
                            f"{t['checkpoint_at_kill']}, tmp then: {t['tmp_left_by_kill']}): {problem}\n"
                            f"{_tail(t['log'])}")
    assert not failures, "\n\n".join(failures)
    # The trials really covered the three situations a kill can leave behind.
    assert any(t["finish"] == "restart" for t in trials), "no trial was killed before config.json existed"
    assert any(t["checkpoint_at_kill"] for t in trials), "no trial resumed from a checkpoint"
    assert any(t["tmp_left_by_kill"] for t in trials), "no trial was killed during a checkpoint write"


def test_sigterm_checkpoints_the_current_step_and_exits_cleanly(tmp_path, env):
    """The first SIGTERM finishes the step, saves a checkpoint at that step (not only at a multiple
    of --checkpoint-every), exits 0 and tells the user how to continue."""
    run, log = tmp_path / "run", tmp_path / "run.log"
    proc = _launch(["train", "--out", str(run), "--steps", "100000", *TINY], log, env)
    try:
        metrics = run / "metrics.jsonl"
        _wait_for(lambda: metrics.exists() and metrics.read_text().strip(), 60, "metrics line", proc, log)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
    finally:
        _reap(proc)
    assert code == 0, _tail(log)
    assert "--resume" in log.read_text()
    stopped = _final(run)[0]
    assert 0 < stopped < 100000
    assert latest(run).name == f"ckpt_{stopped:08d}.pt"
    assert _tmp_files(run) == []
    assert _run(["train", "-q", "--resume", str(run), "--steps", str(stopped + 3)], log, env) == 0, _tail(log)
    assert _final(run)[0] == stopped + 3


def test_second_sigint_stops_at_once_and_the_run_stays_resumable(tmp_path, env):
    """Two Ctrl-C in a row: the second one must not wait for the checkpoint the first one asked
    for, and the last intact checkpoint still resumes.

    The signals are 0.3 s apart, not back to back: Python merges signals of one kind that arrive
    before its handler runs, so two immediate SIGINTs act as one (a clean stop, exit 0). With slow
    fsync the stop checkpoint takes over a second, so the second SIGINT always finds the trainer
    still busy. Observed: the second SIGINT raises KeyboardInterrupt out of the checkpoint write,
    which nothing catches, so the process ends within about a second with a traceback and exit
    status -2 (killed by SIGINT); any exit status is accepted here."""
    run, log = tmp_path / "run", tmp_path / "run.log"
    proc = _launch(["train", "--out", str(run), "--steps", "100000", *TINY], log, env, fsync_delay=0.5)
    try:
        _wait_for(lambda: latest(run) is not None, 60, "checkpoint", proc, log)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        stopped_at = time.monotonic()
        proc.wait(15)
        took = time.monotonic() - stopped_at
    finally:
        _reap(proc)
    assert took < 10, f"took {took:.1f} s to stop after the second SIGINT"
    last = _final(run)[0]
    target = last + 2
    assert _run(["train", "-q", "--resume", str(run), "--steps", str(target)], log, env) == 0, _tail(log)
    assert _final(run)[0] == target
    assert _tmp_files(run) == []


def _truncate(path: Path) -> None:
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)


def _overwrite_middle(path: Path) -> None:
    # Lands inside the tensor data, which torch.load itself does not check: the checkpoint
    # still unpickles, so only a checksum of the file can tell it is damaged.
    with open(path, "r+b") as f:
        f.seek(path.stat().st_size // 2)
        f.write(b"\xff" * 64)


@pytest.mark.parametrize("damage", [_truncate, _overwrite_middle], ids=["truncated", "overwritten"])
def test_resume_skips_a_damaged_newest_checkpoint(tmp_path, env, reference, damage):
    """A damaged newest checkpoint (a disk that lost the end of the file, or flipped bytes) is
    skipped with a message naming it, and the run continues from the one before, ending with the
    reference's weights."""
    ref_dir, ref_g, ref_d, _ = reference
    run, log = tmp_path / "run", tmp_path / "run.log"
    shutil.copytree(ref_dir, run)
    newest, previous = sorted((run / "checkpoints").glob("ckpt_*.pt"))[-2:][::-1]
    assert newest.name == f"ckpt_{STEPS:08d}.pt"
    damage(newest)
    assert _run(["train", "--resume", str(run), "--steps", str(STEPS)], log, env) == 0, _tail(log)
    out = log.read_text()
    assert newest.name in out and previous.name in out, out
    step, g, d = _final(run)
    assert step == STEPS
    assert _differences(ref_g, g) + _differences(ref_d, d) == []
