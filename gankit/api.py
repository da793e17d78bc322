"""gankit from Python: `train`, `load` and `evaluate`, the same code paths as `gankit train`,
`gankit sample` / `interpolate` and `gankit eval`.

    import gankit

    run = gankit.train(preset="default", steps=300, out="runs/py")  # any config field as a keyword
    print(run.run_dir, run.summary["images_seen"])

    g = run.generator                   # or gankit.load("runs/py"): a run, a checkpoint or an export
    images = g.sample(16, seed=0)       # uint8 tensor [16, 1, 28, 28]
    sevens = g.sample(8, classes=7)     # a class-conditional G draws the class you ask for
    g.grid(10, by_class=True, scale=2).save("digits.png")  # a PIL image: a notebook shows it inline
    walk = g.interpolate(rows=4, steps=8, out="walk.gif")  # uint8 [4, 8, 1, 28, 28]

    scores = gankit.evaluate(run, n=2000)            # a dict: {"fid": ..., "kid": ..., ...}
    print(scores["fid"], "real data:", scores.floor["fid"])
    gankit.evaluate(images, dataset="mnist-5k")      # any uint8 images against a dataset

Everything here raises `gankit.UserError` for a mistake the caller can fix (an unknown preset or
field, a folder that is not a run), with the message the command line would print.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from gankit.config import DEFAULT_EVAL_METRICS
from gankit.errors import UserError
from gankit.preset_choice import resolve_for_data
from gankit.run.rundir import RunDir, default_run_dir

if TYPE_CHECKING:  # imported when used: `import gankit` stays free of torch
    import numpy as np
    import torch

    from gankit.config import Config
    from gankit.sampling import TrainedGenerator
    from gankit.training.distributed import Dist

__all__ = ["Scores", "TrainedRun", "evaluate", "evaluate_truncations", "load", "resolve_run", "train",
           "train_summary"]

DEFAULT_METRICS: tuple[str, ...] = DEFAULT_EVAL_METRICS  # config.py holds no torch: `import gankit` stays light

PathLike = Union[str, "os.PathLike[str]"]


@dataclass
class TrainedRun:
    """A run directory that `train` wrote: where it is, what the training did, and its generator.

    `summary` holds step, total_steps, epochs, images_seen and seconds of training. The run is
    path-like: `gankit.load(run)`, `gankit.evaluate(run)` and `open(run.run_dir / ...)` all work.
    """

    run_dir: Path
    summary: dict[str, Any] = field(default_factory=dict)

    def __fspath__(self) -> str:
        return str(self.run_dir)

    @property
    def preset(self) -> str | None:
        """The preset the run was made from (None for a run without one)."""
        return self._info.get("preset")

    @property
    def config(self) -> Config:
        """The run's resolved config, as config.json records it."""
        from gankit.config import make_config
        return make_config(self._info["config"])

    @cached_property
    def generator(self) -> TrainedGenerator:
        """The run's generator from its newest intact checkpoint (the EMA copy where kept)."""
        return load(self.run_dir)

    @property
    def _info(self) -> dict[str, Any]:
        return RunDir(self.run_dir).read_info()

    def __repr__(self) -> str:
        s = self.summary
        done = f", step {s['step']} of {s['total_steps']}" if "step" in s else ""
        return f"TrainedRun({str(self.run_dir)!r}{done})"


def train(preset: str | None = None, *, config: PathLike | None = None, out: PathLike | None = None,
          resume: PathLike | None = None, quiet: bool = False, **fields: Any) -> TrainedRun:
    """Train a GAN, as `gankit train` does, and return the run.

    preset: a named recipe (`gankit presets` lists them; default "default"). config: a TOML or
    JSON file of fields. fields: any config field as a keyword (`steps=500, lr_g=1e-4,
    dataset="fashion-mnist", g_widths=(256, 512)`); defaults <- preset <- file <- fields. out: the
    run directory (default runs/<preset>-<time>); it must not hold a run already. resume: continue
    that run from its newest checkpoint instead (only length and logging fields such as `steps`
    may change). quiet: no progress bar or messages.
    """
    summary = train_summary(preset=preset, config_file=config, fields=fields, out=out, resume=resume, quiet=quiet)
    return TrainedRun(Path(summary["run_dir"]), summary)


