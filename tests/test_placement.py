"""--data-placement: where the training set lives never changes what is trained.

Device, host RAM and a memory-mapped file serve the same batches in the same order, with the same
draws from the data RNG, so the weights after any step are bit-identical, resumed or not."""

import copy
import threading

import numpy as np
import pytest
import torch

import gankit.training.loop
from gankit.cli import main
from gankit.data import ImageSet
from gankit.errors import UserError
from gankit.run.checkpoint import latest, load
from gankit.training.batches import RealBatches
from gankit.training.distributed import Dist
from gankit.training.placement import choose_placement, place
from gankit.training.state import Progress

GB = 10 ** 9
# Tiny MLP nets on 40 labelled 8x8 pictures, batch 8: 5 batches an epoch, so 7 steps cross into the second.
TINY = ["--arch", "mlp", "--g-widths", "16,32", "--d-widths", "32,16", "--batch-size", "8", "--log-every", "2",
        "--sample-every", "4", "--sample-grid", "16", "--checkpoint-every", "3", "--tensorboard", "off"]


def pictures(n=40):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, 1, 8, 8), dtype=np.uint8), rng.integers(0, 4, n)


def in_memory() -> ImageSet:
    images, labels = pictures()
    return ImageSet(torch.from_numpy(images), torch.from_numpy(labels), name="toy", source="test")


def mapped(folder) -> ImageSet:
    images, labels = pictures()
    path = folder / "toy.npy"
    if not path.exists():
        np.save(path, images)
    return ImageSet(torch.from_numpy(np.load(path, mmap_mode="c")), torch.from_numpy(labels), name="toy",
                    source="test", mmap_file=str(path))


@pytest.fixture
def use_data(monkeypatch):
    """Make the runs train on the ImageSet that `make()` returns (the toy set has no test split)."""
    def use(make):
        def open_data(cfg, split=None, download=True, quiet=False):
            if split == "test":
                raise UserError("no test split")
            return make()
        monkeypatch.setattr(gankit.training.loop, "open_data", open_data)
    return use


def train(*argv) -> int:
    return main(["train", *TINY, *argv])


def weights(run_dir):
    state = load(latest(run_dir))
    progress = {k: v for k, v in state["progress"].items() if k != "seconds"}  # of the wall clock
    return (progress, state["permutation"]), {**{f"G.{k}": v for k, v in state["generator"].items()},
                               **{f"D.{k}": v for k, v in state["discriminator"].items()}}


def assert_same_weights(a, b):
    (pa, wa), (pb, wb) = weights(a), weights(b)
    assert pa[0] == pb[0] and torch.equal(pa[1], pb[1]) and pa[0]["epoch"] == 1  # crossed an epoch boundary
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key


# ------------------------------------------------------------------ the choice
@pytest.mark.parametrize("nbytes, device_free, ram_free, has_file, where", [
    (4 * GB, 80 * GB, 200 * GB, True, "device"),  # half the GPU's free memory is enough
    (40 * GB, 80 * GB, 200 * GB, False, "device"),  # exactly half still fits
    (41 * GB, 80 * GB, 200 * GB, True, "host"),
    (90 * GB, 80 * GB, 200 * GB, True, "host"),
    (150 * GB, 80 * GB, 200 * GB, True, "mmap"),  # fits neither: read from the file
    (150 * GB, 80 * GB, 200 * GB, False, "host"),  # no file to map: it is in RAM already
    (3 * GB, 16 * GB, 16 * GB, True, "device"),  # a CPU: the device is RAM
    (12 * GB, 16 * GB, 16 * GB, True, "mmap"),
    (12 * GB, 16 * GB, 16 * GB, False, "host"),
])
def test_choose_placement(nbytes, device_free, ram_free, has_file, where):
    assert choose_placement(nbytes, device_free, ram_free, has_file) == where


def test_auto_says_why(tmp_path, monkeypatch):
    cpu = torch.device("cpu")
    assert place("auto", in_memory(), cpu).line().startswith("data placement: device (auto: the 2.6 kB training set")
    monkeypatch.setattr("gankit.training.placement.available_ram", lambda: 1000)  # a set too large for RAM
    chosen = place("auto", mapped(tmp_path), cpu)
    assert chosen.where == "mmap" and str(tmp_path / "toy.npy") in chosen.why
    assert place("auto", in_memory(), cpu).where == "host"
    assert place("host", mapped(tmp_path), cpu).why == "--data-placement host"


# ------------------------------------------------------------------ the batches
def serve(batches: RealBatches, n: int, roll_back_at: int | None = None) -> list:
    """`n` batches, with (optionally) a rollback to the state after batch `roll_back_at` three batches later."""
    progress, rng, out, saved = Progress(), torch.Generator().manual_seed(0), [], None
    while len(out) < n:
        images, labels = batches.next(progress, rng)
        out.append((images, labels, progress.epoch, progress.position, progress.images_seen))
        if len(out) == roll_back_at:
            saved = (copy.deepcopy(progress), rng.get_state(), len(out))
        if saved is not None and len(out) == saved[2] + 3:
            progress, _, _ = copy.deepcopy(saved[0]), rng.set_state(saved[1]), out.append(("rolled back",))
            saved = None
    batches.close()
    return out


