"""Reading images and masks, writing masks: one place that knows DICOM, NIfTI, ITK and PIL formats.

(Per-ROI results, DICOM SEG and Slicer's .seg.nrrd are written by :mod:`connected_unets.writers`.)

Every loader returns a :class:`LoadedImage` whose array reads like the picture a viewer shows
(row 0 at the top, higher = brighter), so the rest of the package never cares about file formats.
A file is read by what its first bytes say it is, whatever its name (a warning names a wrong
extension); :func:`box_in_viewer` turns a box drawn on the stored voxel array into that picture's pixels.
Every failure to read becomes one :class:`ImageReadError` whose one-line message names the file.
Every write goes through :func:`atomic_output`, so a crash never leaves a half-written file behind.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import math
import os
import struct
import uuid
import warnings
import zlib
from collections.abc import Iterator, Sequence
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

_FORMAT_OF_SUFFIX = {  # what load_image reads, by extension; a known signature in the content wins
    ".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF", ".bmp": "BMP",
    ".dcm": "DICOM", ".dicom": "DICOM", ".nii": "NIfTI", ".nii.gz": "NIfTI",
    ".nrrd": "NRRD", ".nhdr": "NRRD", ".mha": "MetaImage", ".mhd": "MetaImage",
}  # fmt: skip
SUPPORTED_SUFFIXES = tuple(_FORMAT_OF_SUFFIX)
_NIFTI_SUFFIXES = (".nii", ".nii.gz")
_SIGNATURES = (  # (offset, magic bytes, format); DICOM first: its 128-byte preamble may hold a TIFF header
    (128, b"DICM", "DICOM"), (0, b"\x89PNG\r\n\x1a\n", "PNG"), (0, b"\xff\xd8\xff", "JPEG"),
    (0, b"II*\x00", "TIFF"), (0, b"MM\x00*", "TIFF"), (0, b"NRRD", "NRRD"),
)  # fmt: skip
_NIFTI_MAGIC = {348: (344, b"n+1\x00"), 540: (4, b"n+2\x00\r\n\x1a\n")}  # sizeof_hdr -> (offset, magic), single-file NIfTI-1/2
_HEAD_BYTES = 544  # enough for every signature above
_ITK_IMAGEIO = {"NRRD": "NrrdImageIO", "MetaImage": "MetaImageIO"}
_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_SMALLEST_DICOM_BYTES = 144  # preamble, 'DICM' and the group length element every DICOM file starts with
_UNDEFINED_LENGTH = 0xFFFFFFFF
_SEQUENCE_DELIMITER_BYTES = 8
_RUST_PANIC = "PanicException"  # how pyo3 decoders (pylibjpeg-rle) fail: a BaseException, not an Exception
_PIL_GRAY_MODES = ("L", "I", "F", "I;16", "I;16L", "I;16B", "I;16N")
_LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601, as PIL's "L"
_RAS_LPS_FLIP = np.diag([-1.0, -1.0, 1.0, 1.0])  # RAS <-> LPS, its own inverse
BOX_SPACES = ("viewer", "array")  # what box_in_viewer converts from

Axes = tuple[tuple[int, int], tuple[int, int]]  # a signed permutation matrix, row v = viewer axis v (0 = x, 1 = y)
_SAME_AXES: Axes = ((1, 0), (0, 1))
_EXIF_AXES: dict[int, Axes] = {  # EXIF Orientation -> how ImageOps.exif_transpose turns the stored x, y
    2: ((-1, 0), (0, 1)), 3: ((-1, 0), (0, -1)), 4: ((1, 0), (0, -1)), 5: ((0, 1), (1, 0)),
    6: ((0, -1), (1, 0)), 7: ((0, -1), (-1, 0)), 8: ((0, 1), (-1, 0)),
}  # fmt: skip
_EXIF_ORIENTATION = 0x0112


class ImageReadError(ValueError):
    """An input that cannot be read as a 2-D image; the message is one line naming the file."""


@dataclass(frozen=True)
class LoadedImage:
    """A 2-D grey-level picture as a viewer shows it, with its pixel geometry in mm.

    ``spacing_known`` tells a real pixel size from the (1.0, 1.0) stand-in, so that results are
    reported in mm only when the file gave mm. ``dicom`` keeps a DICOM input's attributes (no pixel
    data), which derived objects such as a DICOM SEG must reference. ``viewer_from_array`` says how
    the stored array's x, y run in this picture (see :func:`box_in_viewer`). ``value_range`` is
    the range the file's integer pixel type can hold (8- or 16-bit PIL images), None where the
    values are not plain stored integers (DICOM after its LUTs, NIfTI, NRRD).
    """

    array: np.ndarray  # float32, (rows, cols), row 0 = top
    spacing: tuple[float, float]  # (row, col) mm; (1.0, 1.0) when unknown
    origin: tuple[float, float]  # (row, col) mm; (0.0, 0.0) when unknown
    path: Path
    photometric: str  # "MONOCHROME2" for DICOM/NIfTI/ITK, the PIL mode for PIL formats
    spacing_known: bool = True
    dicom: pydicom.Dataset | None = field(default=None, repr=False, compare=False)
    viewer_from_array: Axes = _SAME_AXES
    value_range: tuple[float, float] | None = None


def load_image(path: str | Path) -> LoadedImage:
    """Read PNG/JPEG/TIFF/BMP, DICOM, NIfTI or NRRD/MHA/MHD as one 2-D float32 picture.

    The format is the one the file's signature names, else the one its extension names, so a
    mislabelled file still reads (with a warning). Raises ImageReadError, never a library's own
    exception, so callers can report bad inputs and go on with the next file.
    """
    path = Path(path)
    if not path.exists():
        raise ImageReadError(f"{path}: file not found")
    if path.is_dir():
        raise ImageReadError(f"{path}: is a directory, not an image file")
    if path.stat().st_size == 0:
        raise ImageReadError(f"{path}: empty file (0 bytes)")
    image = _read(path, _format_of(path))
    _check_plane(image)
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


def file_sha256(path: str | Path) -> str:
    """The file's SHA-256, read in 1 MiB blocks: what names a weights file in the records beside it."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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


