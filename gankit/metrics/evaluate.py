"""Scoring images against real data: pick an extractor, get reference features, compute metrics.

Every result carries its protocol (extractor, how many generated and reference images, which
split), and the same metrics of real data against the reference: the floor a model can reach.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from gankit.config import DEFAULT_EVAL_METRICS, EVAL_METRICS
from gankit.errors import UserError
from gankit.metrics import scores
from gankit.metrics.reference import (
    Features,
    RealSet,
    cached_features,
    cached_radii,
    cached_scores,
    reference_and_floor,
)

METRICS = EVAL_METRICS
DEFAULT_METRICS = DEFAULT_EVAL_METRICS
CLASS_METRICS = ("classes", "is")  # need an extractor's class predictions
# Both extractors take grey or RGB only; what they do to RGBA (--alpha keep) goes in the protocol,
# because scores of composited pictures are not scores of the alpha channel.
RGBA_NOTE = "RGBA images (generated and real) composited onto white before feature extraction"


@dataclass
class Extractor:
    """A feature extractor with a name for the protocol and a fingerprint of its weights."""

    name: str
    fingerprint: str
    num_classes: int
    class_names: list[str] | None
    run: Callable[[torch.Tensor], tuple[np.ndarray, np.ndarray | None]]
    # An extractor trained on part of the dataset names the split it held out (holdout.holdout_meta):
    # the floor is then taken from those pictures, which it never saw, as it never saw generated ones.
    holdout: dict | None = None
    # Where the FID scale is the extractor file's own, a line that says so under the table.
    scale_note: str | None = None
    # Its sensitivity check (gankit.metrics.sensitivity) as its file stores it, and the file; or,
    # for a file made before files stored one, a line that says how to get one.
    check: dict | None = None
    check_source: str | None = None
    check_missing: str | None = None
    # How the pictures it learnt from were read (image_size, fit, alpha; None for Inception): a set
    # of images is scored against reference pictures read the same way, as its run would read them.
    reads: dict | None = None

    def __call__(self, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray | None]:
        return self.run(images)


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def make_extractor(kind: str, dataset: str, *, evaluator: str | None = None, inception_weights: str | None = None,
                   device: str = "cpu") -> Extractor:
    """"classifier": gankit's own CNN for `dataset` (shipped, or the file --evaluator names);
    "inception": the standard FID Inception-v3 (weights from --inception-weights or the cache)."""
    if kind == "inception":
        from gankit.metrics.inception import InceptionExtractor
        ext = InceptionExtractor(weights=inception_weights, device=device)
        return Extractor("inception-v3 (pool3, 2048-d)", f"inception:{_file_digest(ext.weights_path)}",
                         ext.num_classes, None, ext)
    if kind != "classifier":
        raise UserError(f"--extractor: unknown extractor {kind!r}; choose classifier or inception")
    if evaluator and _evaluator_kind(evaluator) == "contrastive":
        return _contrastive_extractor(evaluator, device)
    from gankit.metrics.classifier import ClassifierExtractor
    ext = ClassifierExtractor(evaluator or dataset, device=device)
    return Extractor(f"{ext.name} ({ext.feature_dim}-d)", f"classifier:{_file_digest(ext.path)}", ext.num_classes,
                     ext.class_names, ext, reads=_reads(ext.meta, ext.model.image_shape),
                     **stored_check(ext.meta, ext.path))


def _reads(meta: dict, image_shape) -> dict:
    """How an extractor file's pictures were read: its meta's record (files from before it record
    only their network's size, and were read with the defaults)."""
    return {"image_size": int(meta.get("image_size") or image_shape[-1]), "fit": str(meta.get("fit", "crop")),
            "alpha": str(meta.get("alpha", "white"))}


def stored_check(meta: dict, path: Path) -> dict:
    """The sensitivity check an extractor file carries (in its meta, or for the shipped weights in
    `<file>.check.json` beside it, so that the weights and their fingerprint stay as they were),
    as Extractor's check fields."""
    check = meta.get("sensitivity")
    sidecar = path.with_suffix(".check.json")
    if check is None and sidecar.is_file():
        import json
        check = json.loads(sidecar.read_text(encoding="utf-8"))
    if check is not None:
        return {"check": check, "check_source": path.name}
    command = meta.get("command") or "gankit train-evaluator --dataset DATA --out FILE"
    return {"check_missing": (f"extractor check: none stored in {path.name} (made before files carried one); "
                              f"train it again to get one: {command}")}


def _evaluator_kind(path: str) -> str:
    """The kind an --evaluator file's meta records ("classifier" for files from before kinds, and
    for anything unreadable: the classifier's loader then words the error)."""
    try:
        state = torch.load(Path(path).expanduser(), map_location="cpu", weights_only=True)
        return str(state["meta"].get("kind", "classifier"))
    except Exception:  # noqa: BLE001 - missing, foreign or corrupt: reported by the loader
        return "classifier"


def _contrastive_extractor(path: str, device: str) -> Extractor:
    from gankit.metrics.contrastive import ContrastiveExtractor
    ext = ContrastiveExtractor.load(path, device=device)
    scale = (f"FID scale: its own, set by {ext.path.name} and {ext.dataset}'s pictures; comparable only with "
             "scores from the same extractor file, never with Inception FIDs from papers")
    return Extractor(f"{ext.name} ({ext.feature_dim}-d)", f"contrastive:{_file_digest(ext.path)}", 0, None, ext,
                     holdout=ext.meta.get("holdout"), scale_note=scale, reads=_reads(ext.meta, ext.model.image_shape),
                     **stored_check(ext.meta, ext.path))


def parse_metrics(text: str) -> tuple[str, ...]:
    names = tuple(m.strip() for m in text.split(",") if m.strip())
    bad = [m for m in names if m not in METRICS]
    if bad or not names:
        raise UserError(f"--metrics: unknown metric(s) {', '.join(bad) or '(none)'}; choose from {', '.join(METRICS)}")
    return names


def compute(fake: Features, ref: Features, metrics: tuple[str, ...], num_classes: int,
            kid_subset: int = 1000, ref_radii: Callable[[int], np.ndarray] | None = None) -> dict:
    """The chosen metrics of `fake` against `ref` (features already extracted). ref_radii(k): the
    reference's k-NN radii, where they are kept between calls."""
    out: dict = {}
    radii = ref_radii or (lambda k: None)
    if "fid" in metrics:
        out["fid"] = scores.fid(fake.features, ref.features)
    if "kid" in metrics:
        mean, std = scores.kid(fake.features, ref.features, subset_size=kid_subset)
        out["kid"], out["kid_std"] = mean, std
    if "pr" in metrics:
        out["precision"], out["recall"] = scores.precision_recall(ref.features, fake.features, real_radii=radii(3))
    if "coverage" in metrics:
        out["density"], out["coverage"] = scores.density_coverage(ref.features, fake.features, real_radii=radii(5))
    if "is" in metrics and fake.logits is not None:
        out["inception_score"], out["inception_score_std"] = scores.inception_score(fake.logits)
    if "classes" in metrics and fake.logits is not None and num_classes:
        stats = scores.class_stats(fake.logits.argmax(1), num_classes, target_labels=fake.labels)
        out.update({k: v for k, v in stats.items()})
    return out


@dataclass
class Evaluation:
    """Metrics of some images, the floor (real vs reference), and the protocol of both."""

    metrics: dict
    floor: dict
    protocol: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"protocol": self.protocol, "metrics": self.metrics, "floor": self.floor}


