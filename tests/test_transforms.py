"""The ROI transforms the bundle configs compose: crop, resize, CLAHE, and the way back."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from monai.bundle import ConfigParser

from connected_unets.bundle import open_config
from connected_unets.io import load_image, load_mask
from connected_unets.metrics import dice
from connected_unets.transforms import CropROId, LoadMammogramd, RandCLAHEd, ResizeROId

BUNDLE = Path(__file__).resolve().parents[1] / "monai_bundle"
SAMPLES = json.loads((BUNDLE / "sample_data" / "samples.json").read_text())


def _sample(name: str) -> dict:
    return next(s for s in SAMPLES if name in s["image"])


def _inference_config() -> ConfigParser:
    return open_config(["inference.yaml"], BUNDLE)


def test_load_reads_files_records_their_path_and_binarises_masks():
    sample = _sample("P60")
    d = LoadMammogramd(["image", "label"], label_keys="label")(
        {"image": str(BUNDLE / "sample_data" / sample["image"]), "label": str(BUNDLE / "sample_data" / sample["mask"])}
    )
    assert d["image"].shape == (1, 512, 512) and d["image"].dtype == torch.float32
    assert set(torch.unique(d["label"]).tolist()) == {0.0, 1.0}
    assert d["image_size"] == [512, 512] and d["image_path"].endswith("P60_L_DM_MLO.jpg")


def test_load_rejects_an_image_with_nan():
    image = np.ones((32, 32), np.float32)
    image[3, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        LoadMammogramd("image")({"image": image})


def test_load_rejects_a_colour_array():
    with pytest.raises(ValueError, match="grayscale"):
        LoadMammogramd("image")({"image": np.ones((32, 32, 3), np.float32)})


def test_crop_takes_the_box_plus_the_margin_and_records_it():
    d = CropROId("image", label_key=None)({"image": torch.zeros(1, 1000, 1000), "box": [400, 400, 600, 600]})
    assert d["roi_box"] == [380, 380, 620, 620] and d["image"].shape == (1, 240, 240)


@pytest.mark.parametrize(
    "options",
    [{"extra_margin": -0.5}, {"loosen": (-0.7, 0.4)}, {"extra_margin": float("nan")}, {"loosen": (-0.3, 0.1), "loosen_common": (-0.3, 0.0)}],
)
def test_a_margin_that_would_empty_the_box_is_refused_when_the_crop_is_built(options):
    with pytest.raises(ValueError, match="must be finite and add up to more than -0.5 per side"):
        CropROId("image", label_key=None, **options)


def test_crop_derives_the_box_from_the_mask_when_none_is_given():
    label = torch.zeros(1, 100, 100)
    label[0, 20:40, 30:70] = 1
    d = CropROId(["image", "label"])({"image": torch.zeros(1, 100, 100), "label": label})
    x0, y0, x1, y1 = d["roi_box"]
    assert x0 <= 30 and y0 <= 20 and x1 >= 70 and y1 >= 40
    assert d["label"].sum() == label.sum()  # the whole lesion is inside its ROI


def test_training_loosening_only_ever_grows_the_roi_within_its_range():
    crop = CropROId("image", label_key=None, loosen=(0.0, 0.4), prob=1.0)
    crop.set_random_state(0)
    sizes = []
    for _ in range(20):
        d = crop({"image": torch.zeros(1, 1000, 1000), "box": [400, 400, 600, 600]})
        x0, y0, x1, y1 = d["roi_box"]
        assert 300 <= x0 <= 380 and 300 <= y0 <= 380 and 620 <= x1 <= 700 and 620 <= y1 <= 700
        sizes.append((x1 - x0, y1 - y0))
    assert len(set(sizes)) > 10  # really random


def test_common_loosening_grows_all_four_sides_by_one_shared_draw():
    crop = CropROId("image", label_key=None, prob=1.0, loosen_common=(0.0, 0.4))
    crop.set_random_state(0)
    grown = []
    for _ in range(20):
        x0, y0, x1, y1 = crop({"image": torch.zeros(1, 1000, 1000), "box": [400, 400, 600, 600]})["roi_box"]
        assert 400 - x0 == 400 - y0 == x1 - 600 == y1 - 600  # the same margin on every side
        grown.append(400 - x0)
    assert min(grown) >= 20 and max(grown) <= 100  # the paper's 10 % margin plus 0..40 % of the box
    assert len(set(grown)) > 10


def test_common_loosening_off_leaves_the_per_side_draws_as_they_were():
    boxes = []
    for options in ({}, {"loosen_common": (0.0, 0.0)}):
        crop = CropROId("image", label_key=None, loosen=(0.0, 0.4), prob=1.0, **options)
        crop.set_random_state(3)
        boxes.append([crop({"image": torch.zeros(1, 1000, 1000), "box": [400, 400, 600, 600]})["roi_box"] for _ in range(5)])
    assert boxes[0] == boxes[1]


def test_a_fixed_extra_margin_scores_loose_boxes_deterministically():
    crop = CropROId("image", label_key=None, extra_margin=0.3)
    assert crop({"image": torch.zeros(1, 1000, 1000), "box": [400, 400, 600, 600]})["roi_box"] == [320, 320, 680, 680]


def test_crop_reports_a_box_outside_the_image_with_the_file_name():
    with pytest.raises(ValueError, match="scan.png: box .* outside"):
        CropROId("image", label_key=None)({"image": torch.zeros(1, 50, 50), "box": [60, 60, 80, 80], "image_path": "scan.png"})


def test_resize_enlarges_bicubic_and_keeps_the_input_range():
    image = torch.rand(1, 40, 50)
    out = ResizeROId("image", spatial_size=(64, 64))({"image": image})["image"]
    expected = F.interpolate(image[None], size=(64, 64), mode="bicubic", align_corners=False)[0]
    torch.testing.assert_close(out, expected.clamp(float(image.min()), float(image.max())))


def test_resize_shrinks_by_area_averaging():
    image = torch.rand(1, 128, 128)
    out = ResizeROId("image", spatial_size=(64, 64))({"image": image})["image"]
    torch.testing.assert_close(out, F.avg_pool2d(image[None], 2)[0])


def test_resize_keeps_masks_binary():
    label = (torch.rand(1, 37, 53) > 0.5).float()
    out = ResizeROId(["label"], spatial_size=(64, 64), label_keys="label")({"label": label})["label"]
    assert set(torch.unique(out).tolist()) <= {0.0, 1.0}


def test_clahe_changes_contrast_but_stays_in_unit_range():
    image = torch.linspace(0.3, 0.6, 64 * 64).reshape(1, 64, 64)
    clahe = RandCLAHEd("image", prob=1.0)
    clahe.set_random_state(1)
    out = clahe({"image": image})["image"]
    assert out.shape == image.shape and 0.0 <= float(out.min()) and float(out.max()) <= 1.0
    assert float(out.std()) > float(image.std())


def test_clahe_with_probability_zero_leaves_the_image_alone():
    image = torch.rand(1, 32, 32)
    assert RandCLAHEd("image", prob=0.0)({"image": image})["image"] is image


def test_inference_preprocessing_stacks_all_boxes_of_an_image():
    parser = _inference_config()
    sample = _sample("P72")
    data = parser.get_parsed_content("preprocessing")(
        {"image": str(BUNDLE / "sample_data" / sample["image"]), "boxes": sample["boxes"]}
    )
    assert data["image"].shape == (2, 3, 256, 256)
    assert 0.0 <= float(data["image"].min()) and float(data["image"].max()) <= 1.0
    assert data["roi_box"].shape == (2, 4)


def test_the_way_back_puts_each_roi_where_it_came_from():
    """Feed each ROI's own resized reference mask through the post-processing as the 'prediction':
    the pasted result must reproduce the reference (geometry of crop, resize, restore and paste)."""
    parser = _inference_config()
    sample = _sample("P304")
    reference = load_mask(BUNDLE / "sample_data" / sample["mask"])
    image = load_image(BUNDLE / "sample_data" / sample["image"]).array
    preprocessing = parser.get_parsed_content("preprocessing")
    data = preprocessing({"image": image, "boxes": sample["boxes"]})
    as_image = preprocessing({"image": reference.astype(np.float32), "boxes": sample["boxes"]})
    roi_masks = (as_image["image"][:, :1] > 0.5).float()  # (N, 1, 256, 256) after histogram equalisation
    restore = parser.get_parsed_content("roi_postprocessing")
    pasted = [restore({"pred": roi, "roi_box": box, "image_size": data["image_size"]})["pred"][0].numpy() for roi, box in zip(roi_masks, data["roi_box"])]
    mask = np.maximum.reduce(pasted)
    assert mask.shape == reference.shape
    assert dice(mask, reference) > 0.97


def test_inference_preprocessing_equals_validation_preprocessing_on_real_rois():
    """common.yaml's ROI pipeline is written once: what the network sees of a lesion at inference
    (inference.yaml: full image + boxes) is exactly what training's validation scored (train.yaml)."""
    inference = _inference_config().get_parsed_content("preprocessing")
    train = open_config(["train.yaml"], BUNDLE, {"dataset_dir": str(BUNDLE / "sample_data" / "rois")})
    validation = train.get_parsed_content("validate#preprocessing")
    rois = BUNDLE / "sample_data" / "rois"
    entries = json.loads((rois / "datalist.json").read_text())
    items = [item for split in ("training", "validation") for item in entries[split]]
    assert len(items) >= 8
    for item in items:
        image, label = str(rois / item["image"]), str(rois / item["label"])
        scored = validation({"image": image, "label": label, "box": item["box"]})
        seen = inference({"image": image, "boxes": [item["box"]]})
        torch.testing.assert_close(torch.as_tensor(seen["image"])[0], torch.as_tensor(scored["image"]), rtol=0, atol=0)
        assert list(seen["roi_box"][0].tolist()) == list(scored["roi_box"])
