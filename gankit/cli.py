"""The `gankit` command line: turns flags into a Config and calls the library.

Every Config field is a flag (`--lr-g 1e-4`); a UserError becomes one line on stderr and exit
code 2, with no traceback and nothing changed on disk.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from gankit import __version__
from gankit import config as config_mod
from gankit.config import DEFAULT_EVAL_METRICS, FIELDS, field_help
from gankit.errors import RunFailed, UserError
from gankit.presets import DEFAULT_PRESET, PRESETS, describe

# Flags that several subcommands take, spelled once: name -> (option strings, argparse keywords).
# A subcommand names the ones it takes (`_shared(p, "device", "quiet")`), with its own help text where
# the flag means more there.
_GENERATOR_TARGET = "RUN_DIR|CHECKPOINT|EXPORT"
SHARED_FLAGS: dict[str, tuple[tuple[str, ...], dict]] = {
    "generator": (("target",), {"metavar": _GENERATOR_TARGET, "help": "a run directory (its newest intact checkpoint), "
                                "a checkpoint file, or a folder from `gankit export`"}),
    "device": (("--device",), {"default": "auto", "help": "auto (CUDA, then MPS, else CPU), cpu, cuda or mps"}),
    "seed": (("--seed",), {"type": int, "default": 0, "help": "the same seed draws the same images (default 0)"}),
    "quiet": (("-q", "--quiet"), {"action": "store_true", "help": "no progress bar or messages"}),
    "image_size": (("--image-size",), {"type": int, "default": None, "metavar": "S", "help": field_help("image_size")}),
    "fit": (("--fit",), {"choices": config_mod.FITS, "default": "crop", "help": field_help("fit")}),
    "alpha": (("--alpha",), {"choices": config_mod.ALPHAS, "default": "white", "help": field_help("alpha")}),
    "data_dir": (("--data-dir",), {"default": None, "help": field_help("data_dir")}),
}


def _shared(parser: argparse.ArgumentParser, *names: str, **helps: str) -> None:
    """Add the shared flags `names` to a subcommand; `helps` gives a flag a help of its own there."""
    for name in names:
        options, keywords = SHARED_FLAGS[name]
        parser.add_argument(*options, **{**keywords, **({"help": helps[name]} if name in helps else {})})


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    """Every Config field as a flag, its help from the field's metadata (gankit/config.py)."""
    group = parser.add_argument_group(
        "config fields", "Each overrides the preset's value; [default] is the value where no preset sets one.")
    for name, f in FIELDS.items():
        flag = "--" + name.replace("_", "-")
        default = f.default
        extra = {"nargs": "?", "const": "true"} if str(f.type) == "bool" else {}
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        group.add_argument(flag, dest=name, default=argparse.SUPPRESS, metavar=name.split("_")[-1].upper(),
                           help=f"{field_help(name)} [default: {shown}]", **extra)


def _flag_values(args: argparse.Namespace) -> dict:
    return {k: v for k, v in vars(args).items() if k in FIELDS}


def cmd_train(args: argparse.Namespace) -> int:
    from gankit.training import distributed
    if args.dry_run:
        return _train(args, distributed.Dist())
    with distributed.process_group(args.dist_timeout) as dist:  # one process, or one of torchrun's
        return _train(args, dist)


def _train(args: argparse.Namespace, dist) -> int:
    from gankit.api import resolve_run, train_summary

    flags = _flag_values(args)
    if args.dry_run:
        from gankit.training.schedule import describe_length
        name, cfg = resolve_run(preset=args.preset, config_file=args.config, fields=flags, resume=args.resume)
        length = describe_length(cfg, cfg.global_batch_size or cfg.batch_size)  # as one process trains it
        print(json.dumps({"preset": name, "length": length, "config": cfg.to_dict()}, indent=2))
        return 0
    summary = train_summary(preset=args.preset, config_file=args.config, fields=flags, out=args.out,
                            resume=args.resume, quiet=args.quiet, dist=dist)
    if not args.quiet and dist.is_main:
        print(f"done: step {summary['step']} of {summary['total_steps']}, {summary['epochs']} epochs, "
              f"{summary['images_seen']:,} real images seen, {summary['seconds']:.0f} s of training"
              + (f" ({summary['eval_seconds']:.0f} s of evaluation besides)" if summary.get("eval_seconds") else "")
              + "\n"
              f"  samples: {summary['run_dir']}/samples/  animation: {summary['run_dir']}/progress.gif\n"
              f"  draw more: gankit sample {summary['run_dir']} -n 64 --out grid.png")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from gankit.sampling import load_generator, write_images

    if args.n < 1:
        raise UserError(f"-n must be at least 1, got {args.n}")
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.scale < 1:
        raise UserError(f"--scale must be at least 1, got {args.scale}")
    tg = load_generator(args.target, device=args.device)
    images = tg.sample(args.n, args.class_index, args.seed, by_class=args.by_class, batch_size=args.batch_size,
                       truncation=args.truncation)
    nrow = args.nrow or (args.n if args.by_class else None)  # --by-class: one row per class
    what = write_images(images, args.out, nrow=nrow, scale=args.scale)
    if not args.quiet:
        print(f"wrote {what} from {tg.checkpoint} (step {tg.step}{', EMA weights' if tg.uses_ema else ''})")
    return 0


