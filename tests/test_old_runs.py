"""A run directory written before the package was reorganised (tests/data/run-before-layout: 4 steps of
tiny MLP nets on the embedded digits, by gankit 0.1.0 as it was then) still loads, samples, and resumes
to the very weights the old code reached when it resumed the same run to step 8."""

import shutil
from pathlib import Path

import pytest
import torch

import gankit
from weights_record import cpu_vendor, run_pinned

OLD_RUN = Path(__file__).parent / "data" / "run-before-layout"
# What the code of that time (the commit before the reorganisation) computed resuming this run to
# --steps 8 with one torch thread and the kernels pinned as in weights_record.PINNED_KERNELS, as that
# code's own gankit.checkpoint.content_digest of the learnt state. Unpinned, the sums follow the
# CPU's instruction set: the same old code reached other bits on a CPU with AMX. Pinned, they still
# follow the CPU's vendor (see weights_record.py): on an AMD EPYC, where the old code was not run,
# the entry is what this code reaches, the code that matched the old code's bits on Intel.
OLD_CODE_RESUMED_TO_8 = {"GenuineIntel": "8523161047d72b84f0b15669", "AuthenticAMD": "98972d3d2997e92cfa4fdc6c"}

# Run in a child process (weights_record.run_pinned): the pinning is read when torch's libraries load.
_RESUME = """
import json, sys, torch
torch.backends.mkldnn.enabled = False
torch.set_num_threads(1)
import gankit
from gankit.run import checkpoint
gankit.train(resume=sys.argv[1], steps=8, quiet=True)
state = checkpoint.load(checkpoint.latest(sys.argv[1]))
learnt = {k: state[k] for k in ("generator", "generator_ema", "discriminator", "opt_g", "opt_d", "rng")}
print(json.dumps({"step": state["progress"]["step"], "digest": checkpoint.content_digest(learnt)[:24]}))
"""


def test_an_old_run_samples(tmp_path):
    images = gankit.load(OLD_RUN).sample(4, seed=0)
    assert images.shape == (4, 1, 28, 28) and images.dtype == torch.uint8


def test_an_old_run_resumes_to_the_weights_the_old_code_reached(tmp_path):
    if cpu_vendor() not in OLD_CODE_RESUMED_TO_8:
        pytest.skip(f"no digest recorded on a {cpu_vendor()} CPU, whose pinned arithmetic may differ")
    run = tmp_path / "run"
    shutil.copytree(OLD_RUN, run)
    assert run_pinned(["-c", _RESUME, str(run)]) == {"step": 8, "digest": OLD_CODE_RESUMED_TO_8[cpu_vendor()]}
