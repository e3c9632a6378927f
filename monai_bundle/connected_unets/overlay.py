"""Side-by-side overlay pictures: the image as it is, and the same with masks and boxes drawn on it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw
from skimage.segmentation import find_boundaries

PREDICTION_COLOUR = (255, 60, 60)
REFERENCE_COLOUR = (60, 220, 60)
BOX_COLOUR = (255, 210, 0)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Stretch any grayscale array to 0..255 for display (1st to 99.5th percentile)."""
    low, high = np.percentile(image, (1.0, 99.5))
    scaled = (np.asarray(image, dtype=np.float32) - low) / max(float(high - low), 1e-6)
    return (np.clip(scaled, 0.0, 1.0) * 255).astype(np.uint8)


def side_by_side(
    image: np.ndarray,
    prediction: np.ndarray,
    reference: np.ndarray | None = None,
    boxes: Sequence[Sequence[int]] = (),
) -> Image.Image:
    """Left: the image; right: predicted outline (red), reference outline (green), boxes (yellow)."""
    gray = to_uint8(image)
    left = np.stack([gray] * 3, axis=-1)
    right = left.copy()
    if reference is not None:
        right[find_boundaries(reference > 0, mode="inner")] = REFERENCE_COLOUR
    right[find_boundaries(prediction > 0, mode="inner")] = PREDICTION_COLOUR
    picture = Image.fromarray(np.concatenate([left, right], axis=1))
    draw = ImageDraw.Draw(picture)
    offset = gray.shape[1]
    for x0, y0, x1, y1 in boxes:
        draw.rectangle([x0 + offset, y0, x1 - 1 + offset, y1 - 1], outline=BOX_COLOUR)
    return picture
