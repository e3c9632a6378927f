"""Box spaces: a box drawn on the stored voxel array (``--box-space array``) or on the picture a
viewer shows (``viewer``, the default) lands on the same anatomy, and the mask overlays the input."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from connected_unets import cli
from connected_unets.io import box_in_viewer, load_image

SAMPLE = "P60_L_DM_MLO"
LESION = (175, 142, 302, 267)  # x0 y0 x1 y1 of the sample's mass in its picture (column, row), end exclusive
LPS = np.diag([-0.07, -0.07, 1.0, 1.0])  # the picture's columns run to patient left, rows to posterior
RAS = np.diag([0.07, 0.07, 1.0, 1.0])  # identity orientation: the viewer shows the array turned by 180 degrees
SWAPPED = np.array([[0, -0.07, 0, 0], [-0.07, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]])  # i runs posterior, j to the left
# (affine, stored array as rows of the picture?, array-space box of the lesion, quarter turns from array to viewer)
LAYOUTS = {
    "LPS affine": (LPS, False, LESION, 0),
    "identity affine": (RAS, False, LESION, 2),
    "swapped axes": (SWAPPED, True, (LESION[1], LESION[0], LESION[3], LESION[2]), 0),
}


@pytest.fixture(scope="module")
def picture(sample_dir: Path) -> np.ndarray:
    """The sample mammogram cut to 512 rows x 400 columns, so that a transposition would show."""
    return np.asarray(Image.open(sample_dir / "images" / f"{SAMPLE}.jpg"))[:, :400]


def stored(picture: np.ndarray, as_rows: bool) -> np.ndarray:
    """The picture as a NIfTI's voxels: indexed [column, row] (ITK's layout) or [row, column]."""
    return np.ascontiguousarray((picture if as_rows else picture.T)[:, :, None]).astype(np.int16)


def save_nifti(voxels: np.ndarray, affine: np.ndarray, path: Path) -> Path:
    image = nib.Nifti1Image(voxels, affine)
    image.set_qform(affine, code=1)
    nib.save(image, path)
    return path


def in_input_voxels(mask_path: Path, input_path: Path) -> np.ndarray:
    """The written mask carried into the input's voxel grid through both files' affines, as a
    viewer overlays them (both grids are axis-aligned here, so the mapping is exact)."""
    mask, image = nib.load(mask_path), nib.load(input_path)
    to_input = np.linalg.inv(image.affine) @ mask.affine
    values = np.asarray(mask.dataobj).reshape(mask.shape[:2] + (1,))
    indices = np.argwhere(values > 0)
    moved = np.rint(indices @ to_input[:3, :3].T + to_input[:3, 3]).astype(int)
    carried = np.zeros(image.shape, bool)
    carried[tuple(moved.T)] = True
    return carried


@pytest.mark.parametrize("layout", LAYOUTS)
def test_array_box_shows_the_voxels_it_indexes_whatever_the_affine(tmp_path, picture, layout):
    affine, as_rows, box, turn = LAYOUTS[layout]
    image = load_image(save_nifti(stored(picture, as_rows), affine, tmp_path / "image.nii.gz"))
    x0, y0, x1, y1 = (int(v) for v in box_in_viewer(box, image, "array"))
    lesion = picture[LESION[1] : LESION[3], LESION[0] : LESION[2]]
    np.testing.assert_array_equal(image.array[y0:y1, x0:x1], np.rot90(lesion, turn))


def test_viewer_box_of_an_identity_affine_nifti_is_the_array_box_turned_by_180_degrees(tmp_path, picture):
    image = load_image(save_nifti(stored(picture, as_rows=False), RAS, tmp_path / "image.nii.gz"))
    height, width = picture.shape
    x0, y0, x1, y1 = LESION
    assert box_in_viewer(LESION, image, "array") == (width - x1, height - y1, width - x0, height - y0)
    assert box_in_viewer(LESION, image, "viewer") == LESION


def inside(mask: np.ndarray, box: tuple[int, int, int, int]) -> bool:
    """Whether a (non-empty) mask lies within box (rows box[0]:box[2], columns box[1]:box[3] of mask)."""
    region = np.zeros(mask.shape, bool)
    region[box[0] : box[2], box[1] : box[3]] = True
    return bool(mask.any()) and not mask[~region].any()


@pytest.mark.parametrize("layout", LAYOUTS)
def test_segment_with_an_array_box_masks_those_voxels_and_the_mask_overlays_the_input(tmp_path, picture, layout):
    affine, as_rows, box, _turn = LAYOUTS[layout]
    voxels = stored(picture, as_rows)
    source = save_nifti(voxels, affine, tmp_path / "mammogram.nii.gz")
    out = tmp_path / "mask.nii.gz"
    assert cli.main(["segment", str(source), "--box", *map(str, box), "--box-space", "array", "--out", str(out)]) == 0
    assert inside(in_input_voxels(out, source)[:, :, 0], box)  # the shipped model's mass, in the voxels the box indexes
    mask, image = load_image(out), load_image(source)
    assert mask.spacing == pytest.approx(image.spacing) and mask.origin == pytest.approx(image.origin)


def test_segment_takes_viewer_boxes_by_default(tmp_path, picture):
    source = save_nifti(stored(picture, as_rows=False), RAS, tmp_path / "mammogram.nii.gz")
    masks = []
    for space in ([], ["--box-space", "viewer"]):
        out = tmp_path / f"mask{len(space)}.png"
        assert cli.main(["segment", str(source), "--box", *map(str, LESION), *space, "--out", str(out)]) == 0
        masks.append(np.asarray(Image.open(out)) > 0)
    x0, y0, x1, y1 = LESION
    assert inside(masks[0], (y0, x0, y1, x1))  # the .png is the picture the viewer shows
    np.testing.assert_array_equal(masks[0], masks[1])


def test_segment_help_explains_both_box_spaces(capsys):
    with pytest.raises(SystemExit):
        cli.main(["segment", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--box-space {viewer,array}" in text and "nibabel (data[x, y])" in text and "identity affine" in text


@pytest.mark.filterwarnings("ignore:builtin type:DeprecationWarning")  # ITK's SWIG wrappers on import
def test_array_box_of_an_nrrd_follows_its_direction(tmp_path, picture):
    """ITK's index i, j is the array space of NRRD; a direction flipping x mirrors the viewer's columns."""
    import itk

    stored = itk.image_from_array(picture.astype(np.float32))
    stored.SetDirection(np.diag([-1.0, 1.0]))
    itk.imwrite(stored, str(tmp_path / "flipped.nrrd"))
    image = load_image(tmp_path / "flipped.nrrd")
    x0, y0, x1, y1 = (int(v) for v in box_in_viewer(LESION, image, "array"))
    lesion = picture[LESION[1] : LESION[3], LESION[0] : LESION[2]]
    np.testing.assert_array_equal(image.array[y0:y1, x0:x1], lesion[:, ::-1])


@pytest.mark.parametrize("orientation", range(1, 9))
def test_array_box_of_a_png_is_its_stored_grid_before_the_exif_rotation(tmp_path, picture, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(picture).save(tmp_path / "turned.png", exif=exif)
    lesion = picture[LESION[1] : LESION[3], LESION[0] : LESION[2]]
    Image.fromarray(np.ascontiguousarray(lesion)).save(tmp_path / "lesion.png", exif=exif)
    image = load_image(tmp_path / "turned.png")
    x0, y0, x1, y1 = (int(v) for v in box_in_viewer(LESION, image, "array"))
    np.testing.assert_array_equal(image.array[y0:y1, x0:x1], load_image(tmp_path / "lesion.png").array)


def test_array_and_viewer_boxes_agree_for_dicom_and_plain_pictures(sample_dir):
    from pydicom.data import get_testdata_file

    for path in (sample_dir / "images" / f"{SAMPLE}.jpg", Path(get_testdata_file("MR_small.dcm"))):
        image = load_image(path)
        assert box_in_viewer((1.5, 2, 30, 40.25), image, "array") == (1.5, 2, 30, 40.25)


def test_unknown_box_space_is_a_value_error(sample_dir):
    image = load_image(sample_dir / "images" / f"{SAMPLE}.jpg")
    with pytest.raises(ValueError, match="viewer, array"):
        box_in_viewer(LESION, image, "world")
