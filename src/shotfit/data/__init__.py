"""Keyframe data: paired augmentation and patch sampling for training."""

from shotfit.data.augment import PairedAugment

__all__ = ["PairedAugment"]
