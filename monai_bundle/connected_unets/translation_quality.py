"""Offline measures of a domain translation: is the ROI's structure kept, can the translation be
undone, and do the translated ROIs look like the target domain to our segmentation network?

- :func:`ssim`: structural similarity of the source and its translation, both in [-1, 1] (1 = the
  same picture; a change of style lowers it somewhat, structures invented or erased lower it a lot).
- :func:`cycle_error`: mean absolute difference of an image and its A -> B -> A reconstruction, as a
  fraction of the value range.
- :func:`roi_features` and :func:`fid`: the Fréchet distance (MONAI's ``FIDMetric``) between the
  distributions of features of two sets of ROIs, the features being the spatial means of one
  layer of our own trained segmentation network (a local encoder, no download). This is NOT the
  Inception FID of the GAN literature: its numbers compare only with each other (same network,
  layer and ROI counts), e.g. CESM vs DM against translated CESM vs DM.

``scripts/synthesis_quality.py`` runs these, and the shipped segmenter's Dice, on real data.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from monai.metrics import FIDMetric
from skimage.metrics import structural_similarity
from torch import nn

__all__ = ["FEATURE_LAYER", "cycle_error", "fid", "roi_features", "ssim"]

# ConnectedResUNets' third encoder level: 128 channels, fewer than the ~200 ROIs of a domain, so
# that the covariance matrices FID compares are of full rank
FEATURE_LAYER = "encoder1.levels.2"


def ssim(source: np.ndarray, translated: np.ndarray) -> float:
    """SSIM of two (H, W) images in [-1, 1] (scikit-image, 7 x 7 windows or the largest odd one that fits)."""
    window = min(7, *(side if side % 2 else side - 1 for side in source.shape))
    if window < 3:
        raise ValueError(f"ssim: images of shape {source.shape} are too small for a 3 x 3 window")
    return float(structural_similarity(source, translated, data_range=2.0, win_size=window))


def cycle_error(source: np.ndarray, reconstructed: np.ndarray) -> float:
    """Mean |source - reconstructed| of two images in [-1, 1], as a fraction of that range (0..1)."""
    return float(np.mean(np.abs(np.asarray(source, np.float64) - np.asarray(reconstructed, np.float64))) / 2.0)


class _Captured(Exception):
    """Raised by the feature hook: the layers after the captured one are not needed."""


@torch.no_grad()
def roi_features(
    network: nn.Module, rois: Iterable[torch.Tensor], layer: str = FEATURE_LAYER, batch_size: int = 16, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """(N, C) features of N preprocessed ROIs ((C_in, H, W) tensors, the segmentation pipeline's
    input): the spatial mean of ``layer``'s output (a module name of ``network``). The forward
    pass stops at that layer, so an early layer costs a fraction of the network."""
    modules = dict(network.named_modules())
    if layer not in modules:
        raise ValueError(f"roi_features: {type(network).__name__} has no layer {layer!r}")
    captured: list[torch.Tensor] = []

    def capture(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        captured.append(output.float().mean(dim=(-2, -1)).cpu())
        raise _Captured

    def run(batch: list[torch.Tensor]) -> None:
        try:
            network(torch.stack(batch).to(device))
        except _Captured:
            pass

    hook = modules[layer].register_forward_hook(capture)
    network.eval()
    try:
        batch: list[torch.Tensor] = []
        for roi in rois:
            batch.append(torch.as_tensor(roi, dtype=torch.float32))
            if len(batch) == batch_size:
                run(batch)
                batch = []
        if batch:
            run(batch)
    finally:
        hook.remove()
    if not captured:
        raise ValueError("roi_features: no ROIs")
    return torch.cat(captured)


def fid(features: torch.Tensor, reference: torch.Tensor) -> float:
    """Fréchet distance between the feature distributions of two ROI sets (MONAI ``FIDMetric``)."""
    for name, block in (("features", features), ("reference", reference)):
        if block.ndim != 2 or block.shape[0] < 2:
            raise ValueError(f"fid: {name} must be (N >= 2, C), got {tuple(block.shape)}")
    return float(FIDMetric()(features.double(), reference.double()))
