"""One self-contained HTML page per run: what was trained, how it went, and how to go on.

`write_report(run_dir)` reads only the files a run directory holds (config.json,
metrics.jsonl, samples/, eval.json) and writes ``run_dir/report.html``. Every image
is inlined as a base64 data URI and the page loads nothing from anywhere, so it can
be mailed, archived or opened offline. Sections with nothing to show yet say so, which
lets the trainer refresh the page from the very first sample on.
"""

from __future__ import annotations

import json
import math
import shlex
import statistics
from pathlib import Path

import numpy as np
from PIL import Image

from gankit.run import pictures as viz
from gankit.run.html import data_uri, duration, escape, fmt, image_uri, table
from gankit.run.rundir import RunDir, best_eval, eval_records, finite, training_records

MAX_FRAMES = 40  # sample grids in the slider: enough to see progress, few enough to keep the page small
_PLOT_SIZE = (900, 260)

# Thresholds of the health rules; each rule in health_warnings() says why its value.
_TAIL = 0.2             # "late in training" = the last 20% of logged steps
_D_ACC_FAKE_MAX = 0.99  # D right on >99% of fakes: G's gradients are vanishing
_D_FAKE_MIN = 0.01      # D(G(z)) below 1%: same symptom seen through D's output
_G_RISE = 1.5           # G loss in the last quarter 1.5x its second-quarter level
_COLLAPSE_STD = 2.0     # per-pixel std across samples, in 0..255 grey levels


# --------------------------------------------------------------------------- reading a run


def _evenly_spaced(items: list, k: int) -> list:
    """At most k items spread over the list, always keeping the first and the last."""
    if len(items) <= k:
        return list(items)
    picks = sorted({round(i * (len(items) - 1) / (k - 1)) for i in range(k)})
    return [items[i] for i in picks]


def _grid_tiles(grid: np.ndarray, image_shape) -> np.ndarray | None:
    """Cut a sample grid (as drawn by viz.grid with padding 2, maybe enlarged) into its tiles.

    The grid's scale is not stored, so try the small integer scales and keep the one
    under which the grid's size is exactly a whole number of padded cells.
    """
    h, w = int(image_shape[-2]), int(image_shape[-1])
    pad = 2
    for scale in (1, 2, 3, 4):
        if grid.shape[0] % scale or grid.shape[1] % scale:
            continue
        small = grid[::scale, ::scale]
        rows, rem_r = divmod(small.shape[0] - pad, h + pad)
        cols, rem_c = divmod(small.shape[1] - pad, w + pad)
        if rem_r == 0 and rem_c == 0 and rows >= 1 and cols >= 1:
            tiles = [small[pad + r * (h + pad):pad + r * (h + pad) + h, pad + c * (w + pad):pad + c * (w + pad) + w]
                     for r in range(rows) for c in range(cols)]
            return np.stack(tiles).astype(np.float64)
    return None


def sample_spread(grid_png: Path, image_shape=None) -> float:
    """Mean over pixels of the std across the grid's samples, in grey levels 0..255.

    Near zero means every sample is the same picture (mode collapse) or a blank one.
    Without a known image shape (or when the grid does not fit it), the std of the
    whole grid is used instead, which still catches blank or constant grids.
    """
    with Image.open(grid_png) as im:
        grid = np.asarray(im.convert("L"))
    tiles = _grid_tiles(grid, image_shape) if image_shape else None
    if tiles is None or len(tiles) < 2:
        return float(grid.astype(np.float64).std())
    return float(tiles.std(axis=0).mean())