class Evaluator:
    """Reference features for one dataset + extractor, reused for many image sets (as in training)."""

    def __init__(self, dataset: str, *, extractor: str = "classifier", metrics: tuple[str, ...] = DEFAULT_METRICS,
                 n_reference: int | None = None, n_floor: int = 10_000, data_dir=None, classes=None,
                 image_size=None, channels=None, fit: str | None = "crop", alpha: str | None = "white",
                 evaluator: str | None = None, inception_weights: str | None = None, device: str = "cpu",
                 use_cache: bool = True, with_floor: bool = True, reference_split: str = "test",
                 read_as_extractor: bool = False):
        """read_as_extractor: image_size, fit and alpha left None are taken from how the extractor's
        own pictures were read (`Extractor.reads`), so that a set of images made at that size is
        scored against real pictures of that size; a run's options are passed as it read them."""
        self.metrics = metrics
        self.extractor = make_extractor(extractor, dataset, evaluator=evaluator, inception_weights=inception_weights,
                                        device=device)
        if read_as_extractor and self.extractor.reads:
            reads = self.extractor.reads
            image_size = reads["image_size"] if image_size is None else image_size
            fit = reads["fit"] if fit is None else fit
            alpha = reads["alpha"] if alpha is None else alpha
        fit, alpha = fit or "crop", alpha or "white"
        self.reads = {"image_size": image_size, "fit": fit, "alpha": alpha}
        ref, floor = reference_and_floor(dataset, n_reference=n_reference, n_floor=n_floor, data_dir=data_dir,
                                         classes=list(classes) if classes else None, image_size=image_size,
                                         channels=channels, fit=fit, alpha=alpha, holdout=self.extractor.holdout,
                                         reference_split=reference_split)
        key = {"dataset": dataset, "classes": list(classes or []), "image_size": image_size, "channels": channels}
        # fit and alpha join the key only where they are not the defaults, so that reference
        # features cached before they were options keep their keys.
        if fit != "crop":
            key["fit"] = fit
        if alpha != "white":
            key["alpha"] = alpha
        if reference_split != "test":
            key["reference_split"] = reference_split
        self.reference = cached_features(ref, self.extractor, {**key, "role": "reference"}, use_cache)
        # A model of RGBA data makes RGBA images, so RGBA real data marks the generated ones too
        # (score_features sees features only).
        self.rgba = ref.images.shape[1] == 4 or floor.images.shape[1] == 4
        self.floor_set: RealSet | None = floor if with_floor else None
        self._floor: dict | None = None
        self._floor_key = {**key, "role": "floor"}
        self.use_cache = use_cache
        self._radii: dict[int, np.ndarray] = {}

    def radii(self, k: int) -> np.ndarray:
        """The reference's k-NN radii: computed once per reference (and kept in the cache with its
        features), not once per set scored against it."""
        if k not in self._radii:
            self._radii[k] = cached_radii(self.reference, k, scores.knn_radii)
        return self._radii[k]

    def floor(self) -> dict:
        """Real images against the reference: computed once, cached with the features."""
        if self._floor is None and self.floor_set is not None:
            feats = cached_features(self.floor_set, self.extractor, self._floor_key, self.use_cache)

            def floor_scores() -> dict:
                result = compute(feats, self.reference, self.metrics, self.extractor.num_classes,
                                 ref_radii=self.radii)
                return {**result, "n": len(feats.features)}

            if self.use_cache and feats.key and self.reference.key:
                self._floor = cached_scores({"floor": feats.key, "reference": self.reference.key,
                                             "metrics": list(self.metrics), "version": 1}, floor_scores)
            else:
                self._floor = floor_scores()
        return self._floor or {}

    def score(self, images: torch.Tensor, target_labels: torch.Tensor | None = None, with_floor: bool = True
              ) -> Evaluation:
        feats, logits = self.extractor(images)
        return self.score_features(feats, logits, target_labels, with_floor, rgba=images.shape[1] == 4)

    def score_features(self, feats: np.ndarray, logits: np.ndarray | None, target_labels: torch.Tensor | None = None,
                       with_floor: bool = True, *, rgba: bool = False) -> Evaluation:
        """`score` for images whose features were extracted already (in training with several
        processes, each extracts its share and rank 0 scores them together). rgba: the images
        had 4 channels (the protocol says how they were scored)."""
        fake = Features(feats, logits, None if target_labels is None else target_labels.numpy(), "generated")
        metrics = compute(fake, self.reference, self.metrics, self.extractor.num_classes, ref_radii=self.radii)
        protocol = {"extractor": self.extractor.name, "generated": len(feats),
                    "reference": self.reference.description,
                    "floor": self.floor_set.description if (with_floor and self.floor_set is not None) else None,
                    "metrics": list(self.metrics)}
        if rgba or self.rgba:
            protocol["alpha"] = RGBA_NOTE
        skipped = [m for m in self.metrics if m in CLASS_METRICS] if not self.extractor.num_classes else []
        if skipped:
            protocol["skipped"] = (f"{', '.join(skipped)} skipped: this extractor makes no class predictions "
                                   "(a classifier --evaluator gives them)")
        if self.extractor.scale_note:
            protocol["scale"] = self.extractor.scale_note
        if self.extractor.check is not None:
            protocol["extractor_check"] = {**self.extractor.check, "file": self.extractor.check_source}
        elif self.extractor.check_missing:
            protocol["extractor_check_missing"] = self.extractor.check_missing
        return Evaluation(metrics, self.floor() if with_floor else {}, protocol)


