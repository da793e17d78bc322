"""Short runs of every preset and of each loss, regulariser and D path end with the weights, optimiser
states and RNG states recorded in tests/data/step_weights.json (see tests/weights_record.py): moving
code around or rewriting the step must not change one bit of what a run computes."""

import pytest
import weights_record

RECORDED = weights_record.recorded()


@pytest.fixture(scope="module")
def learnt() -> dict[str, str]:
    """Every variant's checksum, from one child process with the CPU kernels pinned."""
    return weights_record.checksums(sorted(weights_record.VARIANTS))


@pytest.fixture(autouse=True)
def _recorded_on_this_vendor():
    if RECORDED is None:
        pytest.skip(f"no sums recorded on a {weights_record.cpu_vendor()} CPU, whose pinned arithmetic may differ: "
                    "check the code computes as recorded on another vendor, then `python tests/weights_record.py --write`")


def test_every_variant_is_recorded():
    assert sorted(RECORDED) == sorted(weights_record.VARIANTS)


@pytest.mark.parametrize("name", sorted(weights_record.VARIANTS))
def test_a_short_run_learns_the_recorded_weights(name, learnt):
    assert learnt[name] == RECORDED[name], (
        f"{name}: the run's weights differ from those recorded; if the change is meant to alter what is "
        f"computed, rewrite the record with `python tests/weights_record.py --write` and say why")


def test_the_sums_do_not_follow_the_cpus_instruction_set(learnt):
    """As an older CPU would run them: MKL and oneDNN held to SSE4 (ATen is pinned to its portable kernels)."""
    names = ["preset-colour", "bf16", "r3gan"]
    older = {"MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "DNNL_MAX_CPU_ISA": "SSE41"}
    assert weights_record.checksums(names, env=older) == {n: learnt[n] for n in names}