def box_in_viewer(box: Sequence[float], image: LoadedImage, space: str = "viewer") -> tuple[float, float, float, float]:
    """A box ``(x0, y0, x1, y1)`` (end exclusive) given in ``space``, in pixels of ``image.array``.

    ``viewer``: x = column, y = row of the picture as viewers draw it (NIfTI/NRRD reoriented to
    LPS as 3D Slicer's and ITK-SNAP's axial views show them; PNG/JPEG with their EXIF rotation);
    returned unchanged. ``array``: x indexes the first and y the second in-plane axis of the stored
    voxel array as nibabel (``data[x, y]``) and ITK (index i, j) give it, or a PNG/JPEG/DICOM's
    stored column and row. Box edges are mapped, so both boxes cover the same pixels. The result
    is what the Segmenter and the writers take; their masks, in viewer pixels, overlay the file.
    """
    if space not in BOX_SPACES:
        raise ValueError(f"box space must be one of {', '.join(BOX_SPACES)}, got '{space}'")
    x0, y0, x1, y1 = (float(value) for value in box)
    if space == "viewer":
        return x0, y0, x1, y1
    turn = np.array(image.viewer_from_array, dtype=np.float64)
    viewer_size = np.array(image.array.shape[::-1], dtype=np.float64)  # (width, height)
    array_size = np.abs(turn).T @ viewer_size
    corners = (np.array([[x0, y0], [x1, y1]]) - array_size / 2) @ turn.T + viewer_size / 2
    (x0, y0), (x1, y1) = corners.min(axis=0), corners.max(axis=0)
    return float(x0), float(y0), float(x1), float(y1)


def _one_line(err: BaseException) -> str:
    """A library's error text squeezed onto one line, for ImageReadError messages."""
    return " ".join(str(err).split()) or type(err).__name__