def resolve_run(*, preset: str | None, config_file: PathLike | None, fields: dict[str, Any],
                resume: PathLike | None = None) -> tuple[str | None, Config]:
    """(preset, config) of what `train` would train, without touching any run: what `gankit
    train --dry-run` prints. A new run layers defaults <- preset <- file <- fields; with no
    preset named, colour data gets the `colour` preset (gankit/preset_choice.py), and a picture folder
    is decoded into its cache to tell. A resumed run takes its config.json with `fields` on top."""
    if resume is None:
        name, cfg, _ = resolve_for_data(preset, config_file, fields, _data_channels)
        return name, cfg
    _refuse_preset_on_resume(preset, config_file)
    from gankit.training.launch import resume_config  # the very check the resume runs
    info, _, wanted = resume_config(Path(resume), fields)
    return info.get("preset"), wanted


def train_summary(*, preset: str | None, config_file: PathLike | None, fields: dict[str, Any],
                  out: PathLike | None, resume: PathLike | None, quiet: bool, dist: Dist | None = None
                  ) -> dict[str, Any]:
    """Start or resume a run and return its summary: the one path of `gankit train` (which passes
    its process group as `dist`) and `train`."""
    from gankit.training import launch
    from gankit.training.distributed import Dist

    dist = dist or Dist()
    if resume is not None:
        _refuse_preset_on_resume(preset, config_file)
        return launch.resume(Path(resume), fields, quiet=quiet, dist=dist)
    name, cfg, why = resolve_for_data(preset, config_file, fields,
                                      lambda c: dist.on_main(lambda: _data_channels(c, quiet)))
    if why and not quiet and dist.is_main:
        print(why, flush=True)
    # Every rank must write into the folder rank 0 names (the default one is named by the clock).
    run_dir = Path(out) if out else dist.on_main(lambda: default_run_dir(name))
    return launch.start(cfg, run_dir, preset=name, quiet=quiet, dist=dist)


def _data_channels(cfg: Config, quiet: bool = True) -> int:
    """The channel count of the images `cfg` trains on (a picture folder is decoded into its cache,
    which the run then reuses)."""
    from gankit.training.loop import open_data
    return open_data(cfg, quiet=quiet).image_shape[0]


def _refuse_preset_on_resume(preset: str | None, config_file: PathLike | None) -> None:
    if preset or config_file:
        raise UserError("--resume continues a run with its own config; drop --preset/--config "
                        "(only length and logging flags such as --steps may change)")


def load(target: PathLike | TrainedRun, device: str = "auto") -> TrainedGenerator:
    """The generator of a run directory (its newest intact checkpoint), a checkpoint file, or a
    folder written by `gankit export`, ready to draw from: `.sample(n, classes=None, seed=None)`
    (uint8 tensor [n, C, H, W]), `.grid(n, ...)` (a PIL image), `.interpolate(rows, steps, ...)`.
    The EMA copy of G's weights is used where the run kept one. device: "auto", "cpu", "cuda"..."""
    from gankit.sampling import load_generator
    return load_generator(Path(target), device=device)


class Scores(dict[str, Any]):
    """The scores of one evaluation: a dict of metric -> value (`scores["fid"]`), plus `floor`
    (the same metrics of real images against the same reference: the best a model can reach),
    `protocol` (extractor, how many images, which split) and `eval_json` (the run's eval.json that
    was written, or None). `to_dict()` is eval.json's layout; `table()` what `gankit eval` prints."""

    def __init__(self, metrics: dict[str, Any], floor: dict[str, Any], protocol: dict[str, Any],
                 eval_json: Path | None = None):
        super().__init__(metrics)
        self.floor, self.protocol, self.eval_json = dict(floor), dict(protocol), eval_json

    def to_dict(self) -> dict[str, Any]:
        return {"protocol": self.protocol, "metrics": dict(self), "floor": self.floor}

    def table(self) -> str:
        from gankit.metrics.evaluate import Evaluation, format_table
        return format_table(Evaluation(dict(self), self.floor, self.protocol))


Images = Union["torch.Tensor", "np.ndarray"]