def health_warnings(records: list[dict], grid_png: Path | None = None, image_shape=None) -> list[str]:
    """Plain-language warnings about a run, from its metrics.jsonl records and latest sample grid.

    Each rule is a simple threshold a reader can check by eye on the curves:

    - D accuracy on fakes above 0.99 on average over the last 20% of logged steps: D
      wins so easily that G's gradients vanish (D overpowering G).
    - mean D(G(z)) below 0.01 over the same tail: the same failure seen through D's output.
    - G loss rising steadily: the means of the four quarters of the log go up each
      time and the last is 1.5x the second (the first quarter is start-up noise).
    - rollbacks happened: the run diverged and was restarted from a checkpoint.
    - the samples of the latest grid barely differ from each other (per-pixel std
      across samples under 2 grey levels): mode collapse, or G draws blank images.
    """
    warnings = []
    train = training_records(records)
    tail = train[-max(1, math.ceil(len(train) * _TAIL)):] if train else []

    acc_fake = finite(r.get("d_acc_fake") for r in tail)
    if acc_fake and statistics.fmean(acc_fake) > _D_ACC_FAKE_MAX:
        warnings.append(f"D overpowering G: D accuracy on fakes averages {statistics.fmean(acc_fake):.3f} "
                        f"over the last {len(tail)} logged steps (> {_D_ACC_FAKE_MAX}); try a lower --lr-d, "
                        "--label-flip or --instance-noise")
    d_fake = finite(r.get("d_fake") for r in tail)
    if d_fake and statistics.fmean(d_fake) < _D_FAKE_MIN:
        warnings.append(f"D(G(z)) averages {statistics.fmean(d_fake):.4f} over the last {len(tail)} logged "
                        f"steps (< {_D_FAKE_MIN}): D rejects every fake, so G learns little")

    g_loss = finite(r.get("g_loss") for r in train)
    if len(g_loss) >= 8:
        q = len(g_loss) // 4
        means = [statistics.fmean(g_loss[i * q:(i + 1) * q if i < 3 else len(g_loss)]) for i in range(4)]
        if means[1] < means[2] < means[3] and means[3] > _G_RISE * abs(means[1]):
            warnings.append("G loss rising steadily: quarter means " + ", ".join(f"{m:.3g}" for m in means))

    live = [r.get("message", "") for r in records if r.get("event") == "warning"]
    if live:  # what the trainer printed as it happened (gankit.training.health), the latest three
        warnings.append(f"{len(live)} warning(s) during training, latest: " + " | ".join(live[-3:]))

    rollbacks = [r for r in records if r.get("event") == "rollback"]
    if rollbacks:
        reasons = "; ".join(f"step {r.get('diverged_at', '?')}: {r.get('reason', '?')}" for r in rollbacks)
        warnings.append(f"{len(rollbacks)} rollback(s) after divergence ({reasons})")

    if grid_png is not None and Path(grid_png).is_file():
        spread = sample_spread(Path(grid_png), image_shape)
        if spread < _COLLAPSE_STD:
            warnings.append(f"samples in {Path(grid_png).name} barely differ (pixel std across samples "
                            f"{spread:.2f} < {_COLLAPSE_STD} grey levels): mode collapse or blank output")
    return warnings


# --------------------------------------------------------------------------- HTML pieces


def _plot(series: dict, title: str, xlabel: str = "step") -> str:
    """A line_plot panel as an inline <img>; line_plot itself draws "no data yet" when empty."""
    image = viz.line_plot(series, None, title=title, xlabel=xlabel, size=_PLOT_SIZE)
    return f'<img class="plot" alt="{escape(title)}" src="{image_uri(image)}">'


def _series(records: list[dict], keys, names=None) -> dict:
    steps = [r.get("step") for r in records]
    return {(names or {}).get(k, k): (steps, [r.get(k) for r in records]) for k in keys}


def _ada_plot(train: list[dict], target) -> str:
    """ADA's p beside the r_t it follows and the target it holds r_t to; nothing for runs without ADA."""
    if not any("ada_p" in r for r in train):
        return ""
    series = _series(train, ["ada_p", "d_sign_real"], {"ada_p": "augmentation probability p",
                                                       "d_sign_real": "r_t = E[sign D(x)]"})
    if isinstance(target, (int, float)):
        series["target r_t"] = ([r.get("step") for r in train], [target] * len(train))
    return _plot(series, "Adaptive augmentation (ADA): p rises while r_t is above its target")


