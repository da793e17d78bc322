"""Pretrain the colour priors that gankit ships (gankit/weights/colour-prior-{32,64}.safetensors).

    python benchmarks/pretrain_prior.py --minutes 30                                # the 32-px prior
    python benchmarks/pretrain_prior.py --side 64 --minutes 45 --ada-length 100000  # the 64-px prior, with ADA

Trains the `colour` preset's nets (unconditional DCGAN, 32 or 64 px) on Debian's openclipart-png, whose
pictures are dedicated to the public domain (its copyright file: the Creative Commons Public Domain
Dedication or Public Domain Certification), so that weights made from them can ship with gankit.
Other sets here are not used: their licence (the GPL) could carry over to weights made from
them, and they stay unseen by the prior, so that fine-tuning on them measures what it claims to.

The run is `gankit train --preset colour` for `--minutes` of training clock with the step limit
lifted, scored at marks along the way (5,000 samples, FID and coverage on openclipart's classifier
from benchmarks/extractor_checks.py, trained first when missing; off the clock). Then G's EMA (as G;
G's own weights with --raw-g) and D of its checkpoint of lowest FID (its last with --last) are
written in bf16 to WEIGHTS/colour-prior-SIDE.safetensors (--weights), and beside it a JSON file
with the sources, licence, command, machine and curve. A run that exists is resumed to `--minutes`,
not started again; one with ADA (`--ada-length`) has a folder of its own. `gankit train --init prior
--prior-dir WEIGHTS` fine-tunes from a prior written elsewhere than gankit/weights.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from colour_search import NO_STEP_LIMIT, train  # noqa: E402
from extractor_checks import extractor_file  # noqa: E402
from quality_curves import curve  # noqa: E402

SOURCE = {"folder": "/usr/share/openclipart/png", "package": "openclipart-png",
          "licence": "public domain: the Creative Commons Public Domain Dedication or Public Domain "
                     "Certification (Debian's /usr/share/doc/openclipart-png/copyright); each picture's "
                     ".txt file beside it names its author"}
SIDES = (32, 64)
MARKS = (1, 2, 5, 10, 20, 30, 40, 60, 90, 120)
CHECKS = Path("runs/checks")


def train_flags(side: int, seed: int, ada_length: int | None = None) -> list[str]:
    # the EMA named, as the 32-px recipe has it: the preset samples from G alone from 64 px on, but the
    # prior is G's EMA at every size (from G's own weights the 64-px prior fine-tuned worse)
    flags = ["--preset", "colour", "--dataset", SOURCE["folder"], "--image-size", str(side), "--seed", str(seed),
             "--ema-half-life", "10000", "--ema-rampup", "0.05"]
    # ADA with its own speed: the lifted image limit would leave it the paper's 500k images, more than a
    # 45-minute pretraining sees, while D is sure of every picture from about the 60th minute without it
    return flags + (["--ada", "default", "--ada-length", str(ada_length)] if ada_length else [])


def write_weights(run_dir: Path, out: Path, side: int, flags: list[str], evaluator: Path | None, command: str,
                  raw_g: bool = False, last: bool = False) -> Path:
    """The run's G EMA (G itself with `raw_g`) and D at its lowest FID (checkpoints/best.pt; the last
    checkpoint with `last` or when the run had no curve) as the prior file, with its provenance beside it. D
    overfits the 8,105 pictures within 10 minutes, after which the curve may rise again: the prior is
    the best point of it. `flags`: the gankit train flags the run was made with, for the record."""
    from gankit.bench import cpu_field
    from gankit.config import Config
    from gankit.nets import build
    from gankit.nets.prior import prior_path, unconditional, write_prior
    from gankit.nets.spec import net_spec
    from gankit.run import checkpoint
    from gankit.training.loop import open_data

    best = run_dir / "checkpoints" / "best.pt"
    use_best = evaluator is not None and best.exists() and not last
    state = checkpoint.load(best if use_best else checkpoint.latest(run_dir))
    cfg = Config(**state["config"])
    spec = unconditional(net_spec(cfg, tuple(state["image_shape"])))
    g, d = build(spec)
    from_ema = state["generator_ema"] is not None and not raw_g
    g.load_state_dict(state["generator_ema"] if from_ema else state["generator"])
    d.load_state_dict(state["discriminator"])
    points = curve(run_dir)["points"] if evaluator is not None else []
    about = {
        "what": f"gankit's colour prior: the colour preset's G ({'its EMA' if from_ema else 'its own weights'}) "
                f"and D, pretrained unconditionally at {side} px, for `gankit train --init prior`",
        "source": {**SOURCE, "pictures": len(open_data(cfg, quiet=True))},
        "command": command,
        "train_flags": " ".join([*flags, *NO_STEP_LIMIT]),
        "step": int(state["progress"]["step"]), "images_seen": int(state["progress"]["images_seen"]),
        "training_minutes": round(state["progress"]["seconds"] / 60, 2),
        "chosen": ("the checkpoint of the lowest FID along the curve" if use_best else "the last checkpoint"),
        # the chosen checkpoint's FID on the curve (that of G's EMA, as the marks score it)
        "fid": next((p.get("fid") for p in points if p.get("images_seen") == state["progress"]["images_seen"]),
                    state["progress"].get("best_fid") if use_best else None),
        "machine": {"cpu": cpu_field("model name") or platform.processor() or platform.machine(),
                    "cores": os.cpu_count(),
                    "torch": torch.__version__},
        "curve": {"extractor": evaluator.name if evaluator else None,
                  "points": [{k: p.get(k) for k in ("mark_minutes", "images_seen", "fid", "coverage", "floor_fid")}
                             for p in points]},
    }
    return write_prior(g, d, spec, prior_path(side, out), about)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=40.0, help="training clock of the pretraining")
    parser.add_argument("--side", type=int, default=32, choices=SIDES, help="the pictures' side in pixels")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-n", type=int, default=5000)
    parser.add_argument("--checks", type=Path, default=CHECKS,
                        help="where openclipart's classifier for the curve is (benchmarks/extractor_checks.py's "
                             "file; trained there first when missing)")
    parser.add_argument("--no-curve", action="store_true", help="train without scoring the marks")
    parser.add_argument("--out", type=Path, default=Path("runs/prior"))
    parser.add_argument("--weights", type=Path, default=Path("gankit/weights"),
                        help="where the prior file goes (`gankit train --init prior --prior-dir DIR` starts from "
                             "one written elsewhere)")
    parser.add_argument("--raw-g", action="store_true",
                        help="write G's own weights, not its EMA (the shipped priors hold the EMA, which fine-tuned "
                             "better: docs/measurements.md)")
    parser.add_argument("--last", action="store_true",
                        help="write the run's last checkpoint, not the one of lowest FID along its curve")
    parser.add_argument("--ada-length", type=int, default=None, metavar="IMAGES",
                        help="pretrain with ADA (its default operations), p able to go from 0 to 1 over IMAGES "
                             "images (docs/measurements.md: 'ADA in the pretraining')")
    args = parser.parse_args(argv)

    if not Path(SOURCE["folder"]).is_dir():
        print(f"pretrain_prior: {SOURCE['folder']} is missing: apt-get install -y {SOURCE['package']}", file=sys.stderr)
        return 2
    evaluator = None
    if not args.no_curve:  # openclipart's classifier scores the curve; trained here the first time
        evaluator = extractor_file("openclipart", "classifier", args.checks, args.side)[0]
    # a pretraining with ADA has a folder of its own, so that neither resumes the other
    run_dir = args.out / (f"openclipart-{args.side}-seed{args.seed}"
                          + (f"-ada{args.ada_length}" if args.ada_length else ""))
    marks = tuple(sorted({m for m in MARKS if m < args.minutes} | {args.minutes}))  # the last minute is scored too
    flags = train_flags(args.side, args.seed, args.ada_length)
    train(run_dir, flags, args.minutes, evaluator, args.eval_n, marks=marks)
    command = (f"python benchmarks/pretrain_prior.py --side {args.side} --minutes {args.minutes:g} --seed {args.seed}"
               + (f" --checks {args.checks}" if args.checks != CHECKS else "") + (" --raw-g" if args.raw_g else "")
               + (" --last" if args.last else "")
               + (f" --ada-length {args.ada_length}" if args.ada_length else ""))
    path = write_weights(run_dir, args.weights, args.side, flags, evaluator, command, args.raw_g, args.last)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) and {path.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
