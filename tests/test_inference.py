"""Segmenter: the one inference function behind the CLI, the bundle and Slicer."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from connected_unets.bundle import resolve_device
from connected_unets.inference import Segmenter, load_weights
from connected_unets.io import load_image, load_mask
from connected_unets.networks import get_network

BUNDLE = Path(__file__).resolve().parents[1] / "monai_bundle"
SAMPLES = json.loads((BUNDLE / "sample_data" / "samples.json").read_text())


@pytest.fixture(scope="module")
def segmenter(random_weights) -> Segmenter:
    return Segmenter.from_bundle(weights=random_weights, device="cpu")


@pytest.fixture(scope="module")
def sample():
    item = next(s for s in SAMPLES if "P72" in s["image"])
    return load_image(BUNDLE / "sample_data" / item["image"]).array, item["boxes"]


def test_mask_has_the_image_shape_and_is_zero_outside_the_rois(segmenter, sample):
    image, boxes = sample
    mask = segmenter.segment(image, boxes)
    assert mask.shape == image.shape and mask.dtype == np.uint8
    assert set(np.unique(mask)) <= {0, 1}
    inside = np.zeros(image.shape, bool)
    for x0, y0, x1, y1 in boxes:  # ROIs are the boxes plus at most a 10 % / 5 px context margin
        w, h = x1 - x0, y1 - y0
        inside[max(y0 - h // 5 - 6, 0): y1 + h // 5 + 6, max(x0 - w // 5 - 6, 0): x1 + w // 5 + 6] = True
    assert not mask[~inside].any()


def test_any_dtype_gives_the_same_mask(segmenter, sample):
    image, boxes = sample
    as_uint8 = segmenter.segment(image.astype(np.uint8), boxes[:1])
    as_float = segmenter.segment(image.astype(np.float64), boxes[:1])
    np.testing.assert_array_equal(as_uint8, as_float)


def test_several_boxes_give_the_union_of_single_box_masks(segmenter, sample):
    image, boxes = sample
    together = segmenter.segment(image, boxes)
    one_by_one = np.maximum(*(segmenter.segment(image, [box]) for box in boxes))
    np.testing.assert_array_equal(together, one_by_one)


def test_all_boxes_of_a_call_go_through_the_network_as_one_batch_per_pass(segmenter, sample):
    image, boxes = sample
    batch_sizes = []
    hook = segmenter.network.register_forward_hook(lambda module, args, out: batch_sizes.append(args[0].shape[0]))
    try:
        results = segmenter.segment_rois(image, boxes)
    finally:
        hook.remove()
    refined = sum(len(result.boxes) > 1 for result in results)  # boxes the refinement pass (inference.yaml) re-cropped
    assert batch_sizes == [len(boxes)] + ([refined] if refined else [])


@pytest.mark.parametrize(
    "image, boxes, problem",
    [
        (np.zeros((64, 64)), [[70, 70, 90, 90]], "outside the image"),
        (np.zeros((64, 64)), [[10, 10, 10, 30]], "empty"),
        (np.zeros((64, 64)), [], "no ROI box"),
        (np.zeros((64, 64, 3)), [[0, 0, 10, 10]], "2-D grayscale"),
        (np.zeros((4, 64, 64)), [[0, 0, 10, 10]], "2-D grayscale"),
        (np.where(np.eye(64) > 0, np.nan, 1.0), [[10, 10, 30, 30]], "NaN or infinity"),
        (np.full((64, 64), np.inf, np.float32), [[10, 10, 30, 30]], "NaN or infinity"),
    ],
)
def test_bad_input_gets_a_one_line_error_naming_the_source(segmenter, image, boxes, problem):
    with pytest.raises(ValueError, match=problem) as caught:
        segmenter.segment(image, boxes, source="case7.png")
    assert str(caught.value).startswith("case7.png: ") and "\n" not in str(caught.value)


def test_missing_weights_say_which_file_and_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.pt: weights not found"):
        Segmenter.from_bundle(weights=tmp_path / "nothing.pt", device="cpu")


def test_weights_of_another_network_are_refused_in_one_line(tmp_path):
    path = tmp_path / "unet.pt"
    torch.save(get_network("unet", in_channels=3).state_dict(), path)
    with pytest.raises(ValueError, match="unet.pt: not weights of ConnectedResUNets") as caught:
        load_weights(get_network("connected_resunets", in_channels=3), path)
    assert "\n" not in str(caught.value)


def test_a_file_that_is_not_weights_is_refused_in_one_line_without_torch_internals(tmp_path):
    path = tmp_path / "notes.pt"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ValueError) as caught:
        load_weights(get_network("unet", in_channels=3), path)
    assert str(caught.value) == f"{path}: not a PyTorch weights file (expected a state_dict saved by torch.save)"


def test_a_saved_tensor_is_not_a_state_dict(tmp_path):
    path = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), path)
    with pytest.raises(ValueError, match="tensor.pt: holds a Tensor, not a state_dict of UNet"):
        load_weights(get_network("unet", in_channels=3), path)


@pytest.mark.parametrize("threshold", [0.0, 1.0, 1.5, -0.2])
def test_a_threshold_outside_0_1_is_refused_before_anything_loads(threshold, tmp_path):
    """Absent weights would be a FileNotFoundError: the threshold must be checked first."""
    with pytest.raises(ValueError, match=f"threshold {threshold}: .* strictly between 0 and 1"):
        Segmenter.from_bundle(model="unet", device="cpu", threshold=threshold, weights=tmp_path / "absent.pt")


def test_asking_for_a_gpu_without_one_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ValueError, match="no CUDA GPU"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"


def test_the_segmenter_and_monai_bundle_run_give_the_same_mask(segmenter, random_weights, tmp_path):
    item = next(s for s in SAMPLES if "P304" in s["image"])
    datalist = json.dumps([{"image": str(BUNDLE / "sample_data" / item["image"]), "boxes": item["boxes"]}])
    result = subprocess.run(
        [sys.executable, "-m", "monai.bundle", "run", "--config_file", "['configs/common.yaml','configs/inference.yaml']",
         "--model_file", str(random_weights), "--output_dir", str(tmp_path), "--datalist", datalist],
        cwd=BUNDLE, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    from_bundle = load_mask(tmp_path / "P304_R_DM_MLO_mask.png")
    image = load_image(BUNDLE / "sample_data" / item["image"]).array
    np.testing.assert_array_equal(segmenter.segment(image, item["boxes"]).astype(bool), from_bundle)