def _no_data(what: str) -> str:
    return f'<p class="nodata">no data yet: {escape(what)}</p>'


def _preset_values(preset: str | None) -> dict | None:
    """The full config the preset alone gives (JSON-shaped, like config.json), or None if unknown."""
    from gankit.config import make_config
    from gankit.presets import preset as preset_overrides
    try:
        return json.loads(make_config(preset_overrides(preset or "default")).to_json())
    except Exception:  # a preset renamed since the run: show the config without the comparison
        return None


def _config_section(info: dict) -> str:
    config = info.get("config") or {}
    base = _preset_values(info.get("preset"))
    if base is None:
        return table(["field", "value"], [[k, fmt(v)] for k, v in config.items()], "config")
    changed = [[k, fmt(v), fmt(base.get(k))] for k, v in config.items() if base.get(k) != v]
    out = (table(["field", "this run", f"preset {info.get('preset') or 'default'}"], changed, "config")
           if changed else "<p>no overrides: the preset's values throughout</p>")
    full = table(["field", "value"], [[k, fmt(v)] for k, v in config.items()], "config")
    return out + f"<details><summary>all {len(config)} fields</summary>{full}</details>"


def _environment_section(info: dict) -> str:
    env = info.get("environment") or {}
    ds = info.get("dataset") or {}
    rows = [["gankit", info.get("gankit_version", "-")], ["torch", env.get("torch", "-")],
            ["python", env.get("python", "-")], ["device", env.get("device", "-")],
            ["created", info.get("created", "-")],
            ["dataset", f"{ds.get('name', '-')}: {fmt(ds.get('images'))} images of shape "
                        f"{fmt(ds.get('image_shape'))}, {fmt(ds.get('num_classes'))} classes"],
            ["data source", ds.get("source", "-")]]
    return table(["", ""], rows, "kv")


def _samples_section(frames: list[tuple[int, Path]]) -> str:
    """The slider: one <img> whose src the script swaps, the frames kept as JSON data beside it.

    One image rather than one per frame keeps the page light to lay out and means the
    picture shown is always the one the slider names.
    """
    if not frames:
        return _no_data("no sample grid written yet")
    shown = _evenly_spaced(frames, MAX_FRAMES)
    data = [{"step": step, "src": data_uri(path.read_bytes())} for step, path in shown]
    # "</" cannot occur in base64 or digits, but escape it anyway so the JSON can never end the <script>.
    payload = json.dumps(data).replace("</", "<\\/")
    last_step, last_path = frames[-1]
    last_src = data[-1]["src"]
    return (f'<div class="slider"><label for="frame-slider">step <output id="frame-step">{shown[-1][0]}</output>'
            f' ({len(shown)} of {len(frames)} grids)</label><br>'
            f'<input type="range" id="frame-slider" min="0" max="{len(shown) - 1}" value="{len(shown) - 1}" step="1">'
            f'<br><img id="frame" class="frame" alt="samples at step {shown[-1][0]}" src="{last_src}">'
            f'<script type="application/json" id="frames-data">{payload}</script></div>'
            f'<h3>Final grid (step {last_step})</h3>'
            f'<img class="final" alt="samples at step {last_step}" src="{data_uri(last_path.read_bytes())}">')


