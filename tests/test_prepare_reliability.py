"""``connected-unets prepare`` with inputs that used to go wrong quietly: images sharing a file name,
inputs changed between runs, --out inside the dataset, multi-valued masks, blank patient ids, a split
named ``skipped`` and manifests that are not UTF-8. Every dataset here is the shipped sample (or the
real CDD-CESM folder) copied or rearranged by the test."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED
from PIL import Image

from connected_unets.cli import main as cli_main
from connected_unets.data.folder import ALL_COMPONENTS
from connected_unets.data.regions import mass_regions
from connected_unets.io import load_mask

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "monai_bundle" / "sample_data"
SHIPPED_ROIS = SAMPLE / "rois"
CDD = SHARED / "data" / "cdd_cesm_dm"
P60, P72 = "P60_L_DM_MLO", "P72_R_DM_CC"  # one mass; two masses


def write_manifest(root: Path, rows: list[tuple[str, ...]], header: tuple[str, ...] = ("image", "mask", "patient")) -> None:
    root.mkdir(parents=True, exist_ok=True)
    with (root / "manifest.csv").open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([header, *rows])


def place(root: Path, relative: str, source: Path) -> str:
    """Copy ``source`` to ``root/relative``; the manifest path."""
    (root / relative).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(source, root / relative)
    return relative


def sample_image(name: str) -> Path:
    return SAMPLE / "images" / f"{name}.jpg"


def sample_mask(name: str) -> Path:
    return SAMPLE / "masks" / f"{name}.png"


def two_images_named_alike(root: Path, first: str, second: str) -> None:
    """A manifest of P60 as ``<first>/image.jpg`` and P72 as ``<second>/image.jpg``, each with its
    ``mask.png`` beside it and its patient id (``P60``, ``P72``)."""
    write_manifest(root, [
        (place(root, f"{folder}/image.jpg", sample_image(name)), place(root, f"{folder}/mask.png", sample_mask(name)), name[:3])
        for folder, name in ((first, P60), (second, P72))
    ])  # fmt: skip


def prepare(root: Path, out: Path, *extra: str) -> dict:
    assert cli_main(["prepare", "--dataset", "folder", "--root", str(root), "--out", str(out), "--split", "training=1", *extra]) == 0
    return json.loads((out / "datalist.json").read_text())


def pixels(path: Path) -> np.ndarray:
    return np.array(Image.open(path))


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder`` with its size and modification time."""
    return {p.relative_to(folder).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


def assert_one_line_error(code: int, capsys: pytest.CaptureFixture, *words: str) -> str:
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and err.startswith("connected-unets: error:"), err
    assert all(word in err for word in words), err
    return err


# 1. File names shared by images in different folders.


def test_images_of_one_file_name_in_two_folders_get_their_own_crops(tmp_path):
    root = tmp_path / "data"
    two_images_named_alike(root, "case1", "case2")
    datalist = prepare(root, tmp_path / "out")
    by_lesion = {item["lesion"]: item for item in datalist["training"]}
    assert sorted(by_lesion) == ["case1_image_lesion1", "case2_image_lesion1", "case2_image_lesion2"]
    assert {by_lesion[lesion]["source"] for lesion in by_lesion} == {"case1/image.jpg", "case2/image.jpg"}
    shipped = {item["lesion"]: item for item in json.loads((SHIPPED_ROIS / "datalist.json").read_text())["validation"]}
    pairs = [("case1_image_lesion1", f"{P60}_lesion1"), ("case2_image_lesion1", f"{P72}_lesion1"), ("case2_image_lesion2", f"{P72}_lesion2")]
    for ours, theirs in pairs:
        assert by_lesion[ours]["box"] == shipped[theirs]["box"]
        for key in ("image", "label"):  # each lesion's crop is cut from its own image
            assert np.array_equal(pixels(tmp_path / "out" / by_lesion[ours][key]), pixels(SHIPPED_ROIS / shipped[theirs][key]))


def test_ids_that_collide_as_file_names_skip_the_second_image_and_overwrite_nothing(tmp_path):
    root = tmp_path / "data"
    two_images_named_alike(root, "case 1", "case_1")
    datalist = prepare(root, tmp_path / "out")
    assert [item["source"] for item in datalist["training"]] == ["case 1/image.jpg"]
    assert [(skip["kind"], Path(skip["file"]).parent.name) for skip in datalist["skipped"]] == [("duplicate lesion id", "case_1")]
    assert "case 1/image.jpg" in datalist["skipped"][0]["reason"]
    crop = pixels(tmp_path / "out" / datalist["training"][0]["image"])
    assert np.array_equal(crop, pixels(SHIPPED_ROIS / "images" / f"{P60}_lesion1.png"))


# 2. Resuming after inputs changed.


def copy_sample(root: Path) -> Path:
    shutil.copytree(SAMPLE, root, ignore=shutil.ignore_patterns("rois"))
    return root


def test_a_fixed_mask_is_redone_and_its_skip_entry_goes(tmp_path):
    root = copy_sample(tmp_path / "sample")
    Image.fromarray(np.zeros((512, 512), np.uint8)).save(root / "masks" / f"{P60}.png")
    first = prepare(root, tmp_path / "out")
    assert [(Path(s["file"]).name, s["kind"]) for s in first["skipped"]] == [(f"{P60}.png", "empty mask")]
    shutil.copy(sample_mask(P60), root / "masks" / f"{P60}.png")  # the fix
    second = prepare(root, tmp_path / "out")
    assert second["skipped"] == []
    assert [item["lesion"] for item in second["training"]].count(f"{P60}_lesion1") == 1


def test_a_replaced_image_gets_new_crops(tmp_path):
    root = copy_sample(tmp_path / "sample")
    out = tmp_path / "out"
    prepare(root, out)
    crop = out / "images" / f"{P60}_lesion1.png"
    before = pixels(crop)
    Image.fromarray(np.flipud(pixels(root / "images" / f"{P60}.jpg"))).save(root / "images" / f"{P60}.jpg")
    prepare(root, out)
    prepare(root, tmp_path / "fresh")  # what a first run on the replaced image writes
    assert not np.array_equal(pixels(crop), before)
    assert np.array_equal(pixels(crop), pixels(tmp_path / "fresh" / "images" / f"{P60}_lesion1.png"))


def test_an_image_replaced_by_one_of_the_same_size_is_redone(tmp_path):
    """An uncompressed TIFF keeps its byte size whatever its pixels: the modification time tells."""
    root = tmp_path / "data"
    root.mkdir()
    image = pixels(sample_image(P60))
    Image.fromarray(image).save(root / "image.tif")
    write_manifest(root, [("image.tif", place(root, "mask.png", sample_mask(P60)), "P60")])
    out = tmp_path / "out"
    prepare(root, out)
    size = (root / "image.tif").stat().st_size
    Image.fromarray(255 - image).save(root / "image.tif")
    assert (root / "image.tif").stat().st_size == size
    crop = pixels(out / prepare(root, out)["training"][0]["image"])
    assert np.array_equal(crop, 255 - pixels(SHIPPED_ROIS / "images" / f"{P60}_lesion1.png"))


def test_a_deleted_crop_is_written_again(tmp_path):
    root = copy_sample(tmp_path / "sample")
    out = tmp_path / "out"
    prepare(root, out)
    (out / "labels" / f"{P60}_lesion1.png").unlink()
    prepare(root, out)
    assert np.array_equal(pixels(out / "labels" / f"{P60}_lesion1.png"), pixels(SHIPPED_ROIS / "labels" / f"{P60}_lesion1.png"))


# 3. --out inside the dataset.


@pytest.mark.parametrize("where", [".", "images", "masks/sub", "rois"])
def test_an_output_folder_in_the_dataset_is_refused_before_anything_is_written(tmp_path, capsys, where):
    root = copy_sample(tmp_path / "sample")
    before = snapshot(root)
    code = cli_main(["prepare", "--dataset", "folder", "--root", str(root), "--out", str(root / where)])
    assert_one_line_error(code, capsys, "output folder", str(root))
    assert snapshot(root) == before and not (root / "masks" / "sub").exists() and not (root / "rois").exists()


def test_an_output_folder_that_holds_the_image_folder_is_refused(tmp_path, capsys):
    """Paired by name: --out ROOT would have written the crops into the dataset's own images/ and labels/."""
    root = tmp_path / "data"
    place(root, f"images/{P60}.jpg", sample_image(P60))
    place(root, f"labels/{P60}.png", sample_mask(P60))
    before = snapshot(root)
    code = cli_main(["prepare", "--dataset", "folder", "--root", str(root), "--out", str(root)])
    assert_one_line_error(code, capsys, "holds the dataset folder", str(root / "images"))
    assert snapshot(root) == before


# 4. Masks with several values.


def label_map(mask: np.ndarray, *extra: tuple[slice, slice, int]) -> np.ndarray:
    """Mask ``mask``'s lesions numbered 1, 2, ... smallest first, plus ``extra`` (rows, cols, value) patches."""
    labels = np.zeros(mask.shape, np.uint8)
    for value, region in enumerate(reversed(mass_regions(mask, ALL_COMPONENTS)), start=1):
        labels[region] = value
    for rows, cols, value in extra:
        labels[rows, cols] = value
    return labels


def test_each_value_of_a_label_map_is_a_lesion_of_its_own(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    mask = load_mask(sample_mask(P72))
    Image.fromarray(label_map(mask)).save(root / "labels.png")
    write_manifest(root, [(place(root, "image.jpg", sample_image(P72)), "labels.png", "P72")])
    datalist = prepare(root, tmp_path / "out")
    assert datalist["skipped"] == [] and len(datalist["training"]) == 2
    written = sorted(int((pixels(tmp_path / "out" / item["label"]) > 0).sum()) for item in datalist["training"])
    assert written == sorted(int(region.sum()) for region in mass_regions(mask, ALL_COMPONENTS))  # label 1 kept whole


def test_a_label_that_gives_no_lesion_is_a_skip_entry_naming_the_label(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    labels = label_map(load_mask(sample_mask(P60)), (slice(5, 7), slice(5, 7), 7))  # a 4 px label 7
    Image.fromarray(labels).save(root / "labels.png")
    write_manifest(root, [(place(root, "image.jpg", sample_image(P60)), "labels.png", "P60")])
    datalist = prepare(root, tmp_path / "out")
    assert len(datalist["training"]) == 1
    assert [(Path(s["file"]).name, s["kind"]) for s in datalist["skipped"]] == [("labels.png", "no mass-like region")]
    assert "label 7" in datalist["skipped"][0]["reason"]


@pytest.mark.skipif(not CDD.is_dir(), reason="the JPEG masks are in the shared CDD-CESM folder")
def test_a_jpeg_mask_gives_the_lesions_of_its_lossless_copy(tmp_path):
    """CDD-CESM's masks/*.jpg (130+ grey levels of compression noise) and masks_bin/*.png (0/255)."""
    name = "P105_R_DM_CC"
    for mask in (Path(f"masks/{name}.jpg"), Path(f"masks_bin/{name}.png")):
        root = tmp_path / mask.parent.name
        image = place(root, "image.jpg", CDD / "images" / f"{name}.jpg")
        write_manifest(root, [(image, place(root, f"mask{mask.suffix}", CDD / mask), "P105")])
    jpeg, png = (prepare(tmp_path / folder, tmp_path / f"out_{folder}") for folder in ("masks", "masks_bin"))
    assert [item["box"] for item in jpeg["training"]] == [item["box"] for item in png["training"]] and jpeg["training"]
    for ours, theirs in zip(jpeg["training"], png["training"]):
        assert np.array_equal(pixels(tmp_path / "out_masks" / ours["label"]), pixels(tmp_path / "out_masks_bin" / theirs["label"]))


# 5. Blank patient ids.


def test_images_without_a_patient_id_are_skipped_not_merged(tmp_path):
    root = copy_sample(tmp_path / "sample")
    rows = list(csv.reader((root / "manifest.csv").open()))
    rows[1][2], rows[2][2] = "", "  "  # P60 and P72 lose their ids
    rows[3] = rows[3][:2]  # P264 CC: a short row, no patient cell at all
    write_manifest(root, rows[1:], tuple(rows[0]))
    datalist = prepare(root, tmp_path / "out")
    blank = sorted(Path(s["file"]).stem for s in datalist["skipped"] if s["kind"] == "no patient id")
    assert blank == ["P264_L_DM_CC", P60, P72] and len(datalist["skipped"]) == 3
    assert {item["patient"] for item in datalist["training"]} == {"P264", "P304", "P206"}


# 6. Reserved split names; 7. manifests that are not UTF-8.


def test_a_split_named_skipped_is_a_one_line_error(tmp_path, capsys):
    split = ["--split", "training=0.8,skipped=0.2"]
    code = cli_main(["prepare", "--dataset", "folder", "--root", str(SAMPLE), "--out", str(tmp_path / "out"), *split])
    assert_one_line_error(code, capsys, "'skipped'", "reserved")
    assert not (tmp_path / "out").exists()


def test_a_latin1_manifest_is_a_one_line_error_naming_the_file_and_line(tmp_path, capsys):
    root = copy_sample(tmp_path / "sample")
    text = (root / "manifest.csv").read_text().replace("P264,", "Pé264,", 1)
    (root / "manifest.csv").write_bytes(text.encode("latin-1"))
    code = cli_main(["prepare", "--dataset", "folder", "--root", str(root), "--out", str(tmp_path / "out")])
    assert_one_line_error(code, capsys, str(root / "manifest.csv"), "not UTF-8", "0xe9", "line 4")
    assert not (tmp_path / "out").exists()


def test_a_utf8_manifest_with_a_byte_order_mark_is_read(tmp_path):
    root = copy_sample(tmp_path / "sample")
    (root / "manifest.csv").write_bytes(b"\xef\xbb\xbf" + (root / "manifest.csv").read_bytes())
    assert len(prepare(root, tmp_path / "out")["training"]) == 8


def test_a_latin1_cbis_ddsm_csv_is_a_one_line_error_naming_the_file(tmp_path, capsys):
    csv_file = tmp_path / "cbis" / "mass_case_description_train_set.csv"
    csv_file.parent.mkdir()
    csv_file.write_bytes("patient_id,pathology\nP_é,BENIGN\n".encode("latin-1"))
    code = cli_main(["prepare", "--dataset", "cbis-ddsm", "--root", str(tmp_path / "cbis"), "--out", str(tmp_path / "out")])
    assert_one_line_error(code, capsys, str(csv_file), "not UTF-8")


def test_an_empty_inbreast_table_is_a_one_line_error_naming_the_file(tmp_path, capsys):
    for folder in ("AllDICOMs", "AllXML"):
        (tmp_path / "INbreast" / folder).mkdir(parents=True)
    (tmp_path / "INbreast" / "INbreast.csv").write_text("")
    code = cli_main(["prepare", "--dataset", "inbreast", "--root", str(tmp_path / "INbreast"), "--out", str(tmp_path / "out")])
    assert_one_line_error(code, capsys, "INbreast.csv", "separated")
