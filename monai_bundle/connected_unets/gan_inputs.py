"""How the CycleGAN sees an image: pixel values in [-1, 1] and the size it meets an ROI at.

Training (``configs/cyclegan_train.yaml``) and generation (:mod:`connected_unets.synthesis`) both go
through these, so the generators translate every ROI at the value range and scale they learnt.
The MONAI transforms here are the GAN's; the segmentation pipeline's are in :mod:`.transforms`.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform

from .io import LoadedImage, load_image

__all__ = ["LoadGANImaged", "MinSizeResized", "from_gan_range", "gan_range", "gan_view_shape", "resize_gan"]


def gan_range(image: LoadedImage) -> np.ndarray:
    """The picture's values mapped to [-1, 1], the CycleGAN's range (its generator ends in tanh).

    The file's integer range when it has one (0..255 for 8-bit, 0..65535 for 16-bit files), so
    brightness is kept as it is stored; else (DICOM after its LUTs, NIfTI) the image's own range.
    """
    low, high = image.value_range or (float(image.array.min()), float(image.array.max()))
    return (np.clip((image.array - low) / max(high - low, 1e-6), 0.0, 1.0) * 2.0 - 1.0).astype(np.float32)


def gan_view_shape(shape: Sequence[int], min_size: int) -> tuple[int, int]:
    """(H, W) at which the CycleGAN sees an image of ``shape``: its own pixels, or enlarged so that
    its shorter side is ``min_size`` (an ROI smaller than the training crop). Training and
    generation both use it, so the networks meet every ROI at the scale they learnt it."""
    height, width = int(shape[-2]), int(shape[-1])
    scale = max(1.0, min_size / max(min(height, width), 1))
    return max(min_size, round(height * scale)), max(min_size, round(width * scale))


class LoadGANImaged(MapTransform):
    """Read an image file as (1, H, W) float32 in [-1, 1] (:func:`gan_range`); ``<key>_path`` keeps the file."""

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[f"{key}_path"] = str(d[key])
            d[key] = torch.as_tensor(gan_range(load_image(d[key])))[None]
        return d


class MinSizeResized(MapTransform):
    """Enlarge an image whose shorter side is under ``min_size`` to :func:`gan_view_shape`
    (:func:`resize_gan`); larger images pass unchanged, at their own pixel size."""

    def __init__(self, keys: KeysCollection, min_size: int, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.min_size = int(min_size)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            image = torch.as_tensor(d[key])
            shape = gan_view_shape(image.shape, self.min_size)
            if shape != tuple(image.shape[-2:]):
                d[key] = resize_gan(image, shape)
        return d


def resize_gan(image: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """A (C, H, W) image resized to ``shape``: bicubic (clipped to [-1, 1]) when enlarging, area
    averaging when shrinking, the rule of the segmentation pipeline's resize."""
    batch = torch.as_tensor(image)[None].float()
    if int(np.prod(shape)) >= batch.shape[-2] * batch.shape[-1]:
        out = torch.nn.functional.interpolate(batch, size=tuple(shape), mode="bicubic", align_corners=False).clamp(-1.0, 1.0)
    else:
        out = torch.nn.functional.interpolate(batch, size=tuple(shape), mode="area")
    return out[0]


def from_gan_range(values: np.ndarray, peak: int = 255) -> np.ndarray:
    """[-1, 1] back to stored integers 0..``peak`` (255: uint8, 65535: uint16), rounded."""
    dtype = np.uint8 if peak <= 255 else np.uint16
    return np.round((np.clip(values, -1.0, 1.0) + 1.0) / 2.0 * peak).astype(dtype)
