"""gankit: train, sample and inspect GANs on small images with PyTorch.

    import gankit
    run = gankit.train(preset="default", steps=300)   # a TrainedRun: run_dir, summary, generator
    images = gankit.load(run).sample(16, seed=0)      # uint8 tensor [16, 1, 28, 28]
    scores = gankit.evaluate(run, n=2000)             # {"fid": ..., "kid": ..., ...}

See gankit.api. The names below are imported on first use, so `import gankit` (and `gankit
--help`) does not load PyTorch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gankit.errors import RunFailed, UserError

__version__ = "0.1.0"

if TYPE_CHECKING:
    from gankit.api import Scores, TrainedRun, evaluate, load, train
    from gankit.sampling import TrainedGenerator

# name -> the module that defines it
_LAZY = {"train": "gankit.api", "load": "gankit.api", "evaluate": "gankit.api", "TrainedRun": "gankit.api",
         "Scores": "gankit.api", "TrainedGenerator": "gankit.sampling"}

__all__ = ["RunFailed", "Scores", "TrainedGenerator", "TrainedRun", "UserError", "__version__", "evaluate",
           "load", "train"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'gankit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted((set(globals()) - {"Any", "TYPE_CHECKING", "annotations"}) | set(_LAZY))
