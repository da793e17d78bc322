"""One run trained by several processes: PyTorch's DistributedDataParallel, launched by torchrun.

`torchrun --nproc_per_node=N -m gankit train ...` starts N copies of gankit and tells each its
place through the environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT). Every
process ("rank") holds G, D and the whole dataset, trains on its own slice of each global batch,
and DDP averages the gradients, so the weights stay identical on every rank. Rank 0 alone writes
the run directory and prints; decisions that must be the same everywhere (stop, roll back) are
taken together, through one small collective per step.

Randomness comes in two streams. What makes up the global batch (latents, label flips) is drawn
for the whole global batch from a generator that every rank holds in the same state, and each rank
keeps its slice: N processes with batch B compute what one process with batch N*B computes. What
is drawn inside the nets and losses (dropout, instance noise, the gradient penalty's mixing) comes
from torch's default generator, seeded from (seed, rank, step) at every step, so ranks never repeat
each other's noise and a resumed run, with any number of processes, draws it again the same.

Without torchrun's variables nothing here starts: `Dist()` is one process, every helper returns at
once, and single-process training runs exactly as it did before this module existed.
"""

from __future__ import annotations

import atexit
import inspect
import os
import re
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import Tensor, nn

from gankit.errors import RunFailed, UserError

# PyTorch's own default for NCCL. It bounds how long a rank waits for the others: long enough for
# rank 0's extra work (writing a checkpoint, the first evaluation's reference features), short
# enough that a launch without torchrun's watchdog does not hang for the night.
DEFAULT_TIMEOUT_S = 600.0

# What gloo and NCCL put in the RuntimeError a collective raises when a peer is gone or silent.
_COLLECTIVE_FAILURE = re.compile(r"gloo|nccl|c10d|processgroup|connection (closed|reset|refused)|broken pipe"
                                 r"|timed out|socket", re.IGNORECASE)


def launched_by_torchrun(environ=os.environ) -> bool:
    """True when torchrun (or a launcher that sets the same variables) started this process."""
    return "RANK" in environ and "WORLD_SIZE" in environ


def batch_split(batch_size: int, global_batch_size: int | None, world_size: int) -> tuple[int, int]:
    """(images per process, images over all processes) for one D update.

    --batch-size is per process, so N processes train on N times as many images per update;
    --global-batch-size fixes the total instead, and each process takes an equal share."""
    if global_batch_size is None:
        return batch_size, batch_size * world_size
    if global_batch_size % world_size:
        raise UserError(f"--global-batch-size {global_batch_size} does not split evenly over {world_size} "
                        f"processes; use a multiple of {world_size}, or give --batch-size per process instead")
    return global_batch_size // world_size, global_batch_size


def describe_batch(per_process: int, world_size: int) -> str:
    """The batch as the run's header prints it."""
    if world_size == 1:
        return f"batch {per_process}"
    return f"batch {per_process} per process x {world_size} processes = global {per_process * world_size}"


def private_seed(seed: int, rank: int, step: int) -> int:
    """The seed of rank `rank`'s own random stream at `step`: well mixed, so that neighbouring
    ranks and steps get unrelated streams."""
    return int(np.random.SeedSequence([seed, rank, step]).generate_state(1, np.uint64)[0] >> 1)


@dataclass(frozen=True)
class Replica:
    """What the training step needs to know to be one of several processes: its own batch, its
    slice of the global batch, the generator every rank shares (None: torch's default, as in one
    process) and how to wrap a net so that its gradients are averaged (None: not at all)."""

    batch: int
    rank: int = 0
    world_size: int = 1
    rng: torch.Generator | None = None
    wrap: Callable[[nn.Module], nn.Module] | None = None

    def draw(self, n: int, sample: Callable[[int, torch.Generator | None], Tensor]) -> Tensor:
        """This rank's `n` rows of `sample(n * world_size, shared generator)`: every rank draws the
        global batch from the same stream and keeps its slice."""
        if self.rng is None:
            return sample(n, None)
        return sample(n * self.world_size, self.rng)[self.rank * n:(self.rank + 1) * n]


