"""Training loss of Connected-UNets (Baccouche et al., 2021)."""

from __future__ import annotations

import torch
from torch.nn.modules.loss import _Loss

__all__ = ["DiceIoULoss"]


class DiceIoULoss(_Loss):
    """Soft combined Dice/IoU loss: ``1 - (dice_weight * Dice + iou_weight * IoU)``.

    The paper's loss is ``-(0.4 * Dice + 0.6 * IoU)``; this one is shifted by 1 so that it is
    non-negative (0 for a perfect prediction) while the gradients stay the same. Both terms are
    soft: they are computed on the sigmoid of the logits, with no threshold, and use the
    authors' smoothing constant in numerator and denominator::

        Dice = (2 * sum(p * y) + smooth) / (sum(p) + sum(y) + smooth)
        IoU  = (sum(p * y) + smooth) / (sum(p) + sum(y) - sum(p * y) + smooth)

    Both are computed per image over all non-batch axes and then reduced over the batch.
    The authors' Keras IoU was per image too, but their Dice was batch-global (one Dice over
    the flattened batch). We compute Dice per image as well, so that the gradient weight a
    sample receives does not depend on which other samples share its batch (with a global
    Dice, a small mass next to a large one is nearly ignored).

    Args:
        smooth: additive smoothing constant of both terms (the authors use 1).
        dice_weight: weight of the Dice term (0.4 in the paper).
        iou_weight: weight of the IoU term (0.6 in the paper). The loss is non-negative when
            the two weights sum to at most 1.
        reduction: ``"mean"`` (the batch average, as in the paper), ``"sum"`` or ``"none"``
            (one value per image, shape ``(B,)``).
    """

    def __init__(
        self,
        smooth: float = 1.0,
        dice_weight: float = 0.4,
        iou_weight: float = 0.6,
        reduction: str = "mean",
    ) -> None:
        super().__init__(reduction=reduction)
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        self.smooth = smooth
        self.dice_weight = dice_weight
        self.iou_weight = iou_weight

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Loss of logits ``input`` (B, 1, H, W) against ``target`` (B, 1, H, W) in [0, 1]."""
        if input.shape != target.shape:
            raise ValueError(f"input shape {tuple(input.shape)} does not match target shape {tuple(target.shape)}")
        prob = torch.sigmoid(input)
        target = target.to(prob.dtype)
        axes = tuple(range(1, prob.ndim))
        intersection = (prob * target).sum(axes)
        total = prob.sum(axes) + target.sum(axes)
        dice = (2.0 * intersection + self.smooth) / (total + self.smooth)
        iou = (intersection + self.smooth) / (total - intersection + self.smooth)
        loss = 1.0 - (self.dice_weight * dice + self.iou_weight * iou)
        if self.reduction == "mean":
            return loss.mean()
        if self.reduction == "sum":
            return loss.sum()
        return loss
