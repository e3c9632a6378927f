"""Reading images and masks, writing masks: one place that knows DICOM, NIfTI, ITK and PIL formats.

(Per-ROI results, DICOM SEG and Slicer's .seg.nrrd are written by :mod:`connected_unets.writers`.)

Every loader returns a :class:`LoadedImage` whose array reads like the picture a viewer shows
(row 0 at the top, higher = brighter), so the rest of the package never cares about file formats.
Every failure to read becomes one :class:`ImageReadError` whose one-line message names the file.
Every write goes through :func:`atomic_output`, so a crash never leaves a half-written file behind.
"""

from __future__ import annotations

import logging
import os
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageOps

if TYPE_CHECKING:  # pydicom and nibabel are imported by the readers that need them (a fast CLI start)
    import nibabel as nib
    import pydicom

logger = logging.getLogger(__name__)

_PIL_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
_DICOM_SUFFIXES = (".dcm", ".dicom")
_NIFTI_SUFFIXES = (".nii", ".nii.gz")
_ITK_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd")
SUPPORTED_SUFFIXES = _PIL_SUFFIXES + _DICOM_SUFFIXES + _NIFTI_SUFFIXES + _ITK_SUFFIXES  # what load_image reads
_PIL_GRAY_MODES = ("L", "I", "F", "I;16", "I;16L", "I;16B", "I;16N")
_LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601, as PIL's "L"
_RAS_LPS_FLIP = np.diag([-1.0, -1.0, 1.0, 1.0])  # RAS <-> LPS, its own inverse


class ImageReadError(ValueError):
    """An input that cannot be read as a 2-D image; the message is one line naming the file."""


@dataclass(frozen=True)
class LoadedImage:
    """A 2-D grey-level picture as a viewer shows it, with its pixel geometry in mm.

    ``spacing_known`` tells a real pixel size from the (1.0, 1.0) stand-in, so that results are
    reported in mm only when the file gave mm. ``dicom`` keeps a DICOM input's attributes (no pixel
    data), which derived objects such as a DICOM SEG must reference.
    """

    array: np.ndarray  # float32, (rows, cols), row 0 = top
    spacing: tuple[float, float]  # (row, col) mm; (1.0, 1.0) when unknown
    origin: tuple[float, float]  # (row, col) mm; (0.0, 0.0) when unknown
    path: Path
    photometric: str  # "MONOCHROME2" for DICOM/NIfTI/ITK, the PIL mode for PIL formats
    spacing_known: bool = True
    dicom: pydicom.Dataset | None = field(default=None, repr=False, compare=False)


def load_image(path: str | Path) -> LoadedImage:
    """Read PNG/JPEG/TIFF/BMP, DICOM, NIfTI or NRRD/MHA/MHD as one 2-D float32 picture.

    Raises ImageReadError, never a library's own exception, so callers can report bad inputs
    and go on with the next file.
    """
    path = Path(path)
    if not path.exists():
        raise ImageReadError(f"{path}: file not found")
    if path.is_dir():
        raise ImageReadError(f"{path}: is a directory, not an image file")
    if path.stat().st_size == 0:
        raise ImageReadError(f"{path}: empty file (0 bytes)")

    name = path.name.lower()
    if name.endswith(_PIL_SUFFIXES):
        image = _read_pil(path)
    elif name.endswith(_DICOM_SUFFIXES):
        image = _read_dicom(path)
    elif name.endswith(_NIFTI_SUFFIXES):
        image = _read_nifti(path)
    elif name.endswith(_ITK_SUFFIXES):
        image = _read_itk(path)
    elif _has_dicom_preamble(path):
        image = _read_dicom(path)
    else:
        kind = f"extension '{path.suffix}'" if path.suffix else "no extension"
        raise ImageReadError(f"{path}: unsupported file type ({kind}) and not a DICOM file")

    if not np.isfinite(image.array).all():
        raise ImageReadError(f"{path}: pixel values include NaN or infinity")
    logger.debug("loaded %s: %s px, spacing %s mm", path, image.array.shape, image.spacing)
    return image


