"""``connected-unets``: the command line front door (segment, demo).

Every failure a user can cause (missing file, unreadable image, bad box, missing weights) ends as
one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path

from .io import ImageReadError

NETWORK_NAMES = ("unet", "aunet", "resunet", "connected_unets", "connected_aunets", "connected_resunets")


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="connected_resunets", choices=NETWORK_NAMES, help="network (default %(default)s)")
    parser.add_argument("--device", default="auto", help="auto (GPU when there is one), cpu, cuda, cuda:1, ...")
    parser.add_argument("--bundle", type=Path, default=None, help="bundle folder (default: the installed one)")
    parser.add_argument("--weights", type=Path, default=None, help="weights file instead of the bundle's")
    parser.add_argument("--threshold", type=float, default=None, help="probability threshold (default: the bundle's)")


def _segmenter(args: argparse.Namespace):  # noqa: ANN202 - imported lazily to keep --help fast
    from .inference import Segmenter

    return Segmenter.from_bundle(args.bundle, model=args.model, device=args.device, weights=args.weights, threshold=args.threshold)


def _segment(args: argparse.Namespace) -> int:
    from .io import load_image, save_mask
    from .roi import validate_box

    image = load_image(args.image)
    for box in args.box:  # report a bad box before spending time on loading the model
        validate_box(box, image.array.shape, str(args.image))
    mask = _segmenter(args).segment(image.array, args.box, source=str(args.image))
    path = save_mask(mask, args.out, reference=image)
    print(f"{path}: {int(mask.sum())} mass pixels in {len(args.box)} ROI(s)")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    rows = run_demo(args.out, _segmenter(args), args.bundle)
    print(f"{'image':<24} {'ROIs':>4} {'Dice':>6} {'IoU':>6}")
    for row in rows:
        print(f"{row['image']:<24} {row['boxes']:>4} {row['dice']:>6.3f} {row['iou']:>6.3f}")
    print(f"{'mean':<24} {'':>4} {statistics.mean(r['dice'] for r in rows):>6.3f} {statistics.mean(r['iou'] for r in rows):>6.3f}")
    print(f"masks, overlays and dice.csv in {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="connected-unets", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    commands = parser.add_subparsers(dest="command", required=True)

    segment = commands.add_parser("segment", help="segment the masses inside ROI boxes of one image")
    segment.add_argument("image", type=Path, help="mammogram: PNG, JPEG, DICOM, NIfTI or NRRD")
    segment.add_argument(
        "--box", nargs=4, type=float, action="append", required=True, metavar=("X0", "Y0", "X1", "Y1"),
        help="ROI in pixels (x = column, y = row, end exclusive); repeat for several ROIs",
    )
    segment.add_argument("--out", type=Path, required=True, help="mask file: .png (0/255) or .nii/.nii.gz (0/1)")
    _add_model_options(segment)
    segment.set_defaults(run=_segment)

    demo = commands.add_parser("demo", help="segment the shipped sample mammograms and print Dice")
    demo.add_argument("--out", type=Path, default=Path("demo_output"), help="output folder (default %(default)s)")
    _add_model_options(demo)
    demo.set_defaults(run=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        return args.run(args)
    except (ImageReadError, ValueError, FileNotFoundError, OSError) as err:
        print(f"connected-unets: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
