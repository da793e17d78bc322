"""Where one training step's time goes: a recipe's step profiled with torch.profiler, its operators
grouped by what they do, beside its images per second and the share of this machine's matmul rate
that its arithmetic reaches.

    python benchmarks/step_profile.py -- --dataset /usr/share/openclipart/png --image-size 32
    python benchmarks/step_profile.py -- --preset dcgan --dataset FOLDER --image-size 64 --json p.json

Everything after `--` is `gankit train`'s flags (no preset: what the data picks, as a user gets).
The step is the one `gankit train` runs (`Run.train_step` and the per-step divergence check), on
the run's own data, after a few untimed steps. Operators are grouped by their names: convolutions
and their gradients (the arithmetic a step exists to do), BatchNorm, activations, the optimisers
(`Optimizer.step`), the EMA of G, the losses, the data (batch indexing, casts), and the rest.
Images/s is timed without the profiler; FLOPs per image are counted with torch.utils.flop_counter
and set against the measured fp32 and bf16 matmul rates of this machine (`gankit bench`'s way).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile, record_function

# (group, substrings of operator names); the first match wins, so the order matters.
GROUPS = [
    ("optimiser (Adam)", ("Optimizer.step", "_foreach_", "adam")),
    ("EMA of G", ("ema",)),
    ("conv gradients", ("ConvolutionBackward", "convolution_backward", "ConvTranspose", "conv_transpose")),
    ("convolutions", ("conv", "mkldnn", "addmm", "mm", "linear", "matmul")),
    ("BatchNorm", ("batch_norm", "BatchNorm")),
    ("activations", ("leaky_relu", "relu", "tanh", "sigmoid", "Leaky", "Relu", "Tanh", "Sigmoid")),
    ("losses", ("binary_cross_entropy", "softplus", "log_sigmoid", "Softplus", "mean", "sum")),
    ("data", ("index", "copy_", "_to_copy", "to", "div", "sub", "randn", "normal_", "random_")),
]


def group_of(name: str) -> str:
    lowered = name.lower()
    for group, needles in GROUPS:
        if any(n.lower() in lowered for n in needles):
            return group
    return "other"


def build_run(flags: list[str]):
    from gankit.api import resolve_run
    from gankit.cli import _flag_values, build_parser
    from gankit.config import make_config
    from gankit.training.loop import Run

    args = build_parser().parse_args(["train", *flags])
    name, cfg = resolve_run(preset=args.preset, config_file=args.config, fields=_flag_values(args), resume=None)
    cfg = make_config(cfg.to_dict(), {"tensorboard": "off", "report": False})
    with tempfile.TemporaryDirectory() as tmp:  # Run writes nothing until fit()
        run = Run(cfg, Path(tmp) / "profile", preset=name, quiet=True)
    return name, cfg, run


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    flags = argv[argv.index("--") + 1:] if "--" in argv else []
    ours = argv[:argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20, help="profiled steps")
    parser.add_argument("--seconds", type=float, default=15.0, help="timed without the profiler")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(ours)

    from gankit.bench import flops_per_call, machine_rates
    from gankit.training.step import GANStep

    name, cfg, run = build_run(flags)
    stats = GANStep.zero_stats()

    def step():
        d_loss, g_loss = run.train_step(stats)
        run.guard.check(d_loss, g_loss, True)

    for _ in range(5):
        step()
    images_per_step = cfg.batch_size * cfg.d_steps
    start, steps = time.perf_counter(), 0
    while time.perf_counter() - start < args.seconds:
        step()
        steps += 1
    seconds = time.perf_counter() - start
    images_per_s = steps * images_per_step / seconds
    flops = flops_per_call(step) / images_per_step

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.steps):
            with record_function("train_step"):
                step()
    events = [e for e in prof.key_averages() if e.key != "train_step"]
    total = sum(e.self_cpu_time_total for e in events)
    grouped: dict[str, float] = defaultdict(float)
    for e in events:
        grouped[group_of(e.key)] += e.self_cpu_time_total
    top = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:12]
    rates = machine_rates(torch.device("cpu"), [torch.float32, torch.bfloat16], seconds=1.0)
    result = {
        "recipe": name, "flags": " ".join(flags), "image_size": cfg.image_size, "batch_size": cfg.batch_size,
        "precision": cfg.precision, "threads": torch.get_num_threads(), "machine": platform.machine(),
        "torch": torch.__version__,
        "images_per_s": round(images_per_s, 1), "ms_per_step": round(1000 * seconds / steps, 2),
        "gflop_per_image": round(flops / 1e9, 4), "matmul_gflops": rates,
        "share_of_matmul_rate": {k: round(flops * images_per_s / 1e9 / v, 4) for k, v in rates.items()},
        "groups_share": {g: round(t / total, 4) for g, t in sorted(grouped.items(), key=lambda kv: -kv[1])},
        "top_operators": [{"name": e.key, "share": round(e.self_cpu_time_total / total, 4),
                           "calls_per_step": e.count / args.steps} for e in top],
    }
    print(f"{name} ({' '.join(flags)}): {images_per_s:.0f} images/s, {1000 * seconds / steps:.1f} ms a step of "
          f"{images_per_step}, {flops / 1e6:.1f} MFLOP an image")
    for k, v in result["share_of_matmul_rate"].items():
        print(f"  share of this machine's {k} matmul rate ({rates[k]:.0f} GFLOP/s): {v:.1%}")
    print("  where the step's time goes:")
    for g, share in result["groups_share"].items():
        print(f"    {g:<18} {share:6.1%}")
    print("  top operators (self time):")
    for op in result["top_operators"]:
        print(f"    {op['name']:<48} {op['share']:6.1%}  {op['calls_per_step']:.0f} calls a step")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
