"""Quality over time in one run: evaluation by training minutes (--eval-at-minutes), with an
extractor file (--eval-evaluator), its time kept off the training clock, and the curves in the report."""

from __future__ import annotations

import json
import time

import pytest
import torch

import gankit
from gankit.cli import main
from gankit.errors import UserError
from gankit.training.eval_marks import MinuteMarks
from gankit.training.periodic_eval import TrainingEvaluator

TINY = dict(width=8, batch_size=16, log_every=5, sample_every=10_000, sample_every_early=10_000, sample_grid=4,
            checkpoint_every=10_000, eval_n=32, eval_metrics="fid,coverage", quiet=True)
SLEEP = 3.0  # a slow evaluation, far longer than the gap between the two marks


def test_marks_fire_once_each_and_a_resumed_run_skips_the_passed_ones():
    marks = MinuteMarks((2.0, 1.0, 5.0))
    assert [marks.due(s) for s in (30, 60, 61, 119)] == [None, 1.0, None, None]
    assert marks.due(400) == 5.0 and marks.pending == []  # 2 and 5 passed together: one evaluation
    assert MinuteMarks((1.0, 2.0, 5.0), seconds_done=150).pending == [5.0]


def eval_lines(run_dir):
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in records if "eval_n" in r]


@pytest.fixture(scope="module")
def timed_run(tmp_path_factory):
    """A run evaluated at 0.02 and 0.04 minutes of training (1.2 s and 2.4 s) by an evaluation that
    takes SLEEP s more than it would, then stopped by --max-minutes 0.06."""
    out = tmp_path_factory.mktemp("curves") / "run"
    original = TrainingEvaluator._evaluate

    def slow(self, *args, **kwargs):
        original(self, *args, **kwargs)
        time.sleep(SLEEP)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(TrainingEvaluator, "_evaluate", slow)
        run = gankit.train(out=out, steps=100_000, max_minutes=0.06, eval_at_minutes="0.02,0.04", **TINY)
    return run


def test_evaluations_fall_at_the_minute_marks_of_training_time(timed_run):
    evals = eval_lines(timed_run.run_dir)
    assert [r["mark_minutes"] for r in evals] == [0.02, 0.04]
    first, second = evals
    assert 1.2 <= first["time_s"] < second["time_s"] and 2.4 <= second["time_s"]
    # Had the slow evaluation counted as training, the clock would have jumped past the second mark.
    assert second["time_s"] - first["time_s"] < SLEEP
    assert first["images_seen"] < second["images_seen"] and first["step"] < second["step"]
    assert all(r["eval_s"] >= 0 and r["fid"] > 0 and 0 <= r["coverage"] <= 1 for r in evals)
    summary = timed_run.summary
    assert summary["eval_seconds"] >= 2 * SLEEP
    assert summary["seconds"] < 0.06 * 60 + SLEEP  # --max-minutes counts training time only


def test_a_mark_at_the_time_limit_is_scored(tmp_path):
    """--max-minutes M --eval-at-minutes M: the limit is wall-clock, the mark on the training clock,
    which lags a little; the run still ends with M's evaluation."""
    run = gankit.train(out=tmp_path / "run", steps=100_000, max_minutes=0.03, eval_at_minutes="0.01,0.03", **TINY)
    assert [r["mark_minutes"] for r in eval_lines(run.run_dir)] == [0.01, 0.03]
    # Resumed, the run scores only the marks ahead: its clock stopped a moment short of 0.03.
    gankit.train(resume=run.run_dir, max_minutes=0.02, eval_at_minutes="0.01,0.03,0.05", quiet=True)
    assert [r["mark_minutes"] for r in eval_lines(run.run_dir)] == [0.01, 0.03, 0.05]


def test_the_report_draws_the_curves_and_says_what_evaluation_cost(timed_run):
    assert main(["report", str(timed_run.run_dir)]) == 0
    html = (timed_run.run_dir / "report.html").read_text()
    assert "FID against training time" in html and "FID against images seen" in html
    assert "kept off the training clock" in html and "classifier:mnist-5k" in html


def test_an_extractor_file_scores_the_evaluations(tmp_path):
    import numpy as np

    from gankit.data import open_dataset
    from gankit.metrics.train_evaluator import train_evaluator

    digits = open_dataset("mnist-5k").images[::25]  # 200 digits: an extractor in seconds
    np.savez(tmp_path / "digits.npz", images=digits.numpy())
    file, _ = train_evaluator(str(tmp_path / "digits.npz"), tmp_path / "digits-ssl.pt", self_supervised=True,
                              steps=2, quiet=True)
    run = gankit.train(out=tmp_path / "run", steps=6, eval_every=3, eval_evaluator=str(file), **TINY)
    evals = eval_lines(run.run_dir)
    assert [r["step"] for r in evals] == [3, 6]
    assert all(r["extractor"].startswith("contrastive CNN trained on") and "digits" in r["extractor"] for r in evals)


def test_a_missing_extractor_file_or_bad_minutes_stop_the_run_before_it_starts(tmp_path):
    with pytest.raises(UserError, match="nope.pt"):
        gankit.train(out=tmp_path / "a", steps=2, eval_every=1, eval_evaluator=str(tmp_path / "nope.pt"), **TINY)
    assert not (tmp_path / "a").exists()
    for bad in ("1,x", "-1", "0"):
        with pytest.raises(UserError, match="--eval-at-minutes"):
            gankit.train(out=tmp_path / "b", steps=2, eval_at_minutes=bad, **TINY)
    assert not (tmp_path / "b").exists()


def test_the_benchmark_overlays_runs_curves_in_one_png_and_a_json(timed_run, tmp_path, capsys):
    import importlib.util
    from pathlib import Path

    from PIL import Image

    script = Path(__file__).resolve().parent.parent / "benchmarks" / "quality_curves.py"
    spec = importlib.util.spec_from_file_location("quality_curves", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "curves.png"
    assert module.main([str(timed_run.run_dir), str(timed_run.run_dir), "--out", str(out)]) == 0
    assert Image.open(out).size == (900, 640)
    curves = json.loads(out.with_suffix(".json").read_text())["curves"]
    assert len(curves) == 2 and [p["mark_minutes"] for p in curves[0]["points"]] == [0.02, 0.04]
    assert curves[0]["extractor"].startswith("classifier:mnist-5k")
    assert module.main([str(tmp_path), "--out", str(out)]) == 2
    assert "not a run directory" in capsys.readouterr().err