@pytest.mark.parametrize("rank, world", [(0, 1), (1, 2)])
def test_every_placement_serves_the_same_batches(tmp_path, rank, world):
    def batches(data, placement):
        return RealBatches(data, torch.device("cpu"), Dist(rank=rank, world_size=world), 8 // world, 8,
                           conditional=True, placement=placement)

    reference = serve(batches(in_memory(), "device"), 14, roll_back_at=7)
    for data, placement in [(in_memory(), "host"), (mapped(tmp_path), "mmap"), (mapped(tmp_path), "device"),
                            (mapped(tmp_path), "host")]:
        got = serve(batches(data, placement), 14, roll_back_at=7)
        assert len(got) == len(reference), placement
        for a, b in zip(reference, got):
            assert len(a) == len(b) and all(torch.equal(x, y) if isinstance(x, torch.Tensor) else x == y
                                            for x, y in zip(a, b)), placement


def test_host_batches_are_gathered_ahead_in_the_background(tmp_path, monkeypatch):
    from gankit.training.prefetch import HostGather
    where, load = [], HostGather._load
    monkeypatch.setattr(HostGather, "_load", lambda self, idx: where.append(threading.current_thread().name)
                        or load(self, idx))
    serve(RealBatches(mapped(tmp_path), torch.device("cpu"), Dist(), 8, 8, True, placement="mmap"), 10)
    # 10 batches over 2 epochs of 5: each epoch's first batch is gathered when asked for, the rest ahead
    assert len(where) == 10 and where.count(threading.main_thread().name) == 2


def test_device_on_the_cpu_holds_a_mapped_set_in_memory(tmp_path):
    data = mapped(tmp_path)
    batches = RealBatches(data, torch.device("cpu"), Dist(), 8, 8, conditional=False, placement="device")
    assert batches.images is not data.images and torch.equal(batches.images, data.images)
    assert RealBatches(data, torch.device("cpu"), Dist(), 8, 8, False, placement="mmap").host.images is data.images


# ------------------------------------------------------------------ whole runs
def test_weights_are_bit_identical_for_every_placement(tmp_path, use_data):
    use_data(in_memory)
    assert train("-q", "--out", str(tmp_path / "device"), "--steps", "7", "--data-placement", "device") == 0
    assert train("-q", "--out", str(tmp_path / "host"), "--steps", "7", "--data-placement", "host") == 0
    use_data(lambda: mapped(tmp_path))
    assert train("-q", "--out", str(tmp_path / "mmap"), "--steps", "7", "--data-placement", "mmap") == 0
    assert_same_weights(tmp_path / "device", tmp_path / "host")
    assert_same_weights(tmp_path / "device", tmp_path / "mmap")
    assert not [t for t in threading.enumerate() if t.name.startswith("gankit-batches")]  # closed at the end


def test_resume_with_mmap_equals_the_straight_run(tmp_path, use_data):
    use_data(lambda: mapped(tmp_path))
    assert train("-q", "--out", str(tmp_path / "straight"), "--steps", "7", "--data-placement", "mmap") == 0
    assert train("-q", "--out", str(tmp_path / "stopped"), "--steps", "4", "--data-placement", "mmap") == 0
    assert main(["train", "-q", "--resume", str(tmp_path / "stopped"), "--steps", "7"]) == 0
    assert_same_weights(tmp_path / "straight", tmp_path / "stopped")
    # placement may change on resume: a run begun on the device goes on from the file
    assert train("-q", "--out", str(tmp_path / "moved"), "--steps", "4", "--data-placement", "device") == 0
    assert main(["train", "-q", "--resume", str(tmp_path / "moved"), "--steps", "7", "--data-placement", "mmap"]) == 0
    assert_same_weights(tmp_path / "straight", tmp_path / "moved")


def test_mmap_without_a_file_falls_back_to_ram_and_says_so(tmp_path, use_data, capsys):
    use_data(in_memory)
    assert train("--out", str(tmp_path / "a"), "--steps", "2", "--data-placement", "mmap") == 0
    out = capsys.readouterr().out
    assert out.count("data placement: host (--data-placement mmap, but toy is not read from a prepared file") == 1
    assert train("-q", "--out", str(tmp_path / "b"), "--steps", "2", "--data-placement", "mmap") == 0
    quiet = capsys.readouterr()
    assert quiet.out == "" and "data placement: host (--data-placement mmap" in quiet.err  # even with -q


def test_the_start_lines_say_where_the_data_is(tmp_path, use_data, capsys):
    use_data(lambda: mapped(tmp_path))
    assert train("--out", str(tmp_path / "a"), "--steps", "1", "--data-placement", "host") == 0
    assert "data placement: host (--data-placement host)" in capsys.readouterr().out
    assert train("-q", "--out", str(tmp_path / "b"), "--steps", "1") == 0
    assert "data placement" not in capsys.readouterr().out