def _read(path: Path, fmt: str) -> LoadedImage:
    """The reader of one format (see _FORMAT_OF_SUFFIX)."""
    if fmt == "DICOM":
        return _read_dicom(path)
    if fmt == "NIfTI":
        return _read_nifti(path)
    if fmt in _ITK_IMAGEIO:
        return _read_itk(path, _ITK_IMAGEIO[fmt])
    return _read_pil(path)


def _check_plane(image: LoadedImage) -> None:
    """Refuse a picture no later step can use: not 2-D, without pixels, or not finite."""
    if image.array.ndim != 2 or image.array.size == 0:
        raise ImageReadError(f"{image.path}: expected a 2-D image, got pixels of shape {image.array.shape}")
    if not np.isfinite(image.array).all():
        raise ImageReadError(f"{image.path}: pixel values include NaN or infinity")


def _format_of(path: Path) -> str:
    """The format the content's signature names, else the extension's; a warning when they differ."""
    name = path.name.lower()
    named = next((fmt for suffix, fmt in _FORMAT_OF_SUFFIX.items() if name.endswith(suffix)), None)
    found = _sniff_format(path)
    if found and named and found != named:
        logger.warning("%s: the file is %s, not %s as its extension says; reading it as %s", path, found, named, found)
    if found or named:
        return found or named
    kind = f"extension '{path.suffix}'" if path.suffix else "no extension"
    raise ImageReadError(f"{path}: unsupported file type ({kind}) and no image signature in its content")


def _sniff_format(path: Path) -> str | None:
    """The format the first bytes announce (magic bytes; a gzip is looked into for NIfTI), or None."""
    head = _head(path)
    for offset, magic, fmt in _SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            return fmt
    if head.startswith(b"\x1f\x8b"):
        head = _gunzipped_head(path)
    return "NIfTI" if _nifti_header_size(head) else None


def _head(path: Path) -> bytes:
    """The first bytes of a file, enough for every signature."""
    try:
        with path.open("rb") as handle:
            return handle.read(_HEAD_BYTES)
    except OSError as err:
        raise ImageReadError(f"{path}: cannot read file ({_one_line(err)})") from err


def _gunzipped_head(path: Path) -> bytes:
    """The first inflated bytes of a gzip file; empty when it does not inflate (not ours to judge here)."""
    try:
        with gzip.open(path, "rb") as stream:
            return stream.read(_HEAD_BYTES)
    except (OSError, EOFError, zlib.error):
        return b""


def _nifti_header_size(head: bytes) -> int | None:
    """348 or 540 when ``head`` starts a single-file NIfTI-1 or NIfTI-2 (either byte order), else None."""
    if len(head) < 4:
        return None
    for order in "<>":
        size = struct.unpack(f"{order}i", head[:4])[0]
        offset, magic = _NIFTI_MAGIC.get(size, (0, b""))
        if magic and head[offset : offset + len(magic)] == magic:
            return size
    return None


def _to_gray(rgb: np.ndarray, path: Path) -> np.ndarray:
    """Grey values of an RGB array: exact when the channels agree, luminance (with a warning) otherwise."""
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    if np.array_equal(red, green) and np.array_equal(green, blue):
        return red
    logger.warning("%s: colour image converted to luminance (ITU-R BT.601)", path)
    return rgb.astype(np.float32) @ _LUMA_WEIGHTS


def _over_black(rgba: np.ndarray, path: Path) -> np.ndarray:
    """RGB of an RGBA array composited onto black, the background of a mammogram (alpha dropped when opaque)."""
    rgb, alpha = rgba[..., :3], rgba[..., 3:]
    if (alpha == 255).all():
        return rgb
    logger.warning("%s: transparent pixels composited onto black", path)
    return rgb.astype(np.float32) * (alpha.astype(np.float32) / 255.0)


def _pil_gray(image: Image.Image, path: Path) -> tuple[str, np.ndarray]:
    """The mode to report and the grey values of a PIL picture: grey modes as stored, colour and
    transparency through _over_black and _to_gray."""
    if image.mode in _PIL_GRAY_MODES:
        return image.mode, np.asarray(image)
    if "A" in image.getbands() or "transparency" in image.info:
        return "L", _to_gray(_over_black(np.asarray(image.convert("RGBA")), path), path)
    return "L", _to_gray(np.asarray(image.convert("RGB")), path)


