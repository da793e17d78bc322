"""Augmentation of every image D sees, real and fake alike: DiffAugment and ADA.

DiffAugment's fixed ops (diffaugment.py) and StyleGAN2-ADA's adaptive pipeline (ada.py, its ops in
ada_ops.py)."""
