"""Reading a trained generator back from a run directory or checkpoint, and drawing from it.

`load_generator` gives a `TrainedGenerator`; its `sample`, `grid` and `interpolate` are what
`gankit sample`, `gankit interpolate` and the Python API (`gankit.load`) all call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from gankit.config import Config, make_config
from gankit.errors import UserError
from gankit.export import export_generator, is_export, load_export
from gankit.images import save_png
from gankit.nets import build
from gankit.nets.latents import generate, interpolate_latents, sample_latent, truncate
from gankit.nets.spec import net_spec
from gankit.run import checkpoint as ckpt_io
from gankit.run import pictures as viz
from gankit.run.model_card import sample_grid_args, write_model_card
from gankit.training.compute import pick_device


@dataclass
class TrainedGenerator:
    """A generator in eval mode with what is needed to draw from it."""

    g: nn.Module
    cfg: Config
    step: int
    checkpoint: Path
    uses_ema: bool
    device: torch.device
    num_classes: int = 0  # > 0: a class-conditional G, which needs labels
    image_shape: tuple[int, int, int] = (0, 0, 0)  # (channels, height, width) of its images

    def labels(self, n: int, class_index: int | None = None, by_class: bool = False,
               generator: torch.Generator | None = None) -> torch.Tensor | None:
        """Labels for n images: all `class_index`; n per class in class order (`by_class`);
        uniform at random; None for an unconditional G. Raises UserError naming --class."""
        if not self.num_classes:
            if class_index is not None or by_class:
                raise UserError("--class/--by-class (classes=, by_class=): this generator was trained without "
                                "--conditioning, so it cannot be asked for a class")
            return None
        if class_index is not None:
            if not 0 <= class_index < self.num_classes:
                raise UserError(f"--class {class_index}: this generator knows classes 0..{self.num_classes - 1}")
            return torch.full((n,), class_index, dtype=torch.long)
        if by_class:
            return torch.arange(self.num_classes).repeat_interleave(n)
        return torch.randint(0, self.num_classes, (n,), generator=generator)

    def latent(self, n: int, generator: torch.Generator | None = None, truncation: float = 1.0) -> torch.Tensor:
        """n latent vectors of this G's kind (normal or uniform), on the CPU, pulled toward the
        prior's mean by `truncation` (psi; 1 = as drawn; gankit.nets.latents.truncate)."""
        return truncate(sample_latent(n, self.cfg.latent_dim, self.cfg.latent_dist, generator=generator), truncation)

    def images(self, z: torch.Tensor, batch_size: int = 500, y: torch.Tensor | None = None) -> torch.Tensor:
        """uint8 [N, C, H, W] on the CPU for latents z (and labels y), drawn in batches."""
        if self.num_classes and y is None:
            y = self.labels(len(z), generator=torch.Generator().manual_seed(0))
        return generate(self.g, z, self.device, batch_size, y=y)

    def sample(self, n: int, classes: int | Sequence[int] | torch.Tensor | None = None, seed: int | None = None,
               *, by_class: bool = False, batch_size: int = 500, truncation: float = 1.0) -> torch.Tensor:
        """n images as a uint8 tensor [n, C, H, W] on the CPU (what `gankit sample` writes).

        classes: for a class-conditional G, None draws classes uniformly at random, an int draws
        only that class, a sequence gives each image's class (n of them). by_class: n images of
        every class in class order instead ([n * num_classes, C, H, W]). seed: the same seed draws
        the same images; None draws fresh ones. truncation: psi in [0, 1], the truncation trick
        (latents pulled toward the mean: less variety, more typical images; 1 = none).
        """
        if n < 1:
            raise UserError(f"-n must be at least 1, got {n}")
        rng = _rng(seed)
        if classes is None or isinstance(classes, int):
            y = self.labels(n, classes, by_class, generator=rng)
        else:
            if by_class:
                raise UserError("give either classes or by_class, not both")
            y = self._label_list(classes, n)
        z = self.latent(len(y) if y is not None else n, rng, truncation)
        return self.images(z, batch_size, y)

    def grid(self, n: int = 64, classes: int | Sequence[int] | torch.Tensor | None = None, seed: int | None = None,
             *, by_class: bool = False, nrow: int | None = None, scale: int = 1,
             truncation: float = 1.0) -> Image.Image:
        """`sample(n, classes, seed, by_class=by_class, truncation=truncation)` tiled into one PIL image (shown inline by
        notebooks; `.save("grid.png")` writes it): `nrow` images per row (default: a square, or
        a row per class with by_class), pixels enlarged `scale` times."""
        if scale < 1:
            raise UserError(f"--scale must be at least 1, got {scale}")
        images = self.sample(n, classes, seed, by_class=by_class, truncation=truncation)
        return viz.grid(images, nrow=nrow or (n if by_class else None), scale=scale)

    def interpolate(self, rows: int = 8, steps: int = 10, seed: int | None = None,
                    out: str | Path | None = None, truncation: float = 1.0) -> torch.Tensor:
        """`rows` walks of `steps` images each between random latents (spherical for Gaussian noise;
        a conditional G keeps one class along each walk): uint8 [rows, steps, C, H, W]. With
        `out`, also written as walk.gif (animated) or walk.png (a row per walk). truncation: both
        ends of every walk are truncated latents (psi, as in `sample`)."""
        if rows < 1 or steps < 2:
            raise UserError("--rows must be at least 1 and --steps at least 2")
        walk = interpolation(self, rows, steps, seed, truncation)
        if out is not None:
            write_interpolation(walk, out)
        return walk

    def _label_list(self, classes: Sequence[int] | torch.Tensor, n: int) -> torch.Tensor:
        """One class per image, checked against the classes this G knows."""
        y = torch.as_tensor(list(classes) if not isinstance(classes, torch.Tensor) else classes, dtype=torch.long)
        if y.dim() != 1 or len(y) != n:
            raise UserError(f"classes: give one class per image ({n}), got {tuple(y.shape)}")
        if not self.num_classes:
            self.labels(n, 0)  # raises: this G has no classes
        if len(y) and not (0 <= int(y.min()) and int(y.max()) < self.num_classes):
            raise UserError(f"classes: this generator knows classes 0..{self.num_classes - 1}")
        return y

    def __repr__(self) -> str:
        kind = f"{self.num_classes} classes" if self.num_classes else "unconditional"
        return (f"TrainedGenerator({self.cfg.arch}, {kind}, step {self.step}{', EMA weights' if self.uses_ema else ''}, "
                f"from {self.checkpoint}, on {self.device})")