def _read_pil(path: Path) -> LoadedImage:
    """PNG/JPEG/TIFF/BMP through PIL, EXIF rotation applied as viewers do, 16-bit values kept."""
    try:
        with Image.open(path) as opened:
            frames = getattr(opened, "n_frames", 1)
            axes = _EXIF_AXES.get(opened.getexif().get(_EXIF_ORIENTATION, 1), _SAME_AXES)
            image = ImageOps.exif_transpose(opened)
        mode, pixels = _pil_gray(image, path)
    except Exception as err:  # PIL raises OSError, ValueError, SyntaxError, DecompressionBombError...
        raise ImageReadError(f"{path}: not a readable image file ({_one_line(err)})") from err
    if frames > 1:
        raise ImageReadError(f"{path}: image has {frames} frames; expected a single 2-D image")
    value_range = (0.0, 65535.0) if pixels.dtype.itemsize == 2 and np.issubdtype(pixels.dtype, np.integer) else (0.0, 255.0)
    return LoadedImage(
        pixels.astype(np.float32), (1.0, 1.0), (0.0, 0.0), path, mode, spacing_known=False, viewer_from_array=axes, value_range=value_range
    )


def _read_dicom(path: Path) -> LoadedImage:
    """DICOM through pydicom: decompressed, Modality and VOI LUT applied, MONOCHROME1 inverted."""
    ds = _dicom_dataset(path)
    if not any(keyword in ds for keyword in _PIXEL_KEYWORDS):
        raise ImageReadError(f"{path}: DICOM file has no pixel data (a header-only object, or a file cut short)")
    try:
        pixels, spacing = _dicom_gray(ds, path), _dicom_spacing(ds)
    except ImageReadError:
        raise
    except BaseException as err:  # decoders and pydicom's value conversions raise ValueError, AttributeError, ...
        if not isinstance(err, Exception) and type(err).__name__ != _RUST_PANIC:
            raise  # KeyboardInterrupt, SystemExit
        raise ImageReadError(f"{path}: not a readable DICOM file ({_one_line(err)})") from err
    for keyword in _PIXEL_KEYWORDS:
        if keyword in ds:
            delattr(ds, keyword)  # also drops pydicom's cached array: only the header is kept
    return LoadedImage(
        pixels.astype(np.float32), spacing or (1.0, 1.0), (0.0, 0.0), path, "MONOCHROME2", spacing_known=spacing is not None, dicom=ds
    )


