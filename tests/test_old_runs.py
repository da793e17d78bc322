"""A run directory written before the package was reorganised (tests/data/run-before-layout: 4 steps of
tiny MLP nets on the embedded digits, by gankit 0.1.0 as it was then) still loads, samples, and resumes
to the very weights the old code reached when it resumed the same run to step 8."""

import shutil
from pathlib import Path

import torch

import gankit
from gankit.run import checkpoint

OLD_RUN = Path(__file__).parent / "data" / "run-before-layout"
# What the code of that time computed resuming this run to --steps 8 with one torch thread, as that
# code's own gankit.checkpoint.content_digest of the learnt state.
OLD_CODE_RESUMED_TO_8 = "470ac7f5ae6afc5c1f532b24"


def test_an_old_run_samples(tmp_path):
    images = gankit.load(OLD_RUN).sample(4, seed=0)
    assert images.shape == (4, 1, 28, 28) and images.dtype == torch.uint8


def test_an_old_run_resumes_to_the_weights_the_old_code_reached(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(OLD_RUN, run)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        gankit.train(resume=run, steps=8, quiet=True)
    finally:
        torch.set_num_threads(threads)
    state = checkpoint.load(checkpoint.latest(run))
    assert state["progress"]["step"] == 8
    learnt = {k: state[k] for k in ("generator", "generator_ema", "discriminator", "opt_g", "opt_d", "rng")}
    assert checkpoint.content_digest(learnt)[:24] == OLD_CODE_RESUMED_TO_8
