"""Specification of DiceIoULoss: 1 - (0.4 Dice + 0.6 IoU), soft, per image, smooth = 1."""

import pytest
import torch
from monai.losses import DiceLoss

from connected_unets.losses import DiceIoULoss

BIG = 30.0  # a logit whose sigmoid is 1 (or 0) to float precision


def _target() -> torch.Tensor:
    t = torch.zeros(1, 1, 8, 8)
    t[..., 2:6, 3:7] = 1.0
    return t


def test_perfect_prediction_gives_zero_loss():
    target = _target()
    logits = (2 * target - 1) * BIG
    assert DiceIoULoss()(logits, target).item() == pytest.approx(0.0, abs=1e-6)


def test_empty_target_with_empty_prediction_gives_zero_loss():
    target = torch.zeros(1, 1, 8, 8)
    assert DiceIoULoss()(torch.full_like(target, -BIG), target).item() == pytest.approx(0.0, abs=1e-6)


def test_hand_worked_example_matches_formula():
    # sigmoid(0) = 0.5 everywhere; 2 of 4 pixels are foreground.
    # I = 1, sum(p) = 2, sum(y) = 2 -> Dice = (2+1)/(4+1) = 0.6, IoU = (1+1)/(3+1) = 0.5
    target = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]]])
    loss = DiceIoULoss()(torch.zeros_like(target), target)
    assert loss.item() == pytest.approx(1 - (0.4 * 0.6 + 0.6 * 0.5))


def test_weights_and_smooth_are_arguments():
    target = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]]])
    # smooth = 0: Dice = 2/4 = 0.5, IoU = 1/3; dice only weight
    loss = DiceIoULoss(smooth=0.0, dice_weight=1.0, iou_weight=0.0)(torch.zeros_like(target), target)
    assert loss.item() == pytest.approx(0.5)
    loss = DiceIoULoss(smooth=0.0, dice_weight=0.0, iou_weight=1.0)(torch.zeros_like(target), target)
    assert loss.item() == pytest.approx(2 / 3)


def test_batch_loss_is_mean_of_per_image_losses():
    target = torch.cat([_target(), _target()])
    logits = torch.cat([(2 * _target() - 1) * BIG, torch.full_like(_target(), -BIG)])  # perfect, empty prediction
    loss_fn = DiceIoULoss()
    singles = [loss_fn(logits[i : i + 1], target[i : i + 1]).item() for i in range(2)]
    assert singles[0] == pytest.approx(0.0, abs=1e-6) and singles[1] > 0.9
    assert loss_fn(logits, target).item() == pytest.approx(sum(singles) / 2)


def test_reduction_none_returns_one_loss_per_image():
    target = torch.cat([_target(), torch.zeros_like(_target())])
    loss = DiceIoULoss(reduction="none")(torch.zeros_like(target), target)
    assert loss.shape == (2,)


def test_equals_monai_dice_and_jaccard_losses_with_matching_smoothing():
    # MONAI's jaccard form is 1 - (2I + s)/(2U + s), so IoU with smooth 1 needs s = 2 there.
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 1, 16, 16, generator=g) * 3
    target = (torch.rand(3, 1, 16, 16, generator=g) > 0.6).float()
    monai_dice = DiceLoss(sigmoid=True, smooth_nr=1.0, smooth_dr=1.0)(logits, target)
    monai_iou = DiceLoss(sigmoid=True, jaccard=True, smooth_nr=2.0, smooth_dr=2.0)(logits, target)
    expected = 0.4 * monai_dice + 0.6 * monai_iou  # 1 - (0.4 D + 0.6 I)
    assert DiceIoULoss()(logits, target).item() == pytest.approx(expected.item(), rel=1e-5)


def test_gradients_are_finite_and_nonzero():
    logits = torch.randn(2, 1, 8, 8, requires_grad=True)
    DiceIoULoss()(logits, torch.cat([_target(), _target()])).backward()
    assert torch.isfinite(logits.grad).all()
    assert logits.grad.abs().sum() > 0


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(1, 1, 8, 8\).*\(1, 1, 4, 4\)"):
        DiceIoULoss()(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 4, 4))