def _dicom_dataset(path: Path) -> pydicom.Dataset:
    """The parsed file, pixels still encoded; ImageReadError for a file that is not DICOM or is cut short."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    truncated = f"{path}: not a readable DICOM file (file is truncated)"
    try:
        with warnings.catch_warnings():
            # A file cut inside encapsulated pixel data only warns and drops the element.
            warnings.filterwarnings("error", message="End of file", category=UserWarning)
            ds = pydicom.dcmread(path)
    except (UserWarning, EOFError, struct.error) as err:  # struct.error: an element header cut short
        raise ImageReadError(truncated) from err
    except InvalidDicomError as err:
        raise ImageReadError(f"{path}: not a DICOM file (no 'DICM' file header)") from err
    except Exception as err:  # pydicom raises ValueError, KeyError, OverflowError, ...
        problem = "file is truncated" if path.stat().st_size < _SMALLEST_DICOM_BYTES else _one_line(err)
        raise ImageReadError(f"{path}: not a readable DICOM file ({problem})") from err
    if _cut_short(ds, path.stat().st_size):
        raise ImageReadError(truncated)
    return ds


def _cut_short(ds: pydicom.Dataset, size: int) -> bool:
    """True when the file ends before its data set does: too short to hold one, no element after
    the file meta information, or the last element not ending where the file ends.

    pydicom keeps a shortened last value and drops a partial element header without a word, so a
    cut file would otherwise fail later with a misleading message (Photometric Interpretation 'MO').
    Offsets of a deflated file count in the inflated stream, so its last element is not checked.
    """
    from pydicom.dataelem import RawDataElement
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    if size < _SMALLEST_DICOM_BYTES or not len(ds):
        return True
    try:
        last = ds.get_item(max(ds.keys()), keep_deferred=True)  # raw as read: converting may fail (an unknown VR)
    except TypeError:  # pydicom 2 (the MONAI Label environment): no keep_deferred, nothing deferred by dcmread here
        last = ds.get_item(max(ds.keys()))
    if ds.file_meta.get("TransferSyntaxUID") == DeflatedExplicitVRLittleEndian or not isinstance(last, RawDataElement):
        return False  # not a raw element: a sequence pydicom parsed while reading, so read to its end
    undefined = last.length == _UNDEFINED_LENGTH  # encapsulated pixel data: items, then a delimiter
    stored = len(last.value or b"") + _SEQUENCE_DELIMITER_BYTES if undefined else last.length
    return last.value_tell + stored != size


def _dicom_gray(ds: pydicom.Dataset, path: Path) -> np.ndarray:
    """The grey presentation values of a single-frame DICOM; ValueError for what it cannot show."""
    frames = int(ds.get("NumberOfFrames") or 1)
    if frames > 1:
        raise ImageReadError(f"{path}: multi-frame DICOM with {frames} frames; expected a single 2-D image")
    photometric = str(ds.get("PhotometricInterpretation", ""))
    if photometric in ("MONOCHROME1", "MONOCHROME2"):
        return _monochrome2_values(ds)
    if int(ds.get("SamplesPerPixel", 1)) == 3:
        return _to_gray(ds.pixel_array, path)  # pydicom already turned YBR into RGB
    raise ValueError(f"unsupported Photometric Interpretation '{photometric}'")


def _monochrome2_values(ds: pydicom.Dataset) -> np.ndarray:
    """Presentation values with higher = brighter: Modality LUT, first VOI LUT/window, MONOCHROME1 flipped.

    MONOCHROME1 is mirrored within the range that the stored bit depth can reach after the LUTs,
    not within the data's own min/max, so the flipped picture keeps its absolute values.
    """

    try:
        from pydicom.pixels import apply_modality_lut, apply_voi_lut
    except ImportError:  # pydicom 2 (the MONAI Label environment)
        from pydicom.pixel_data_handlers.util import apply_modality_lut, apply_voi_lut

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
    """NIfTI-1 or -2, gzipped or not whatever the name says, through nibabel; laid out by _viewer_plane."""
    import nibabel as nib

    try:
        data = path.read_bytes()
        data = gzip.decompress(data) if data.startswith(b"\x1f\x8b") else data
        image = (nib.Nifti2Image if _nifti_header_size(data) == 540 else nib.Nifti1Image).from_bytes(data)
        _check_nifti_length(image.header, len(data))
        voxels = image.get_fdata(dtype=np.float32)
    except Exception as err:  # nibabel raises HeaderDataError, OSError, EOFError, zlib.error, ...
        raise ImageReadError(f"{path}: not a readable NIfTI file ({_one_line(err)})") from err
    return _viewer_plane(voxels, image.affine, path)


def _check_nifti_length(header: nib.Nifti1Header, size: int) -> None:
    """ValueError when the header promises more voxel bytes than the file holds: a cut file, refused
    before nibabel allocates the voxels."""
    needed = int(header.get_data_offset()) + math.prod(int(n) for n in header.get_data_shape()) * header.get_data_dtype().itemsize
    if needed > size:
        raise ValueError(f"file is truncated: its header promises {needed} bytes, the file holds {size}")


def _read_itk(path: Path, imageio_name: str) -> LoadedImage:
    """NRRD/MHA/MHD through ITK with the format's ImageIO named, so a mislabelled file reads too
    (colour is turned into luminance by ITK itself)."""
    import itk  # deferred: importing ITK takes seconds and only these formats need it

    try:
        imageio = getattr(itk, imageio_name).New()
        imageio.SetFileName(str(path))
        imageio.ReadImageInformation()
        image_type = itk.Image[itk.F, imageio.GetNumberOfDimensions()]
        reader = itk.ImageFileReader[image_type].New(FileName=str(path), ImageIO=imageio)
        reader.Update()
        image = reader.GetOutput()
        voxels = itk.array_from_image(image).T  # ITK's arrays index (t, z,) y, x; make it x, y(, z, t)
        lps = _itk_lps_affine(image)
    except Exception as err:  # ITK raises RuntimeError, KeyError for unwrapped types, ...
        raise ImageReadError(f"{path}: not a readable ITK image file ({_one_line(err)})") from err
    return _viewer_plane(voxels, _RAS_LPS_FLIP @ lps, path)


def _itk_lps_affine(image: Any) -> np.ndarray:
    """The voxel-to-LPS affine of an ITK image's first three (spatial) axes."""
    import itk

    dim = min(image.GetImageDimension(), 3)
    lps = np.eye(4)
    lps[:dim, :dim] = (itk.array_from_matrix(image.GetDirection()) * np.asarray(image.GetSpacing()))[:dim, :dim]
    lps[:dim, 3] = np.asarray(image.GetOrigin())[:dim]
    return lps


