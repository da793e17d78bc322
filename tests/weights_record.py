"""Short runs of every preset and of the loss and regulariser variants, reduced to one checksum each.

The checksums in tests/data/step_weights.json were written by this file (first before the package
was reorganised and the step was cut into phases; since then only where a change was meant to
alter what is computed, and once, unchanged in substance, when the kernels were pinned below);
tests/test_same_weights.py trains the same runs again and asserts the same weights, optimiser
states and RNG states bit for bit. Rewrite them (after checking that a change is meant to alter
what is computed: compute the record with the code before it and after it) with:

    python tests/weights_record.py --write

The runs happen in a child process with the CPU kernels pinned (PINNED_KERNELS), so that the record
holds on other CPUs, not only on the one that wrote it.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

RECORD = Path(__file__).parent / "data" / "step_weights.json"

# What every variant shares: a few steps of a small batch, everything that only watches the run off.
# fp32 so that the sums do not depend on whether this CPU multiplies bf16 natively.
_SHORT = {"steps": 3, "batch_size": 8, "log_every": 1, "sample_every": 1000, "sample_every_early": 1000,
          "checkpoint_every": 1000, "report": False, "tensorboard": "off", "precision": "fp32", "sample_grid": 4}

_GREY = "mnist-5k"
_COLOUR = "colour.npz"  # written by colour_arrays() into the run's temporary folder

# name -> (preset, fields). Seed presets train on the embedded digits (or a colour array for
# the colour ones) instead of their downloads; their nets, losses and optimisers are theirs.
VARIANTS: dict[str, tuple[str, dict]] = {
    "preset-default": ("default", {}),
    "preset-mlp-gan": ("mlp-gan", {"dataset": _GREY}),
    "preset-mlp-gan-tf": ("mlp-gan-tf", {"dataset": _GREY}),
    "preset-mlp-gan-scratch": ("mlp-gan-scratch", {"dataset": _GREY}),
    "preset-infogan-lsgan": ("infogan-lsgan", {"dataset": _GREY}),
    "preset-dcgan-small": ("dcgan-small", {"dataset": _GREY, "split": "train"}),
    "preset-dcgan": ("dcgan", {"dataset": _GREY, "split": "train"}),
    "preset-fast": ("fast", {"dataset": _GREY, "split": "train"}),
    "preset-colour": ("colour", {"dataset": _COLOUR, "images": None}),
    # (dcgan-small draws G's step new fakes; the variants on its nets say when they reuse D's)
    # losses on a D without BatchNorm (one D call for real and fake) and with it (two calls)
    "minimax": ("dcgan-small", {"dataset": _GREY, "split": "train", "loss": "minimax"}),
    "hinge-sn": ("dcgan-small", {"dataset": _GREY, "split": "train", "loss": "hinge", "spectral_norm": True}),
    "wgan-gp": ("dcgan-small", {"dataset": _GREY, "split": "train", "loss": "wgan-gp", "d_steps": 2}),
    "wgan-gp-bn": ("dcgan", {"dataset": _GREY, "split": "train", "loss": "wgan-gp", "width": 8}),
    "rpgan-joint": ("dcgan-small", {"dataset": _GREY, "split": "train", "loss": "rpgan", "reuse_fakes": True}),
    "rpgan-bn": ("dcgan", {"dataset": _GREY, "split": "train", "loss": "rpgan", "width": 8}),
    "rpgan-fresh-fakes": ("dcgan-small", {"dataset": _GREY, "split": "train", "loss": "rpgan",
                                          "reuse_fakes": False}),
    # R1 and R2, lazily every second D update, on both D paths
    "r1-joint": ("dcgan-small", {"dataset": _GREY, "split": "train", "r1_gamma": 1.0, "r1_every": 2}),
    "r1-r2-joint": ("dcgan-small", {"dataset": _GREY, "split": "train", "r1_gamma": 1.0, "r2_gamma": 0.5,
                                    "r1_every": 2, "d_steps": 2}),
    "r1-r2-bn": ("dcgan", {"dataset": _GREY, "split": "train", "r1_gamma": 1.0, "r2_gamma": 0.5, "width": 8}),
    "r3gan": ("dcgan-small", {"dataset": _COLOUR, "split": "train", "arch": "r3gan", "width": 8, "loss": "rpgan",
                              "r1_gamma": 0.1, "r2_gamma": 0.1}),
    "resnet-hinge": ("dcgan-small", {"dataset": _COLOUR, "split": "train", "arch": "resnet", "width": 8,
                                     "loss": "hinge", "spectral_norm": True}),
    # the targets and D's inputs
    "split-update": ("dcgan-small", {"dataset": _GREY, "split": "train", "d_split_update": True}),
    "labels-smoothed-flipped": ("dcgan-small", {"dataset": _GREY, "split": "train", "real_label": 0.9,
                                                "fake_label": 0.05, "label_flip": 0.3}),
    "instance-noise": ("dcgan-small", {"dataset": _GREY, "split": "train", "instance_noise": 0.2}),
    "reused-fakes": ("dcgan-small", {"dataset": _GREY, "split": "train", "reuse_fakes": True}),
    "diffaugment": ("dcgan-small", {"dataset": _COLOUR, "split": "train", "augment": "color,translation,cutout"}),
    "ada": ("dcgan-small", {"dataset": _COLOUR, "split": "train", "ada": "default", "ada_p": 0.5}),
    "ada-adaptive": ("dcgan-small", {"dataset": _COLOUR, "split": "train", "ada": "default", "ada_interval": 1,
                                     "ada_length": 64}),
    # conditioning
    "projection": ("dcgan-small", {"dataset": _GREY, "split": "train", "conditioning": "projection"}),
    "acgan": ("dcgan-small", {"dataset": _GREY, "split": "train", "conditioning": "acgan"}),
    "acgan-bn": ("dcgan", {"dataset": _GREY, "split": "train", "conditioning": "acgan", "width": 8}),
    "acgan-r1-fresh": ("dcgan-small", {"dataset": _GREY, "split": "train", "conditioning": "acgan",
                                       "r1_gamma": 1.0, "reuse_fakes": False}),
    # schedule and EMA
    "ema-lr-decay": ("dcgan-small", {"dataset": _GREY, "split": "train", "ema_half_life": 100, "ema_rampup": 0.05,
                                     "lr_decay": "linear"}),
    "bf16": ("dcgan-small", {"dataset": _GREY, "split": "train", "precision": "bf16", "r1_gamma": 1.0}),
}


def colour_arrays(folder: Path) -> Path:
    """64 random colour pictures of 32 px with 4 labels, the same bytes every time."""
    rng = np.random.default_rng(0)
    path = folder / _COLOUR
    np.savez(path, images=rng.integers(0, 256, (64, 32, 32, 3), dtype=np.uint8),
             labels=rng.integers(0, 4, 64))
    return path


def checksum(name: str, folder: Path) -> str:
    """Train variant `name` in `folder` and hash what it learnt: G, D, G's EMA, both optimisers,
    ADA's state and the RNG states of the last checkpoint (not its config or times)."""
    import gankit
    from gankit.run import checkpoint
    preset, fields = VARIANTS[name]
    fields = {**_SHORT, **fields}
    if fields.get("dataset") == _COLOUR:
        fields["dataset"] = str(colour_arrays(folder))
    fields = {k: v for k, v in fields.items() if v is not None or k == "images"}
    run = folder / name
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # sums in one fixed order, whatever the machine's core count
    try:
        gankit.train(preset, out=run, quiet=True, **fields)
    finally:
        torch.set_num_threads(threads)
    state = checkpoint.load(checkpoint.latest(run))
    kept = {k: v for k, v in state.items() if k in {"generator", "discriminator", "generator_ema", "opt_g", "opt_d",
                                                       "ada", "rng", "ema"}}
    # the counters a step computes (not the clocks, nor counters that later versions may add)
    kept["progress"] = {k: state["progress"][k] for k in ("step", "epoch", "position", "images_seen", "lr_scale")}
    return checkpoint.content_digest(kept)[:24]


