"""Mass-region selection, patient-wise splits and the prepare step on real data."""

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED
from PIL import Image

from connected_unets.data.folder import ALL_COMPONENTS, read_folder
from connected_unets.data.prepare import prepare
from connected_unets.data.records import Annotation, ImageRecord
from connected_unets.data.regions import mass_regions
from connected_unets.data.split import split_patients
from connected_unets.io import load_mask

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "monai_bundle" / "sample_data"


def _sample_records() -> list[ImageRecord]:
    return read_folder(SAMPLE).records


def _record(image: Path, mask: Path, patient: str) -> ImageRecord:
    return ImageRecord(image, patient, (Annotation(f"{image.stem}_lesion", mask=mask, components=ALL_COMPONENTS),))


def test_a_mask_of_two_separate_masses_gives_two_lesions_largest_first():
    regions = mass_regions(load_mask(SAMPLE / "masks" / "P72_R_DM_CC.png"))
    assert len(regions) == 2
    assert regions[0].sum() > regions[1].sum() > 0
    assert not np.any(regions[0] & regions[1])


def test_thin_skin_line_arcs_and_specks_are_not_lesions():
    mask = np.zeros((200, 200), bool)
    yy, xx = np.mgrid[:200, :200]
    ring = np.abs(np.hypot(yy - 100, xx - 100) - 90) < 3  # a 6 px wide arc along a "skin line"
    mask |= ring & (xx < 100)
    mask[95:125, 95:120] = True  # a compact mass
    mask[10:13, 150:153] = True  # a 9 px speck
    regions = mass_regions(mask)
    assert len(regions) == 1 and regions[0][110, 110]


def test_real_masses_come_back_whole_one_region_per_mass():
    """The shipped masks hold only masses (spiculated ones too): the rules keep every pixel of them."""
    for sample in json.loads((SAMPLE / "samples.json").read_text()):
        mask = load_mask(SAMPLE / sample["mask"])
        regions = mass_regions(mask)
        assert len(regions) == len(sample["boxes"]), sample["mask"]
        np.testing.assert_array_equal(np.any(regions, axis=0), mask, err_msg=sample["mask"])


# Needs a raw CDD-CESM mask with skin arcs: the shipped masks are already reduced to their masses.
@pytest.mark.skipif(
    not (SHARED / "data" / "cdd_cesm_dm").is_dir(), reason="raw masks with skin arcs are only in the shared folder"
)
def test_skin_arcs_of_the_real_dataset_are_dropped():
    mask = np.array(Image.open(SHARED / "data" / "cdd_cesm_dm" / "masks_bin" / "P105_R_DM_CC.png")) > 127
    regions = mass_regions(mask)
    kept = np.any(regions, axis=0)
    assert 0 < kept.sum() < mask.sum()
    assert not kept[:, :20].any()  # nothing kept along the left border, where the skin arc runs


def test_split_puts_every_patient_in_exactly_one_split_reproducibly():
    patients = [f"P{i}" for i in range(50)] * 2  # two images each
    first = split_patients(patients, [0.7, 0.2, 0.1], ["train", "test", "val"], seed=3)
    again = split_patients(reversed(patients), [0.7, 0.2, 0.1], ["train", "test", "val"], seed=3)
    assert first == again and set(first) == set(patients)
    counts = {name: sum(v == name for v in first.values()) for name in ("train", "test", "val")}
    assert counts == {"train": 35, "test": 10, "val": 5}


def test_split_needs_one_ratio_per_name():
    with pytest.raises(ValueError, match="ratios"):
        split_patients(["a"], [1.0], ["train", "val"])


def test_prepare_writes_one_roi_per_lesion_and_splits_by_patient(tmp_path):
    datalist = prepare(_sample_records(), tmp_path, splits={"training": 0.5, "validation": 0.5}, seed=0)
    lesions = datalist["training"] + datalist["validation"]
    assert len(lesions) == 8  # 6 images: four with one lesion, two with two
    train_patients = {item["patient"] for item in datalist["training"]}
    assert train_patients and train_patients.isdisjoint({item["patient"] for item in datalist["validation"]})
    for item in lesions:
        crop = np.array(Image.open(tmp_path / item["image"]))
        label = np.array(Image.open(tmp_path / item["label"])) > 0
        assert crop.shape == label.shape
        x0, y0, x1, y1 = item["box"]
        assert 0 <= x0 < x1 <= crop.shape[1] and 0 <= y0 < y1 <= crop.shape[0]
        assert label[y0:y1, x0:x1].sum() == label.sum()  # the box encloses the whole lesion
    assert json.loads((tmp_path / "datalist.json").read_text())["training"] == datalist["training"]


def test_prepare_skips_what_is_already_done(tmp_path):
    prepare(_sample_records(), tmp_path)
    written = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.png")}
    prepare(_sample_records(), tmp_path)
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.png")} == written


def test_prepare_skips_an_unreadable_image_and_says_why(tmp_path):
    (tmp_path / "in").mkdir()
    broken = tmp_path / "in" / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    records = _sample_records()[:1] + [_record(broken, SAMPLE / "masks" / "P60_L_DM_MLO.png", "PX")]
    datalist = prepare(records, tmp_path / "out")
    assert [(s["file"], s["kind"]) for s in datalist["skipped"]] == [(str(broken), "unreadable image")]
    assert "broken.jpg" in datalist["skipped"][0]["reason"]
    assert len(datalist["training"]) + len(datalist["validation"]) == 1


def test_prepare_skips_a_mask_whose_size_differs_from_its_image(tmp_path):
    (tmp_path / "in").mkdir()
    small = tmp_path / "in" / "small.png"
    Image.fromarray(np.full((64, 64), 255, np.uint8)).save(small)
    records = [_record(SAMPLE / "images" / "P60_L_DM_MLO.jpg", small, "P60")]
    datalist = prepare(records, tmp_path / "out")
    assert datalist["skipped"][0]["kind"] == "mask size differs from image"
    assert "small.png: mask is 64x64 pixels but its image is 512x512" in datalist["skipped"][0]["reason"]