def load_mask(path: str | Path) -> np.ndarray:
    """Read a mask in any format load_image reads as bool, so 0/1 and 0/255 files mean the same."""
    values = load_image(path).array
    peak = values.max()
    if peak <= 0:
        return np.zeros(values.shape, dtype=bool)
    return values > 0.5 * peak


def save_mask(mask: np.ndarray, path: str | Path, reference: LoadedImage | None = None) -> Path:
    """Write a {0,1} mask as a viewable 0/255 PNG or a 0/1 uint8 NIfTI, atomically.

    The NIfTI takes the reference image's spacing and origin, so it overlays the image in viewers.
    """
    target = Path(path)
    name = target.name.lower()
    if not name.endswith((".png", *_NIFTI_SUFFIXES)):
        raise ValueError(f"{target}: cannot save a mask as '{target.suffix}'; use .png, .nii or .nii.gz")
    binary = _checked_mask(mask, reference)
    with atomic_output(target) as tmp:
        if name.endswith(".png"):
            Image.fromarray(binary * 255).save(tmp, format="PNG")
        else:
            import nibabel as nib

            nib.save(_mask_nifti(binary, reference), tmp)
    return target


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` that replaces ``path`` only if the block succeeds.

    Readers never see a half-written file and a failed write leaves the old file intact. The
    temporary name ends with the target's name, so writers that pick the format by suffix
    (``.nii.gz``, ``.png``) work on it; it is not created here, so it gets the usual permissions.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".tmp-{uuid.uuid4().hex[:12]}-{target.name}")
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` through a temporary file in the same folder, then an atomic rename."""
    import torch  # deferred: reading images needs no torch

    with atomic_output(Path(path)) as tmp:
        torch.save(obj, tmp)


def _one_line(err: BaseException) -> str:
    """A library's error text squeezed onto one line, for ImageReadError messages."""
    return " ".join(str(err).split()) or type(err).__name__


def _has_dicom_preamble(path: Path) -> bool:
    """True when bytes 128-131 are 'DICM', the mark of a DICOM file whatever its name."""
    try:
        with path.open("rb") as handle:
            return handle.read(132)[128:] == b"DICM"
    except OSError as err:
        raise ImageReadError(f"{path}: cannot read file ({_one_line(err)})") from err


def _to_gray(rgb: np.ndarray, path: Path) -> np.ndarray:
    """Grey values of an RGB(A) array: exact when the channels agree, luminance (with a warning) otherwise."""
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    if np.array_equal(red, green) and np.array_equal(green, blue):
        return red
    logger.warning("%s: colour image converted to luminance (ITU-R BT.601)", path)
    return rgb[..., :3].astype(np.float32) @ _LUMA_WEIGHTS


def _read_pil(path: Path) -> LoadedImage:
    """PNG/JPEG/TIFF/BMP through PIL, EXIF rotation applied as viewers do, 16-bit values kept."""
    try:
        with Image.open(path) as opened:
            frames = getattr(opened, "n_frames", 1)
            image = ImageOps.exif_transpose(opened)
        if image.mode in _PIL_GRAY_MODES:
            mode, pixels = image.mode, np.asarray(image)
        else:
            rgb = image if image.mode in ("RGB", "RGBA") else image.convert("RGB")
            mode, pixels = "L", _to_gray(np.asarray(rgb), path)
    except Exception as err:  # PIL raises OSError, ValueError, SyntaxError, DecompressionBombError...
        raise ImageReadError(f"{path}: not a readable image file ({_one_line(err)})") from err
    if frames > 1:
        raise ImageReadError(f"{path}: image has {frames} frames; expected a single 2-D image")
    return LoadedImage(pixels.astype(np.float32), (1.0, 1.0), (0.0, 0.0), path, mode, spacing_known=False)


