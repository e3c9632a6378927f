"""Specification of thresholding and largest-component post-processing."""

import numpy as np
import pytest
from PIL import Image
from skimage.measure import label

from conftest import SAMPLE_DATA
from connected_unets.postprocess import binarize, keep_largest_component

MASKS = SAMPLE_DATA / "masks"


def _real_mask(name: str) -> np.ndarray:
    """A real mass-only 0/255 mask of the shipped sample."""
    return np.asarray(Image.open(MASKS / name))


def _two_blobs(dtype) -> np.ndarray:
    mask = np.zeros((10, 10), dtype)
    mask[1:3, 1:3] = 1  # 4 px
    mask[5:9, 5:9] = 1  # 16 px
    return mask


def test_binarize_thresholds_inclusively_like_asdiscrete():
    np.testing.assert_array_equal(binarize(np.array([0.2, 0.5, 0.7])), [False, True, True])


def test_binarize_threshold_is_an_argument():
    np.testing.assert_array_equal(binarize(np.array([0.2, 0.5, 0.7]), threshold=0.6), [False, False, True])


def test_binarize_rejects_nan():
    with pytest.raises(ValueError, match="NaN"):
        binarize(np.array([0.1, np.nan]))


def test_keeps_the_bigger_of_two_blobs():
    out = keep_largest_component(_two_blobs(bool))
    expected = np.zeros((10, 10), bool)
    expected[5:9, 5:9] = True
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("dtype", [bool, np.uint8])
def test_output_dtype_matches_input(dtype):
    assert keep_largest_component(_two_blobs(dtype)).dtype == np.dtype(dtype)


def test_foreground_values_are_preserved_for_0_255_masks():
    out = keep_largest_component(_two_blobs(np.uint8) * 255)
    assert set(np.unique(out)) == {0, 255}
    assert (out == 255).sum() == 16


def test_diagonal_neighbours_are_one_component():
    # a 3-px diagonal line (8-connected) beats a 2-px horizontal bar
    mask = np.zeros((6, 6), bool)
    mask[0, 0] = mask[1, 1] = mask[2, 2] = True
    mask[5, 3:5] = True
    expected = np.zeros_like(mask)
    expected[0, 0] = expected[1, 1] = expected[2, 2] = True
    np.testing.assert_array_equal(keep_largest_component(mask), expected)


def test_empty_mask_stays_empty():
    out = keep_largest_component(np.zeros((5, 5), np.uint8))
    assert out.dtype == np.uint8 and not out.any()


def test_rejects_non_2d_masks():
    with pytest.raises(ValueError, match="2-D"):
        keep_largest_component(np.zeros((1, 5, 5), bool))


def test_real_mass_cut_by_a_diagonal_line_stays_one_8_connected_object():
    # Removing the pixels of one anti-diagonal (row + col = k) through the P60_L_DM_MLO mass leaves
    # halves that touch only corner to corner: one object under 8-connectivity, two under 4.
    mask = _real_mask("P60_L_DM_MLO.png").copy()
    rows, cols = np.indices(mask.shape)
    mask[rows + cols == int(np.median((rows + cols)[mask > 0]))] = 0
    assert label(mask > 0, connectivity=1).max() == 2
    np.testing.assert_array_equal(keep_largest_component(mask), mask)


def test_real_multi_component_mask_keeps_its_largest_component():
    mask = _real_mask("P72_R_DM_CC.png")  # two separate masses
    labels = label(mask > 0, connectivity=2)
    largest = np.bincount(labels.ravel())[1:].max()
    out = keep_largest_component(mask)
    assert labels.max() > 1
    assert label(out > 0, connectivity=2).max() == 1
    assert (out > 0).sum() == largest
    assert np.all(out[out > 0] == mask[out > 0])