def _rng(seed: int | None) -> torch.Generator:
    """A CPU generator: seeded for repeatable draws, or from the OS's entropy when seed is None."""
    rng = torch.Generator()
    if seed is None:
        rng.seed()
    else:
        rng.manual_seed(seed)
    return rng


def load_generator(target: str | Path, device: str = "auto") -> TrainedGenerator:
    """G from a run directory (its newest intact checkpoint), a checkpoint file, or an exported
    generator (`gankit export`); the EMA copy if there is one."""
    if is_export(Path(target)):
        description, weights, path = load_export(Path(target))
        state = {"config": description["config"], "image_shape": description["image_shape"],
                 "num_classes": description.get("num_classes", 0),
                 "progress": {"step": description["step"]}, "generator": weights}
        use_ema = bool(description.get("ema"))
    else:
        path, state = _newest_state(target)
        use_ema = state.get("generator_ema") is not None
    cfg = make_config(state["config"])
    dev = pick_device(device)
    classes = int(state.get("num_classes") or 0) if cfg.conditioning != "none" else 0
    g, _ = build(net_spec(cfg, tuple(state["image_shape"]), classes))
    g.load_state_dict(state["generator_ema"] if use_ema and state.get("generator_ema") else state["generator"])
    g.to(dev).eval()
    return TrainedGenerator(g, cfg, int(state["progress"]["step"]), Path(path), use_ema, dev, classes,
                            tuple(int(v) for v in state["image_shape"]))