def _viewer_plane(voxels: np.ndarray, affine_ras: np.ndarray, path: Path) -> LoadedImage:
    """The single plane of x, y(, z) voxels, reoriented to LPS and returned as (rows, cols).

    With an LPS layout (ITK's identity direction) x runs left to right and y top to bottom on
    screen, exactly like a PNG's columns and rows, which is how ITK converts PNG to NIfTI and
    how viewers such as ITK-SNAP and 3D Slicer draw the file. Singleton axes after the third
    (a (512, 512, 1, 1) file) are dropped; a volume with several slices is refused.
    """
    shape = voxels.shape
    while voxels.ndim > 3 and voxels.shape[-1] == 1:
        voxels = voxels[..., 0]
    if voxels.ndim not in (2, 3):
        raise ImageReadError(f"{path}: expected a 2-D image or one slice, got shape {shape}")
    volume = voxels.reshape(voxels.shape + (1,) * (3 - voxels.ndim))
    if 1 not in volume.shape:
        raise ImageReadError(f"{path}: expected a 2-D image or one slice, got shape {shape}")
    from nibabel import orientations

    ornt = _to_lps(affine_ras, path)
    affine = affine_ras @ orientations.inv_ornt_aff(ornt, volume.shape)
    volume = orientations.apply_orientation(volume, ornt)
    flat_axes = [axis for axis in (2, 1, 0) if volume.shape[axis] == 1]
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
        viewer_from_array=_viewer_from_array(ornt, (col_axis, row_axis)),
    )


def _to_lps(affine_ras: np.ndarray, path: Path) -> np.ndarray:
    """nibabel's orientation transform from the voxel axes to LPS; ImageReadError for a matrix that
    has none (NaN, or an axis of zero length)."""
    from nibabel import orientations

    if not np.isfinite(affine_ras).all():
        raise ImageReadError(f"{path}: unusable voxel-to-world matrix (NaN or infinity)")
    try:
        return orientations.ornt_transform(orientations.io_orientation(affine_ras), orientations.axcodes2ornt(("L", "P", "S")))
    except ValueError as err:  # io_orientation leaves a zero-length axis unoriented (NaN)
        raise ImageReadError(f"{path}: unusable voxel-to-world matrix ({_one_line(err)})") from err


def _viewer_from_array(ornt: np.ndarray, shown_axes: tuple[int, int]) -> Axes:
    """LoadedImage.viewer_from_array of a plane whose reoriented axes ``shown_axes`` are drawn as
    x and y: the stored axes behind them, in order (x = the lower-numbered), with their flips."""
    stored = [int(np.flatnonzero(ornt[:, 0] == axis)[0]) for axis in shown_axes]
    x_axis, y_axis = sorted(stored)
    x_row, y_row = ((int(ornt[axis, 1]) * (axis == x_axis), int(ornt[axis, 1]) * (axis == y_axis)) for axis in stored)
    return x_row, y_row


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