def evaluate(target: PathLike | TrainedRun | TrainedGenerator | Images, dataset: str | None = None, *,
             metrics: Sequence[str] | str = DEFAULT_METRICS, n: int = 10_000, extractor: str = "classifier",
             evaluator: PathLike | None = None, inception_weights: PathLike | None = None, seed: int = 0,
             device: str = "auto", floor: bool = True, cache: bool = True, reference: str = "test",
             truncation: float = 1.0, image_size: int | None = None, fit: str | None = None,
             alpha: str | None = None) -> Scores:
    """Score generated images against real data, as `gankit eval` does: FID, KID, precision/recall,
    density/coverage and class coverage, with the real-data floor beside each (`Scores.floor`).

    target: a run directory, checkpoint or exported generator (n images are drawn with `seed`;
    a run directory also gets eval.json), a loaded generator, or images: a uint8 tensor or array
    [N, C, H, W] or [N, H, W, C] (floats in [0, 1] or [-1, 1] are accepted), or an .npz/.npy
    file or image folder. dataset: the reference data (default: the run's; required for images).
    metrics: any of fid, kid, pr, coverage, classes, is. extractor: "classifier" (gankit's own,
    offline, for mnist and fashion-mnist, or the file `evaluator` names: a classifier or a
    self-supervised extractor from `gankit train-evaluator`) or "inception"
    (Inception-v3, for numbers comparable with papers; `inception_weights` is its file).
    reference: "test" (the dataset's test split where it has one) or "train" (its train split, as
    papers score CIFAR-10; the floor is then drawn from the test split). truncation: psi of the
    truncation trick for a generator's latents (1 = none; the protocol records any other).
    image_size, fit, alpha: for images, how the reference pictures (and an image folder given as
    target) are read, as `gankit train` reads them; by default as the extractor's own pictures were
    read (its file records it), so that images of the size it scores meet real pictures of that
    size. A run is always scored as it read its data, and refuses them.
    """
    return evaluate_truncations(target, dataset, [truncation], metrics=metrics, n=n, extractor=extractor,
                                evaluator=evaluator, inception_weights=inception_weights, seed=seed, device=device,
                                floor=floor, cache=cache, reference=reference, write_eval_json=True,
                                image_size=image_size, fit=fit, alpha=alpha)[0]


def evaluate_truncations(target: PathLike | TrainedRun | TrainedGenerator, dataset: str | None,
                         truncations: Sequence[float], *, metrics: Sequence[str] | str = DEFAULT_METRICS,
                         n: int = 10_000, extractor: str = "classifier", evaluator: PathLike | None = None,
                         inception_weights: PathLike | None = None, seed: int = 0, device: str = "auto",
                         floor: bool = True, cache: bool = True, reference: str = "test",
                         write_eval_json: bool = False, image_size: int | None = None, fit: str | None = None,
                         alpha: str | None = None) -> list[Scores]:
    """`evaluate` once per truncation psi (`gankit eval RUN --truncation 1,0.7,0.5`): the same
    latents (from `seed`), each pulled toward the mean by its psi, scored against one reference,
    so the scores differ by psi alone. A sweep writes no eval.json unless `write_eval_json`."""
    from gankit.metrics.evaluate import Evaluator, parse_metrics
    from gankit.nets.latents import check_truncation

    names = parse_metrics(metrics if isinstance(metrics, str) else ",".join(metrics))
    if n < 2:
        raise UserError(f"-n must be at least 2, got {n}")
    if image_size is not None and (isinstance(image_size, bool) or int(image_size) != image_size or image_size < 1):
        raise UserError(f"--image-size must be a positive whole number of pixels, got {image_size}")
    picture_flags = {"image_size": image_size, "fit": fit, "alpha": alpha}
    psis = [check_truncation(psi) for psi in truncations]
    if not psis:
        raise UserError("--truncation: give at least one psi, e.g. --truncation 1,0.7,0.5")
    if len(psis) > 1 or psis[0] != 1.0:
        _refuse_images_for_truncation(target)
    if len(psis) > 1 and isinstance(target, (str, os.PathLike)) and not is_image_set(Path(target)):
        from gankit.sampling import load_generator
        target = load_generator(Path(target), device=device)  # once, not once per psi
    results = []
    for psi in psis:
        images, what, ref_dataset, data_opts, run_dir = _images_to_score(target, dataset, n, seed, device, psi,
                                                                         picture_flags)
        if not results:  # one reference and floor for every psi
            scorer = Evaluator(ref_dataset, extractor=extractor, metrics=names, n_floor=n,
                               evaluator=str(evaluator) if evaluator else None,
                               inception_weights=str(inception_weights) if inception_weights else None,
                               device=device if device != "auto" else "cpu", use_cache=cache, with_floor=floor,
                               reference_split=reference, **data_opts)
        result = scorer.score(images, with_floor=floor)
        result.protocol["scored"] = what
        if "read_as_extractor" in data_opts:  # a set of images: say how its reference was read
            r = scorer.reads
            size = f"{r['image_size']} px" if r["image_size"] else "their own size"
            result.protocol["reference_read"] = (f"reference pictures read at {size}, --fit {r['fit']}, "
                                                 f"--alpha {r['alpha']}")
        if psi != 1.0:  # untruncated scores keep eval.json's layout of before truncation existed
            result.protocol["truncation"] = psi
        eval_json = RunDir(run_dir).write_eval(result.to_dict()) if run_dir is not None and write_eval_json else None
        results.append(Scores(result.metrics, result.floor, result.protocol, eval_json))
    return results


