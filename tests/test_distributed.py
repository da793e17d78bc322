"""Training one run with several processes: torchrun, DistributedDataParallel, gloo on the CPU.

The end-to-end tests launch the real thing, `python -m torch.distributed.run --standalone
--nproc_per_node=2 -m gankit train ...` (or, once, two ranks started by hand as a cluster
scheduler would), because only separate processes can show that ranks agree, that one can be
killed without the others hanging, and that a checkpoint holds what every rank needs. Every process
gets OMP_NUM_THREADS=1: two ranks then fit this machine's two cores, and runs that must agree bit
for bit use the same thread count. Single-process runs for comparison go through `main()` here.
"""

from __future__ import annotations

import io
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import gankit
from gankit.cli import main
from gankit.config import make_config
from gankit.errors import RunFailed, UserError
from gankit.run.checkpoint import latest, load
from gankit.training import distributed
from gankit.training.distributed import Dist, Replica, batch_split, describe_batch, private_seed, process_group
from gankit.training.loop import Run

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "gankit"]
# Tiny nets with no BatchNorm anywhere (D of the MLP has none; --g-batchnorm none removes G's), in
# float32: the default precision on a CPU with native bf16 would round differently per batch size.
NO_BN = ["--arch", "mlp", "--g-batchnorm", "none", "--g-widths", "16,32", "--d-widths", "32,16", "--precision", "fp32"]
LIGHT = ["--sample-grid", "4", "--tensorboard", "off", "--report", "false"]
LAUNCH_TIMEOUT = 180  # seconds for a whole launch: startup of three Python processes on two cores included


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict:
    # The processes must import this gankit, wherever the tests run from.
    source = str(Path(gankit.__file__).resolve().parent.parent)
    path = os.pathsep.join([source, *filter(None, [os.environ.get("PYTHONPATH")])])
    return dict(os.environ, PYTHONPATH=path, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
                GANKIT_CACHE=str(tmp_path_factory.mktemp("cache")))


def launch(args: list[str], log: Path, env: dict, head: list[str] = TORCHRUN, **extra) -> subprocess.Popen:
    with open(log, "ab") as f:
        return subprocess.Popen(head + args, stdout=f, stderr=subprocess.STDOUT, env=env, **extra)


def torchrun(run_dir: Path, env: dict, *args: str) -> Path:
    """Train `run_dir` with two processes, to the end."""
    log = run_dir.with_suffix(".log")
    proc = launch(["train", "-q", "--out", str(run_dir), *args], log, env)
    try:
        assert proc.wait(LAUNCH_TIMEOUT) == 0, log.read_text()[-3000:]
    finally:
        reap(proc)
    return run_dir


def train_here(run_dir: Path, *args: str) -> Path:
    """Train `run_dir` in this process (one process, no torchrun)."""
    assert main(["train", "-q", "--out", str(run_dir), *args]) == 0
    return run_dir


