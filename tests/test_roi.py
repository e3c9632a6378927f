"""ROI geometry: box checks, the context margin, and pasting back."""

import numpy as np
import pytest

from connected_unets.roi import MarginRule, expand_box, mask_box, paste, validate_box


def test_a_box_partly_outside_the_image_is_clipped():
    assert validate_box([-10, 5, 50, 600], (512, 400)) == (0, 5, 50, 512)


def test_fractional_boxes_are_rounded_outward():
    assert validate_box([10.4, 20.6, 30.2, 40.9], (100, 100)) == (10, 20, 31, 41)


@pytest.mark.parametrize(
    "box, problem",
    [([600, 600, 700, 700], "outside the image"), ([10, 10, 10, 40], "empty"), ([30, 10, 20, 40], "empty"), ([1, 2, 3], "4 finite")],
)
def test_unusable_boxes_get_a_one_line_error_naming_the_source(box, problem):
    with pytest.raises(ValueError, match=problem) as caught:
        validate_box(box, (512, 512), source="scan.dcm")
    assert str(caught.value).startswith("scan.dcm: ") and "\n" not in str(caught.value)


def test_nan_box_is_rejected():
    with pytest.raises(ValueError, match="finite"):
        validate_box([0, 0, float("nan"), 10], (20, 20))


def test_large_masses_get_a_relative_margin():
    # 200 px box in a 1000 px image: 10 % = 20 px per side beats the 1 % floor (10 px)
    assert expand_box((400, 400, 600, 600), (1000, 1000)) == (380, 380, 620, 620)


def test_small_masses_get_a_larger_relative_margin():
    # 20 px box: 10 % would be 2 px, the floor of 1 % of the image side (10 px) wins
    x0, y0, x1, y1 = expand_box((500, 500, 520, 520), (1000, 1000))
    assert (x0, x1) == (490, 530)
    assert (500 - x0) / 20 > MarginRule().relative


def test_extra_margin_loosens_each_side_by_a_fraction_of_the_box():
    assert expand_box((400, 400, 600, 600), (1000, 1000), extra=(0.5, 0.0, 0.25, 0.0)) == (280, 380, 670, 620)


def test_the_roi_never_leaves_the_image():
    assert expand_box((0, 0, 50, 50), (60, 60), extra=(1, 1, 1, 1)) == (0, 0, 60, 60)


def test_mask_box_is_tight_and_end_exclusive():
    mask = np.zeros((10, 12), bool)
    mask[2:5, 3:9] = True
    assert mask_box(mask) == (3, 2, 9, 5)


def test_mask_box_of_an_empty_mask_is_an_error():
    with pytest.raises(ValueError, match="empty"):
        mask_box(np.zeros((4, 4), bool))


def test_paste_puts_the_roi_at_its_box_and_nothing_elsewhere():
    roi = np.ones((3, 4), np.uint8)
    full = paste(roi, (2, 1, 6, 4), (8, 8))
    assert full.dtype == np.uint8 and full.shape == (8, 8)
    assert full[1:4, 2:6].all() and full.sum() == 12


def test_paste_rejects_a_roi_of_the_wrong_size():
    with pytest.raises(ValueError, match="does not fit"):
        paste(np.ones((3, 3), np.uint8), (0, 0, 4, 4), (8, 8))