@dataclass
class Dist:
    """This process's place among the processes training one run; `Dist()` is the only process."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    active: bool = False  # a process group is up (launched by torchrun, even with one process)
    timeout_s: float = DEFAULT_TIMEOUT_S
    run_dir: Path | None = None  # set once known, so that a failure message can name it
    shared_rng: torch.Generator | None = None  # see the module docstring; made by replica()

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # ---------------------------------------------------------------- set-up
    @classmethod
    def from_env(cls, timeout_s: float | None = None, environ=os.environ) -> "Dist":
        """Join the process group torchrun describes in the environment; `Dist()` without it.

        One backend per kind of tensor: gloo for the CPU (the only one there, and what small
        messages such as the checkpoint sent to every rank use), NCCL for CUDA where it exists."""
        if not launched_by_torchrun(environ):
            return cls()
        timeout_s = DEFAULT_TIMEOUT_S if timeout_s is None else timeout_s
        if timeout_s <= 0:
            raise UserError(f"--dist-timeout must be positive, got {timeout_s:g}")
        try:
            rank, world = int(environ["RANK"]), int(environ["WORLD_SIZE"])
            local_rank = int(environ.get("LOCAL_RANK", rank))
            local_world = int(environ.get("LOCAL_WORLD_SIZE", world))
        except ValueError:
            raise UserError("RANK, WORLD_SIZE and LOCAL_RANK must be whole numbers; launch with "
                            "torchrun --nproc_per_node=N -m gankit train ...") from None
        if not 0 <= rank < world:
            raise UserError(f"RANK {rank} is not below WORLD_SIZE {world}; launch with torchrun")
        if "MASTER_ADDR" not in environ or "MASTER_PORT" not in environ:
            raise UserError("RANK and WORLD_SIZE are set but MASTER_ADDR/MASTER_PORT are not: launch with "
                            "torchrun --nproc_per_node=N -m gankit train ..., which sets all of them")
        import torch.distributed as td
        if not td.is_available():
            raise UserError("this PyTorch build has no torch.distributed; run gankit without torchrun")
        # Imported before the group exists, so that its functions' default argument `group=group.WORLD`
        # (evaluated at import: DDP's first use imports it through torch._dynamo) is None and not
        # this group, which it would otherwise keep alive past close() (see close()).
        import torch.distributed.nn  # noqa: F401
        backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() and td.is_nccl_available() else "gloo"
        td.init_process_group(backend, init_method="env://", rank=rank, world_size=world,
                              timeout=timedelta(seconds=timeout_s))
        return cls(rank=rank, world_size=world, local_rank=local_rank, local_world_size=local_world,
                   active=True, timeout_s=timeout_s)

    def device(self, wanted: torch.device) -> torch.device:
        """The device this rank trains on: CUDA device LOCAL_RANK for a CUDA run."""
        if not self.active:
            return wanted
        if wanted.type == "cuda":
            count = torch.cuda.device_count()
            if self.local_rank >= count:
                raise UserError(f"process {self.local_rank} on this machine has no GPU of its own ({count} visible); "
                                f"start at most {count} processes per machine (torchrun --nproc_per_node={count})")
            torch.cuda.set_device(self.local_rank)
            return torch.device("cuda", self.local_rank)
        if wanted.type != "cpu":
            raise UserError(f"--device {wanted.type}: several processes train on CUDA GPUs (NCCL) or on the CPU "
                            f"(gloo); use --device cpu, or run gankit without torchrun")
        return wanted

    def sync_batchnorm(self, net: nn.Module, device: torch.device) -> nn.Module:
        """`net` with BatchNorm statistics over all ranks' images (--sync-batchnorm)."""
        if device.type != "cuda":
            raise UserError("--sync-batchnorm: PyTorch's SyncBatchNorm runs on CUDA GPUs only; on the CPU each "
                            "process keeps BatchNorm statistics of its own images (drop the flag)")
        return nn.SyncBatchNorm.convert_sync_batchnorm(net)

    def replica(self, batch: int, device: torch.device) -> Replica:
        """What GANStep needs to train as this rank. Call right after the nets are built: the shared
        generator starts where torch's default one is then, as a single process's latents would."""
        if not self.active:
            return Replica(batch)
        rng = torch.Generator(device=device)
        rng.set_state(torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.get_rng_state())
        self.shared_rng = rng
        return Replica(batch, self.rank, self.world_size, rng, self._ddp)

    @staticmethod
    def _ddp(net: nn.Module) -> nn.Module:
        from torch.nn.parallel import DistributedDataParallel as DDP
        # BatchNorm statistics stay per rank (rank 0's go into checkpoints): syncing them at every
        # forward would cost a broadcast per call and mean little, as each rank normalises its own
        # images in training mode. Newer PyTorch spells this forward_sync_buffers=False.
        params = inspect.signature(DDP.__init__).parameters
        local_buffers = ({"forward_sync_buffers": False} if "forward_sync_buffers" in params
                         else {"broadcast_buffers": False})
        return DDP(net, **local_buffers)

    def reseed(self, seed: int, step: int) -> None:
        """Start this rank's own random stream for `step` (see the module docstring)."""
        if self.active:
            torch.manual_seed(private_seed(seed, self.rank, step))

    def shared_rng_state(self) -> dict[str, Tensor]:
        """The shared generator's state under the key a one-process checkpoint keeps it ("torch" or
        "cuda"), so that a checkpoint reads the same whatever the number of processes."""
        if self.shared_rng is None:
            return {}
        return {"cuda" if self.shared_rng.device.type == "cuda" else "torch": self.shared_rng.get_state()}

    def set_shared_rng_state(self, rng: dict[str, Tensor]) -> None:
        if self.shared_rng is not None:
            key = "cuda" if self.shared_rng.device.type == "cuda" else "torch"
            if key in rng:
                self.shared_rng.set_state(rng[key])

    # ---------------------------------------------------------------- collectives
    def rows(self, values: Tensor) -> list[list[float]]:
        """Every rank's `values` (a 1-d tensor), one row per rank, in rank order."""
        if not self.active:
            return [values.tolist()]
        import torch.distributed as td
        out = [torch.empty_like(values) for _ in range(self.world_size)]
        td.all_gather(out, values)
        return torch.stack(out).tolist()

    def mean(self, values: Tensor) -> Tensor:
        """The mean over ranks of `values` (gloo has no AVG reduction: sum, then divide)."""
        if not self.active:
            return values
        import torch.distributed as td
        values = values.clone()
        td.all_reduce(values)
        return values / self.world_size

    def first(self, reason: str | None) -> str | None:
        """The first rank's non-None `reason`, naming that rank, on every rank."""
        if not self.active:
            return reason
        import torch.distributed as td
        reasons: list[Any] = [None] * self.world_size
        td.all_gather_object(reasons, reason)
        for rank, found in enumerate(reasons):
            if found is not None:
                return f"{found} (rank {rank})"
        return None

    def gather(self, obj: Any) -> list[Any] | None:
        """Every rank's `obj` in rank order on rank 0; None on the others."""
        if not self.active:
            return [obj]
        import torch.distributed as td
        out: list[Any] | None = [None] * self.world_size if self.is_main else None
        td.gather_object(obj, out, dst=0)
        return out

    def part(self, x: Tensor) -> Tensor:
        """This rank's contiguous share of `x` along its first dimension (shares differ by at most one)."""
        if not self.active:
            return x
        return x.tensor_split(self.world_size)[self.rank]

    def broadcast_buffers(self, net: nn.Module) -> None:
        """Give every rank rank 0's buffers of `net` (its BatchNorm statistics, the ones checkpoints
        hold). Training never reads running statistics, so this changes what G draws in eval mode only."""
        if not self.active:
            return
        import torch.distributed as td
        for buffer in net.buffers():
            td.broadcast(buffer, src=0)

    def on_main(self, fn: Callable[[], Any]) -> Any:
        """Run `fn` on rank 0 alone (it touches the run directory) and hand its result, or the
        UserError/RunFailed it raised, to every rank. Also a barrier: no rank runs ahead of rank 0."""
        if not self.active:
            return fn()
        import torch.distributed as td
        message: list[Any] = [None]
        if self.is_main:
            try:
                message[0] = ("ok", fn())
            except (UserError, RunFailed) as exc:
                message[0] = ("error", exc)
        td.broadcast_object_list(message, src=0, device=torch.device("cpu"))
        kind, value = message[0]
        if kind == "error":
            if not self.is_main:
                value.shown_by_rank_0 = True  # the command line prints it once, on rank 0
            raise value
        return value

    def close(self) -> None:
        """Destroy the process group, so that its worker threads are joined before Python shuts down.

        Why: the gloo thread that ran a collective drops its work object (and with it the
        collective's tensors) a moment after the caller's wait() has returned. Dropping a tensor
        Python has seen takes the GIL; once the interpreter is finalizing, that thread is ended with
        pthread_exit inside a C++ destructor, and the process aborts ("terminate called without an
        active exception", SIGABRT; torchrun then stops the other ranks). A rank other than 0 leaves
        right after the last collective while rank 0 still plots, so on a busy machine it can exit
        before its own gloo thread is done. destroy_process_group() drains the queue and joins the
        threads, but only when the last reference to the group goes: DDP-wrapped nets that only a
        reference cycle still holds, and default arguments captured at import (see from_env), keep
        it, and its threads, alive into finalization. A barrier first would not help (the threads
        are this process's own) and would make a finished rank wait out rank 0's last plots."""
        if not self.active:
            return
        import gc

        import torch.distributed as td
        self.active = False
        gc.collect()  # nets wrapped in DDP that a reference cycle still holds hold the group too
        td.destroy_process_group()

    # ---------------------------------------------------------------- messages
    def warn(self, message: str) -> None:
        """A warning printed once, by rank 0."""
        if self.is_main:
            print(message, file=sys.stderr, flush=True)

    def command(self, args: str) -> str:
        """How to run `gankit ARGS` the way this run was launched."""
        if not self.active:
            return f"gankit {args}"
        nodes = max(1, self.world_size // max(1, self.local_world_size))
        head = f"torchrun --nproc_per_node={self.local_world_size}"
        if nodes > 1:
            return f"{head} --nnodes={nodes} --rdzv-endpoint=HOST:PORT -m gankit {args} (on every machine)"
        return f"{head} -m gankit {args}"

    def lost_contact(self, exc: BaseException) -> RunFailed:
        """The one line a surviving rank prints when a collective failed."""
        cause = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        cause = re.sub(r"^\[[^\]]*\]\s*", "", cause)  # gloo's "[.../pair.cc:553] " source location
        cause = cause.split(". ")[0][:200]
        where = f"continue with: {self.command(f'train --resume {self.run_dir}')}" if self.run_dir else \
            "then start again"
        return RunFailed(f"rank {self.rank} of {self.world_size} lost contact with the other processes ({cause}): "
                         f"another process failed or was killed (its own message says why), or did not answer "
                         f"within --dist-timeout {self.timeout_s:g} s. The checkpoints written so far are intact; "
                         f"{where}")


def is_collective_failure(exc: BaseException) -> bool:
    """Whether `exc` is a collective that failed because a peer died or went silent."""
    dist_error = getattr(torch.distributed, "DistError", ())
    if dist_error and isinstance(exc, dist_error):
        return True
    return isinstance(exc, RuntimeError) and bool(_COLLECTIVE_FAILURE.search(str(exc)))


@contextmanager
def process_group(timeout_s: float | None = None) -> Iterator[Dist]:
    """The process group for the length of one `gankit train`, or `Dist()` outside torchrun.

    A collective that fails because another rank died or stopped answering becomes RunFailed with
    one clear line. The group is closed on every way out but an interrupt (Dist.close says why it
    must be). After an error, at exit rather than here: the traceback still holds the run, its
    DDP-wrapped nets and through them the group, and a rank that lost the others must print why
    at once (torchrun stops the surviving ranks soon after one has failed). A failed collective
    has finished by then, so a dead peer cannot make the close hang (a silent one can hold up an
    allreduce DDP had started for --dist-timeout at most). A second Ctrl-C may come in the middle
    of a collective, which would hold the close up: the group is then left alone."""
    dist = Dist.from_env(timeout_s)
    try:
        yield dist
    except Exception as exc:
        if dist.active:
            atexit.register(_close_at_exit, dist)
            if is_collective_failure(exc):
                raise dist.lost_contact(exc) from None
        raise
    else:
        dist.close()


def _close_at_exit(dist: Dist) -> None:
    """Dist.close at interpreter exit (atexit: before finalization starts), after an error."""
    # An uncaught exception is kept for post-mortem debugging with its frames, and so the run.
    for name in ("last_type", "last_value", "last_traceback", "last_exc"):
        if hasattr(sys, name):
            setattr(sys, name, None)
    try:
        dist.close()
    except Exception:  # the error that stopped the run has been reported; this one would hide it
        pass


def rank_label(environ=os.environ) -> str:
    """" (rank R of N)" for messages of a process torchrun started, other than rank 0; else ""."""
    if launched_by_torchrun(environ) and environ.get("RANK", "0") != "0":
        return f" (rank {environ['RANK']} of {environ['WORLD_SIZE']})"
    return ""