ROWS = [("fid", "FID", "{:.2f}"), ("kid", "KID", "{:.4g}"), ("precision", "precision", "{:.3f}"),
        ("recall", "recall", "{:.3f}"), ("density", "density", "{:.3f}"), ("coverage", "coverage", "{:.3f}"),
        ("inception_score", "Inception Score", "{:.2f}"), ("classes_missing", "classes missing", "{}"),
        ("class_kl_from_uniform", "class KL from uniform", "{:.3f}"), ("accuracy", "class accuracy", "{:.3f}")]


def format_table(ev: Evaluation) -> str:
    """A fixed-width table: metric, model, real-data floor; then the protocol."""
    lines = [f"{'metric':<22}{'model':>12}{'real data':>12}"]
    for key, label, fmt in ROWS:
        if key not in ev.metrics:
            continue
        model = fmt.format(ev.metrics[key])
        floor = fmt.format(ev.floor[key]) if key in ev.floor else "-"
        lines.append(f"{label:<22}{model:>12}{floor:>12}")
    p = ev.protocol
    lines.append(f"protocol: {p['extractor']} features; {p['generated']:,} generated images vs {p['reference']}")
    if p.get("floor"):
        lines.append(f"real data: {p['floor']} vs the same reference")
    for note in ("reference_read", "alpha", "skipped", "scale"):
        if p.get(note):
            lines.append(p[note])
    if p.get("extractor_check"):
        from gankit.metrics.sensitivity import summarise_check
        lines.append(summarise_check(p["extractor_check"], p["extractor_check"].get("file")))
    elif p.get("extractor_check_missing"):
        lines.append(p["extractor_check_missing"])
    return "\n".join(lines)


