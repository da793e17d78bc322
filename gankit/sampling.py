"""Reading a trained generator back from a run directory or checkpoint, and drawing from it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from gankit import checkpoint as ckpt_io
from gankit import viz
from gankit.config import Config, make_config
from gankit.errors import UserError
from gankit.export import is_export, load_export
from gankit.images import save_png
from gankit.models import generate, interpolate_latents, net_spec, pick_device, sample_latent
from gankit.nets import build


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

    def labels(self, n: int, class_index: int | None = None, by_class: bool = False,
               generator: torch.Generator | None = None) -> torch.Tensor | None:
        """Labels for n images: all `class_index`; n per class in class order (`by_class`);
        uniform at random; None for an unconditional G. Raises UserError naming --class."""
        if not self.num_classes:
            if class_index is not None or by_class:
                raise UserError("--class/--by-class: this generator was trained without --conditioning, "
                                "so it cannot be asked for a class")
            return None
        if class_index is not None:
            if not 0 <= class_index < self.num_classes:
                raise UserError(f"--class {class_index}: this generator knows classes 0..{self.num_classes - 1}")
            return torch.full((n,), class_index, dtype=torch.long)
        if by_class:
            return torch.arange(self.num_classes).repeat_interleave(n)
        return torch.randint(0, self.num_classes, (n,), generator=generator)

    def latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return sample_latent(n, self.cfg.latent_dim, self.cfg.latent_dist, generator=generator)

    def images(self, z: torch.Tensor, batch_size: int = 500, y: torch.Tensor | None = None) -> torch.Tensor:
        """uint8 [N, C, H, W] on the CPU for latents z (and labels y), drawn in batches."""
        if self.num_classes and y is None:
            y = self.labels(len(z), generator=torch.Generator().manual_seed(0))
        return generate(self.g, z, self.device, batch_size, y=y)


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
    return TrainedGenerator(g, cfg, int(state["progress"]["step"]), path, use_ema, dev, classes)


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


def interpolation(tg: TrainedGenerator, rows: int, steps: int, seed: int) -> torch.Tensor:
    """uint8 [rows, steps, C, H, W]: each row walks from one random latent to another."""
    rng = torch.Generator().manual_seed(seed)
    a, b = tg.latent(rows, rng), tg.latent(rows, rng)
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
