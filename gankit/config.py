"""The training configuration: one frozen dataclass, every default with the reason for it.

A Config is built once (defaults <- preset <- config file <- flags), validated once in
`validate()`, written to the run directory as `config.json`, and never changed afterwards.
Every field is also a command-line flag (`lr_g` -> `--lr-g`), generated in `cli.py`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from gankit.errors import UserError

LOSSES = ("bce", "minimax", "lsgan", "wgan-gp", "hinge", "rpgan")
CONDITIONINGS = ("none", "projection", "acgan", "auto")
LATENT_DISTS = ("normal", "uniform")
LR_DECAYS = ("none", "keras-time", "linear")
G_BATCHNORMS = ("none", "post", "pre")
G_UPSAMPLES = ("transposed", "resize")
INITS = ("default", "pytorch", "keras", "xavier", "dcgan", "prior")
SPLITS = ("train", "test", "train+test")
FITS = ("crop", "pad", "stretch")
ALPHAS = ("white", "black", "keep")
DATA_PLACEMENTS = ("auto", "device", "host", "mmap")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16")
EVAL_METRICS = ("fid", "kid", "pr", "coverage", "classes", "is")
# What `gankit eval` and `gankit.evaluate` score when no --metrics are given (the training's own evaluations
# take the cheaper `eval_metrics` field below).
DEFAULT_EVAL_METRICS = ("fid", "kid", "pr", "coverage", "classes")


# What a resumed run may change of each field (`gankit train --resume RUN --FIELD ...`):
FIXED = "fixed"            # what the run computes: changing it makes another run
LENGTH = "length"          # how long it trains
WATCHING = "watching"      # what it logs, draws, evaluates and keeps, and how it reacts to divergence
ARITHMETIC = "arithmetic"  # how the same sums are carried out: the device, precision, compile, memory layout
                           # (the weights then differ by rounding, not by recipe)
LOCATION = "location"      # where the data is read from or held, not what it is
RESUME_KINDS = (FIXED, LENGTH, WATCHING, ARITHMETIC, LOCATION)


def setting(default: Any, help: str, *, resume: str = FIXED) -> Any:
    """A Config field: its default, the help its flag shows, and whether a resume may change it."""
    assert resume in RESUME_KINDS, resume
    return dataclasses.field(default=default, metadata={"help": help, "resume": resume})


@dataclass(frozen=True)
class Config:
    """Everything that decides what a run computes. Flags, presets and files set these fields."""

    # --- data ---
    dataset: str = setting("mnist-5k",
        "a dataset name (`gankit datasets`) or a folder, ZIP, .npz or .npy; the default, 5,000 real MNIST digits, "
        "ships inside gankit (offline)")
    data_dir: str | None = setting(None, "where to look for dataset files first", resume=LOCATION)
    split: str = setting("train", "'train', 'test', or 'train+test' merged (seed 004 trains on all 70k Fashion-MNIST images)")
    classes: tuple[int, ...] = setting((), "keep only these labels (seed 002's quick check on one class)")
    image_size: int | None = setting(None, "resize + centre-crop to this many pixels; None keeps the data's size")
    channels: int | None = setting(None, "1 = grey, 3 = RGB; None keeps the data's channels")
    holdout: int = setting(0,
        "training images set aside (not trained on) to watch D overfit, for data without a test split")
    skip_bad_images: bool = setting(True,
        "image folders: skip unreadable files (counted, first reasons shown); false stops at the first")
    fit: str = setting("crop",
        "image folders, non-square pictures: 'crop' (centre), 'pad' (with the background), 'stretch'")
    alpha: str = setting("white",
        "transparent pictures: composite onto 'white' or 'black', or 'keep' (train RGBA, sample RGBA PNGs)")
    data_placement: str = setting("auto",
        "where the training set lives: 'device', 'host' (pinned RAM), 'mmap' (the prepared file), or 'auto' by size",
        resume=LOCATION)

    # --- networks ---
    arch: str = setting("dcgan-small",
        "network family: mlp, dcgan-small, infogan, dcgan, resnet, r3gan (gankit.nets.ARCHS)")
    latent_dim: int = setting(100, "length of G's noise vector z (seed 002: 128, seed 003: 96)")
    latent_dist: str = setting("normal", "'normal' N(0,1) or 'uniform' U(-1,1) (seed 004 draws uniform noise)")
    g_widths: tuple[int, ...] = setting((), "MLP hidden widths of G; () = the architecture's default")
    d_widths: tuple[int, ...] = setting((), "MLP hidden widths of D")
    width: int = setting(64, "conv nets: base channel count; 64 reproduces the seeds' networks")
    g_batchnorm: str = setting("post", "MLP G: 'none', 'post' (Dense-LReLU-BN, seed 000), 'pre' (seed 001)")
    bn_momentum: float = setting(0.1, "BatchNorm momentum, PyTorch's meaning: Keras' momentum=0.8 is 0.2 here")
    bn_eps: float = setting(1e-5, "BatchNorm epsilon (Keras layers default to 1e-3)")
    d_dropout: float = setting(0.0, "dropout in D after each hidden activation (seed 002 uses 0.3)")
    init: str = setting("default", "weight init; 'default' = the architecture's own; 'prior' = the colour "
                        "prior gankit ships (dcgan nets pretrained on public-domain clip art, 32 or 64 px), to fine-tune")
    prior_dir: str | None = setting(None, "the folder --init prior takes colour-prior-SIDE.safetensors from; none = "
                                          "the priors gankit ships (benchmarks/pretrain_prior.py --weights DIR writes one)")
    freeze_d: int = setting(0, "D's first N convolutions (and the BatchNorms after them) keep the weights they start "
                               "with (FreezeD, Mo et al. 2020): for fine-tuning with --init prior")
    freeze_g: int = setting(0, "G's first N convolutions from the latent (and the BatchNorms after them) keep the "
                               "weights they start with, which lay out the picture: for fine-tuning with --init prior")
    spectral_norm: bool = setting(False, "spectral normalisation on every layer of D (Miyato et al. 2018)")
    g_upsample: str = setting("transposed",
        "dcgan G's doublings: 'transposed' (4x4 stride-2 transposed convs, the paper's) or 'resize' (nearest x2, "
        "then a 3x3 conv: no checkerboard)")
    d_mbstd: int = setting(0,
        "dcgan D: minibatch standard deviation over groups of this many images before its last conv (StyleGAN); "
        "0 = off")
    conditioning: str = setting("none",
        "labelled data: 'projection' (class-conditional G, projection D), 'acgan', or 'auto': projection when the "
        "data has labels")

    # --- loss and tricks ---
    loss: str = setting("bce",
        "'bce' (non-saturating), 'minimax', 'lsgan' (seed 003), 'wgan-gp', 'hinge' (SNGAN), 'rpgan' (relativistic "
        "pairs, R3GAN)")
    gp_weight: float = setting(10.0, "WGAN-GP penalty weight (Gulrajani et al. use 10)")
    real_label: float = setting(1.0,
        "D's target for real images; 0.98 = seed 002's smoothing (one-sided if fake stays 0)")
    fake_label: float = setting(0.0, "D's target for fakes; 0.02 makes seed 002's smoothing two-sided")
    label_flip: float = setting(0.0, "probability of swapping a D target real<->fake (Chollet: noisy labels)")
    instance_noise: float = setting(0.0,
        "std of Gaussian noise added to D's inputs, annealed linearly to 0 at the last step")
    d_steps: int = setting(1, "D updates per G update (WGAN-GP uses 5)")
    d_split_update: bool = setting(False,
        "update D on the real and the fake batch separately, as Keras' train_on_batch twice (seed 000)")
    r1_gamma: float = setting(0.0, "R1 penalty on real images, gamma/2 E|grad D(x)|^2 (Mescheder et al. 2018); 0 = off")
    r2_gamma: float = setting(0.0,
        "R2 penalty on G's images, gamma/2 E|grad D(G(z))|^2; R3GAN sets it equal to --r1-gamma; 0 = off")
    r1_every: int = setting(16, "lazy R1 and R2 (StyleGAN2): every k-th D update, scaled by k")
    lecam_weight: float = setting(0.0,
        "LeCam regularisation (Tseng et al. 2021): D's logits held near moving anchors of the other side's; "
        "StudioGAN uses 0.3; 0 = off")
    augment: str = setting("none", "DiffAugment ops on every image D sees, real and fake: color,translation,cutout")
    ada: str = setting("none",
        "StyleGAN2-ADA's adaptive augmentation of D's inputs: 'default', or a comma list of "
        "xflip,rot90,translation,scale,brightness,contrast,hue,saturation,cutout")
    ada_p: float | None = setting(None, "ADA: hold the augmentation probability at this value; none = adapt it from 0")
    ada_target: float = setting(0.6,
        "ADA raises p while r_t = E[sign D(x_real)] is above this, lowers it below (the paper's 0.6)")
    ada_length: int | None = setting(None,
        "ADA: images over which p can go from 0 to 1; none = the run's total images / 20, at most 500k (the paper's)")
    ada_interval: int = setting(4, "ADA: steps between adjustments of p")
    acgan_weight: float = setting(1.0, "ACGAN: weight of the class loss in D's and G's losses")
    ema_half_life: float = setting(0.0,
        "EMA of G's weights: images over which old weights halve; 0 = off. Sampling uses it")
    ema_rampup: float | None = setting(None,
        "EMA half-life capped at this x images seen early on (StyleGAN2-ADA: 0.05)")
    reuse_fakes: bool = setting(True,
        "G's step scores the fakes D just saw (pytorch/examples); false draws new noise (Keras seeds)")

    # --- optimisers ---
    lr_g: float = setting(2e-4, "G's Adam learning rate (Radford et al.: 2e-4)")
    lr_d: float = setting(2e-4, "D's Adam learning rate")
    beta1_g: float = setting(0.5, "G's Adam beta1 (Radford et al.: 0.9 makes DCGAN training oscillate)")
    beta2_g: float = setting(0.999, "G's Adam beta2")
    beta1_d: float = setting(0.5, "D's Adam beta1")
    beta2_d: float = setting(0.999, "D's Adam beta2")
    adam_eps: float = setting(1e-8, "Adam's epsilon, both nets (Keras uses 1e-7)")
    lr_decay: str = setting("none", "'keras-time': lr/(1+rate*step) as Keras' `decay`; 'linear': to 0 at the end")
    lr_decay_rate: float = setting(0.0, "the rate of --lr-decay keras-time (seed 004: 2e-4/50 per step)")

    # --- length and schedule ---
    batch_size: int = setting(128,
        "images per D update in each process: N processes (torchrun) train on N times as many")
    global_batch_size: int | None = setting(None,
        "images per D update over all processes, split evenly; when set, --batch-size is not used")
    sync_batchnorm: bool = setting(False,
        "several GPUs: BatchNorm statistics over every process's images (SyncBatchNorm; CUDA only)")
    steps: int | None = setting(None,
        "total G updates; set this or epochs (both totals, counting earlier runs)", resume=LENGTH)
    epochs: float | None = setting(None, "total passes over the data; converted to steps", resume=LENGTH)
    images: int | None = setting(None,
        "total real images D sees (StyleGAN's kimg x 1000); converted to steps, so a small folder trains as long as a"
        " large one", resume=LENGTH)
    max_minutes: float | None = setting(None,
        "stop (with a checkpoint, resumable) after this much training time", resume=LENGTH)
    seed: int = setting(0, "seeds the weights, the noise and the data order: the same seed trains the same run")
    log_every: int = setting(50,
        "steps between lines in metrics.jsonl (losses are read from the device once per line)", resume=WATCHING)
    sample_every: int = setting(500, "steps between sample grids, after --sample-early-until", resume=WATCHING)
    sample_every_early: int = setting(50,
        "steps between sample grids until --sample-early-until: early change is fastest (seed 004)", resume=WATCHING)
    sample_early_until: int = setting(1000,
        "the step until which the grid is drawn every --sample-every-early steps", resume=WATCHING)
    sample_grid: int = setting(64, "images in the fixed sample grid (seed 004 shows 256, seed 001 16)")
    checkpoint_every: int = setting(1000,
        "steps between checkpoints; one is always written at the end", resume=WATCHING)
    keep_checkpoints: int = setting(3, "how many recent checkpoints to keep", resume=WATCHING)
    device: str = setting("auto", "'auto' picks CUDA, then MPS, then CPU", resume=ARITHMETIC)
    precision: str = setting("auto",
        "'bf16' autocast, 'fp32', or 'auto': bf16 where the device multiplies bf16 natively", resume=ARITHMETIC)
    compile: bool = setting(False,
        "torch.compile G and D (falls back to eager, with a warning, where it cannot)", resume=ARITHMETIC)
    channels_last: bool = setting(False,
        "NHWC memory layout for conv nets (faster on GPUs and CPUs with bf16 kernels; on in `colour`)", resume=ARITHMETIC)
    tensorboard: str = setting("auto",
        "TensorBoard events in RUN/tensorboard: 'auto' (when installed), 'on', 'off'", resume=WATCHING)
    report: bool = setting(True, "refresh RUN/report.html at every checkpoint", resume=WATCHING)

    # --- when training diverges ---
    max_rollbacks: int = setting(3,
        "NaN/Inf or exploding losses: roll back to the last good state this often, then stop", resume=WATCHING)
    rollback_lr_factor: float = setting(0.5, "each rollback multiplies both learning rates by this", resume=WATCHING)
    loss_limit: float = setting(1e6, "a loss whose magnitude passes this counts as diverged", resume=WATCHING)

    # --- evaluation during training ---
    eval_every: int = setting(0,
        "steps between evaluations with gankit's classifier features; 0 = never", resume=WATCHING)
    eval_n: int = setting(2000,
        "generated images per evaluation (fewer than `gankit eval`'s 10k: it runs often)", resume=WATCHING)
    eval_metrics: str = setting("fid,kid,coverage", "any of fid, kid, pr, coverage, classes", resume=WATCHING)
    eval_evaluator: str | None = setting(None,
        "an extractor file from `gankit train-evaluator` for these evaluations (default: the dataset's shipped "
        "classifier)", resume=WATCHING)
    eval_at_minutes: str = setting("",
        "also evaluate when the training clock passes these minutes, e.g. 1,2,5,10,20 (evaluation time is kept off "
        "the clock)", resume=WATCHING)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (tuples become lists)."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)


FIELDS = {f.name: f for f in fields(Config)}

# The fields a resumed run may change (`resume=` in each field's metadata, above); any other
# difference means the run directory belongs to another config.
RESUMABLE_FIELDS = frozenset(name for name, f in FIELDS.items() if f.metadata["resume"] != FIXED)


def field_help(name: str) -> str:
    """The field's help text: its flag's help in `gankit train --help`."""
    return FIELDS[name].metadata["help"]


def _coerce(name: str, value: Any) -> Any:
    """Turn a value from JSON, TOML or a flag string into the field's type, or raise UserError."""
    ftype = str(FIELDS[name].type)
    flag = "--" + name.replace("_", "-")
    if value is None:
        if "None" in ftype:
            return None
        raise UserError(f"{flag} needs a value")
    try:
        if ftype.startswith("tuple"):
            if isinstance(value, str):
                value = [v for v in value.replace(",", " ").split() if v]
            return tuple(int(v) for v in value)
        if ftype.startswith("bool"):
            if isinstance(value, str):
                low = value.lower()
                if low not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                    raise ValueError(value)
                return low in ("true", "1", "yes", "on")
            return bool(value)
        if ftype.startswith("int"):
            if isinstance(value, str) and value.lower() == "none" and "None" in ftype:
                return None
            f = float(value)
            if not f.is_integer():
                raise ValueError(value)
            return int(f)
        if ftype.startswith("float"):
            if isinstance(value, str) and value.lower() == "none" and "None" in ftype:
                return None
            return float(value)
        if ftype.startswith("str"):
            if isinstance(value, str) and value.lower() == "none" and "None" in ftype:
                return None
            return str(value)
    except (TypeError, ValueError):
        raise UserError(f"{flag}: cannot read {value!r} as {ftype}") from None
    return value


