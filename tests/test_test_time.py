"""Test-time options of the Segmenter (connected_unets/test_time.py, inference.yaml's tta,
refine_rounds, refine_below): exact dihedral views, a confidence that means something, and box
refinement that re-crops a loosely drawn box but leaves a tight one alone. Shipped weights, a
shipped sample mammogram."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from connected_unets.inference import Segmenter
from connected_unets.io import load_image
from connected_unets.metrics import dice
from connected_unets.roi import mask_box
from connected_unets.test_time import VIEWS, confidence

SAMPLE = "P60_L_DM_MLO"
LESION = (175, 142, 302, 267)  # x0 y0 x1 y1 of the sample's mass, end exclusive


def loosened(box: tuple[int, int, int, int], fraction: float) -> list[float]:
    x0, y0, x1, y1 = box
    dx, dy = fraction * (x1 - x0), fraction * (y1 - y0)
    return [x0 - dx, y0 - dy, x1 + dx, y1 + dy]


@pytest.fixture(scope="module")
def picture(sample_dir) -> np.ndarray:
    return load_image(sample_dir / "images" / f"{SAMPLE}.jpg").array


@pytest.fixture(scope="module")
def plain(one_torch_thread) -> Segmenter:
    return Segmenter.from_bundle(device="cpu", tta=False, refine_rounds=0)


def test_every_view_is_undone_by_its_inverse():
    x = torch.arange(2 * 5 * 5, dtype=torch.float32).reshape(2, 1, 5, 5)
    for forward, inverse in VIEWS:
        torch.testing.assert_close(inverse(forward(x)), x)
    assert len({tuple(forward(x).flatten().tolist()) for forward, _ in VIEWS}) == 8  # eight different views


def test_confidence_is_the_mean_probability_inside_the_mask_and_zero_without_one():
    prob = torch.tensor([[[[0.9, 0.7], [0.2, 0.1]]], [[[0.2, 0.1], [0.3, 0.4]]]])
    mask = prob > 0.5
    assert confidence(prob, mask) == pytest.approx([0.8, 0.0])


def test_all_eight_views_agree_with_the_plain_mask_and_report_their_agreement(picture, plain):
    (single,) = plain.segment_rois(picture, [LESION])
    (averaged,) = Segmenter.from_bundle(device="cpu", tta=True, refine_rounds=0).segment_rois(picture, [LESION])
    assert averaged.found and dice(averaged.mask, single.mask) > 0.95
    assert 0.5 < averaged.confidence <= single.confidence + 1e-6  # the views' agreement can only lower it


def test_a_box_the_mass_fills_is_not_refined(picture, plain):
    (first,) = plain.segment_rois(picture, [LESION])
    snug = mask_box(first.mask)
    (result,) = Segmenter.from_bundle(device="cpu", refine_rounds=1, refine_below=0.7).segment_rois(picture, [snug])
    assert result.found and result.boxes == [snug]


def test_a_loose_box_is_recropped_around_the_mass_and_its_mask_nears_the_tight_boxes(picture, plain):
    loose = loosened(LESION, 0.3)
    (tight,) = plain.segment_rois(picture, [LESION])
    (unrefined,) = plain.segment_rois(picture, [loose])
    (refined,) = Segmenter.from_bundle(device="cpu", refine_rounds=1, refine_below=0.7).segment_rois(picture, [loose])
    assert len(refined.boxes) == 2
    (x0, y0, x1, y1), (u0, v0, u1, v1) = refined.boxes
    assert (u1 - u0) * (v1 - v0) < 0.7 * (x1 - x0) * (y1 - y0)  # the second pass looks at the mass, not the loose box
    assert dice(refined.mask, tight.mask) > dice(unrefined.mask, tight.mask)


@pytest.mark.parametrize("value", [0, -0.1, 1.5])
def test_a_refine_share_outside_0_to_1_is_one_line(value):
    with pytest.raises(ValueError, match=r"^refine_below .*: a share of the box's area"):
        Segmenter.from_bundle(device="cpu", refine_below=value)


def test_the_bundle_default_refines_loose_boxes_once(plain):
    default = Segmenter.from_bundle(device="cpu")
    assert (default.refine_rounds, default.refine_below, default.tta_views) == (1, 0.6, 1)
