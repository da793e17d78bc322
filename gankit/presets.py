"""Named presets: each seed tutorial's data, networks and optimiser settings as Config overrides.

A preset is a dict of Config fields laid over the defaults; flags and config files go on top.
Each seed preset's values are facts from the tutorial it names; where we depart from the
tutorial the comment says so and why. `default` and `fast` are gankit's own recipe (below), the
winner of the quality table in docs/measurements.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gankit.config import Config, load_config_file, make_config
from gankit.errors import UserError

# Keras' BatchNormalization defaults are momentum=0.99 (PyTorch 0.01) and epsilon=1e-3.
_KERAS_BN = {"bn_momentum": 0.01, "bn_eps": 1e-3}

# The recipe that won the quality table (benchmarks/quality_table.py; docs/measurements.md, "Better
# GANs per CPU-minute"): Radford et al.'s DCGAN nets and non-saturating loss, made class-conditional
# with a projection D (Miyato & Koyama 2018) where the data has labels, with an EMA of G's weights
# for sampling (StyleGAN2-ADA's settings scaled to 28 px), G's step reusing D's fakes, and Adam at
# 5e-4 instead of the paper's 2e-4. FID on Fashion-MNIST after 5 minutes of a 2-core CPU on the
# current build: 9.13 (seed 0, 5,000 samples; benchmarks/colour_table.py --sets fashion-mnist).
# On the earlier build of the quality table (10,000 samples, 284k images in 5 minutes where the
# current build trains 425k), after 5 / 20 minutes: 14.3 / 4.20 (three seeds); at 2e-4 30.9 / 5.29
# (seed 0); the previous recipe, seed 003's InfoGAN nets with LSGAN at 1e-3, 23.0 / 15.0 (fast
# early, then stalled); DCGAN nets with that LSGAN optimiser 44.0 at 5 minutes.
_FAST_RECIPE = {
    "arch": "dcgan",
    "conditioning": "auto",  # projection D when the data has labels, unconditional otherwise
    "latent_dim": 100,
    "loss": "bce",
    "init": "dcgan",
    "lr_g": 5e-4, "lr_d": 5e-4, "beta1_g": 0.5, "beta1_d": 0.5,
    "batch_size": 128,
    "ema_half_life": 10_000, "ema_rampup": 0.05,
    "reuse_fakes": True,
}

# The colour recipe, chosen by a search at equal wall-clock on openclipart at 32 px, scored on the
# set's classifier, the one development-set extractor that measures structure (benchmarks/
# colour_search.py; docs/measurements.md, "The colour search"): Radford et al.'s DCGAN nets and
# non-saturating loss, unconditional, with an EMA of G's weights for sampling, and three levers of
# the 20 screened: a batch of 32 (a CPU loses little per image at a smaller batch, so D and G take
# about 3.5x the updates a minute), Adam's betas (0, 0.99), as StyleGAN2 and R3GAN set them,
# instead of DCGAN's (0.5, 0.999), and NHWC convolutions (the same arithmetic, about 1.2x the
# images a second with oneDNN's bf16 kernels). FID after 1 / 2 / 5 minutes of a 2-core CPU, 3 seeds
# each: 386 / 256 / 160, `dcgan` 2,293 / 989 / 459 (benchmarks/results/colour_search-rounds-3-4.json).
_COLOUR_RECIPE = {
    "arch": "dcgan",
    "latent_dim": 100,
    "loss": "bce",
    "init": "dcgan",
    "lr_g": 2e-4, "lr_d": 2e-4,
    "beta1_g": 0.0, "beta1_d": 0.0, "beta2_g": 0.99, "beta2_d": 0.99,
    "batch_size": 32,
    "ema_half_life": 10_000, "ema_rampup": 0.05,
    "reuse_fakes": True,
    "channels_last": True,
    # About 5 minutes at 32 px on a 2-core CPU (224k-227k images in 5 minutes on openclipart).
    "images": 225_000,
}

PRESETS: dict[str, dict] = {
    "default": {
        "_about": "the `fast` recipe on the embedded 5,000 MNIST digits: what `gankit train` runs with no --preset "
                  "on greyscale data",
        **_FAST_RECIPE,
        "dataset": "mnist-5k",
        # About two minutes on a 2-core CPU (113 s, docs/measurements.md "The demo"). FID 6.9 (5,000
        # samples against half the digits) on the quality table's earlier build, where 600 steps gave
        # 12.9: this recipe starts slower than the previous one on 5,000 digits. On the current build
        # `gankit eval runs/demo` gives 6.54 (10,000 samples; the README's example of `gankit eval`).
        # Counted in images (900 steps of 128), not steps, so that another --batch-size or another
        # dataset trains on as many images: a small folder as long as a large one.
        "images": 115_200,
    },
    "mlp-gan": {
        "_about": "seed 000: Keras MLP GAN on MNIST (G 256-512-1024 with BN momentum 0.8, D 512-256), Adam 2e-4/0.5",
        "dataset": "mnist",
        "arch": "mlp",
        "latent_dim": 100,
        "g_widths": (256, 512, 1024),
        "d_widths": (512, 256),
        "g_batchnorm": "post",
        "bn_momentum": 0.2,  # Keras BatchNormalization(momentum=0.8)
        "bn_eps": 1e-3,
        "init": "keras",
        "lr_g": 2e-4, "lr_d": 2e-4, "beta1_g": 0.5, "beta1_d": 0.5, "adam_eps": 1e-7,
        "d_split_update": True,  # train_on_batch(real) then train_on_batch(fake): two D updates
        "reuse_fakes": False,  # combined.train_on_batch(noise, valid) draws new noise for G's step
        "batch_size": 128,
        "steps": 100_000,  # the tutorial's "epochs=100000" are iterations of one batch
        "sample_every": 10_000,
    },
    "mlp-gan-tf": {
        "_about": "seed 001: TensorFlow 2 MLP GAN for MNIST/CIFAR-10 (BN before LReLU, D 1024-512-256), Adam 1e-4, 50 epochs",
        "dataset": "mnist",
        "arch": "mlp",
        "latent_dim": 100,
        "g_widths": (256, 512, 1024),
        "d_widths": (1024, 512, 256),
        "g_batchnorm": "pre",
        "reuse_fakes": True,  # one GradientTape step computes both losses on the same fakes
        **_KERAS_BN,
        "init": "keras",
        "lr_g": 1e-4, "lr_d": 1e-4, "beta1_g": 0.9, "beta1_d": 0.9, "adam_eps": 1e-7,
        "batch_size": 128,  # 64 for CIFAR-10 in the tutorial: pass --batch-size 64
        "epochs": 50,
        "sample_grid": 16,  # 4x4 grid from 16 fixed seeds
    },
    "mlp-gan-scratch": {
        "_about": "seed 002: PyTorch MLP GAN from scratch (latent 128, D with dropout 0.3), smoothing 0.98/0.02, batch 6000",
        "dataset": "mnist",
        "arch": "mlp",
        "latent_dim": 128,
        "g_widths": (256, 512, 1024),
        "d_widths": (1024, 512, 256),
        "g_batchnorm": "none",
        "d_dropout": 0.3,
        "init": "pytorch",
        "real_label": 0.98, "fake_label": 0.02,  # the tutorial's two-sided smoothing tip
        "lr_g": 2e-4, "lr_d": 2e-4, "beta1_g": 0.9, "beta1_d": 0.9,  # Adam's defaults
        "batch_size": 6000,
        "epochs": 2000,
    },
    "infogan-lsgan": {
        "_about": "seed 003: CS231n-style DCGAN, InfoGAN G, conv/max-pool D, least-squares loss, noise 96, Adam 1e-3/0.5",
        "dataset": "mnist",
        "arch": "infogan",
        "latent_dim": 96,
        "loss": "lsgan",
        "reuse_fakes": False,  # each sess.run of G's train step samples its own noise
        "init": "xavier",
        "lr_g": 1e-3, "lr_d": 1e-3, "beta1_g": 0.5, "beta1_d": 0.5,
        "batch_size": 128,
        "epochs": 5,
    },
    "dcgan-small": {
        "_about": "seed 004: Keras DCGAN on Fashion-MNIST train+test (dense-7x7x64-convT x2; D conv x2 + dense 512), uniform noise",
        "dataset": "fashion-mnist",
        "split": "train+test",  # the tutorial stacks both splits: 70,000 images
        "arch": "dcgan-small",
        "latent_dim": 100,
        "latent_dist": "uniform",  # np.random.uniform(-1, 1)
        "reuse_fakes": False,  # gan.train_on_batch(fakeLabels...) on new noise
        "init": "keras",
        **_KERAS_BN,
        "lr_g": 2e-4, "lr_d": 2e-4, "beta1_g": 0.5, "beta1_d": 0.5, "adam_eps": 1e-7,
        "lr_decay": "keras-time", "lr_decay_rate": 2e-4 / 50,  # Adam(decay=INIT_LR / NUM_EPOCHS)
        "batch_size": 128,
        "epochs": 50,
        "sample_every": 100, "sample_every_early": 25,  # every 25 steps in epochs < 10, then every 100
        "sample_early_until": 10 * (70_000 // 128),
        "sample_grid": 256,  # 16x16 benchmark noise
    },
    "dcgan": {
        "_about": "Radford et al. DCGAN (all-conv, BN, 28/32/64 px, grey or RGB), Adam 2e-4/0.5, N(0, 0.02) init",
        "dataset": "fashion-mnist",
        "arch": "dcgan",
        "latent_dim": 100,
        "init": "dcgan",
        "lr_g": 2e-4, "lr_d": 2e-4, "beta1_g": 0.5, "beta1_d": 0.5,
        "batch_size": 128,
        "epochs": 25,
    },
    "fast": {
        "_about": "class-conditional DCGAN nets (projection D), Adam 5e-4, EMA of G, reused fakes: most quality per CPU-minute",
        **_FAST_RECIPE,
        "dataset": "fashion-mnist",
        # 20 epochs of Fashion-MNIST's 60,000, counted in images rather than epochs: a length in
        # epochs shrinks with the data (on a 3,000-image folder it stopped after ~470 steps); in
        # images a small folder trains as long as a large one.
        "images": 1_200_000,
    },
    "colour": {
        "_about": "colour pictures at 32-64 px (what `gankit train --dataset FOLDER` picks for colour): "
                  "`dcgan`'s nets with an EMA of G, a batch of 32, Adam (0, 0.99) and NHWC convolutions, 225,000 images",
        **_COLOUR_RECIPE,
        "dataset": "cifar10",
    },
}

DEFAULT_PRESET = "default"
COLOUR_PRESET = "colour"  # what a run that names no preset gets on colour data (gankit/preset_choice.py)

# What `init = "prior"` brings with it, over whichever preset, unless the config file or a flag sets
# the field itself: the fine-tune that measured best from the 64-px prior on wesnoth's sprites, a set
# it never saw (benchmarks/colour_search.py; docs/measurements.md, "The fine-tune that --init prior
# sets"). At the preset's lr of 2e-4 G's samples swing away and back within minutes; a quarter of it
# falls steadily. G's two convolutions nearest the latent, which lay out the picture, keep the
# prior's weights. The EMA of G drew worse pictures than G itself at every checkpoint measured at
# 64 px (FID 188 without it at 5 minutes, 344 with it, seed 0), so sampling uses G. ADA raises D's
# augmentations when D starts to memorise a small folder (it did on 802 stamps).
PRIOR_FINE_TUNE = {"lr_g": 5e-5, "lr_d": 5e-5, "freeze_g": 2, "ada": "default", "ema_half_life": 0}

# What the `colour` preset changes at --image-size LARGE_COLOUR_PX and above, unless the config file
# or a flag sets the field itself. Its EMA of G was chosen at 32 px, where sampling from the EMA or
# from G scores about alike (openclipart, FID 300 and 329 after 5 minutes, means of 3 seeds; 86 and
# 107 after 20). At 64 px the EMA hides most of what G has learnt (wesnoth, 1,182 against 407 after
# 5 minutes, 3 seeds; 538 against 87 after 20), so there the recipe samples from G itself. Training
# never reads the EMA: only the samples change. (docs/measurements.md, "The colour preset's EMA by size".)
LARGE_COLOUR_PX = 64
LARGE_COLOUR = {"ema_half_life": 0}


def preset_names() -> list[str]:
    return list(PRESETS)


def preset(name: str) -> dict:
    """The overrides of preset `name` (without its description), or UserError listing valid names."""
    if name not in PRESETS:
        raise UserError(f"--preset: unknown preset {name!r}; valid presets: {', '.join(PRESETS)} "
                        "(`gankit presets` describes each)")
    return {k: v for k, v in PRESETS[name].items() if not k.startswith("_")}


def describe(name: str) -> str:
    return PRESETS[name]["_about"]


def resolve_config(preset_name: str | None = None, config_file: str | Path | None = None,
                   fields: dict[str, Any] | None = None) -> tuple[str, Config]:
    """(preset name, Config) of a new run, layered as `gankit train` and `gankit.train()` both do:
    the defaults <- the preset <- the config file <- `fields` (flags or keyword arguments). A run
    that starts from the prior (`init = "prior"` in any of them) also gets PRIOR_FINE_TUNE over the
    preset, and a `colour` run at 64 px or more LARGE_COLOUR, where neither the file nor `fields`
    set those fields.

    The preset is `preset_name`, else the one the config file names (`preset = "dcgan"`), else
    DEFAULT_PRESET. Unknown presets or fields and invalid values raise UserError.
    """
    file_layer = load_config_file(config_file) if config_file else {}
    from_file = file_layer.pop("preset", None)
    name = preset_name or from_file or DEFAULT_PRESET
    base, fields = preset(name), dict(fields or {})
    over = {**size_layer(name, base, file_layer, fields), **fine_tune_layer(base, file_layer, fields)}
    return name, make_config(base, over, file_layer, fields)


def _mine_and_chosen(base: dict[str, Any], users: tuple[dict[str, Any], ...]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the fields the user's layers set, the fields the run ends with over the preset `base`), each
    spelt as Config spells them (`lr-g` as `lr_g`)."""
    def names(layer: dict[str, Any]) -> dict[str, Any]:
        return {k.replace("-", "_"): v for k, v in layer.items()}
    mine = {k: v for layer in users for k, v in names(layer).items()}
    return mine, {**names(base), **mine}