def reap(proc: subprocess.Popen) -> None:
    """Never leave a launcher or a rank behind, whatever the test did."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def wait_for(condition, what: str, proc: subprocess.Popen, log: Path, timeout: float = LAUNCH_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"exited ({proc.returncode}) before {what}:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"no {what} after {timeout} s:\n{log.read_text()[-3000:]}"
        time.sleep(0.05)


def logged_steps(run_dir: Path) -> list[int]:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line)["step"] for line in path.read_text().splitlines() if line.endswith("}")]


def rank_pid(launcher: int, rank: int) -> int:
    """The pid of the child of `launcher` that torchrun started as `rank` (read from /proc)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if parent == launcher and f"RANK={rank}".encode() in environ:
            return int(entry.name)
    raise AssertionError(f"no rank {rank} among the children of {launcher}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def weights(run_dir: Path) -> dict:
    state = load(latest(run_dir))
    return {**{f"G.{k}": v for k, v in state["generator"].items()},
            **{f"D.{k}": v for k, v in state["discriminator"].items()}}


def largest_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


# ---------------------------------------------------------------- pieces, in this process
def test_batch_is_per_process_unless_a_global_batch_is_given():
    assert batch_split(8, None, 2) == (8, 16)
    assert batch_split(8, 24, 3) == (8, 24)
    assert batch_split(128, 128, 1) == (128, 128)
    with pytest.raises(UserError, match="--global-batch-size 10 does not split evenly over 3"):
        batch_split(8, 10, 3)
    assert describe_batch(8, 2) == "batch 8 per process x 2 processes = global 16"
    assert describe_batch(128, 1) == "batch 128"


def test_replicas_slice_the_global_batch_drawn_from_one_shared_stream():
    def sample(m, rng):
        return torch.randn(m, 3, generator=rng)

    state = torch.Generator().manual_seed(7).get_state()
    whole = Replica(8, 0, 1, torch.Generator().set_state(state)).draw(8, sample)
    parts = [Replica(4, r, 2, torch.Generator().set_state(state)).draw(4, sample) for r in (0, 1)]
    assert torch.equal(torch.cat(parts), whole)
    assert not torch.equal(parts[0], parts[1])
    # one process without a shared generator draws from torch's default one, as before
    torch.manual_seed(3)
    expected = torch.randn(5, 3)
    torch.manual_seed(3)
    assert torch.equal(Replica(5).draw(5, sample), expected)


def test_each_rank_and_step_has_its_own_noise_stream():
    seeds = {private_seed(0, rank, step) for rank in range(4) for step in range(50)}
    assert len(seeds) == 200
    assert private_seed(0, 1, 7) == private_seed(0, 1, 7)


def test_one_process_without_torchrun_starts_nothing():
    dist = Dist.from_env(environ={})
    assert not dist.active and dist.is_main and dist.world_size == 1
    x = torch.arange(5.0)
    assert dist.rows(x) == [x.tolist()] and dist.mean(x) is x and dist.part(x) is x
    assert dist.on_main(lambda: 42) == 42 and dist.gather("a") == ["a"] and dist.first(None) is None
    assert dist.command("train --resume r") == "gankit train --resume r"


def test_a_launch_without_a_rendezvous_address_is_a_clear_error():
    with pytest.raises(UserError, match="MASTER_ADDR/MASTER_PORT"):
        Dist.from_env(environ={"RANK": "0", "WORLD_SIZE": "2"})
    with pytest.raises(UserError, match="RANK 2 is not below WORLD_SIZE 2"):
        Dist.from_env(environ={"RANK": "2", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"})



class GroupEnds(list):
    """What became of a process group that is not there: "closed" for each close(), "at exit" for
    each close left to the end of the process (atexit), which exit_process() then runs."""

    def __init__(self):
        super().__init__()
        self.at_exit: list = []

    def exit_process(self) -> None:
        while self.at_exit:
            fn, args = self.at_exit.pop()
            fn(*args)


@pytest.fixture
def closes(monkeypatch) -> GroupEnds:
    """process_group() yields rank 0 of 2 (two on this machine) without starting anything."""
    ends = GroupEnds()
    monkeypatch.setattr(Dist, "from_env", classmethod(
        lambda cls, timeout_s=None: cls(world_size=2, local_world_size=2, active=True)))
    monkeypatch.setattr(Dist, "close", lambda self: ends.append("closed"))
    monkeypatch.setattr(distributed.atexit, "register",
                        lambda fn, *args: (ends.at_exit.append((fn, args)), ends.append("at exit")))
    return ends


def test_the_group_is_closed_after_success_and_at_exit_after_an_error(closes):
    # Its gloo threads must be joined before Python shuts down, whatever ended the run (Dist.close).
    with process_group() as dist:
        assert dist.active
    assert closes == ["closed"]
    closes.clear()
    for error in (UserError("bad flag"), ValueError("a bug")):
        with pytest.raises(type(error), match=str(error)), process_group():
            raise error
    assert closes == ["at exit", "at exit"]
    closes.exit_process()
    assert closes == ["at exit", "at exit", "closed", "closed"]


def test_a_failed_collective_names_the_torchrun_resume_and_closes_the_group_at_exit(closes):
    with pytest.raises(RunFailed) as caught, process_group() as dist:
        dist.run_dir = Path("runs/x")
        raise RuntimeError("[../third_party/gloo/gloo/transport/tcp/pair.cc:553] Connection closed by peer "
                           "[127.0.0.1]:41234")
    message = str(caught.value)
    assert "rank 0 of 2 lost contact with the other processes (Connection closed by peer" in message
    assert "continue with: torchrun --nproc_per_node=2 -m gankit train --resume runs/x" in message
    assert closes == ["at exit"]  # not before: the message comes first
    closes.exit_process()
    assert closes == ["at exit", "closed"]


def test_a_close_that_fails_at_exit_stays_quiet(monkeypatch, closes):
    def broken(self):
        raise RuntimeError("close failed")
    monkeypatch.setattr(Dist, "close", broken)
    with pytest.raises(UserError, match="the real error"), process_group():
        raise UserError("the real error")
    closes.exit_process()  # raises nothing


def test_an_interrupt_leaves_the_group_as_it_is(closes):
    # A second Ctrl-C can come in the middle of a collective: closing would wait for it.
    with pytest.raises(KeyboardInterrupt), process_group():
        raise KeyboardInterrupt
    closes.exit_process()
    assert closes == []


def test_sync_batchnorm_on_the_cpu_is_refused_before_anything_is_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--out", "run", "--device", "cpu", "--sync-batchnorm", "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert "--sync-batchnorm" in err and "CUDA" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_global_batch_size_in_one_process_is_the_batch(tmp_path, capsys):
    run = train_here(tmp_path / "run", *NO_BN, *LIGHT, "--steps", "2", "--global-batch-size", "12")
    info = json.loads((run / "config.json").read_text())
    assert info["processes"] == {"world_size": 1, "batch_per_process": 12, "global_batch": 12}
    assert load(latest(run))["progress"]["images_seen"] == 2 * 12


# ---------------------------------------------------------------- torchrun end to end
CLOSE_SCRIPT = """
import atexit, glob, json, sys, torch
from gankit.training.distributed import process_group

def gloo_threads():
    return sorted(n for n in (open(t + "/comm").read().strip() for t in glob.glob("/proc/self/task/*")) if "gloo" in n)

seen = {}
# Registered before gankit's own exit handler, so it runs after it (last in, first out).
atexit.register(lambda: print(json.dumps([seen["during"], gloo_threads()]), flush=True))

def train(dist, ending):
    replica = dist.replica(4, torch.device("cpu"))
    net = replica.wrap(torch.nn.Linear(3, 2))  # DDP: imports torch._dynamo, now that the group exists
    net(torch.randn(4, 3)).sum().backward()
    assert dist.mean(torch.ones(2)).tolist() == [1.0, 1.0] and dist.on_main(lambda: 7) == 7
    cycle = {"net": net}
    cycle["self"] = cycle  # as a run's objects may: only the garbage collector frees the net
    seen["during"] = gloo_threads()
    if ending != "success":
        raise ValueError("stop")  # its traceback holds this frame, and so the net

ending = sys.argv[1]
try:
    with process_group() as dist:
        train(dist, ending)
except ValueError:
    if ending == "uncaught":
        raise
"""


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads thread names from /proc")
@pytest.mark.parametrize("ending", ["success", "error", "uncaught"])
def test_the_group_leaves_no_gloo_thread_behind(tmp_path, env, ending):
    # Threads still running when Python shuts down abort the process now and then (Dist.close): none
    # may be left by then, with DDP used, a net held by a reference cycle or by an error's traceback.
    rank = dict(env, RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
    done = subprocess.run([sys.executable, "-c", CLOSE_SCRIPT, ending], env=rank, capture_output=True, text=True,
                          timeout=LAUNCH_TIMEOUT, cwd=tmp_path)
    assert done.returncode == (1 if ending == "uncaught" else 0), done.stderr[-3000:]
    during, at_exit = json.loads(done.stdout.strip().splitlines()[-1])
    assert "pt_gloo_runloop" in during and at_exit == [], done.stdout


@pytest.mark.slow
def test_two_processes_of_batch_b_train_as_one_process_of_batch_2b(tmp_path, env):
    # Label flips and the fakes' classes are drawn for the global batch and sliced; G's step reuses
    # D's fakes (G's forward in D's phase, its backward in G's); D scores real and fake in one call.
    args = [*NO_BN, *LIGHT, "--steps", "4", "--log-every", "2", "--label-flip", "0.2", "--reuse-fakes", "true",
            "--conditioning", "projection"]
    two = torchrun(tmp_path / "two", env, "--batch-size", "8", *args)
    one = train_here(tmp_path / "one", "--batch-size", "16", *args)
    assert largest_difference(weights(two), weights(one)) < 1e-5
    # The comparison can fail: one process with batch 8 ends far from both.
    half = train_here(tmp_path / "half", "--batch-size", "8", *args)
    assert largest_difference(weights(half), weights(one)) > 1e-4
    # The log shows the global batch's statistics, not rank 0's half.
    logged = [json.loads(line) for line in (two / "metrics.jsonl").read_text().splitlines()]
    alone = [json.loads(line) for line in (one / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged] == [2, 4] and [r["images_seen"] for r in logged] == [32, 64]
    for a, b in zip(logged, alone):
        for key in ("d_loss", "g_loss", "d_real", "d_fake", "d_acc_real", "d_acc_fake"):
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-6), key
    info = json.loads((two / "config.json").read_text())
    assert info["processes"] == {"world_size": 2, "batch_per_process": 8, "global_batch": 16}
    assert info["config"]["batch_size"] == 8


@pytest.mark.slow
def test_batchnorm_run_evaluates_across_ranks_and_resumes_as_one_process(tmp_path, env, capsys):
    # dcgan-small's G has BatchNorm (statistics per rank); evaluation at step 6 splits 50 images.
    run = torchrun(tmp_path / "run", env, "--width", "8", "--batch-size", "8", "--steps", "6", "--log-every", "3",
                   "--checkpoint-every", "3", "--eval-every", "6", "--eval-n", "50", "--eval-metrics", "fid", *LIGHT)
    state = load(run / "checkpoints" / "ckpt_00000006.pt")
    assert state["processes"] == {"world_size": 2, "batch_per_process": 8, "global_batch": 16}
    assert any("running_var" in k for k in state["generator"])
    for net in ("generator", "discriminator"):
        assert all(torch.isfinite(t).all() for t in state[net].values() if t.is_floating_point())
    assert state["progress"]["images_seen"] == 6 * 16
    # Both ranks' shares were scored, and they score what one process scores on the same weights.
    assert load(run / "checkpoints" / "best.pt")["eval"]["protocol"]["generated"] == 50
    logged_fid = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()
                  if '"fid"' in line][-1]["fid"]
    alone = Run(make_config(state["config"]), tmp_path / "alone", quiet=True)
    alone.load_state_dict(state)
    out = io.StringIO()
    alone.evaluate(out)
    assert json.loads(out.getvalue())["fid"] == pytest.approx(logged_fid, rel=1e-4)
    # The run continues in one process: same per-process batch, so a global batch of 8 from here on.
    assert main(["train", "--resume", str(run), "--steps", "9", "--log-every", "3"]) == 0
    printed = capsys.readouterr().out
    assert "trained so far by 2 process(es) with a global batch of 16, now by 1 with 8" in printed
    state = load(latest(run))
    assert state["progress"]["step"] == 9 and state["progress"]["images_seen"] == 6 * 16 + 3 * 8
    assert state["processes"]["world_size"] == 1
    assert json.loads((run / "config.json").read_text())["processes"]["world_size"] == 1
    assert logged_steps(run) == [3, 6, 6, 9, 9]  # losses and evaluations (at 6 and at the end)


@pytest.mark.slow
def test_killing_a_rank_stops_the_other_with_a_message_and_the_run_resumes(tmp_path, env):
    run, log = tmp_path / "run", tmp_path / "run.log"
    proc = launch(["train", "-q", "--out", str(run), "--width", "8", "--batch-size", "8", "--steps", "100000",
                   "--checkpoint-every", "5", "--log-every", "5", "--sample-every", "100000", *LIGHT], log, env)
    try:
        wait_for(lambda: (run / "checkpoints" / "ckpt_00000010.pt").exists(), "second checkpoint", proc, log)
        os.kill(rank_pid(proc.pid, 1), signal.SIGKILL)
        code = proc.wait(60)  # bounded: a hang fails here
    finally:
        reap(proc)
    text = log.read_text()
    assert code != 0
    assert "gankit train: stopped: rank 0 of 2 lost contact with the other processes" in text, text[-3000:]
    assert f"continue with: torchrun --nproc_per_node=2 -m gankit train --resume {run}" in text
    step = load(latest(run))["progress"]["step"]
    assert step >= 10 and step % 5 == 0
    assert main(["train", "-q", "--resume", str(run), "--steps", str(step + 3)]) == 0
    assert load(latest(run))["progress"]["step"] == step + 3


@pytest.mark.slow
def test_a_rank_that_stops_answering_is_given_up_after_dist_timeout(tmp_path, env):
    # Started by hand, as a cluster scheduler does: no torchrun agent watches the ranks here.
    run = tmp_path / "run"
    shared = dict(env, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()), WORLD_SIZE="2")
    args = ["train", "-q", "--out", str(run), "--width", "8", "--batch-size", "8", "--steps", "100000",
            "--checkpoint-every", "5", "--log-every", "5", "--sample-every", "100000", "--dist-timeout", "3", *LIGHT]
    logs = [tmp_path / f"rank{r}.log" for r in (0, 1)]
    procs = [launch(args, logs[r], dict(shared, RANK=str(r), LOCAL_RANK=str(r)), head=[sys.executable, "-m", "gankit"])
             for r in (0, 1)]
    try:
        wait_for(lambda: (run / "checkpoints" / "ckpt_00000010.pt").exists(), "second checkpoint", procs[0], logs[0])
        procs[1].send_signal(signal.SIGSTOP)
        started = time.monotonic()
        code = procs[0].wait(60)
        waited = time.monotonic() - started
    finally:
        for proc in procs:
            reap(proc)  # SIGKILL ends a stopped process too
    text = logs[0].read_text()
    assert code == 1, text[-3000:]
    assert "rank 0 of 2 lost contact with the other processes" in text and "--dist-timeout 3 s" in text
    assert waited < 30


@pytest.mark.slow
def test_a_signal_to_one_rank_stops_every_rank_after_the_same_step_and_a_two_process_resume_is_exact(tmp_path, env):
    # Dropout and instance noise come from each rank's own stream, latents and label flips from the
    # shared one: the checkpoint must let both continue as if the run had never stopped.
    args = [*NO_BN, *LIGHT, "--batch-size", "8", "--steps", "150", "--log-every", "5", "--checkpoint-every", "1000",
            "--d-dropout", "0.3", "--instance-noise", "0.1", "--label-flip", "0.1"]
    straight = torchrun(tmp_path / "straight", env, *args)
    run, log = tmp_path / "run", tmp_path / "run.log"
    proc = launch(["train", "-q", "--out", str(run), *args], log, env)
    try:
        wait_for(lambda: any(s >= 20 for s in logged_steps(run)), "step 20", proc, log)
        # SIGTERM to rank 1 alone (a scheduler preempting one machine): rank 0 must stop with it.
        os.kill(rank_pid(proc.pid, 1), signal.SIGTERM)
        code = proc.wait(60)
    finally:
        reap(proc)
    text = log.read_text()
    assert code == 0, text[-3000:]
    assert text.count("stopped at step") == 1  # printed by rank 0 alone
    stopped = load(latest(run))["progress"]["step"]
    assert f"stopped at step {stopped} of 150" in text and 20 <= stopped < 150
    assert logged_steps(run)[-1] == stopped
    resumed = launch(["train", "-q", "--resume", str(run)], tmp_path / "resume.log", env)
    try:
        assert resumed.wait(LAUNCH_TIMEOUT) == 0, (tmp_path / "resume.log").read_text()[-3000:]
    finally:
        reap(resumed)
    a, b = weights(straight), weights(run)
    assert [k for k in a if not torch.equal(a[k], b[k])] == []


@pytest.mark.slow
def test_ada_moves_p_by_the_r_t_of_every_process(tmp_path, env):
    # Each rank augments its own images, so its own r_t differs; p follows their mean, which the log
    # line (one step, one D update) shows as d_sign_real, so every rank keeps the same p.
    target, length = 0.3, 64
    run = torchrun(tmp_path / "ada", env, "--batch-size", "8", *NO_BN, *LIGHT, "--steps", "6", "--log-every", "1",
                   "--ada", "default", "--ada-interval", "1", "--ada-length", str(length), "--ada-target", str(target))
    p = 0.0
    for record in (json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()):
        step_up = math.copysign(2 * 8 / length, record["d_sign_real"] - target)  # the global batch's images
        p = min(1.0, max(0.0, p + step_up))
        assert record["ada_p"] == pytest.approx(p, abs=1e-6), record