# Three ways to give a run's length; a layer that sets one replaces all three from the layers before.
_LENGTHS = ("steps", "epochs", "images")


def make_config(*layers: dict[str, Any]) -> Config:
    """Build a Config from dicts applied in order (later wins); unknown keys are errors.

    steps, epochs and images are three ways to give the run's length: a layer that sets one replaces
    all three from the layers before it (a preset's --images give way to a flag's --steps)."""
    values: dict[str, Any] = {}
    for layer in layers:
        if any(k.replace("-", "_") in _LENGTHS for k in layer):
            for name in _LENGTHS:
                values.pop(name, None)
        for key, value in layer.items():
            name = key.replace("-", "_")
            if name not in FIELDS:
                close = [f for f in FIELDS if name[:3] in f]
                hint = f" (did you mean {', '.join(close[:4])}?)" if close else ""
                raise UserError(f"unknown config field {key!r}{hint}; `gankit train --help` lists them all")
            values[name] = _coerce(name, value)
    return validate(Config(**values))


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML (or JSON) config file into a dict of fields; [sections] are flattened."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"--config {path}: no such file")
    text = p.read_bytes()
    try:
        if p.suffix == ".json":
            data = json.loads(text)
        else:
            try:
                import tomllib
            except ModuleNotFoundError:  # Python 3.10
                import tomli as tomllib
            data = tomllib.loads(text.decode("utf-8"))
    except Exception as exc:  # noqa: BLE001 - any parse error is the user's file
        raise UserError(f"--config {path}: cannot parse it ({exc})") from None
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):  # allow [data], [optim] ... sections for readability
            flat.update(value)
        else:
            flat[key] = value
    return flat


