"""Is there a mass? The checks that turn a drawn outline into the outcome "nothing found".

The network was trained on boxes around masses only, so it outlines *something* in any box: a blob
in the air beside the breast, in noise, in a near-black image (measured: mean probability inside
those blobs 0.95-0.99, as high as on real masses, so the network's confidence cannot tell them
apart). What does tell them apart is the picture itself:

- a mass is brighter than the tissue around it. :func:`mass_contrast` is the mean intensity inside
  the outline minus the mean of a ring around it, in units of the ROI's standard deviation. On the
  49 validation lesions it is 0.43 at least (median 1.13); boxes in air, in normal tissue and in
  uniform noise give 0.11 at most; blurred noise, being blob-like, gives 0.38-0.81 and passes
  (docs/reliability.md, ``scripts/calibrate_nothing_found.py``).
- an integer image whose values span only a few percent of their type's range (near black, faint
  noise) has nothing to segment: :func:`image_range_fraction`.
- a box that covers (nearly) the whole image is not a box around one mass (:func:`covers_image`;
  the validation boxes cover at most 55 % of their image's sides).

The thresholds live in inference.yaml (``min_mass_contrast``, ``min_image_range``,
``max_box_fraction``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

__all__ = ["covers_image", "image_range_fraction", "mass_contrast"]


def mass_contrast(image: np.ndarray, mask: np.ndarray, box: Sequence[int]) -> float:
    """(mean inside ``mask`` - mean of the ring around it inside ``box``) / std of the box's pixels.

    The ring is the mask dilated by 15 % of its equivalent radius (at least 3 pixels). 0 for an
    empty mask or a flat box."""
    inside = np.asarray(mask, dtype=bool)
    if not inside.any():
        return 0.0
    x0, y0, x1, y1 = (int(v) for v in box)
    in_box = np.zeros_like(inside)
    in_box[y0:y1, x0:x1] = True
    width = max(3, int(0.15 * np.sqrt(inside.sum())))
    ring = ndimage.binary_dilation(inside, iterations=width) & ~inside & in_box
    spread = float(np.asarray(image[y0:y1, x0:x1], dtype=np.float64).std())
    if not ring.any() or spread == 0.0:
        return 0.0
    values = np.asarray(image, dtype=np.float64)
    return float((values[inside].mean() - values[ring].mean()) / spread)


def image_range_fraction(image: np.ndarray, value_range: tuple[float, float] | None = None) -> float | None:
    """The image's robust value range (0.5th to 99.5th percentile) as a fraction of ``value_range``
    (what its pixel type can hold; ``LoadedImage.value_range`` for a file) or of its integer dtype's
    range; None for a float image of unknown range, whose range says nothing by itself."""
    array = np.asarray(image)
    if value_range is None:
        if not np.issubdtype(array.dtype, np.integer):
            return None
        info = np.iinfo(array.dtype)
        value_range = (float(info.min), float(info.max))
    low, high = np.percentile(array, [0.5, 99.5])
    return float(high - low) / float(value_range[1] - value_range[0])


def covers_image(box: Sequence[int], shape: Sequence[int], fraction: float) -> bool:
    """True when ``box`` spans at least ``fraction`` of both the image's width and height."""
    x0, y0, x1, y1 = (int(v) for v in box)
    return (x1 - x0) >= fraction * int(shape[1]) and (y1 - y0) >= fraction * int(shape[0])