def _eval_section(records: list[dict]) -> str:
    evals = eval_records(records)
    if not evals:
        return _no_data("no evaluation during training (train with --eval-every N to score as it goes)")
    best = best_eval(records)
    named = (f"<p>best FID <b>{best['fid']:.4g}</b> at step <b>{best['step']}</b> "
             f"(checkpoints/best.pt)</p>") if best else ""
    floor = {"fid": "floor_fid", "kid": "floor_kid", "coverage": "floor_coverage"}
    panels = "".join(
        _plot(_series(evals, [k, f], {k: name, f: "real data"}), f"{name} during training")
        for (k, f), name in zip(floor.items(), ("FID", "KID", "coverage")))
    panels += _quality_over_time(evals)
    rows = [[r.get("step"), fmt(r.get("images_seen")), _minutes(r.get("time_s")), fmt(r.get("fid")),
             fmt(r.get("kid")), fmt(r.get("coverage")), fmt(r.get("density")), fmt(r.get("eval_n")),
             fmt(r.get("eval_s"))] for r in evals]
    spent = sum(r.get("eval_s") or 0 for r in evals)
    cost = (f"<p>evaluation took {duration(spent)} in all, kept off the training clock "
            f"(the minutes above are training time)</p>") if spent else ""
    extractor = next((r["extractor"] for r in reversed(evals) if r.get("extractor")), None)
    named += f"<p>features: {escape(extractor)}</p>" if extractor else ""
    return named + panels + cost + table(
        ["step", "images seen", "minutes", "FID", "KID", "coverage", "density", "images scored", "eval s"],
        rows, "num")


def _minutes(seconds) -> str:
    return f"{seconds / 60:.2f}" if isinstance(seconds, (int, float)) else "-"


def _quality_over_time(evals: list[dict]) -> str:
    """FID against training minutes and against images seen: the curves that compare recipes in a
    user's time and in data, whatever a step costs."""
    if not any("fid" in r for r in evals):
        return ""
    minutes = [r["time_s"] / 60 if isinstance(r.get("time_s"), (int, float)) else None for r in evals]
    images = [r.get("images_seen") for r in evals]
    fids, floors = [r.get("fid") for r in evals], [r.get("floor_fid") for r in evals]
    return (_plot({"FID": (minutes, fids), "real data": (minutes, floors)}, "FID against training time",
                  "minutes of training")
            + _plot({"FID": (images, fids), "real data": (images, floors)}, "FID against images seen",
                    "real images seen"))


