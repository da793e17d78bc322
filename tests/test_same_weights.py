"""Short runs of every preset and of each loss, regulariser and D path end with the weights, optimiser
states and RNG states recorded in tests/data/step_weights.json (see tests/weights_record.py): moving
code around or rewriting the step must not change one bit of what a run computes."""

import json

import pytest
import weights_record

RECORDED = json.loads(weights_record.RECORD.read_text())


def test_every_variant_is_recorded():
    assert sorted(RECORDED) == sorted(weights_record.VARIANTS)


@pytest.mark.parametrize("name", sorted(weights_record.VARIANTS))
def test_a_short_run_learns_the_recorded_weights(name, tmp_path):
    assert weights_record.checksum(name, tmp_path) == RECORDED[name], (
        f"{name}: the run's weights differ from those recorded; if the change is meant to alter what is "
        f"computed, rewrite the record with `python tests/weights_record.py --write` and say why")