def _refuse_images_for_truncation(target: Any) -> None:
    """Truncation acts on a generator's latents: finished images have none."""
    import numpy as np
    import torch

    a_path = isinstance(target, (str, os.PathLike)) and not isinstance(target, TrainedRun)
    if isinstance(target, (torch.Tensor, np.ndarray)) or (a_path and is_image_set(Path(target))):
        raise UserError("--truncation needs a generator (a run, checkpoint or export): images already drawn have "
                        "no latents to truncate")


def is_image_set(target: Path) -> bool:
    """An .npz/.npy file or a folder that is neither a run directory nor an exported generator:
    images from any tool."""
    from gankit.export import is_export

    if target.is_file():
        return target.suffix.lower() in (".npz", ".npy")
    run = RunDir(target)
    return target.is_dir() and not run.is_run() and not run.checkpoints.is_dir() and not is_export(target)


def _images_to_score(target: Any, dataset: str | None, n: int, seed: int, device: str, truncation: float = 1.0,
                     picture_flags: dict[str, Any] | None = None
                     ) -> tuple[torch.Tensor, str, str, dict[str, Any], Path | None]:
    """(uint8 images, what they are, reference dataset, its options, run dir to write eval.json).
    picture_flags: image_size, fit, alpha as given (None where not): for images only."""
    import numpy as np
    import torch

    from gankit.sampling import TrainedGenerator, load_generator

    flags = picture_flags or {}
    as_extractor = {**flags, "read_as_extractor": True}
    if isinstance(target, (torch.Tensor, np.ndarray)):
        from gankit.data.arrays import to_uint8_nchw
        array = target.detach().cpu().numpy() if isinstance(target, torch.Tensor) else target
        images = torch.from_numpy(to_uint8_nchw(np.asarray(array), "images"))
        return (images[:n], f"{min(n, len(images)):,} images given", _need_dataset(dataset, "images"), as_extractor,
                None)
    if not isinstance(target, TrainedGenerator):
        path = Path(target)
        if is_image_set(path):
            from gankit.data import open_dataset
            given = {k: v for k, v in flags.items() if v is not None}  # a folder of images: as the flags say
            images = open_dataset(str(path), **given).images[:n]
            return images, f"{len(images):,} images from {path}", _need_dataset(dataset, str(path)), as_extractor, None
        target = load_generator(path, device=device)
    given = sorted(f"--{k.replace('_', '-')}" for k, v in flags.items() if v is not None)
    if given:
        raise UserError(f"{', '.join(given)}: a run, checkpoint or export is scored against its dataset read as "
                        "the run read it; drop the flag (it is for sets of images)")
    tg = target
    cfg = tg.cfg
    data_opts = run_data_options(cfg)
    images = tg.images(tg.latent(n, torch.Generator().manual_seed(seed), truncation))
    run_dir = tg.checkpoint.parent.parent if tg.checkpoint.parent.name == "checkpoints" else None
    what = f"{tg.checkpoint} (step {tg.step}{', EMA' if tg.uses_ema else ''})"
    return images, what, dataset or cfg.dataset, data_opts, run_dir


def run_data_options(cfg: Config) -> dict[str, Any]:
    """How a run read its data (data_dir, classes, image_size, channels, fit, alpha): the reference
    images a run is scored against are read the same way."""
    return {"data_dir": cfg.data_dir, "classes": cfg.classes or None, "image_size": cfg.image_size,
            "channels": cfg.channels, "fit": cfg.fit, "alpha": cfg.alpha}


def _need_dataset(dataset: str | None, what: str) -> str:
    if not dataset:
        raise UserError(f"{what} is a set of images: name the reference data with --dataset "
                        "(e.g. --dataset fashion-mnist)")
    return dataset
