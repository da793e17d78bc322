"""Datasets: read images from named sources or paths into one ImageSet.

The names below are imported on first use, so that the picture decoders (gankit.data.decode,
gankit.data.listing, gankit.data.prepare) load in worker processes without PyTorch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gankit.data.imageset import ImageSet
    from gankit.data.registry import dataset_names, describe_datasets, open_dataset

_LAZY = {"ImageSet": "gankit.data.imageset", "dataset_names": "gankit.data.registry",
         "describe_datasets": "gankit.data.registry", "open_dataset": "gankit.data.registry"}

__all__ = ["ImageSet", "dataset_names", "describe_datasets", "open_dataset"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'gankit.data' has no attribute {name!r}")