def size_layer(name: str, base: dict[str, Any], *users: dict[str, Any]) -> dict[str, Any]:
    """LARGE_COLOUR when preset `name` is the colour preset and the run's --image-size (from `base`
    or the user's layers, file then flags) is LARGE_COLOUR_PX or more, less the fields the user's
    layers set themselves; else {}. A run at the data's own size (no --image-size) keeps the preset."""
    mine, chosen = _mine_and_chosen(base, users)
    size = chosen.get("image_size")
    if name != COLOUR_PRESET or size is None or int(size) < LARGE_COLOUR_PX:
        return {}
    return {k: v for k, v in LARGE_COLOUR.items() if k not in mine}


def fine_tune_layer(base: dict[str, Any], *users: dict[str, Any]) -> dict[str, Any]:
    """PRIOR_FINE_TUNE when the run starts from the prior (`init` of the preset `base` or of the
    user's layers, file then flags), less the fields the user's layers set themselves, and less ADA
    where any layer augments (the two are exclusive); else {}."""
    mine, chosen = _mine_and_chosen(base, users)
    if chosen.get("init") != "prior":
        return {}
    skip = set(mine) | ({"ada"} if chosen.get("augment", "none") != "none" else set())
    return {k: v for k, v in PRIOR_FINE_TUNE.items() if k not in skip}