def export_run(target: str | Path, out: str | Path) -> tuple[Path, Path, int]:
    """`gankit export`: the generator of a run directory or checkpoint into folder `out`
    (model.safetensors, config.json), with its model card (README.md and a sample grid).
    Returns (the folder, the checkpoint it came from, its step)."""
    path, state = _newest_state(target)
    folder = export_generator(state, out)
    _, run_dir = ckpt_io.resolve(path)
    tg = load_generator(folder, device="cpu")
    grid = tg.grid(**sample_grid_args(tg.num_classes), seed=0, scale=2)
    description, _, _ = load_export(folder)
    write_model_card(folder, description, run_dir, grid)
    return folder, path, int(state["progress"]["step"])


def _newest_state(target: str | Path) -> tuple[Path, dict]:
    """A checkpoint file as given, or a run directory's newest checkpoint that verifies."""
    path, run_dir = ckpt_io.resolve(target)
    if Path(target).is_dir():
        found, state, skipped = ckpt_io.newest_intact(run_dir)
        if found is None:
            raise UserError(f"{target}: no intact checkpoint ({'; '.join(skipped)})")
        return found, state
    return path, ckpt_io.load(path)


def write_images(images: torch.Tensor, out: str | Path, nrow: int | None = None, scale: int = 1) -> str:
    """Save uint8 [N,C,H,W] as a grid (.png/.jpg), an .npz (key `images`, NHWC uint8, the layout
    other GAN tools read) or a folder of numbered PNGs. Returns a description of what was written."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix in (".png", ".jpg", ".jpeg"):
        out.parent.mkdir(parents=True, exist_ok=True)
        viz.save_grid(images, out, nrow=nrow, scale=scale)
        return f"a grid of {len(images)} images in {out}"
    if suffix == ".npz":
        out.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(out, images=images.permute(0, 2, 3, 1).contiguous().numpy())
        return f"{len(images)} images in {out} (key 'images', uint8 NHWC)"
    if suffix:
        raise UserError(f"--out {out}: use a folder, a .npz file, or a .png grid")
    out.mkdir(parents=True, exist_ok=True)
    width = max(6, len(str(len(images) - 1)))
    for i, image in enumerate(images):
        save_png(image, out / f"{i:0{width}d}.png")
    return f"{len(images)} PNG files in {out}/"


def interpolation(tg: TrainedGenerator, rows: int, steps: int, seed: int | None,
                  truncation: float = 1.0) -> torch.Tensor:
    """uint8 [rows, steps, C, H, W]: each row walks from one random latent to another."""
    rng = _rng(seed)
    a, b = tg.latent(rows, rng, truncation), tg.latent(rows, rng, truncation)
    path = interpolate_latents(a, b, steps, tg.cfg.latent_dist)
    y = tg.labels(rows, generator=rng)  # a conditional G keeps one class along each walk
    images = tg.images(path.reshape(rows * steps, -1), y=y.repeat_interleave(steps) if y is not None else None)
    return images.view(rows, steps, *images.shape[1:])


def write_interpolation(walk: torch.Tensor, out: str | Path) -> str:
    """A .png grid (a row per walk) or a .gif whose frames step along all walks at once."""
    out = Path(out)
    rows, steps = walk.shape[:2]
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".gif":
        frames = [viz.grid(walk[:, t], nrow=int(np.ceil(np.sqrt(rows))), scale=2) for t in range(steps)]
        frames += frames[-2:0:-1]  # walk back, so the loop has no jump
        viz.save_gif(frames, out, duration_ms=100, hold_last_ms=100)
        return f"a {len(frames)}-frame GIF of {rows} walks in {out}"
    if out.suffix.lower() == ".png":
        viz.save_grid(walk.reshape(rows * steps, *walk.shape[2:]), out, nrow=steps, scale=2)
        return f"a grid of {rows} walks x {steps} steps in {out}"
    raise UserError(f"--out {out}: interpolation writes a .png grid or a .gif")
