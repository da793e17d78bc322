"""What the step's statistics of D say: D's accuracy and r_t are what D's logits on the step's
batches give, and a D that has learnt an obvious task reads as one that tells real from fake."""

import pytest
import torch

from gankit.config import make_config
from gankit.nets import build
from gankit.nets.spec import net_spec
from gankit.training.step import GANStep

BATCH = 8


def make_step(lr_g=1e-3, lr_d=1e-3, **fields):
    cfg = make_config({"arch": "dcgan-small", "width": 8, "batch_size": BATCH, "precision": "fp32", **fields})
    torch.manual_seed(0)
    g, d = build(net_spec(cfg, (1, 28, 28)))
    opt_g = torch.optim.Adam(g.parameters(), lr=lr_g, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=lr_d, betas=(0.5, 0.999))
    return GANStep(cfg, g, d, opt_g, opt_d, torch.device("cpu"))


def noise_batch(seed=1):
    return torch.rand(BATCH, 1, 28, 28, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.mark.parametrize("loss", ["bce", "hinge", "wgan-gp"])
def test_d_accuracy_and_r_t_are_those_of_ds_logits(loss):
    step = make_step(loss=loss)
    stats = GANStep.zero_stats()
    step([(noise_batch(), None)], 0.0, stats)
    real_logits, fake_logits = step.last_logits  # D's verdict in the update the statistics describe
    r, f, t = step.loss.readout(real_logits), step.loss.readout(fake_logits), step.loss.threshold
    assert stats["d_updates"] == 1
    assert float(stats["d_acc_real"]) == pytest.approx(float((r > t).float().mean()))
    assert float(stats["d_acc_fake"]) == pytest.approx(float((f <= t).float().mean()))
    assert float(stats["d_real"]) == pytest.approx(float(r.mean())) and float(stats["d_fake"]) == pytest.approx(float(f.mean()))
    assert float(stats["d_sign_real"]) == pytest.approx(float(torch.sign(r - t).mean()))


def test_d_statistics_add_up_over_d_steps_as_shares_of_the_batch():
    step = make_step(d_steps=3)
    stats = GANStep.zero_stats()
    step([(noise_batch(s), None) for s in (1, 2, 3)], 0.0, stats)
    assert stats["d_updates"] == 3
    for key in ("d_acc_real", "d_acc_fake"):
        total = float(stats[key])  # three means of 0/1 verdicts on 8 images: a multiple of 1/8 in [0, 3]
        assert 0 <= total <= 3 and total * BATCH == pytest.approx(round(total * BATCH), abs=1e-5), (key, total)
    # No logit sits exactly on the threshold, so r_t = P(called real) - P(called fake) on the reals.
    assert float(stats["d_sign_real"]) == pytest.approx(2 * float(stats["d_acc_real"]) - 3, abs=1e-5)


def test_a_d_trained_on_an_obvious_task_tells_real_from_fake():
    # Real images are all white; G (learning rate 0: it never moves) draws its untrained output,
    # near mid-grey. A few D updates suffice to tell the two apart, and the statistics must say so.
    step = make_step(lr_g=0.0, lr_d=2e-3)
    white = torch.ones(BATCH, 1, 28, 28)
    first = GANStep.zero_stats()
    step([(white, None)], 0.0, first)
    for _ in range(30):
        last = GANStep.zero_stats()
        step([(white, None)], 0.0, last)
    assert float(first["d_acc_fake"]) < 1.0  # untrained, D called some of G's images real
    assert float(last["d_acc_real"]) == 1.0 and float(last["d_acc_fake"]) == 1.0
    assert float(last["d_sign_real"]) == 1.0
    assert float(last["d_real"]) > 0.9 > 0.1 > float(last["d_fake"])
    assert float(last["d_loss"]) < float(first["d_loss"]) / 4