# The sums must not depend on which CPU runs them: PyTorch, MKL and oneDNN each pick their kernels
# by the instruction set they find (AVX2, AVX-512, AMX), and those add in different orders, so an
# unpinned record written on one machine fails on the next. In a child process (these are read when
# the libraries load): ATen's portable kernels, MKL's conditional numerical reproducibility mode,
# and oneDNN off; the same sums then came out with MKL and oneDNN capped to SSE4 as uncapped.
PINNED_KERNELS = {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE", "OMP_NUM_THREADS": "1"}
# Pinned, the sums still differ between CPU vendors: an AMD EPYC reaches other bits than the Intel
# Xeons, which agreed with each other; the code that wrote the Intel sums reaches the AMD ones on the
# AMD CPU, so it is the arithmetic, not the code. So the record keeps one set of sums per vendor.


def cpu_vendor() -> str:
    """This CPU's vendor as the kernel names it ('GenuineIntel', 'AuthenticAMD'), else the machine."""
    from gankit.bench import cpu_field
    return cpu_field("vendor_id") or platform.machine()


def recorded() -> dict[str, str] | None:
    """The recorded sums of this CPU's vendor (None when no record was written on one)."""
    return json.loads(RECORD.read_text()).get(cpu_vendor())


def run_pinned(args: list[str], env: dict[str, str] | None = None):
    """Run `python ARGS` in a child process with the kernels pinned (PINNED_KERNELS, and `env` over
    them) and return the JSON its last line of output prints. The child must turn oneDNN off itself
    (torch.backends.mkldnn.enabled = False) before it computes."""
    out = subprocess.run([sys.executable, *args], env={**os.environ, **PINNED_KERNELS, **(env or {})},
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"pinned child {args[:2]} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def checksums(names: list[str], env: dict[str, str] | None = None) -> dict[str, str]:
    """{variant: checksum}, computed in a child process with the kernels pinned (PINNED_KERNELS);
    `env` adds variables (an older instruction set, to show that the sums do not follow it)."""
    return run_pinned([__file__, "--child", *names], env)


def main(argv: list[str]) -> int:
    names = [a for a in argv if not a.startswith("--")] or list(VARIANTS)
    if "--child" in argv:
        torch.backends.mkldnn.enabled = False  # oneDNN's kernels follow the CPU: ATen's own instead
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps({name: checksum(name, Path(tmp)) for name in names}))
        return 0
    sums = checksums(names)
    if "--write" in argv:  # this vendor's sums; the other vendors' stay as they are
        RECORD.parent.mkdir(exist_ok=True)
        record = json.loads(RECORD.read_text()) if RECORD.exists() else {}
        RECORD.write_text(json.dumps({**record, cpu_vendor(): sums}, indent=1) + "\n")
    print(json.dumps(sums, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