def cmd_interpolate(args: argparse.Namespace) -> int:
    from gankit.sampling import load_generator, write_interpolation

    if args.rows < 1 or args.steps < 2:
        raise UserError("--rows must be at least 1 and --steps at least 2")
    tg = load_generator(args.target, device=args.device)
    what = write_interpolation(tg.interpolate(args.rows, args.steps, args.seed, truncation=args.truncation), args.out)
    if not args.quiet:
        print(f"wrote {what} from {tg.checkpoint} (step {tg.step})")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from gankit.api import evaluate_truncations

    psis = _truncations(args.truncation)
    sweep = len(psis) > 1
    results = evaluate_truncations(args.target, args.dataset, psis, metrics=args.metrics, n=args.n,
                                   extractor=args.extractor, evaluator=args.evaluator,
                                   inception_weights=args.inception_weights, seed=args.seed, device=args.device,
                                   floor=not args.no_floor, cache=not args.no_cache, reference=args.reference,
                                   write_eval_json=not sweep, image_size=args.image_size, fit=args.fit,
                                   alpha=args.alpha)
    if sweep:
        from gankit.metrics.evaluate import Evaluation, format_truncation_table
        print(format_truncation_table(psis, [Evaluation(dict(s), s.floor, s.protocol) for s in results]))
    else:
        print(results[0].table())
    written = [str(s.eval_json) for s in results if s.eval_json is not None]
    if args.json:
        payload = ({"truncation": [{"psi": psi, **s.to_dict()} for psi, s in zip(psis, results)]} if sweep
                   else results[0].to_dict())
        Path(args.json).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        written.append(args.json)
    if written:
        print(f"wrote {', '.join(written)}")
    return 0


def _truncations(text: str) -> list[float]:
    """--truncation 1,0.7,0.5 -> [1.0, 0.7, 0.5] (each checked by the API: 0 <= psi <= 1)."""
    values = [v.strip() for v in str(text).split(",") if v.strip()]
    try:
        return [float(v) for v in values]
    except ValueError:
        raise UserError(f"--truncation {text}: give numbers between 0 and 1, comma-separated (1,0.7,0.5)") from None


