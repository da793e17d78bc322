"""Runs side by side: what differs between their configs and how well each one did.

`compare_runs(run_dirs, out_html)` returns a fixed-width text table (one column per
run) and can also write a self-contained HTML page with the same table and each
run's final sample grid, so runs of a sweep can be judged at a glance.
"""

from __future__ import annotations

import html
from pathlib import Path

from gankit.atomic import atomic_write_text
from gankit.run.html import data_uri, duration, fmt
from gankit.run.rundir import RunDir, eval_records, finite, training_records

_MISSING = "-"


def _best(run_dir: Path, records: list[dict], key: str, lower_is_better: bool) -> float | None:
    """The best value of `key` over the evaluation lines and eval.json, or None when neither has it."""
    values = finite(r.get(key) for r in eval_records(records))
    result = RunDir(run_dir).read_eval()
    if result:
        values += finite([(result.get("metrics") or {}).get(key)])
    if not values:
        return None
    return min(values) if lower_is_better else max(values)


def _cell(value) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e9:
        return str(int(value))  # 10000, not fmt's 1e+04: configs hold half-lives and step counts
    return fmt(value, sep=",")


def _summaries(run_dirs: list) -> tuple[list[str], list[list[str]], list[Path | None]]:
    """Row labels, one column of cells per run, and each run's final grid (or None)."""
    dirs = [Path(d) for d in run_dirs]
    infos = [RunDir(d).read_info() for d in dirs]  # UserError naming the first path that is not a run
    configs = [info.get("config") or {} for info in infos]
    fields = sorted({k for c in configs for k in c})
    # Only fields that differ between the runs: the rest is shared and would bury the signal.
    # (dataset has a row of its own above them: the name the run resolved, for every run.)
    differing = [f for f in fields if f != "dataset" and len({repr(c.get(f)) for c in configs}) > 1]

    labels = ["run", "preset", "dataset", *differing, "steps done", "training time", "best FID", "best KID",
              "best coverage"]
    columns, grids = [], []
    for d, info, config in zip(dirs, infos, configs):
        records = RunDir(d).read_metrics()
        train = training_records(records)
        last = train[-1] if train else {}
        seconds = finite([last.get("time_s")])
        columns.append([
            d.name, info.get("preset") or "custom",
            (info.get("dataset") or {}).get("name") or config.get("dataset", _MISSING),
            *[_cell(config.get(f)) for f in differing],
            f"{last.get('step', 0)}/{info.get('total_steps', '?')}",
            duration(seconds[0]) if seconds else _MISSING,
            _cell(_best(d, records, "fid", True)), _cell(_best(d, records, "kid", True)),
            _cell(_best(d, records, "coverage", False)),
        ])
        frames = RunDir(d).sample_frames()
        grids.append(frames[-1][1] if frames else None)
    return labels, columns, grids


def _text_table(labels: list[str], columns: list[list[str]]) -> str:
    """Left column the labels, then one left-aligned column per run, each as wide as its widest cell."""
    widths = [max(map(len, labels))] + [max(map(len, col)) for col in columns]
    lines = []
    for i, label in enumerate(labels):
        cells = [label] + [col[i] for col in columns]
        lines.append("  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _html_page(labels: list[str], columns: list[list[str]], grids: list[Path | None]) -> str:
    e = html.escape
    head = "".join(f"<th>{e(col[0])}</th>" for col in columns)
    rows = "".join(f"<tr><th>{e(label)}</th>" + "".join(f"<td>{e(col[i])}</td>" for col in columns) + "</tr>"
                   for i, label in enumerate(labels) if i > 0)
    figures = "".join(
        f'<figure><img alt="final samples of {e(col[0])}" src="{data_uri(g.read_bytes())}">'
        f"<figcaption>{e(col[0])} (step {int(g.stem.split('_')[1])})</figcaption></figure>"
        if g is not None
        else f'<figure><p class="nodata">no samples yet</p><figcaption>{e(col[0])}</figcaption></figure>'
        for col, g in zip(columns, grids))
    css = ("body{font-family:system-ui,sans-serif;margin:1em;color:#222}table{border-collapse:collapse}"
           "td,th{border:1px solid #ddd;padding:2px 8px;text-align:left}.grids{display:flex;flex-wrap:wrap;gap:1em}"
           "figure{margin:0}img{image-rendering:pixelated;width:320px}.nodata{color:#888;font-style:italic}")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>gankit: {len(columns)} runs compared'
            f"</title><style>{css}</style></head><body><h1>{len(columns)} runs compared</h1>"
            f"<table><thead><tr><th>run</th>{head}</tr></thead><tbody>{rows}</tbody></table>"
            f'<h2>Final sample grids</h2><div class="grids">{figures}</div></body></html>\n')


def compare_runs(run_dirs: list, out_html: Path | None = None) -> str:
    """A fixed-width text table of the runs side by side; also an HTML page when `out_html` is given.

    Rows: run name, preset, dataset, the config fields whose values differ between the
    runs (only those), steps done / planned, training time, and the best FID, KID
    (lowest) and coverage (highest) from evaluation lines or eval.json ('-' if none).
    A path that is not a run directory raises UserError naming it.
    """
    labels, columns, grids = _summaries(run_dirs)
    table = _text_table(labels, columns)
    if out_html is not None:
        atomic_write_text(Path(out_html), _html_page(labels, columns, grids))
    return table

