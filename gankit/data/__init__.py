"""Datasets: read images from named sources or paths into one in-memory ImageSet."""

from gankit.data.imageset import ImageSet
from gankit.data.registry import dataset_names, describe_datasets, open_dataset

__all__ = ["ImageSet", "dataset_names", "describe_datasets", "open_dataset"]