def _check(ok: bool, flag: str, message: str) -> None:
    if not ok:
        raise UserError(f"--{flag.replace('_', '-')}: {message}")


def _check_ada(cfg: Config) -> None:
    from gankit.augment.ada_ops import parse_ada_ops
    on = bool(parse_ada_ops(cfg.ada))  # raises UserError naming --ada
    from gankit.augment.diffaugment import parse_augment_policy
    _check(not (on and parse_augment_policy(cfg.augment)), "ada",
           "--ada and --augment both augment every image D sees; pick one (e.g. --augment none)")
    _check(cfg.ada_p is None or 0 <= cfg.ada_p <= 1, "ada_p", "is a probability in [0, 1] (or none to adapt it)")
    _check(0 < cfg.ada_target < 1, "ada_target", "must lie in (0, 1): r_t = E[sign D(x_real)] is at most 1")
    _check(cfg.ada_length is None or cfg.ada_length >= 1, "ada_length", "is a number of images, at least 1 (or none)")
    _check(cfg.ada_interval >= 1, "ada_interval", "must be at least 1")
    for name in ("ada_p", "ada_length"):
        _check(on or getattr(cfg, name) is None, name, "has no effect without --ada; add --ada default (or drop it)")


def validate(cfg: Config) -> Config:
    """Reject nonsense before anything touches the disk. Returns cfg unchanged."""
    _check(cfg.split in SPLITS, "split", f"must be one of {', '.join(SPLITS)}")
    _check(cfg.fit in FITS, "fit", f"must be one of {', '.join(FITS)}")
    _check(cfg.alpha in ALPHAS, "alpha", f"must be one of {', '.join(ALPHAS)}")
    _check(cfg.data_placement in DATA_PLACEMENTS, "data_placement", f"must be one of {', '.join(DATA_PLACEMENTS)}")
    _check(cfg.image_size is None or 4 <= cfg.image_size <= 1024, "image_size", "must be between 4 and 1024")
    _check(cfg.channels in (None, 1, 3), "channels", "must be 1 (grey) or 3 (RGB)")
    _check(all(c >= 0 for c in cfg.classes), "classes", "labels are non-negative integers")
    _check(cfg.latent_dim >= 1, "latent_dim", "must be at least 1")
    _check(cfg.latent_dist in LATENT_DISTS, "latent_dist", f"must be one of {', '.join(LATENT_DISTS)}")
    _check(all(w >= 1 for w in cfg.g_widths), "g_widths", "widths must be positive")
    _check(all(w >= 1 for w in cfg.d_widths), "d_widths", "widths must be positive")
    _check(cfg.width >= 1, "width", "must be at least 1")
    _check(cfg.g_batchnorm in G_BATCHNORMS, "g_batchnorm", f"must be one of {', '.join(G_BATCHNORMS)}")
    _check(0 < cfg.bn_momentum <= 1, "bn_momentum", "must be in (0, 1] (PyTorch meaning)")
    _check(cfg.bn_eps > 0, "bn_eps", "must be positive")
    _check(0 <= cfg.d_dropout < 1, "d_dropout", "must be in [0, 1)")
    _check(cfg.init in INITS, "init", f"must be one of {', '.join(INITS)}")
    _check(isinstance(cfg.freeze_d, int) and cfg.freeze_d >= 0, "freeze_d",
           f"must be a whole number >= 0, got {cfg.freeze_d!r}")
    _check(cfg.prior_dir is None or cfg.init == "prior", "prior_dir",
           "names where --init prior finds its prior: add --init prior, or drop it")
    _check(cfg.freeze_d == 0 or cfg.init == "prior", "freeze_d",
           "keeps the layers D starts with, which only a prior makes worth keeping: add --init prior, or drop it")
    _check(isinstance(cfg.freeze_g, int) and cfg.freeze_g >= 0, "freeze_g",
           f"must be a whole number >= 0, got {cfg.freeze_g!r}")
    _check(cfg.freeze_g == 0 or cfg.init == "prior", "freeze_g",
           "keeps the layers G starts with, which only a prior makes worth keeping: add --init prior, or drop it")
    _check(cfg.conditioning in CONDITIONINGS, "conditioning", f"must be one of {', '.join(CONDITIONINGS)}")
    _check(cfg.holdout >= 0, "holdout", "is a number of images, >= 0 (0 = set none aside)")
    _check(cfg.r1_gamma >= 0, "r1_gamma", "must be >= 0 (0 turns R1 off)")
    _check(cfg.r2_gamma >= 0, "r2_gamma", "must be >= 0 (0 turns R2 off)")
    _check(cfg.r1_every >= 1, "r1_every", "must be at least 1")
    _check(cfg.lecam_weight >= 0, "lecam_weight", "must be >= 0 (0 turns LeCam off)")
    _check(cfg.g_upsample in G_UPSAMPLES, "g_upsample", f"must be one of {', '.join(G_UPSAMPLES)}")
    _check(cfg.d_mbstd == 0 or cfg.d_mbstd >= 2, "d_mbstd", "is a group of at least 2 images (or 0: off)")
    _check(cfg.acgan_weight >= 0, "acgan_weight", "must be >= 0")
    _check(cfg.ema_half_life >= 0, "ema_half_life", "is a number of images, >= 0 (0 turns EMA off)")
    _check(cfg.ema_rampup is None or cfg.ema_rampup > 0, "ema_rampup", "must be positive (or none)")
    _check(not (cfg.d_split_update and (cfg.r1_gamma > 0 or cfg.r2_gamma > 0 or cfg.conditioning == "acgan"
                                        or cfg.loss == "wgan-gp")),
           "d_split_update", "Keras' two half-updates of D leave no place for --r1-gamma, --r2-gamma, WGAN-GP's "
           "penalty or ACGAN's class loss; drop --d-split-update (or those)")
    _check(not (cfg.d_split_update and cfg.lecam_weight > 0), "d_split_update",
           "Keras' two half-updates of D leave no place for --lecam-weight; drop one of them")
    _check(not (cfg.d_split_update and cfg.loss == "rpgan"), "d_split_update",
           "--loss rpgan judges each real image against a fake in one term, which Keras' two half-updates of D "
           "(one on reals, one on fakes) cannot split; drop --d-split-update or choose another --loss")
    from gankit.augment.diffaugment import parse_augment_policy
    parse_augment_policy(cfg.augment)  # raises UserError naming --augment
    _check_ada(cfg)
    _check(cfg.loss in LOSSES, "loss", f"unknown loss {cfg.loss!r}; valid: {', '.join(LOSSES)}")
    _check(cfg.gp_weight >= 0, "gp_weight", "must be >= 0")
    _check(0 <= cfg.real_label <= 1 and 0 <= cfg.fake_label <= 1, "real_label",
           "targets must lie in [0, 1] (see also --fake-label)")
    _check(cfg.fake_label < cfg.real_label, "fake_label", "must be below --real-label")
    _check(0 <= cfg.label_flip < 0.5, "label_flip", "is a probability below 0.5")
    _check(cfg.instance_noise >= 0, "instance_noise", "is a standard deviation, >= 0")
    _check(cfg.d_steps >= 1, "d_steps", "must be at least 1")
    for name in ("lr_g", "lr_d"):
        v = getattr(cfg, name)
        _check(math.isfinite(v) and v > 0, name, f"learning rate must be positive, got {v}")
    for name in ("beta1_g", "beta2_g", "beta1_d", "beta2_d"):
        _check(0 <= getattr(cfg, name) < 1, name, "Adam betas lie in [0, 1)")
    _check(cfg.adam_eps > 0, "adam_eps", "must be positive")
    _check(cfg.lr_decay in LR_DECAYS, "lr_decay", f"must be one of {', '.join(LR_DECAYS)}")
    _check(cfg.lr_decay_rate >= 0, "lr_decay_rate", "must be >= 0")
    _check(cfg.batch_size >= 1, "batch_size", f"must be at least 1, got {cfg.batch_size}")
    _check(cfg.global_batch_size is None or cfg.global_batch_size >= 1, "global_batch_size",
           f"must be at least 1, got {cfg.global_batch_size}")
    _check(cfg.steps is None or cfg.steps >= 1, "steps", "must be at least 1")
    _check(cfg.epochs is None or cfg.epochs > 0, "epochs", "must be positive")
    _check(cfg.max_minutes is None or cfg.max_minutes > 0, "max_minutes", "must be positive")
    _check(cfg.images is None or cfg.images >= 1, "images", "must be at least 1")
    _check(sum(x is not None for x in (cfg.steps, cfg.epochs, cfg.images)) <= 1, "steps",
           "give one of --steps, --epochs and --images, not several")
    for name in ("log_every", "sample_every", "sample_every_early", "checkpoint_every", "keep_checkpoints",
                 "sample_grid"):
        _check(getattr(cfg, name) >= 1, name, "must be at least 1")
    _check(cfg.sample_early_until >= 0, "sample_early_until", "must be >= 0")
    _check(cfg.max_rollbacks >= 0, "max_rollbacks", "must be >= 0")
    _check(0 < cfg.rollback_lr_factor <= 1, "rollback_lr_factor", "must be in (0, 1]")
    _check(cfg.loss_limit > 0, "loss_limit", "must be positive")
    _check(cfg.eval_every >= 0, "eval_every", "must be >= 0 (0 turns evaluation off)")
    _check(cfg.eval_n >= 2, "eval_n", "must be at least 2")
    names = [m.strip() for m in cfg.eval_metrics.split(",") if m.strip()]
    _check(bool(names) and all(m in EVAL_METRICS for m in names), "eval_metrics",
           f"choose from {', '.join(EVAL_METRICS)}")
    _check(eval_minutes(cfg.eval_at_minutes) is not None, "eval_at_minutes",
           "must be positive numbers of minutes separated by commas, e.g. 1,2,5")
    _check(cfg.tensorboard in ("auto", "on", "off"), "tensorboard", "must be auto, on or off")
    _check(cfg.device in DEVICES, "device", f"must be one of {', '.join(DEVICES)}")
    _check(cfg.precision in PRECISIONS, "precision", f"must be one of {', '.join(PRECISIONS)}")
    return cfg


def eval_minutes(text: str) -> tuple[float, ...] | None:
    """--eval-at-minutes as sorted minutes ("1,2,5" -> (1.0, 2.0, 5.0)); None when it cannot be read."""
    try:
        minutes = sorted({float(m) for m in text.replace(" ", ",").split(",") if m.strip()})
    except ValueError:
        return None
    return tuple(minutes) if all(math.isfinite(m) and m > 0 for m in minutes) else None


def diff(a: Config, b: Config) -> dict[str, tuple[Any, Any]]:
    """Fields where a and b differ: name -> (a's value, b's value)."""
    return {n: (getattr(a, n), getattr(b, n)) for n in FIELDS if getattr(a, n) != getattr(b, n)}
