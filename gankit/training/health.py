"""Warnings while training runs: the signs of a GAN going wrong, read from each log line.

Each rule looks at the latest few lines of metrics.jsonl and fires once, when its condition
starts to hold for `PATIENCE` lines in a row; it can fire again after the condition has cleared.
The thresholds are plain numbers a reader can check on the report's curves:

- D separates real from fake almost perfectly (accuracy > 0.99 on both): G's gradients vanish.
- ADA's overfitting signal r_t = E[sign(D(x_real))] above 0.9 while D still takes more than 10% of
  the fakes for real: D is sure of nearly every training image yet not of G's, which on small
  datasets means it is memorising them (Karras et al. 2020 keep r_t at 0.6 with augmentation).
  Early in training D is sure of everything because G is still poor; that is not this.
- D calls training images real far more often than held-out real images (gap above 0.2; see
  gankit/training/overfitting_probe.py): the direct sign of memorising that r_t stands in for. Measured only where
  held-out images exist (a test split, or --holdout N).
- A gradient norm that is not finite or 100x its median so far: an explosion starting.
- The fixed sample grid's images barely differ (mean per-pixel spread under 2 grey levels) after
  they once differed (a spread 4x larger earlier): mode collapse, or G has gone blank. An untrained
  G draws near-identical images too, so a low spread alone says nothing. Only log lines that
  follow a new grid count for this rule.
"""

from __future__ import annotations

import math
import statistics

PATIENCE = 3  # consecutive log lines a condition must hold (an exploding gradient: one)
D_ACC_MAX = 0.99
SIGN_REAL_MAX = 0.9
FAKE_ACC_FOR_OVERFIT = 0.9  # r_t only means memorising while D still misses this share of fakes
HELDOUT_GAP_MAX = 0.2  # about 5 standard errors of the gap at 256 images a side
GRAD_JUMP = 100.0
DIVERSITY_MIN = 2.0  # grey levels
DIVERSITY_DROP = 4.0  # ... and this many times below the best spread so far


def _d_wins(r: dict, history: list[dict]) -> str | None:
    if r.get("d_acc_real", 0) > D_ACC_MAX and r.get("d_acc_fake", 0) > D_ACC_MAX:
        return (f"D tells real from fake almost perfectly (accuracy {r['d_acc_real']:.3f} / {r['d_acc_fake']:.3f}), "
                "so G learns little; try --lr-d lower, --augment, --spectral-norm or --label-flip")
    return None


def _d_overfits(r: dict, history: list[dict]) -> str | None:
    value = r.get("d_sign_real")
    if value is not None and value > SIGN_REAL_MAX and r.get("d_acc_fake", 1.0) < FAKE_ACC_FOR_OVERFIT:
        return (f"D is sure of nearly every training image (r_t = E[sign D(x)] = {value:.2f} > {SIGN_REAL_MAX}): "
                "it may be memorising them; try --ada default (or --augment color,translation,cutout) or --r1-gamma")
    return None


def _d_memorises(r: dict, history: list[dict]) -> str | None:
    gap = r.get("d_heldout_gap")
    if gap is not None and gap > HELDOUT_GAP_MAX:
        return (f"D calls {r['d_acc_train_probe']:.0%} of training images real but only {r['d_acc_heldout']:.0%} "
                "of held-out ones: it is memorising the training set; try --ada default, --augment color,translation,cutout, "
                "--r1-gamma, or more data")
    return None


def _gradients_explode(r: dict, history: list[dict]) -> str | None:
    for key, net in (("g_grad_norm", "G"), ("d_grad_norm", "D")):
        value = r.get(key)
        if value is None:
            continue
        if not math.isfinite(value):
            return f"{net}'s gradient norm is {value}"
        earlier = [h[key] for h in history if isinstance(h.get(key), (int, float)) and math.isfinite(h[key])]
        if len(earlier) >= 5 and value > GRAD_JUMP * max(statistics.median(earlier), 1e-12):
            return (f"{net}'s gradient norm jumped to {value:.3g}, {value / statistics.median(earlier):.0f}x its "
                    "median so far: training may be about to diverge; try lower learning rates")
    return None


def _collapse(r: dict, history: list[dict]) -> str | None:
    value = r.get("grid_diversity")
    best = max((h["grid_diversity"] for h in history if "grid_diversity" in h), default=0.0)
    if value is not None and value < DIVERSITY_MIN and best > DIVERSITY_DROP * value:
        return (f"the fixed sample grid's images barely differ (per-pixel spread {value:.2f} grey levels): "
                "mode collapse; try --loss hinge --spectral-norm, --ema-half-life, or a lower --lr-g")
    return None


RULES = {"d_wins": _d_wins, "d_overfits": _d_overfits, "d_memorises": _d_memorises, "gradients": _gradients_explode, "collapse": _collapse}


class LiveHealth:
    """Feeds on log records; returns the warnings that have just started to hold."""

    def __init__(self, patience: int = PATIENCE):
        self.patience = {name: 1 if name == "gradients" else patience for name in RULES}
        self.history: list[dict] = []
        self.streak = {name: 0 for name in RULES}

    def check(self, record: dict) -> list[str]:
        fired = []
        for name, rule in RULES.items():
            if name == "collapse" and "grid_diversity" not in record:
                continue  # no new grid since the last line: the streak neither grows nor breaks
            message = rule(record, self.history)
            self.streak[name] = self.streak[name] + 1 if message else 0
            if self.streak[name] == self.patience[name]:
                fired.append(f"warning at step {record.get('step', '?')}: {message}")
        self.history.append(record)
        return fired
