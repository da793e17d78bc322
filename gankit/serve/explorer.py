"""The generators `gankit serve` shows, and the pictures they draw for a request.

Every generator of a page draws from the same latents: the seed gives the z of every tile
(and its class, where a tile's class is left to chance), each slider moves z along that
generator's own principal direction, and truncation pulls z toward the mean. Generators of
different latent sizes or priors cannot share z; each then draws its own from the same seed.
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass, field
from pathlib import Path

import torch

from gankit.errors import UserError
from gankit.nets.latents import interpolate_latents, truncate
from gankit.run import pictures as viz
from gankit.sampling import TrainedGenerator, load_generator
from gankit.serve.directions import Directions, principal_directions, prior_std
from gankit.serve.params import BadRequest, PictureRequest


@dataclass
class Served:
    """One target named on the command line: its generator and directions, or why it failed to load."""

    name: str
    generator: TrainedGenerator | None = None
    directions: Directions | None = None
    error: str | None = None

    def describe(self) -> dict:
        """What the page needs to know about it (JSON)."""
        if self.generator is None:
            return {"name": self.name, "loaded": False, "error": self.error}
        tg = self.generator
        return {"name": self.name, "loaded": True, "arch": tg.cfg.arch, "dataset": tg.cfg.dataset, "step": tg.step,
                "ema": tg.uses_ema, "num_classes": tg.num_classes, "latent_dim": tg.cfg.latent_dim,
                "latent_dist": tg.cfg.latent_dist, "image_shape": list(tg.image_shape),
                "directions": {"count": len(self.directions.vectors), "explained": self.directions.explained,
                               "method": self.directions.method}}


@dataclass
class Explorer:
    """The served generators, in command-line order."""

    served: list[Served]
    # Drawing flips G between train and eval mode (gankit.nets.latents.generate): one at a time.
    lock: threading.Lock = field(default_factory=threading.Lock)

    def describe(self) -> dict:
        return {"models": [s.describe() for s in self.served]}

    def grid_png(self, req: PictureRequest) -> bytes:
        """The grid of req.n tiles, as a PNG."""
        tg, z, y = self._latents(req)
        with self.lock:
            images = tg.images(z, y=y)
        return _png(viz.grid(images, scale=req.scale))

    def interpolation_png(self, req: PictureRequest) -> bytes:
        """A row of req.steps pictures from tile a to tile b of the grid (spherically for Gaussian
        noise; each end keeps its own class, so a conditional G's row changes class halfway)."""
        tg, z, y = self._latents(req)
        path = interpolate_latents(z[req.a:req.a + 1], z[req.b:req.b + 1], req.steps, tg.cfg.latent_dist)[0]
        labels = None
        if y is not None:
            labels = torch.where(torch.arange(req.steps) < (req.steps + 1) // 2, y[req.a], y[req.b])
        with self.lock:
            images = tg.images(path, y=labels)
        return _png(viz.grid(images, nrow=req.steps, scale=req.scale))

    def _latents(self, req: PictureRequest) -> tuple[TrainedGenerator, torch.Tensor, torch.Tensor | None]:
        served = self.served[req.model]
        if served.generator is None:
            raise BadRequest(f"generator {req.model} ({served.name}) did not load: {served.error}", status=409)
        tg, directions = served.generator, served.directions
        if len(req.shifts) > len(directions.vectors):
            raise BadRequest(f"parameter 'd': {len(req.shifts)} shifts, but {served.name} has "
                             f"{len(directions.vectors)} directions")
        if tg.num_classes and req.class_index >= tg.num_classes:  # an unconditional G ignores the class
            raise BadRequest(f"parameter 'class': {served.name} knows classes 0..{tg.num_classes - 1}")
        rng = torch.Generator().manual_seed(req.seed)
        z = tg.latent(req.n, rng)
        labels = torch.randint(0, tg.num_classes, (req.n,), generator=rng) if tg.num_classes else None
        if labels is not None and req.class_index >= 0:
            labels = torch.full((req.n,), req.class_index, dtype=torch.long)
        shift = torch.zeros(tg.cfg.latent_dim)
        for amount, vector in zip(req.shifts, directions.vectors):
            shift += amount * prior_std(tg.cfg.latent_dist) * vector
        # Truncation first, then the shift: a slider moves the picture by the same amount at any psi.
        z = truncate(z, req.truncation) + shift
        return tg, z, labels


def load_explorer(targets: list[str], device: str = "auto") -> Explorer:
    """Load every target (a run, checkpoint or export). One that fails is kept with its error,
    to be named on the page; a UserError only when none loads."""
    served = []
    for target in targets:
        try:
            tg = load_generator(Path(target), device=device)
        except UserError as exc:
            served.append(Served(str(target), error=str(exc)))
            continue
        except Exception as exc:  # noqa: BLE001 - a damaged file can fail in many ways; the page names it
            served.append(Served(str(target), error=f"{type(exc).__name__}: {exc}"))
            continue
        served.append(Served(str(target), tg, principal_directions(tg.g, tg.cfg.latent_dist)))
    if not any(s.generator is not None for s in served):
        raise UserError("no generator loaded: " + "; ".join(f"{s.name}: {s.error}" for s in served))
    return Explorer(served)


def _png(picture) -> bytes:
    buf = io.BytesIO()
    picture.save(buf, format="PNG")
    return buf.getvalue()