def cmd_train_evaluator(args: argparse.Namespace) -> int:
    from gankit.metrics.train_evaluator import train_evaluator

    if args.epochs is not None and args.epochs < 1:
        raise UserError(f"--epochs must be at least 1, got {args.epochs}")
    if args.steps is not None and args.steps < 1:
        raise UserError(f"--steps must be at least 1, got {args.steps}")
    if args.image_size is not None and args.image_size < 1:
        raise UserError(f"--image-size must be a positive number of pixels, got {args.image_size}")
    if args.max_epochs < 1:
        raise UserError(f"--max-epochs must be at least 1, got {args.max_epochs}")
    if args.min_per_class < 1:
        raise UserError(f"--min-per-class must be at least 1, got {args.min_per_class}")
    label_depth = args.label_depth
    if label_depth != "auto":
        try:
            label_depth = int(label_depth)
        except ValueError:
            raise UserError(f"--label-depth {label_depth}: give auto or a folder depth of 1 or more") from None
        if label_depth < 1:
            raise UserError(f"--label-depth {label_depth}: give auto or a folder depth of 1 or more "
                            "(1: the top-level folders)")
    train_evaluator(args.dataset, args.out, data_dir=args.data_dir, epochs=args.epochs, steps=args.steps,
                    self_supervised=args.self_supervised, seed=args.seed, quiet=args.quiet,
                    image_size=args.image_size, fit=args.fit, alpha=args.alpha, label_depth=label_depth,
                    min_per_class=args.min_per_class, augment=not args.no_augment,
                    holdout_groups=args.holdout_groups, max_epochs=args.max_epochs)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from gankit.sampling import export_run

    out, path, step = export_run(args.target, args.out)
    print(f"wrote {out}/model.safetensors, config.json and a model card (README.md, sample.png) from {path} "
          f"(step {step})")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from gankit.serve.explorer import load_explorer
    from gankit.serve.server import address, make_server, serve_until_interrupted

    explorer = load_explorer(args.targets, device=args.device)
    server = make_server(explorer, args.host, args.port, allow_remote=args.allow_remote, quiet=args.quiet)
    for served in explorer.served:
        if served.error:
            print(f"gankit serve: {served.name} did not load ({served.error}); the page names it", file=sys.stderr)
    print(f"serving {sum(s.generator is not None for s in explorer.served)} generator(s) at {address(server)} "
          "(Ctrl-C stops)", flush=True)
    serve_until_interrupted(server)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from gankit.run.report import write_report

    path = write_report(Path(args.run_dir))
    print(f"wrote {path}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from gankit.run.compare import compare_runs

    print(compare_runs([Path(r) for r in args.run_dirs], Path(args.html) if args.html else None))
    if args.html:
        print(f"wrote {args.html}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from gankit import bench

    names = [n.strip() for n in args.presets.split(",") if n.strip()] if args.presets else list(PRESETS)
    unknown = [n for n in names if n not in PRESETS]
    if unknown:
        raise UserError(f"--presets: unknown {', '.join(unknown)}; `gankit presets` lists them")
    if (args.seconds <= 0 or args.rounds < 1 or args.warmup < 1 or args.samples < 1
            or (args.threads is not None and args.threads < 1) or (args.batch_size is not None and args.batch_size < 1)):
        raise UserError("--seconds must be > 0 and --rounds, --warmup, --samples, --threads, --batch-size at least 1")
    import torch
    report = bench.run_benchmark(names, dataset=args.dataset or bench.default_dataset(), device=args.device, seconds=args.seconds,
                                 rounds=args.rounds, warmup=args.warmup, compile=args.compile,
                                 threads=args.threads or torch.get_num_threads(), samples=args.samples,
                                 batch_size=args.batch_size, progress=(lambda _: None) if args.quiet else print)
    print(bench.format_table(report))
    if args.json:
        bench.write_json(report, Path(args.json))
        print(f"wrote {args.json}")
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from gankit.data import prepare
    from gankit.data.listing import list_pictures

    if args.list:
        sets = prepare.prepared_sets()
        for directory, manifest, _ in sets:
            print(prepare.describe(manifest, directory))
        print(f"{len(sets)} prepared set(s) in {prepare.cache_root()}")
        return 0
    if args.clear:
        removed = prepare.clear(args.source)
        print(f"removed {len(removed)} prepared set(s) from {prepare.cache_root()}")
        return 0
    if not args.source:
        raise UserError("name the folder or ZIP to prepare (or pass --list or --clear)")
    if args.image_size is not None and args.image_size < 1:
        raise UserError(f"--image-size must be a positive number of pixels, got {args.image_size}")
    prepared = prepare.prepare(list_pictures(args.source), args.image_size, args.fit, args.alpha,
                               workers=args.workers, progress=not args.quiet,
                               say=(lambda _: None) if args.quiet else None, announce=False)
    print(("reused " if prepared.reused else "") + prepare.describe(prepared.manifest, prepared.directory))
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    width = max(map(len, PRESETS))
    for name in PRESETS:
        mark = " (default)" if name == DEFAULT_PRESET else ""
        print(f"{name:<{width}}  {describe(name)}{mark}")
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from gankit.data import describe_datasets

    rows = describe_datasets(args.data_dir)
    width = max(len(r[0]) for r in rows)
    for name, about, where in rows:
        print(f"{name:<{width}}  {about}\n{'':<{width}}  -> {where}")
    print("Also: a path to an image folder (class sub-folders or a dataset.json give labels), a .zip of "
          "pictures (StyleGAN2-ADA's dataset ZIP), or a .npy/.npz array.")
    return 0


def _add_truncation_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--truncation", type=float, default=1.0, metavar="PSI",
                   help="the truncation trick: latents pulled toward the mean by psi in [0, 1] (less variety, "
                        "more typical images); default 1, none")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gankit", description="Train, sample and inspect GANs on small images.")
    parser.add_argument("--version", action="version", version=f"gankit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a GAN into a run directory",
                       description="Train a GAN. Defaults <- --preset <- --config file <- flags.")
    p.add_argument("--preset", help=f"named settings (`gankit presets`); default: {DEFAULT_PRESET}")
    p.add_argument("--config", metavar="FILE", help="TOML or JSON file of config fields (may name a preset)")
    p.add_argument("--out", metavar="RUN_DIR", help="where to write the run (default: runs/<preset>-<time>)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue this run from its newest checkpoint")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    _shared(p, "quiet")
    p.add_argument("--dist-timeout", type=float, default=None, metavar="SECONDS",
                   help="under torchrun: how long a process waits for the others before it stops with an error "
                        "(default 600)")
    _add_config_flags(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("sample", help="draw images from a trained generator",
                       description="Draw images from a trained generator (its EMA copy where the run kept one).")
    _shared(p, "generator")
    p.add_argument("-n", type=int, default=64, help="how many images (default 64)")
    p.add_argument("--out", required=True, help="a folder (numbered PNGs), FILE.npz, or grid.png")
    _shared(p, "seed")
    p.add_argument("--nrow", type=int, default=None, help="images per row of a grid")
    p.add_argument("--class", dest="class_index", type=int, default=None, metavar="K",
                   help="conditional generators: draw only class K")
    p.add_argument("--by-class", action="store_true",
                   help="conditional generators: -n images of every class, a row per class in a grid")
    p.add_argument("--scale", type=int, default=1, help="enlarge a grid's pixels this many times")
    p.add_argument("--batch-size", type=int, default=500, help="images drawn per call of G (default 500)")
    _add_truncation_flag(p)
    _shared(p, "device", "quiet", quiet="no message")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("interpolate", help="walk the latent space between random points",
                       description="Walk the latent space between random points (spherically for Gaussian noise); "
                                   "a class-conditional generator keeps one class along each walk.")
    _shared(p, "generator")
    p.add_argument("--out", required=True, help="walk.gif (animated) or walk.png (a row per walk)")
    p.add_argument("--rows", type=int, default=8, help="how many walks (default 8)")
    p.add_argument("--steps", type=int, default=10, help="images along each walk (default 10)")
    _shared(p, "seed", seed="the same seed walks the same paths (default 0)")
    _add_truncation_flag(p)
    _shared(p, "device", "quiet", quiet="no message")
    p.set_defaults(func=cmd_interpolate)

    p = sub.add_parser("eval", help="score a run, a checkpoint or a set of images against real data",
                       description="FID, KID, precision/recall, density/coverage and class coverage, with the "
                                   "real-data floor beside each number.")
    p.add_argument("target", metavar="RUN_DIR|CHECKPOINT|EXPORT|IMAGES",
                   help="a run, a checkpoint, a folder from `gankit export`, or images: an .npz/.npy file or a folder")
    p.add_argument("--metrics", default=",".join(DEFAULT_EVAL_METRICS),
                   help="comma-separated: fid, kid, pr, coverage, classes, is (default: %(default)s)")
    p.add_argument("-n", type=int, default=10_000, help="generated images to score (default 10000)")
    p.add_argument("--dataset", help="reference data (default: the run's dataset; required for bare images)")
    p.add_argument("--extractor", default="classifier", choices=("classifier", "inception"),
                   help="gankit's own classifier (offline, shipped for mnist and fashion-mnist) or Inception-v3")
    p.add_argument("--evaluator", metavar="FILE",
                   help="a classifier or contrastive extractor made by `gankit train-evaluator`")
    p.add_argument("--inception-weights", metavar="PATH", help="pt_inception-2015-12-05-6726825d.pth")
    p.add_argument("--json", metavar="PATH", help="also write the results here")
    p.add_argument("--reference", choices=("test", "train"), default="test",
                   help="real images to score against: the test split (default) or the train split, as papers "
                        "score CIFAR-10 (the floor then comes from the test split)")
    p.add_argument("--image-size", type=int, default=None, metavar="S",
                   help="images: read the reference pictures (and an image folder) at this size (default: the "
                        "extractor's, as its file records)")
    p.add_argument("--fit", choices=("crop", "pad", "stretch"), default=None,
                   help="images: non-square reference pictures, as `gankit train --fit` (default: the extractor's)")
    p.add_argument("--alpha", choices=("white", "black", "keep"), default=None,
                   help="images: transparency, as `gankit train --alpha` (default: the extractor's)")
    p.add_argument("--no-floor", action="store_true", help="skip the real-data floor")
    p.add_argument("--no-cache", action="store_true", help="recompute reference features")
    _shared(p, "seed", seed="seed of the generated images (default 0)")
    p.add_argument("--truncation", default="1", metavar="PSI[,PSI...]",
                   help="truncation psi of the generator's latents (default 1: none); several, comma-separated "
                        "(1,0.9,0.7,0.5), score each on the same latents and print a row per psi "
                        "(eval.json is then left as it was; --json keeps them all)")
    _shared(p, "device")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("train-evaluator", help="train the network whose features `gankit eval` uses",
                       description="Train the small CNN whose features (and predictions) `gankit eval` uses for a "
                                   "dataset without a shipped one: a classifier for labelled pictures, or a "
                                   "self-supervised (contrastive) extractor for pictures without labels; then: "
                                   "gankit eval ... --evaluator FILE.")
    p.add_argument("--dataset", required=True, help="a dataset name or path (`gankit datasets`)")
    p.add_argument("--out", metavar="FILE", help="where to write it (default: the gankit cache)")
    p.add_argument("--self-supervised", action="store_true",
                   help="train the contrastive extractor, which needs no labels (chosen by itself for pictures "
                        "without labels); its FIDs compare only with FIDs from the same file")
    p.add_argument("--epochs", type=int, default=None,
                   help="classifier: passes over the training images (default: while held-out accuracy rises, "
                        "at most 40, stopping 5 passes after the best)")
    p.add_argument("--max-epochs", type=int, default=40,
                   help="classifier without --epochs: the most passes early stopping may take (default 40)")
    p.add_argument("--label-depth", default="auto", metavar="auto|N",
                   help="classifier on an image folder: labels from N folder levels (1: the top-level folders, as "
                        "before), or auto (default): as deep as every class keeps --min-per-class pictures")
    p.add_argument("--min-per-class", type=int, default=30,
                   help="with --label-depth auto: the fewest pictures a sub-folder needs to be a class (default 30)")
    p.add_argument("--no-augment", action="store_true",
                   help="classifier: train on the pictures as they are (default: moved, zoomed, mirrored and "
                        "colour-jittered, so that it learns shapes)")
    p.add_argument("--holdout-groups", choices=("picture", "name"), default="picture",
                   help="an image folder's held-out 20%%: random pictures (default), or name: whole groups of "
                        "pictures whose file names begin with the same word (a sprite's animation frames), so "
                        "no group is on both sides")
    p.add_argument("--steps", type=int, default=None,
                   help="self-supervised: training steps of 128 pictures (default 300)")
    _shared(p, "seed", "data_dir", "image_size", "fit", "alpha", "quiet",
            seed="seeds the extractor's training (default 0)",
            image_size="pictures: read at this size, as the runs to be scored were (default: as `gankit train` would)",
            quiet="no progress messages")
    p.set_defaults(func=cmd_train_evaluator)

    p = sub.add_parser("export", help="write a generator as safetensors + JSON + a model card, for sharing",
                       description="Write G (its EMA copy where kept) as DIR/model.safetensors and DIR/config.json "
                                   "(the names model hubs' PyTorch tooling expects), with a model card DIR/README.md "
                                   "(data, recipe, images seen, scores with their floor) and DIR/sample.png; sample, "
                                   "interpolate, eval and serve accept DIR (older exports' generator.safetensors "
                                   "and generator.json too).")
    p.add_argument("target", metavar="RUN_DIR|CHECKPOINT",
                   help="a run directory (its newest intact checkpoint) or a checkpoint file")
    p.add_argument("--out", required=True, metavar="DIR", help="the folder to write")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("serve", help="a local page to explore generators: seeds, directions, classes, truncation",
                       description="Serve a page (on this machine only, unless --allow-remote) that draws from "
                                   "one or more generators on the same latents: a grid for a seed, sliders along "
                                   "principal directions of the latent space, a class picker, truncation, "
                                   "interpolation between two tiles and PNG downloads.")
    p.add_argument("targets", metavar="RUN_DIR|CHECKPOINT|EXPORT", nargs="+",
                   help="one or more runs, checkpoints or folders from `gankit export`, shown side by side")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000; 0 picks a free one)")
    p.add_argument("--allow-remote", action="store_true",
                   help="allow a --host other machines can reach (anyone who reaches the port can use the page)")
    _shared(p, "device", "quiet", quiet="no line per request")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("report", help="write RUN_DIR/report.html: samples over time, curves, health, how to resume")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (training need not have finished)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("compare", help="runs side by side: config differences, steps, time, best scores")
    p.add_argument("run_dirs", metavar="RUN_DIR", nargs="+", help="the run directories to set side by side")
    p.add_argument("--html", metavar="FILE", help="also write an HTML page with the final grids")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("bench", help="training and sampling speed of each preset here, beside a plain PyTorch loop",
                       description="Times gankit's training step against a tutorial-style loop (DataLoader, "
                                   "float32, .item() each step) on the same nets and data, in turns; counts "
                                   "FLOPs per image and compares them with this machine's matmul rate.")
    p.add_argument("--presets", help="comma-separated (default: all)")
    p.add_argument("--dataset", default=None,
                   help="images to train on (default: fashion-mnist where found, else the embedded mnist-5k)")
    _shared(p, "device")
    p.add_argument("--seconds", type=float, default=4.0, help="length of one timed turn (default 4)")
    p.add_argument("--rounds", type=int, default=3, help="turns per contender (default 3)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--batch-size", type=int, default=None, help="train every preset at this batch (default: each preset's own)")
    p.add_argument("--samples", type=int, default=10_000,
                   help="images drawn to time sampling (default 10000; the table gives the time per 10k)")
    p.add_argument("--compile", action="store_true", help="also time gankit with --compile")
    p.add_argument("--json", metavar="PATH", help="also write the results here")
    _shared(p, "quiet", quiet="only the table, no line per preset")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("prepare", help="decode a folder or ZIP of pictures once into gankit's cache, ahead of training",
                       description="Decode every picture of a folder (or StyleGAN2-ADA dataset ZIP) once into a "
                                   "memory-mapped array that `gankit train --dataset SOURCE` reuses while no file "
                                   "changes. Training does this by itself on first use; this does it ahead, "
                                   "and lists or clears the cache.")
    p.add_argument("source", nargs="?", metavar="FOLDER|ZIP", help="the pictures (with --clear: only its sets)")
    _shared(p, "image_size", "fit", "alpha",
            image_size="side in pixels (default: the pictures' own when all share one square size, else 32 or 64)")
    p.add_argument("--workers", type=int, default=None, help="decoding processes (default: one per CPU core, up to 8)")
    p.add_argument("--list", action="store_true", help="list the prepared sets in the cache")
    p.add_argument("--clear", action="store_true", help="remove prepared sets (all, or those of FOLDER|ZIP)")
    _shared(p, "quiet", quiet="no progress bar")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("presets", help="list the presets")
    p.set_defaults(func=cmd_presets)

    p = sub.add_parser("datasets", help="list datasets and whether they are available here")
    _shared(p, "data_dir", data_dir="also look for dataset files here")
    p.set_defaults(func=cmd_datasets)
    for p in sub.choices.values():  # a flag the subcommand does not know is reported with its usage
        p.set_defaults(subparser=p)
    return parser


def _report(command: str, what: str, exc: Exception) -> None:
    """One line on stderr. Under torchrun, an error that rank 0 found and told the others about is
    printed by rank 0 alone; any other names the rank that met it."""
    if getattr(exc, "shown_by_rank_0", False):
        return
    label = ""
    if "RANK" in os.environ:  # launched by torchrun (imported only then: it imports torch)
        from gankit.training.distributed import rank_label
        label = rank_label()
    print(f"gankit {command}: {what}{label}: {exc}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # argparse would print the top-level usage; the subcommand's says what it takes
        args.subparser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        return args.func(args)
    except UserError as exc:
        _report(args.command, "error", exc)
        return 2
    except RunFailed as exc:
        _report(args.command, "stopped", exc)
        return 1
    except KeyboardInterrupt:  # a second Ctrl-C: stop at once; the last checkpoint is intact
        print(f"gankit {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
