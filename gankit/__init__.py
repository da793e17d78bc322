"""gankit: train, sample and inspect GANs on small images with PyTorch."""

__version__ = "0.1.0"