def _read_dicom(path: Path) -> LoadedImage:
    """DICOM through pydicom: decompressed, Modality and VOI LUT applied, MONOCHROME1 inverted."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        with warnings.catch_warnings():
            # A file cut inside encapsulated pixel data only warns and drops the element.
            warnings.filterwarnings("error", message="End of file", category=UserWarning)
            ds = pydicom.dcmread(path)
    except UserWarning as err:
        raise ImageReadError(f"{path}: not a readable DICOM file (file is truncated)") from err
    except InvalidDicomError as err:
        raise ImageReadError(f"{path}: not a DICOM file (no 'DICM' file header)") from err
    except Exception as err:  # pydicom raises InvalidDicomError, EOFError, struct.error, ...
        raise ImageReadError(f"{path}: not a readable DICOM file ({_one_line(err)})") from err

    frames = int(ds.get("NumberOfFrames") or 1)
    if frames > 1:
        raise ImageReadError(f"{path}: multi-frame DICOM with {frames} frames; expected a single 2-D image")
    photometric = str(ds.get("PhotometricInterpretation", ""))
    try:
        if photometric in ("MONOCHROME1", "MONOCHROME2"):
            pixels = _monochrome2_values(ds)
        elif int(ds.get("SamplesPerPixel", 1)) == 3:
            pixels = _to_gray(ds.pixel_array, path)  # pydicom already turned YBR into RGB
        else:
            raise ValueError(f"unsupported Photometric Interpretation '{photometric}'")
    except Exception as err:  # decoders raise ValueError, AttributeError, RuntimeError, ...
        raise ImageReadError(f"{path}: not a readable DICOM file ({_one_line(err)})") from err
    for keyword in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"):
        if keyword in ds:
            delattr(ds, keyword)  # also drops pydicom's cached array: only the header is kept
    spacing = _dicom_spacing(ds)
    return LoadedImage(
        pixels.astype(np.float32), spacing or (1.0, 1.0), (0.0, 0.0), path, "MONOCHROME2", spacing_known=spacing is not None, dicom=ds
    )


def _monochrome2_values(ds: pydicom.Dataset) -> np.ndarray:
    """Presentation values with higher = brighter: Modality LUT, first VOI LUT/window, MONOCHROME1 flipped.

    MONOCHROME1 is mirrored within the range that the stored bit depth can reach after the LUTs,
    not within the data's own min/max, so the flipped picture keeps its absolute values.
    """

    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    def present(values: np.ndarray) -> np.ndarray:
        return apply_voi_lut(apply_modality_lut(values, ds), ds, index=0)

    values = present(ds.pixel_array)
    if ds.PhotometricInterpretation == "MONOCHROME2":
        return values
    bits = int(ds.BitsStored)
    stored = np.array([0, 2**bits - 1]) - (2 ** (bits - 1) if ds.PixelRepresentation == 1 else 0)
    reachable = present(stored)
    return reachable.min() + reachable.max() - values.astype(np.float64)


def _dicom_spacing(ds: pydicom.Dataset) -> tuple[float, float] | None:
    """(row, col) mm from PixelSpacing, else ImagerPixelSpacing, else None."""
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = ds.get(keyword)
        if value is not None and len(value) == 2 and all(float(v) > 0 for v in value):
            return float(value[0]), float(value[1])
    return None


def _read_nifti(path: Path) -> LoadedImage:
    """NIfTI through nibabel, laid out as a viewer draws it (see _viewer_plane)."""
    import nibabel as nib

    try:
        image = nib.load(path)
        voxels = image.get_fdata(dtype=np.float32)
    except Exception as err:  # nibabel raises ImageFileError, EOFError, zlib.error, ...
        raise ImageReadError(f"{path}: not a readable NIfTI file ({_one_line(err)})") from err
    return _viewer_plane(voxels, image.affine, path)


def _read_itk(path: Path) -> LoadedImage:
    """NRRD/MHA/MHD through ITK (colour is turned into luminance by ITK itself)."""
    import itk  # deferred: importing ITK takes seconds and only these formats need it

    try:
        image = itk.imread(str(path), itk.F)
        voxels = itk.array_from_image(image).T  # ITK's arrays index (z,) y, x; make it x, y(, z)
        dim = image.GetImageDimension()
        lps = np.eye(4)
        lps[:dim, :dim] = itk.array_from_matrix(image.GetDirection()) * np.asarray(image.GetSpacing())
        lps[:dim, 3] = np.asarray(image.GetOrigin())
    except Exception as err:  # ITK raises RuntimeError, KeyError for unwrapped types, ...
        raise ImageReadError(f"{path}: not a readable ITK image file ({_one_line(err)})") from err
    return _viewer_plane(voxels, _RAS_LPS_FLIP @ lps, path)


def _viewer_plane(voxels: np.ndarray, affine_ras: np.ndarray, path: Path) -> LoadedImage:
    """The single plane of x, y(, z) voxels, reoriented to LPS and returned as (rows, cols).

    With an LPS layout (ITK's identity direction) x runs left to right and y top to bottom on
    screen, exactly like a PNG's columns and rows, which is how ITK converts PNG to NIfTI and
    how viewers such as ITK-SNAP and 3D Slicer draw the file.
    """
    if voxels.ndim not in (2, 3):
        raise ImageReadError(f"{path}: expected a 2-D image or one slice, got shape {voxels.shape}")
    volume = voxels.reshape(voxels.shape + (1,) * (3 - voxels.ndim))
    from nibabel import orientations

    ornt = orientations.ornt_transform(orientations.io_orientation(affine_ras), orientations.axcodes2ornt(("L", "P", "S")))
    affine = affine_ras @ orientations.inv_ornt_aff(ornt, volume.shape)
    volume = orientations.apply_orientation(volume, ornt)
    flat_axes = [axis for axis in (2, 1, 0) if volume.shape[axis] == 1]
    if not flat_axes:
        raise ImageReadError(f"{path}: expected a 2-D image or one slice, got shape {voxels.shape}")
    col_axis, row_axis = (axis for axis in range(3) if axis != flat_axes[0])
    plane = np.ascontiguousarray(volume.take(0, axis=flat_axes[0]).T, dtype=np.float32)
    sizes = np.linalg.norm(affine[:3, :3], axis=0)
    origin = (_RAS_LPS_FLIP @ affine)[:3, 3]
    return LoadedImage(
        plane,
        (float(sizes[row_axis]), float(sizes[col_axis])),
        (float(origin[row_axis]), float(origin[col_axis])),
        path,
        "MONOCHROME2",
    )


def _checked_mask(mask: np.ndarray, reference: LoadedImage | None) -> np.ndarray:
    """The mask as uint8 after checking it is 2-D, binary and, given a reference, the same size."""
    values = np.asarray(mask)
    if values.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {values.shape}")
    if not np.isin(values, (0, 1)).all():
        raise ValueError("mask values must be 0 or 1")
    if reference is not None and values.shape != reference.array.shape:
        raise ValueError(f"mask shape {values.shape} differs from reference image shape {reference.array.shape}")
    return values.astype(np.uint8)


def _mask_nifti(binary: np.ndarray, reference: LoadedImage | None) -> nib.Nifti1Image:
    """A 2-D uint8 NIfTI in the LPS layout _viewer_plane reads back unchanged."""
    (row_mm, col_mm), (row_origin, col_origin) = (
        (reference.spacing, reference.origin) if reference is not None else ((1.0, 1.0), (0.0, 0.0))
    )
    import nibabel as nib

    lps = np.diag([col_mm, row_mm, 1.0, 1.0])
    lps[:2, 3] = col_origin, row_origin
    affine = _RAS_LPS_FLIP @ lps
    image = nib.Nifti1Image(np.ascontiguousarray(binary.T), affine)
    image.set_qform(affine, code="aligned")
    image.header.set_xyzt_units("mm")
    return image
