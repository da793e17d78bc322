"""Where the training set lives while a run trains (--data-placement), and why.

    device  the whole uint8 set on the training device, once: batches are gathered there (fastest)
    host    the set in host RAM (pinned when the device is CUDA, so copies run asynchronously);
            each batch is gathered on the host and copied to the device, the next one ahead
    mmap    batches gathered from the memory-mapped prepared file: only the pages a batch touches
            are read, so a set larger than RAM trains too

"auto" takes the first that fits in a share of the free memory: device, then host, then mmap (when
the data has a file). Which one serves the batches never changes what they are (gankit.training.batches).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from gankit.data import ImageSet

# The set may take up to this share of the free memory: the nets, their activations and the
# optimiser need the rest, and "free" moves while the run goes on.
SHARE = 0.5


def choose_placement(nbytes: int, device_free: int, ram_free: int, has_file: bool) -> str:
    """"device", "host" or "mmap" for a set of `nbytes`, given the free bytes of the device and of
    host RAM (on a CPU the device is RAM: pass the same number twice). Without a file to map, a set
    too large for both is still served from RAM, where it already is."""
    if nbytes <= SHARE * device_free:
        return "device"
    if nbytes <= SHARE * ram_free or not has_file:
        return "host"
    return "mmap"


def available_ram() -> int | None:
    """Bytes of RAM that can be had without swapping: MemAvailable (which counts the page cache
    that can be dropped) where /proc/meminfo has it, else the free pages; None where neither is
    known."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # Windows has no sysconf
        return None


def device_free_memory(device: torch.device, ram_free: int | None) -> int | None:
    """Free bytes on `device`: CUDA says; a CPU's memory is RAM, and so is MPS' (unified memory)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    return ram_free


@dataclass(frozen=True)
class Placement:
    """Where the set lives (`where`), and the line that says so and why."""

    where: str
    why: str
    fell_back: bool = False  # --data-placement mmap was asked for data without a file

    def line(self) -> str:
        return f"data placement: {self.where} ({self.why})"


def place(wanted: str, data: ImageSet, device: torch.device, processes_here: int = 1) -> Placement:
    """Resolve --data-placement `wanted` for `data` trained on `device`. `processes_here`: the
    processes of this run on this machine, each of which holds its own copy in RAM."""
    if wanted == "mmap" and data.mmap_file is None:
        return Placement("host", f"--data-placement mmap, but {data.name} is not read from a prepared "
                                 f"file that can be mapped: serving batches from RAM, where it is", fell_back=True)
    if wanted != "auto":
        return Placement(wanted, f"--data-placement {wanted}")
    nbytes = data.images.numel() * data.images.element_size()
    ram = available_ram()
    ram = None if ram is None else ram // max(1, processes_here)
    free = device_free_memory(device, ram)
    if free is None or ram is None:  # nothing known to compare with: keep the fast path
        return Placement("device", "auto: free memory unknown here")
    where = choose_placement(nbytes, free, ram, data.mmap_file is not None)
    on_device = f"{_gb(free)} free on {device}" if device.type == "cuda" else f"{_gb(free)} of free RAM"
    size = f"the {_gb(nbytes)} training set"
    if where == "device":
        return Placement(where, f"auto: {size} fits in half of the {on_device}")
    if where == "host":
        if nbytes <= SHARE * ram:
            return Placement(where, f"auto: {size} is over half of the {on_device}, "
                                    f"under half of the {_gb(ram)} of free RAM")
        return Placement(where, f"auto: {size} is over half of the {_gb(ram)} of free RAM, but is held in RAM "
                                f"with no file to map (image folders have one)")
    return Placement(where, f"auto: {size} is over half of the {_gb(ram)} of free RAM: batches are read from "
                            f"{data.mmap_file}")


def _gb(nbytes: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6)):
        if nbytes >= size / 10:
            return f"{nbytes / size:.{2 if unit == 'GB' else 1}f} {unit}"
    return f"{nbytes / 1e3:.1f} kB"
