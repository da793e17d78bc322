"""The model card of an exported generator: README.md, what a person reads first in the folder.

It says what the generator was trained on, with which recipe, for how long (images seen), how
it scored (each score beside the real-data floor, with its protocol), shows a sample grid, and
how to use the folder. The YAML header is the metadata model hubs read (library, tags, task).
Local paths (where the data or the run lived) stay out: the card is meant to travel.
"""

from __future__ import annotations

import json
from pathlib import Path

from gankit.run.rundir import RunDir, best_eval, eval_records

SAMPLE_GRID = "sample.png"
# The scores a card shows, in the order of `gankit eval`'s table, with their labels.
SCORES = [("fid", "FID"), ("kid", "KID"), ("precision", "precision"), ("recall", "recall"),
          ("density", "density"), ("coverage", "coverage"), ("inception_score", "Inception Score"),
          ("classes_missing", "classes missing"), ("accuracy", "class accuracy")]


def sample_grid_args(num_classes: int) -> dict:
    """How the card's sample grid is drawn (TrainedGenerator.grid's n and by_class): 64 images, or
    for a conditional G a row per class; the caption gives the same as a `gankit sample` command."""
    return {"n": max(1, 64 // num_classes), "by_class": True} if num_classes else {"n": 64, "by_class": False}


def _sample_command(folder_name: str, num_classes: int) -> str:
    args = sample_grid_args(num_classes)
    return (f"gankit sample {folder_name} -n {args['n']}{' --by-class' if args['by_class'] else ''} --seed 0 "
            f"--scale 2 --out grid.png")


def _number(value) -> str:
    if isinstance(value, bool) or value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _scores_table(metrics: dict, floor: dict) -> list[str]:
    rows = [f"| {label} | {_number(metrics[k])} | {_number(floor.get(k))} |" for k, label in SCORES if k in metrics]
    return ["| metric | this generator | real data (floor) |", "|---|---:|---:|", *rows] if rows else []


def _scores_section(eval_json: dict | None, records: list[dict]) -> list[str]:
    """`gankit eval`'s latest result (eval.json) and the best evaluation during training."""
    lines = ["## Scores", ""]
    if eval_json and eval_json.get("metrics"):
        p = eval_json.get("protocol") or {}
        lines += ["From `gankit eval` (the run's eval.json):", "", *_scores_table(eval_json["metrics"],
                                                                                eval_json.get("floor") or {}), ""]
        lines.append(f"Protocol: {p.get('extractor', '?')} features; {_number(p.get('generated'))} generated images "
                     f"vs {p.get('reference', '?')}" + (f"; real data: {p['floor']} vs the same reference"
                                                         if p.get("floor") else "") +
                     (f"; truncation psi {p['truncation']}" if p.get("truncation") is not None else "") + ".")
        scored = str(p.get("scored") or "")
        if " (" in scored:  # "<checkpoint path> (step N, EMA)": the step, not the path
            lines.append(f"Scored: the checkpoint of {scored.split(' (', 1)[1].rstrip(')')}.")
        lines.append("")
    best = best_eval(records)
    if best is not None:
        floor = {k[len("floor_"):]: v for k, v in best.items() if k.startswith("floor_")}
        lines += [f"Best evaluation during training (step {best['step']:,}, {_number(best.get('images_seen'))} "
                  "images seen):", "", *_scores_table(best, floor), "",
                  f"Protocol: the run's own evaluation (--eval-every) of {_number(best.get('eval_n'))} generated "
                  "images from fixed latents, with gankit's classifier features, against the dataset's test "
                  "split; the floor is real images scored the same way.", ""]
    elif eval_records(records):
        lines += ["Evaluated during training, but no FID was recorded.", ""]
    if len(lines) == 2:
        lines += ["Not scored yet: `gankit eval RUN` (or training with `--eval-every`) gives scores with their "
                  "real-data floor.", ""]
    return lines


def render_model_card(description: dict, run_info: dict | None, eval_json: dict | None, records: list[dict],
                      folder_name: str) -> str:
    """The card's Markdown for an export's description (its config.json), the run's config.json
    (None for a checkpoint outside a run), the run's eval.json and metrics.jsonl records."""
    cfg = description["config"]
    data = (run_info or {}).get("dataset") or {}
    classes = int(description.get("num_classes") or 0)
    c, h, w = description["image_shape"]
    preset = (run_info or {}).get("preset")
    images_seen = description.get("images_seen")
    kind = f"class-conditional ({classes} classes, {cfg.get('conditioning')})" if classes else "unconditional"
    lines = ["---", "library_name: gankit", "tags: [gan, generative-adversarial-network, pytorch, safetensors, gankit]",
             "pipeline_tag: unconditional-image-generation", "---", "",
             f"# {cfg['arch']} GAN generator for {cfg['dataset']} ({w}x{h}, {'grey' if c == 1 else f'{c} channels'})",
             "", f"A {kind} generator trained with gankit {description.get('gankit_version', '?')}"
             f"{' (preset `' + preset + '`)' if preset else ''}.", "",
             f"![samples, seed 0]({SAMPLE_GRID})", "",
             f"*Samples drawn with seed 0{', a row per class' if classes else ''}: "
             f"`{_sample_command(folder_name, classes)}`.*", "",
             "## Data", "",
             f"- dataset: `{cfg['dataset']}`" + (f", {data['images']:,} images" if data.get("images") else ""),
             f"- images: {c} x {h} x {w} (channels x height x width), pixels in [-1, 1] inside the nets",
             f"- classes: {classes} (G takes a label)" if classes else "- classes: none (G takes only z)"]
    if cfg.get("classes"):
        lines.append(f"- only classes {', '.join(map(str, cfg['classes']))} of the dataset")
    lines += ["", "## Recipe", "",
              f"- preset: `{preset}`" if preset else "- preset: none (fields set one by one)",
              f"- nets: `{cfg['arch']}`, width {cfg.get('width')}; latent z: {cfg['latent_dim']}-d {cfg['latent_dist']}",
              f"- loss: `{cfg.get('loss')}`; Adam lr G {cfg.get('lr_g')}, D {cfg.get('lr_d')}; batch {cfg.get('batch_size')}",
              f"- weights: {'the EMA copy of G' if description.get('ema') else 'G as trained (no EMA kept)'}",
              "- every field: `config.json`, key `config`", "",
              "## Training", "",
              f"- steps: {description['step']:,}"]
    if images_seen is not None:
        lines.append(f"- real images seen by D: {images_seen:,}")
    lines += ["", *_scores_section(eval_json, records),
              "## Files", "",
              "- `model.safetensors`: G's weights (a PyTorch state dict, no pickle)",
              "- `config.json`: what G is (format `gankit-generator/1`: config, image shape, classes, step)",
              f"- `{SAMPLE_GRID}`: the samples above", "",
              "## Use", "",
              "```sh", "pip install gankit",
              f"gankit sample {folder_name} -n 64 --out grid.png         # also --class K, --truncation 0.7",
              f"gankit serve {folder_name}                               # explore it in a browser", "```", "",
              "```python", "import gankit",
              f'g = gankit.load("{folder_name}")', "images = g.sample(16, seed=0)          # uint8 [16, C, H, W]",
              "```", ""]
    return "\n".join(lines)


def write_model_card(out: Path, description: dict, run_dir: Path | None, sample_grid) -> Path:
    """README.md and the sample grid (a PIL image) into export folder `out`; scores from the run
    directory where there is one."""
    out = Path(out)
    run = RunDir(run_dir) if run_dir is not None else None
    info = None
    if run is not None and run.is_run():
        try:
            info = json.loads(run.config.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            info = None
    eval_json = run.read_eval() if info is not None else None
    records = run.read_metrics() if info is not None else []
    sample_grid.save(out / SAMPLE_GRID)
    card = out / "README.md"
    card.write_text(render_model_card(description, info, eval_json, records, out.name), encoding="utf-8")
    return card

