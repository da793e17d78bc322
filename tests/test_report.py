"""The run report (gankit.run.report) and the side-by-side comparison (gankit.run.compare)."""

import json
import re
import shutil

import numpy as np
import pytest

from gankit import cli
from gankit.errors import UserError
from gankit.presets import preset
from gankit.run import pictures as viz
from gankit.run.compare import compare_runs
from gankit.run.report import MAX_FRAMES, health_warnings, write_report

TINY = ["--steps", "60", "--width", "8", "--batch-size", "16", "--log-every", "5", "--sample-every", "20",
        "--sample-every-early", "10", "--checkpoint-every", "30", "-q"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two tiny runs that differ in --lr-d; the first also evaluates during training."""
    root = tmp_path_factory.mktemp("runs")
    a, b = root / "fast-d", root / "slow-d"
    assert cli.main(["train", "--out", str(a), *TINY, "--eval-every", "30", "--eval-n", "200"]) == 0
    assert cli.main(["train", "--out", str(b), *TINY, "--steps", "20", "--lr-d", "1e-4"]) == 0
    return a, b


def _section(page: str, sid: str) -> str:
    match = re.search(rf'<section id="{sid}">(.*?)</section>', page, re.S)
    assert match, f"no section {sid}"
    return match.group(1)


def _frame_steps(page: str) -> list[int]:
    """Steps of the slider's frames, from the JSON the page's script reads."""
    match = re.search(r'<script type="application/json" id="frames-data">(.*?)</script>', page, re.S)
    frames = json.loads(match.group(1))
    assert all(f["src"].startswith("data:image/png;base64,") for f in frames)
    return [f["step"] for f in frames]


def test_report_is_self_contained_with_slider_and_sections(runs):
    run = runs[0]
    path = write_report(run)
    assert path == run / "report.html"
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    for external in ("http://", "https://", 'src="/', "src='/"):
        assert external not in page
    # Every image is inline.
    assert re.findall(r'src="([^"]*)"', page) and all(s.startswith("data:image/png;base64,")
                                                       for s in re.findall(r'src="([^"]*)"', page))
    n_grids = len(list((run / "samples").glob("step_*.png")))
    frames = _frame_steps(page)
    assert len(frames) == min(n_grids, MAX_FRAMES) and frames[-1] == 60
    assert f'type="range" id="frame-slider" min="0" max="{len(frames) - 1}"' in page
    assert "default on mnist-5k" in page  # title names preset and dataset
    assert "lr_d" in _section(page, "config") and "batch_size" in _section(page, "config")
    assert "no data yet" not in _section(page, "losses")
    evaluation = _section(page, "evaluation")
    best = min((r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "eval_n" in r),
               key=lambda r: r["fid"])
    assert f"at step <b>{best['step']}</b>" in evaluation
    assert "<li>" in _section(page, "warnings") or "no warnings" in _section(page, "warnings")
    assert f"gankit train --resume {run}" in page
    assert f"gankit sample {run} -n 64 --out grid.png" in page and f"gankit eval {run}" in page
    assert path.stat().st_size < 5_000_000
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]  # the temporary file is gone


def test_slider_is_capped_to_evenly_spaced_frames(runs, tmp_path):
    run = tmp_path / "many"
    shutil.copytree(runs[0], run)
    grid = (run / "samples" / "step_00000060.png").read_bytes()
    for step in range(100, 10_000, 100):  # 99 more grids
        (run / "samples" / f"step_{step:08d}.png").write_bytes(grid)
    page = write_report(run).read_text(encoding="utf-8")
    steps = _frame_steps(page)
    assert len(steps) == MAX_FRAMES and steps[0] == 0 and steps[-1] == 9900
    assert steps == sorted(set(steps))


def test_report_on_a_run_with_one_sample_and_no_metrics(runs, tmp_path):
    run = tmp_path / "fresh"
    (run / "samples").mkdir(parents=True)
    shutil.copy(runs[0] / "config.json", run)
    shutil.copy(runs[0] / "samples" / "step_00000000.png", run / "samples")
    page = write_report(run).read_text(encoding="utf-8")
    for sid in ("losses", "evaluation", "eval-json", "throughput"):
        assert "no data yet" in _section(page, sid)
    assert _frame_steps(page) == [0]


def test_report_without_evaluation(runs):
    page = write_report(runs[1]).read_text(encoding="utf-8")
    assert "no data yet" in _section(page, "evaluation")
    assert "no data yet" not in _section(page, "losses")


def test_report_of_a_non_run_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="not-a-run"):
        write_report(tmp_path / "not-a-run")


def _records(n=40, **overrides):
    """Healthy-looking log lines: D near chance, G loss flat."""
    rng = np.random.default_rng(0)
    recs = []
    for i in range(n):
        r = {"step": 5 * (i + 1), "d_loss": 1.3, "g_loss": 0.8 + 0.05 * rng.standard_normal(), "d_real": 0.55,
             "d_fake": 0.45, "d_acc_real": 0.6, "d_acc_fake": 0.6, "images_per_s": 1000.0, "time_s": i}
        r.update({k: f(i) if callable(f) else f for k, f in overrides.items()})
        recs.append(r)
    return recs


def _grid_png(path, images):
    viz.save_grid(images, path, scale=2)
    return path


def test_health_warnings_quiet_on_a_healthy_run(tmp_path):
    rng = np.random.default_rng(1)
    varied = _grid_png(tmp_path / "g.png", rng.integers(0, 256, (16, 1, 28, 28), dtype=np.uint8))
    assert health_warnings(_records(), varied, [1, 28, 28]) == []
    assert health_warnings([]) == []


@pytest.mark.parametrize("records, expect", [
    (_records(d_acc_fake=lambda i: 1.0 if i >= 30 else 0.6), "D overpowering G"),
    (_records(d_fake=lambda i: 0.001 if i >= 30 else 0.45), "D(G(z))"),
    (_records(g_loss=lambda i: 0.5 + 0.1 * i), "G loss rising"),
    (_records() + [{"event": "rollback", "reason": "d_loss is nan", "diverged_at": 123, "step": 100}], "rollback"),
])
def test_health_warnings_each_rule(records, expect):
    warnings = health_warnings(records)
    assert len(warnings) == 1 and expect in warnings[0]


def test_health_warning_for_collapsed_samples(tmp_path):
    digit = np.random.default_rng(2).integers(0, 256, (1, 1, 28, 28), dtype=np.uint8)
    same = _grid_png(tmp_path / "same.png", np.repeat(digit, 16, axis=0))  # every sample identical
    warnings = health_warnings(_records(), same, [1, 28, 28])
    assert len(warnings) == 1 and "barely differ" in warnings[0]


def _parse_table(table: str) -> dict:
    """Label -> cells, cutting each line at the column boundaries the dashed rule shows."""
    lines = table.splitlines()
    spans = [m.span() for m in re.finditer(r"-+", lines[1])]
    rows = {}
    for line in [lines[0], *lines[2:]]:
        cells = [line[lo:hi + 2].strip() for lo, hi in spans]
        rows[cells[0]] = cells[1:]
    return rows


def test_compare_runs_shows_only_differing_fields(runs, tmp_path):
    a, b = runs
    out = tmp_path / "compare.html"
    table = compare_runs([a, b], out)
    rows = _parse_table(table)
    assert rows["run"] == ["fast-d", "slow-d"]
    assert rows["lr_d"] == [f"{preset('default')['lr_d']:g}", "0.0001"]  # the default preset's, and --lr-d 1e-4
    assert "batch_size" not in rows and "width" not in rows  # shared values are left out
    assert rows["best FID"][0] != "-" and rows["best FID"][1] == "-"  # only the first run evaluated
    assert rows["steps done"] == ["60/60", "20/20"]
    page = out.read_text(encoding="utf-8")
    assert "fast-d" in page and "slow-d" in page and "http" not in page
    assert page.count('src="data:image/png;base64,') == 2


def test_compare_runs_names_a_bad_path(runs, tmp_path):
    with pytest.raises(UserError, match="nowhere"):
        compare_runs([runs[0], tmp_path / "nowhere"], None)


def test_eval_json_is_shown_and_counted(runs, tmp_path):
    run = tmp_path / "scored"
    shutil.copytree(runs[1], run)
    (run / "eval.json").write_text(json.dumps({
        "protocol": {"extractor": "classifier:mnist-5k (128-d)", "generated": 200},
        "metrics": {"fid": 42.5, "kid": 3.25, "coverage": 0.5, "class_share": [0.5, 0.5]},
        "floor": {"fid": 11.0, "kid": 2.9, "coverage": 0.3}}))
    section = _section(write_report(run).read_text(encoding="utf-8"), "eval-json")
    assert "classifier:mnist-5k (128-d)" in section and "42.5" in section and "11" in section
    rows = _parse_table(compare_runs([run], None))
    assert rows["best FID"] == ["42.5"] and rows["best coverage"] == ["0.5"]
