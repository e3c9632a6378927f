"""Test-time options of the Segmenter: flip/rot90 augmentation, a per-ROI confidence, box refinement.

Why here and not in the configs: these act on the network's ROI-level probabilities and on the
boxes between two passes, which a MONAI transform chain cannot express; the configs switch them on
(``inference.yaml``: ``tta``, ``refine_rounds``) and every front door goes through the Segmenter.

- TTA: the ROI batch is seen in up to 8 dihedral views (identity, flips, rot90s); each view's
  probabilities are mapped back and averaged. The masks of a square ROI are exactly equivariant
  under these maps, so no interpolation is involved.
- Confidence of one ROI: the mean probability inside its mask (0.5 .. 1; 0 for an empty mask),
  times the agreement of the TTA views (mean Dice of each view's mask with the averaged mask) when
  TTA is on. Measured against Dice on the validation lesions in docs/confidence.md.
- Refinement: the box of the predicted mask replaces the user's box for another pass (the paper's
  context margin is added again by the ROI pipeline), at most ``refine_rounds`` times, stopping when
  the box no longer moves. It makes a loosely drawn box behave like a tight one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

__all__ = ["VIEWS", "averaged_views", "box_moved", "confidence", "view_agreement"]

#: The dihedral views of a square ROI as (forward, inverse) maps on (..., H, W) tensors.
VIEWS: tuple[tuple[Callable[[torch.Tensor], torch.Tensor], Callable[[torch.Tensor], torch.Tensor]], ...] = (
    (lambda x: x, lambda x: x),
    (lambda x: x.flip(-1), lambda x: x.flip(-1)),
    (lambda x: x.flip(-2), lambda x: x.flip(-2)),
    (lambda x: x.rot90(1, (-2, -1)), lambda x: x.rot90(-1, (-2, -1))),
    (lambda x: x.rot90(2, (-2, -1)), lambda x: x.rot90(-2, (-2, -1))),
    (lambda x: x.rot90(3, (-2, -1)), lambda x: x.rot90(-3, (-2, -1))),
    (lambda x: x.rot90(1, (-2, -1)).flip(-1), lambda x: x.flip(-1).rot90(-1, (-2, -1))),
    (lambda x: x.rot90(1, (-2, -1)).flip(-2), lambda x: x.flip(-2).rot90(-1, (-2, -1))),
)


def averaged_views(run: Callable[[torch.Tensor], torch.Tensor], inputs: torch.Tensor, views: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Probabilities of the ``(N, C, H, W)`` ROI batch averaged over the first ``views`` dihedral
    views, all views in ONE call of ``run`` (logits of ``(V*N, C, H, W)``).

    Returns ``(mean probabilities (N, 1, H, W), per-view probabilities (V, N, 1, H, W))``."""
    if not 1 <= views <= len(VIEWS):
        raise ValueError(f"tta views must be between 1 and {len(VIEWS)}, got {views}")
    chosen = VIEWS[:views]
    batch = torch.cat([forward(inputs) for forward, _ in chosen])
    probs = torch.sigmoid(run(batch).float())
    per_view = torch.stack([inverse(p) for (_, inverse), p in zip(chosen, probs.split(inputs.shape[0]))])
    return per_view.mean(0), per_view


def view_agreement(per_view: torch.Tensor, mask: torch.Tensor, threshold: float) -> torch.Tensor:
    """Per ROI, the mean Dice of each view's thresholded probabilities with ``mask`` (N, 1, H, W):
    1 when every view draws the same outline. Two empty masks agree (Dice 1)."""
    view_masks = per_view >= threshold
    target = mask.bool()[None]
    overlap = (view_masks & target).sum(dim=(-3, -2, -1)).float()
    sizes = view_masks.sum(dim=(-3, -2, -1)).float() + target.sum(dim=(-3, -2, -1)).float()
    dice = torch.where(sizes > 0, 2 * overlap / sizes.clamp(min=1), torch.ones_like(sizes))
    return dice.mean(0)


def confidence(prob: torch.Tensor, mask: torch.Tensor, agreement: torch.Tensor | None = None) -> list[float]:
    """Per ROI: the mean probability inside the mask (0 for an empty mask), times the TTA
    ``agreement`` when given. ``prob`` and ``mask`` are (N, 1, H, W) at the network's resolution."""
    inside = mask.bool()
    counts = inside.sum(dim=(-3, -2, -1))
    mean_inside = torch.where(counts > 0, (prob * inside).sum(dim=(-3, -2, -1)) / counts.clamp(min=1), torch.zeros_like(counts, dtype=prob.dtype))
    values = mean_inside if agreement is None else mean_inside * agreement
    return [float(v) for v in values]


def box_moved(old: Sequence[int], new: Sequence[int], tolerance: float = 0.02) -> bool:
    """True when a side of ``new`` lies more than ``tolerance`` x the box size (and 1 pixel) away
    from ``old``'s: the refinement goes on only while the box still moves."""
    width, height = max(old[2] - old[0], 1), max(old[3] - old[1], 1)
    limits = np.maximum([tolerance * width, tolerance * height] * 2, 1.0)
    return bool((np.abs(np.subtract(new, old)) > limits).any())