def _eval_json_section(result: dict | None) -> str:
    if not result:
        return _no_data("no eval.json (run `gankit eval RUN` to score a checkpoint)")
    metrics, floor = result.get("metrics") or {}, result.get("floor") or {}
    scalar = [k for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    rows = [[k, fmt(metrics[k]), fmt(floor.get(k))] for k in scalar]
    protocol = result.get("protocol") or {}
    proto = table(["protocol", ""], [[k, fmt(v)] for k, v in protocol.items()], "kv")
    return table(["metric", "model", "real data"], rows, "num") + proto


def _throughput_section(info: dict, records: list[dict]) -> str:
    train = training_records(records)
    if not train:
        return _no_data("no training steps logged yet")
    rates = finite(r.get("images_per_s") for r in train)
    last = train[-1]
    seconds = finite([last.get("time_s")])
    rows = [["steps", f"{last.get('step')} of {info.get('total_steps', '?')}"],
            ["images seen", f"{last.get('images_seen', 0):,}"],
            ["training time", duration(seconds[0]) if seconds else "-"],
            ["median images/s", f"{statistics.median(rates):,.0f}" if rates else "-"]]
    return table(["", ""], rows, "kv")


def _warnings_section(warnings: list[str]) -> str:
    if not warnings:
        return '<p class="ok">no warnings</p>'
    return '<ul class="warn">' + "".join(f"<li>{escape(w)}</li>" for w in warnings) + "</ul>"


_CSS = """
body{font-family:system-ui,sans-serif;max-width:960px;margin:1em auto;padding:0 1em;color:#222}
h1{font-size:1.5em}h2{border-bottom:1px solid #ccc;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}td,th{border:1px solid #ddd;padding:2px 8px;text-align:left}
table.num td+td{text-align:right}img.plot{max-width:100%;display:block;margin:.4em 0}
img.frame,img.final{image-rendering:pixelated;max-width:100%}img.frame{width:384px}img.final{width:640px}
pre{background:#f4f4f4;padding:.6em;overflow-x:auto}.nodata{color:#888;font-style:italic}
.warn li{color:#a40000}.ok{color:#2a7a2a}input[type=range]{width:384px}
"""

# Swaps the slider's image. It does nothing on a page whose samples section says "no data yet"
# (no slider there), so a fresh run's page has no console errors either.
_JS = """
(function () {
  var slider = document.getElementById("frame-slider");
  var data = document.getElementById("frames-data");
  if (!slider || !data) return;
  var frames = JSON.parse(data.textContent);
  var image = document.getElementById("frame");
  var label = document.getElementById("frame-step");
  function show() {
    var frame = frames[Number(slider.value)];
    image.src = frame.src;
    image.alt = "samples at step " + frame.step;
    label.textContent = frame.step;
  }
  slider.addEventListener("input", show);
})();
"""


def render_report(run_dir: Path) -> str:
    """The report page of `run_dir` as an HTML string (see write_report)."""
    rd = RunDir(run_dir)
    info = rd.read_info()
    records = rd.read_metrics()
    frames = rd.sample_frames()
    image_shape = (info.get("dataset") or {}).get("image_shape")
    warnings = health_warnings(records, frames[-1][1] if frames else None, image_shape)
    train = training_records(records)
    preset = info.get("preset") or "custom"
    dataset = (info.get("dataset") or {}).get("name") or (info.get("config") or {}).get("dataset", "?")
    title = f"gankit run {rd.path.name}: {preset} on {dataset}"
    run = shlex.quote(str(rd.path))
    commands = "\n".join([f"gankit train --resume {run}", f"gankit sample {run} -n 64 --out grid.png",
                          f"gankit eval {run}"])
    disc = (_plot(_series(train, ["d_real", "d_fake"], {"d_real": "D(x)", "d_fake": "D(G(z))"}),
                  "D output on real vs fake")
            + _plot(_series(train, ["d_acc_real", "d_acc_fake"], {"d_acc_real": "real", "d_acc_fake": "fake"}),
                    "D accuracy")
            + _plot(_series(train, ["d_sign_real", "d_acc_train_probe", "d_acc_heldout"],
                            {"d_sign_real": "r_t = E[sign D(x)]", "d_acc_train_probe": "training images called real",
                             "d_acc_heldout": "held-out images called real"}),
                    "D overfitting: training vs held-out real images")
            + _ada_plot(train, (info.get("config") or {}).get("ada_target")))
    sections = [
        ("warnings", "Health warnings", _warnings_section(warnings)),
        ("samples", "Samples over training", _samples_section(frames)),
        ("losses", "Losses", _plot(_series(train, ["d_loss", "g_loss"]), "losses")
         if train else _no_data("no training steps logged yet")),
        ("discriminator", "Discriminator", disc if train else _no_data("no training steps logged yet")),
        ("evaluation", "Evaluation during training", _eval_section(records)),
        ("eval-json", "gankit eval result", _eval_json_section(rd.read_eval())),
        ("throughput", "Throughput", _throughput_section(info, records)),
        ("config", "Config", _config_section(info)),
        ("environment", "Environment", _environment_section(info)),
        ("continue", "How to continue", f"<pre>{escape(commands)}</pre>"),
    ]
    body = "".join(f'<section id="{sid}"><h2>{escape(head)}</h2>{content}</section>' for sid, head, content in sections)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)}</title><style>{_CSS}</style></head>"
            f"<body><h1>{escape(title)}</h1>{body}<script>{_JS}</script></body></html>\n")


def write_report(run_dir) -> Path:
    """Write ``run_dir/report.html``, a self-contained page about the run, and return its path.

    Shows: title with preset and dataset, health warnings, sample grids over time behind a
    slider (at most MAX_FRAMES, evenly spaced) and the final grid large, loss curves, D's
    outputs and accuracy on real and fake images, FID/KID/coverage during training with
    the best step, the `gankit eval` result, throughput, the config (overrides of the
    preset first), the environment and the commands to continue. Works on a run that
    has only config.json; raises UserError when `run_dir` is not a run directory.
    """
    return RunDir(run_dir).write_report(render_report(run_dir))