# The columns of a truncation sweep: the scores that trade fidelity (FID, precision) against
# variety (recall, coverage), which is what psi moves.
TRUNCATION_COLUMNS = [("fid", "FID", "{:.2f}"), ("precision", "precision", "{:.3f}"), ("recall", "recall", "{:.3f}"),
                      ("density", "density", "{:.3f}"), ("coverage", "coverage", "{:.3f}")]


def format_truncation_table(psis: list[float], evaluations: list[Evaluation]) -> str:
    """A row per truncation psi (the same latents, pulled toward the mean), the real-data floor
    last; then the protocol of the first (they share extractor, reference and image count)."""
    shown = [(key, label, fmt) for key, label, fmt in TRUNCATION_COLUMNS
             if any(key in ev.metrics for ev in evaluations)]
    lines = [f"{'truncation':<12}" + "".join(f"{label:>11}" for _, label, _ in shown)]
    for psi, ev in zip(psis, evaluations):
        lines.append(f"{psi:<12g}" + "".join(f"{fmt.format(ev.metrics[k]) if k in ev.metrics else '-':>11}"
                                             for k, _, fmt in shown))
    floor = evaluations[0].floor if evaluations else {}
    if floor:
        lines.append(f"{'real data':<12}" + "".join(f"{fmt.format(floor[k]) if k in floor else '-':>11}"
                                                   for k, _, fmt in shown))
    p = evaluations[0].protocol
    lines.append(f"protocol: {p['extractor']} features; {p['generated']:,} generated images per row (the same "
                 f"latents, scaled by psi) vs {p['reference']}")
    if p.get("floor"):
        lines.append(f"real data: {p['floor']} vs the same reference")
    return "\n".join(lines)
