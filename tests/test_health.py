"""Live health warnings: each rule fires once after its patience, stays quiet on healthy lines,
and a real run that D wins outright prints the warning and logs it."""

import json

from gankit.cli import main
from gankit.training.health import PATIENCE, LiveHealth

HEALTHY = {"d_acc_real": 0.7, "d_acc_fake": 0.6, "d_sign_real": 0.3, "g_grad_norm": 1.0, "d_grad_norm": 2.0,
           "grid_diversity": 40.0, "d_acc_train_probe": 0.6, "d_acc_heldout": 0.55, "d_heldout_gap": 0.05}


def feed(lines):
    health = LiveHealth()
    return [w for i, r in enumerate(lines) for w in health.check({"step": i + 1, **r})]


def test_healthy_lines_stay_quiet():
    assert feed([HEALTHY] * 20) == []


def test_each_rule_fires_once_after_its_patience():
    cases = {
        "almost perfectly": {"d_acc_real": 1.0, "d_acc_fake": 1.0},
        "memorising": {"d_sign_real": 0.95},
        "barely differ": {"grid_diversity": 0.5},  # after 40 grey levels in the healthy lines
        "of held-out ones": {"d_acc_train_probe": 0.9, "d_acc_heldout": 0.4, "d_heldout_gap": 0.5},
    }
    for words, bad in cases.items():
        warnings = feed([HEALTHY] * 5 + [{**HEALTHY, **bad}] * (PATIENCE + 5))
        assert len(warnings) == 1 and words in warnings[0], (words, warnings)
        assert f"at step {5 + PATIENCE}" in warnings[0]
        # not yet after patience - 1 lines
        assert feed([HEALTHY] * 5 + [{**HEALTHY, **bad}] * (PATIENCE - 1)) == []


def test_low_spread_from_the_start_is_an_untrained_g_not_a_collapse():
    assert feed([{**HEALTHY, "grid_diversity": 1.0}] * 10) == []
    # lines without a new grid neither break nor extend a streak
    collapsing = [HEALTHY] + [{**HEALTHY, "grid_diversity": 0.5}, {k: v for k, v in HEALTHY.items()
                                                                  if k != "grid_diversity"}] * PATIENCE
    assert len(feed(collapsing)) == 1


def test_high_r_t_while_d_beats_a_poor_g_is_not_memorising():
    assert feed([{**HEALTHY, "d_sign_real": 0.97, "d_acc_fake": 0.95}] * 10) == []


def test_a_rule_fires_again_after_it_clears():
    bad = {**HEALTHY, "d_sign_real": 0.99}
    warnings = feed([bad] * PATIENCE + [HEALTHY] + [bad] * PATIENCE)
    assert len(warnings) == 2


def test_gradient_explosion_fires_at_once():
    warnings = feed([HEALTHY] * 6 + [{**HEALTHY, "d_grad_norm": 500.0}])
    assert len(warnings) == 1 and "D's gradient norm jumped" in warnings[0]
    assert "is nan" in feed([{**HEALTHY, "g_grad_norm": float("nan")}])[0]


def test_a_run_that_d_wins_warns_in_its_log(tmp_path, capsys):
    out = tmp_path / "run"
    # A D learning 50x faster than G on a tiny G: D wins within a few steps.
    code = main(["train", "-q", "--out", str(out), "--width", "8", "--batch-size", "32", "--log-every", "1",
                 "--steps", "30", "--lr-d", "5e-3", "--lr-g", "1e-5", "--sample-every", "100",
                 "--tensorboard", "off", "--precision", "fp32"])
    assert code == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    logged = [r for r in records if r.get("event") == "warning"]
    assert any("almost perfectly" in r["message"] for r in logged)
    assert "almost perfectly" in capsys.readouterr().err
    train_lines = [r for r in records if "d_loss" in r]
    assert all("g_grad_norm" in r and "d_sign_real" in r for r in train_lines)
