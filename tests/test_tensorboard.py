import io
import time
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from gankit.errors import UserError
from gankit.run import tensorboard_log
from gankit.run.tensorboard_log import TensorBoardLog, scalar_tag, tensorboard_available

if not tensorboard_available():
    pytest.skip("the tensorboard package is not installed (pip install tensorboard)", allow_module_level=True)

from tensorboard.backend.event_processing.event_accumulator import (  # noqa: E402
    COMPRESSED_HISTOGRAMS,
    HISTOGRAMS,
    IMAGES,
    SCALARS,
    EventAccumulator,
)

TRAIN_RECORD = {"step": 100, "epoch": 0.5, "images_seen": 6400, "time_s": 12.5, "d_loss": 1.25, "g_loss": 0.75,
                "d_real": 0.5, "d_fake": -0.5, "d_acc_real": 0.875, "d_acc_fake": 0.625, "lr_g": 2e-4, "lr_d": 1e-4,
                "images_per_s": 512.0}
EVAL_RECORD = {"step": 100, "eval_n": 500, "fid": 42.5, "kid": 0.0125, "coverage": 0.75, "floor_fid": 3.5,
               "class_counts": [1, 2, 3], "extractor": "classifier"}


def read_back(log_dir):
    """Everything TensorBoard itself would show for `log_dir` (0 = keep every event)."""
    acc = EventAccumulator(str(log_dir), size_guidance={SCALARS: 0, HISTOGRAMS: 0, COMPRESSED_HISTOGRAMS: 0,
                                                        IMAGES: 0})
    acc.Reload()
    return acc


def scalar_steps(acc, tag):
    return [e.step for e in acc.Scalars(tag)]


def test_scalars_histograms_and_image_read_back_through_tensorboard(tmp_path):
    log = TensorBoardLog(tmp_path)
    log.scalars(TRAIN_RECORD)
    log.scalars({**TRAIN_RECORD, "step": 200, "d_loss": 0.5})
    log.scalars(EVAL_RECORD)
    log.histograms(200, torch.linspace(0, 4, 64), torch.linspace(-4, 0, 64))
    grid = torch.arange(3 * 8 * 10, dtype=torch.int64).remainder(256).to(torch.uint8).view(3, 8, 10)
    log.image_grid(200, grid)
    log.close()

    acc = read_back(tmp_path / "tensorboard")
    tags = acc.Tags()
    assert set(tags["scalars"]) == {
        "loss/d", "loss/g", "D/real", "D/fake", "D/acc_real", "D/acc_fake", "lr/g", "lr/d", "speed/images_per_s",
        "progress/epoch", "progress/images_seen", "progress/time_s",
        "eval/n", "eval/fid", "eval/kid", "eval/coverage", "eval/floor_fid"}  # no list, no string, no "step"
    assert [(e.step, e.value) for e in acc.Scalars("loss/d")] == [(100, 1.25), (200, 0.5)]
    assert [(e.step, e.value) for e in acc.Scalars("D/fake")] == [(100, -0.5), (200, -0.5)]
    assert acc.Scalars("lr/g")[0].value == pytest.approx(2e-4)
    assert [(e.step, e.value) for e in acc.Scalars("eval/fid")] == [(100, 42.5)]
    assert [(e.step, e.value) for e in acc.Scalars("eval/n")] == [(100, 500)]

    assert set(tags["histograms"]) == {"D/logits_real", "D/logits_fake"}
    real = acc.Histograms("D/logits_real")[0]
    assert real.step == 200
    assert (real.histogram_value.min, real.histogram_value.max, real.histogram_value.num) == (0, 4, 64)
    assert acc.Histograms("D/logits_fake")[0].histogram_value.max == 0

    assert tags["images"] == ["samples/fixed_grid"]
    image = acc.Images("samples/fixed_grid")[0]
    assert (image.step, image.width, image.height) == (200, 10, 8)


def test_image_grid_round_trips_pixels_exactly(tmp_path):
    # uint8 must be stored as is, not rescaled as a 0..1 float image would be.
    grid = torch.arange(5 * 7, dtype=torch.uint8).mul(7).view(1, 5, 7)
    log = TensorBoardLog(tmp_path)
    log.image_grid(3, grid)
    log.close()
    png = read_back(tmp_path / "tensorboard").Images("samples/fixed_grid")[0].encoded_image_string
    pixels = torch.from_numpy(np.array(Image.open(io.BytesIO(png)).convert("L")))
    assert torch.equal(pixels.unsqueeze(0), grid)


def test_image_grid_rejects_images_that_are_not_chw_uint8(tmp_path):
    log = TensorBoardLog(tmp_path)
    with pytest.raises(ValueError, match="CHW uint8"):
        log.image_grid(1, torch.zeros(3, 4, 4))  # float
    with pytest.raises(ValueError, match="CHW uint8"):
        log.image_grid(1, torch.zeros(5, 4, 3, dtype=torch.uint8))  # HWC (4 x 4 x 3 would be CHW RGBA)
    log.close()


def test_unknown_numeric_keys_go_under_other():
    assert scalar_tag("rollbacks", {"step": 1, "rollbacks": 2}) == "other/rollbacks"
    assert scalar_tag("precision", {"step": 1, "eval_n": 10, "precision": 0.5}) == "eval/precision"
    assert scalar_tag("d_loss", {"step": 1, "d_loss": 0.5}) == "loss/d"


def write_steps(run_dir, steps, purge_step=None):
    log = TensorBoardLog(run_dir, purge_step=purge_step)
    for step in steps:
        log.scalars({"step": step, "d_loss": float(step)})
    log.close()


def next_second():
    # Event files are read in name order and the name starts with whole seconds: a second file
    # written in the same second could sort first, which a real resume (a new process) never does.
    time.sleep(1.0 - time.time() % 1.0 + 0.01)


def test_purge_step_hides_the_interrupted_process_events_from_that_step_on(tmp_path):
    write_steps(tmp_path, range(1, 11))
    next_second()
    write_steps(tmp_path, range(5, 8), purge_step=5)
    acc = read_back(tmp_path / "tensorboard")
    assert scalar_steps(acc, "loss/d") == [1, 2, 3, 4, 5, 6, 7]
    assert [e.value for e in acc.Scalars("loss/d")] == [1, 2, 3, 4, 5, 6, 7]


def test_without_purge_step_a_resumed_curve_doubles_back(tmp_path):
    # The control for the test above: the reader does not drop the stale events by itself.
    write_steps(tmp_path, range(1, 11))
    next_second()
    write_steps(tmp_path, range(5, 8))
    assert scalar_steps(read_back(tmp_path / "tensorboard"), "loss/d") == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 5, 6, 7]


def test_a_failing_write_warns_once_and_never_raises(tmp_path):
    log = TensorBoardLog(tmp_path)

    def broken(*args, **kwargs):
        raise OSError("No space left on device")

    log._writer.add_scalar = broken
    with pytest.warns(RuntimeWarning, match="No space left on device"):
        log.scalars(TRAIN_RECORD)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # logging is off now: no second warning, no error
        log.scalars(TRAIN_RECORD)
        log.histograms(1, torch.zeros(4), torch.zeros(4))
        log.close()


def test_missing_tensorboard_is_a_user_error_naming_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(tensorboard_log, "tensorboard_available", lambda: False)
    with pytest.raises(UserError, match="pip install tensorboard"):
        TensorBoardLog(tmp_path)
    assert not (tmp_path / "tensorboard").exists()
