"""``connected-unets``: the command line front door (segment, demo, prepare, evaluate, synthesize).

Every failure a user can cause (missing file, unreadable image, bad box, missing weights) ends as
one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__, cli_synthesize
from .bundle import DEFAULT_NETWORK, network_names, shipped_networks, shipped_weights, user_error
from .io import ImageReadError, LoadedImage
from .lean_imports import refuse_unused_imports


def probability(text: str) -> float:
    """argparse type: a number strictly between 0 and 1 (a threshold of 0 or 1 makes every mask full or empty)."""
    value = float(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not strictly between 0 and 1")
    return value


def non_negative(text: str) -> float:
    """argparse type: a finite number >= 0 (a negative box margin would cut into the lesion)."""
    value = float(text)
    if not 0.0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not a finite number >= 0")
    return value


def _model_help() -> str:
    """--model's help: which networks have shipped weights (the installed bundle's, as
    ``connected-unets models`` lists them) and what the others need."""
    try:
        shipped = shipped_networks()
    except FileNotFoundError:  # no bundle found: the command itself will say so
        return "network (default %(default)s); `connected-unets models` lists those whose weights ship"
    others = [name for name in network_names() if name not in shipped]
    need = f"; {', '.join(others)}: no shipped weights, give --weights FILE (train them with scripts/train.sh)" if others else ""
    return f"network (default %(default)s). Shipped weights: {', '.join(shipped) or 'none'}{need}"


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=DEFAULT_NETWORK, choices=network_names(), help=_model_help())
    parser.add_argument("--device", default="auto", help="auto (GPU when there is one), cpu, cuda, cuda:1, ...")
    parser.add_argument("--bundle", type=Path, default=None, help="bundle folder (default: the installed one)")
    parser.add_argument("--weights", type=Path, default=None, help="weights file instead of the bundle's")
    parser.add_argument("--threshold", type=probability, default=None, help="probability threshold (default: the bundle's)")


def _check_model(args: argparse.Namespace) -> None:
    """Without --weights, a network whose weights do not ship is refused before any work, in the
    words every front door uses (the file missing, the networks that ship)."""
    if args.weights is None:
        shipped_weights(args.model, args.bundle)


def _segmenter(args: argparse.Namespace, detector: bool = False):  # noqa: ANN202 - imported lazily to keep --help fast
    from .inference import Segmenter

    found_by = {"detector_weights": args.detector_weights, "detection_threshold": args.detection_threshold} if detector else {}
    return Segmenter.from_bundle(args.bundle, model=args.model, device=args.device, weights=args.weights, threshold=args.threshold, **found_by)


def _segment(args: argparse.Namespace) -> int:
    import numpy as np

    from . import __version__
    from .bundle import display_name
    from .io import box_in_viewer, load_image
    from .roi import validate_box
    from .writers import Algorithm, check_output, save_results

    _check_model(args)
    image = load_image(args.image)
    check_output(args.out, image)  # a wrong --out or box is reported before time goes into loading the model
    if not args.box:
        return _detect_and_segment(args, image)
    if args.detections_out is not None:
        raise ValueError("--detections-out lists what the detector found: leave out --box to detect the masses")
    boxes = [validate_box(box_in_viewer(box, image, args.box_space), image.array.shape, str(args.image)) for box in args.box]
    results = _segmenter(args).segment_rois(image.array, boxes, source=str(args.image), value_range=image.value_range)
    masks = [result.mask for result in results]
    algorithm = Algorithm(display_name(args.model), __version__)
    mask_path, *tables = save_results(masks, boxes, args.out, image, algorithm, [r.confidence for r in results], [r.reason for r in results])
    empty = [str(index + 1) for index, result in enumerate(results) if not result.found]
    note = f"; no mass found in ROI {', '.join(empty)}" if empty else ""
    pixels = int(np.logical_or.reduce(masks).sum())
    print(f"{mask_path}: {pixels} mass pixels in {len(boxes)} ROI(s){note}; per-ROI results in {tables[0].name} and {tables[1].name}")
    return 0


def _detect_and_segment(args: argparse.Namespace, image: LoadedImage) -> int:
    """``segment`` without ``--box``: the detector finds the masses, the Segmenter outlines each."""
    from . import __version__
    from .bundle import display_name
    from .writers import Algorithm, detection_rows, save_detection_table, save_nothing_found, save_results

    if args.detections_out is not None:
        _check_table_path(args.detections_out, image)
    segmenter = _segmenter(args, detector=True)
    threshold = segmenter.detector.threshold  # loads the detector: no weights is one line here, before any work
    pairs = segmenter.segment_detections(image, source=str(args.image))
    detections, results = [d for d, _ in pairs], [r for _, r in pairs]
    if results:
        algorithm = Algorithm(display_name(args.model), __version__)
        boxes = [r.box for r in results]
        written = save_results([r.mask for r in results], boxes, args.out, image, algorithm, [r.confidence for r in results], [r.reason for r in results])
    else:
        written = save_nothing_found(args.out, image)
    if args.detections_out is not None:
        rows = detection_rows(image, [d.box for d in detections], [d.score for d in detections], [r.mask for r in results],
                              [r.confidence for r in results], [r.reason for r in results])  # fmt: skip
        written.append(save_detection_table(rows, args.detections_out))
    found = sum(r.found for r in results)
    pixels = sum(int(r.mask.sum()) for r in results)
    print(
        f"{args.image}: {len(detections)} mass(es) detected (score >= {threshold:.2f}), {found} outlined, {pixels} mass pixels; "
        f"wrote {', '.join(str(path) for path in written)}"
    )
    return 0


def _check_table_path(path: Path, image: LoadedImage) -> None:
    """A one-line ValueError unless ``path`` can take a CSV table without replacing the input image."""
    if path.suffix.lower() != ".csv":
        raise ValueError(f"{path}: --detections-out writes a CSV table; give a name ending in .csv")
    if path.resolve() == Path(image.path).resolve():
        raise ValueError(f"{path}: is the input image; choose another --detections-out")
    folder = next((p for p in (path.parent, *path.parent.parents) if p.exists()), Path("."))
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{path}: cannot write there ({folder} is not a writable folder)")


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    _check_model(args)
    rows = run_demo(args.out, _segmenter(args), args.bundle)
    print(f"{'image':<24} {'ROIs':>4} {'Dice':>6} {'IoU':>6}")
    for row in rows:
        print(f"{row['image']:<24} {row['boxes']:>4} {row['dice']:>6.3f} {row['iou']:>6.3f}")
    print(f"{'mean':<24} {'':>4} {statistics.mean(r['dice'] for r in rows):>6.3f} {statistics.mean(r['iou'] for r in rows):>6.3f}")
    print(f"masks, overlays and dice.csv in {args.out}")
    return 0


def _models(args: argparse.Namespace) -> int:
    import json

    from .bundle import NETWORKS, bundle_dir, weights_file

    bundle = bundle_dir(args.bundle)
    print(f"networks of the bundle {bundle} (--model NAME):")
    for name, info in NETWORKS.items():
        weights = weights_file(name, bundle)
        score = weights.with_suffix(".json")
        note = "no shipped weights (train them, then use --weights FILE)"
        if weights.is_file():
            note = f"shipped: models/{weights.name}"
            if score.is_file():
                record = json.loads(score.read_text())
                note += f" (validation {record.get('metric', 'score')} {record.get('score', float('nan')):.3f})"
        default = " (default)" if name == DEFAULT_NETWORK else ""
        print(f"  {name:<20} {info.display:<20} {note}{default}")
    from .bundle import detector_weights_file

    detector = detector_weights_file(bundle)
    if detector.is_file():
        record = json.loads(detector.with_suffix(".json").read_text()) if detector.with_suffix(".json").is_file() else {}
        sensitivity = record.get("sensitivity_at_1fp")
        scored = f" (validation sensitivity {sensitivity:.3f} at 1 false positive per image)" if isinstance(sensitivity, (int, float)) else ""
        print(f"mass detector (segment without --box): shipped: models/{detector.name}{scored}")
    else:
        print(f"mass detector (segment without --box): no weights ({detector.name}: train them with scripts/train_detector.sh)")
    return 0


def _split_ratios(text: str) -> dict[str, float]:
    """``training=0.7,validation=0.1,test=0.2`` as a dict of positive ratios."""
    splits = {}
    for part in text.split(","):
        name, _, ratio = part.partition("=")
        try:
            value = float(ratio)
        except ValueError:
            value = 0.0
        if not name.strip() or not value > 0:
            raise argparse.ArgumentTypeError(f"'{part}' is not NAME=RATIO with a positive ratio")
        splits[name.strip()] = value
    return splits


def _prepare(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .data import DEFAULT_SPLITS, read_dataset
    from .data.prepare import CropSettings, check_out_dir, check_split_names, prepare
    from .data.summary import summary_table
    from .io import atomic_output

    options = {
        "cbis-ddsm": {"abnormality": args.abnormality},
        "inbreast": {"roi_names": tuple(args.roi_name or ("Mass",))},
        "folder": {"manifest": args.manifest},
    }[args.dataset]
    splits = args.split or DEFAULT_SPLITS[args.dataset]
    check_split_names(splits)  # before the (long) read of the dataset
    found = read_dataset(args.dataset, args.root, **options)
    check_out_dir(args.out, found.folders)  # before anything is written
    datalist = prepare(
        found.records,
        args.out,
        splits=splits,
        seed=args.seed,
        settings=CropSettings(augment_offline=args.augment_offline),
        progress=lambda items: tqdm(items, desc="images", unit="image"),
        source_root=args.root,
        skipped=found.skipped,
    )
    table = summary_table(datalist)
    with atomic_output(args.out / "summary.txt") as tmp:
        tmp.write_text(table + "\n")
    print(table)
    print(f"\ndatalist: {args.out / 'datalist.json'} (train with --dataset_dir {args.out}); skip reasons in its 'skipped' list")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .evaluation import load_cases, evaluation_workflow, run_evaluation

    if args.detector:
        return _evaluate_detector(args)
    _check_model(args)
    try:
        workflow = evaluation_workflow(
            args.out, dataset_dir=args.dataset_dir, split=args.split, network=args.model, weights=args.weights,
            box_extra_margin=args.box_extra_margin, detections_file=args.detections, device=args.device,
            threshold=args.threshold, bundle_dir=args.bundle, logging_file=False,
        )  # fmt: skip
        with tqdm(total=load_cases(workflow), desc="evaluating", unit="case") as bar:
            summary = run_evaluation(workflow, on_cases=bar.update)
    except RuntimeError as err:
        raise user_error(err) from err
    rows = [("Dice", summary["dice"]), ("IoU", summary["iou"]), ("pixel AUC", summary["auc"])]
    print(f"{summary['n_cases']} lesions of '{args.split}', {args.model}")
    print(f"{'metric':<16} {'mean':>6} {'median':>6}  95 % CI of the mean")
    for name, block in rows:
        if block["mean"] is not None:
            print(f"{name:<16} {block['mean']:>6.3f} {block['median']:>6.3f}  [{block['ci'][0]:.3f}, {block['ci'][1]:.3f}]")
    share = summary["iou90_fraction"]
    print(f"{'IoU >= 0.9':<16} {share['value']:>6.3f} {'':>6}  [{share['ci'][0]:.3f}, {share['ci'][1]:.3f}]  (share of lesions)")
    good = summary["iou90_mean"]
    if good["value"] is not None:
        print(f"{'IoU90 mean':<16} {good['value']:>6.3f} {'':>6}  [{good['ci'][0]:.3f}, {good['ci'][1]:.3f}]  (mean IoU of those)")
    detection = summary["detection"]
    if detection is not None:
        fsa = detection["final_segmentation_accuracy"]["value"]
        print(f"{'detection rate':<16} {detection['rate']['value']:>6.3f}; final segmentation accuracy {'n/a' if fsa is None else f'{fsa:.3f}'}")
    print(f"report in {args.out}: summary.md, cases.csv, summary.json, roc.png, montage.png")
    return 0


def _evaluate_detector(args: argparse.Namespace) -> int:
    """``evaluate --detector``: FROC of the detector and the detect-then-segment pipeline end to end."""
    from tqdm import tqdm

    from .bundle import detector_weights_file
    from .evaluation.detection_report import FILES, evaluate_detection

    if args.dataset_dir is None:
        raise ValueError("--detector scores a detection datalist: give --dataset-dir (scripts/prepare_shipped_detection_data.py writes one)")
    segmenter = _segmenter(args, detector=True)
    detector = segmenter.detector  # no weights: one line here, before the images are read
    info = {"network": args.model, "detector": str(args.detector_weights or detector_weights_file(args.bundle))}
    summary = evaluate_detection(
        args.dataset_dir / "datalist.json", args.split, args.out, segmenter, args.dataset_dir, info,
        progress=lambda items: tqdm(items, desc="searching", unit="image"),
    )  # fmt: skip
    print(f"{summary['n_images']} images, {summary['n_lesions']} lesions of '{args.split}'; operating threshold {detector.threshold:.3f}")
    for rate, point in summary["froc"].items():
        print(f"sensitivity at {rate:>4} FP/image: {point['sensitivity']:.3f}  (score >= {point['threshold']:.3f})")
    fsa = summary["end_to_end"]["final_segmentation_accuracy"]
    dice_mass = summary["end_to_end"]["dice_mean_images_with_mass"]
    print(f"end to end: Dice per image with a mass {'n/a' if dice_mass is None else f'{dice_mass:.3f}'}, "
          f"final segmentation accuracy {'n/a' if fsa is None else f'{fsa:.3f}'}")  # fmt: skip
    print(f"report in {args.out}: {', '.join(FILES)}")
    return 0


def _add_detector_options(parser: argparse.ArgumentParser, threshold_help: str) -> None:
    """--detector-weights and --detection-threshold, the same for every command that detects."""
    parser.add_argument("--detector-weights", type=Path, default=None, help="detector weights instead of the bundle's models/detector.pt")
    parser.add_argument(
        "--detection-threshold", type=probability, default=None,
        help=f"{threshold_help} (default: the bundle's operating threshold, detect_inference.yaml)",
    )  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="connected-unets", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress (also after the command)")
    verbosity = argparse.ArgumentParser(add_help=False)  # -v after the command too; SUPPRESS keeps a -v given before it
    verbosity.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log progress")
    commands = parser.add_subparsers(dest="command", required=True)

    segment = commands.add_parser(
        "segment", parents=[verbosity], help="segment the masses of one image: inside ROI boxes (--box), or found by the detector first"
    )
    segment.add_argument("image", type=Path, help="mammogram: PNG, JPEG, DICOM, NIfTI or NRRD")
    segment.add_argument(
        "--box", nargs=4, type=float, action="append", default=None, metavar=("X0", "Y0", "X1", "Y1"),
        help="ROI in pixels (x0 < x1, y0 < y1, end exclusive) in the --box-space; repeat for several ROIs. "
        "Without --box the mass detector (models/detector.pt) finds the masses first",
    )
    segment.add_argument(
        "--box-space", choices=("viewer", "array"), default="viewer",
        help="what box pixels mean. viewer (default): x = column, y = row of the picture as a viewer shows it, "
        "row 0 at the top; a NIfTI/NRRD as 3D Slicer's or ITK-SNAP's axial view draws it (patient right on the left, "
        "anterior at the top), a JPEG/PNG with its EXIF rotation. array: x indexes the first and y the second in-plane "
        "axis of the stored voxel array, as nibabel (data[x, y]) and ITK (index i, j) give it; the same as viewer for "
        "DICOM and a PNG/JPEG without EXIF rotation, the 180-degree turned picture for a NIfTI with an identity affine. "
        "The mask file overlays the image either way; the ROI tables give the boxes in viewer pixels",
    )  # fmt: skip
    segment.add_argument(
        "--out", type=Path, required=True,
        help="mask file: .png (0/255) or .nii/.nii.gz (0/1) with all ROIs in one mask; .seg.nrrd (3D Slicer) or .dcm "
        "(DICOM SEG, DICOM input only) with one segment per ROI. Per-ROI CSV and JSON go beside it (NAME_rois.csv/.json)",
    )  # fmt: skip
    segment.add_argument(
        "--detections-out", type=Path, default=None, metavar="FILE.csv",
        help="without --box: write one row per detected mass (box x0 y0 x1 y1 in viewer pixels, score, found, confidence, area)",
    )  # fmt: skip
    _add_detector_options(segment, "score a detection needs")
    _add_model_options(segment)
    segment.set_defaults(run=_segment)

    demo = commands.add_parser("demo", parents=[verbosity], help="segment the shipped sample mammograms and print Dice")
    demo.add_argument("--out", type=Path, default=Path("demo_output"), help="output folder (default %(default)s)")
    _add_model_options(demo)
    demo.set_defaults(run=_demo)

    models = commands.add_parser("models", parents=[verbosity], help="list the networks and which of them have shipped weights")
    models.add_argument("--bundle", type=Path, default=None, help="bundle folder (default: the installed one)")
    models.set_defaults(run=_models)

    prep = commands.add_parser(
        "prepare", parents=[verbosity], help="turn a dataset (CBIS-DDSM, INbreast, a folder) into lesion ROIs and a datalist.json for training"
    )
    prep.add_argument("--dataset", required=True, choices=("cbis-ddsm", "inbreast", "folder"))
    prep.add_argument("--root", type=Path, required=True, help="the dataset folder as downloaded")
    prep.add_argument("--out", type=Path, required=True, help="output folder outside the dataset's folders (re-running it resumes)")
    prep.add_argument(
        "--split", type=_split_ratios, default=None, metavar="NAME=RATIO,...",
        help="patient-wise split, e.g. training=0.7,validation=0.1,test=0.2 (CBIS-DDSM: of its official training "
        "side; its official test set is kept). Default: training=0.8,validation=0.2; INbreast 0.7/0.1/0.2",
    )
    prep.add_argument("--seed", type=int, default=0, help="seed of the patient split (default %(default)s)")
    prep.add_argument("--augment-offline", action="store_true", help="also write the paper's x6 set (3 rotations, 2 CLAHE) of training lesions")
    prep.add_argument("--abnormality", default="mass", choices=("mass", "calcification", "all"), help="CBIS-DDSM rows to use (default %(default)s)")
    prep.add_argument("--roi-name", action="append", default=None, help="INbreast ROI Name to use, repeatable (default Mass)")
    prep.add_argument("--manifest", type=Path, default=None, help="folder: CSV manifest (default ROOT/manifest.csv when present)")
    prep.set_defaults(run=_prepare)
    evaluate = commands.add_parser(
        "evaluate", parents=[verbosity], help="score a model on a split of a datalist.json: per-lesion CSV, summary with CIs, figures"
    )
    evaluate.add_argument(
        "--dataset-dir", type=Path, default=None,
        help="folder with datalist.json, as written by `prepare` (default: the bundle's sample ROIs)",
    )  # fmt: skip
    evaluate.add_argument("--split", default="validation", help="datalist split to score (default %(default)s)")
    evaluate.add_argument("--out", type=Path, default=Path("evaluation_output"), help="report folder (default %(default)s)")
    evaluate.add_argument(
        "--box-extra-margin", type=non_negative, default=None, metavar="FRACTION",
        help="loosen each box by this fraction of its size per side, e.g. 0.3 (default: the bundle's, 0)",
    )  # fmt: skip
    evaluate.add_argument(
        "--detections", type=Path, default=None, metavar="CSV",
        help="detector results, columns lesion,detected (flag or probability): adds the final segmentation accuracy",
    )  # fmt: skip
    evaluate.add_argument(
        "--detector", action="store_true",
        help="score the mass detector instead (FROC at 0.25/0.5/1/2 false positives per image, IoU >= 0.3) and the pipeline "
        "end to end (detected boxes -> masks: Dice per image, final segmentation accuracy) on a detection datalist (--dataset-dir)",
    )  # fmt: skip
    _add_detector_options(evaluate, "with --detector: the operating threshold the end-to-end figures use")
    _add_model_options(evaluate)
    evaluate.set_defaults(run=_evaluate)
    cli_synthesize.add_parser(commands, [verbosity])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        return args.run(args)
    except BrokenPipeError:  # the reader of our output went away (``connected-unets models | head``): nothing to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so that the exit's flush does not raise again
        return 1
    except (ImageReadError, ValueError, FileNotFoundError, OSError) as err:
        print(f"connected-unets: error: {err}", file=sys.stderr)
        return 2


# subcommands that only segment: their process need not import MONAI's training stack (lean_imports)
INFERENCE_ONLY = frozenset({"segment", "demo", "models"})


def console() -> int:
    """The ``connected-unets`` program: ``main`` in a process of its own, kept lean when it only segments."""
    argv = sys.argv[1:]
    if argv[:1] and argv[0] in INFERENCE_ONLY:
        refuse_unused_imports()
    return main(argv)


if __name__ == "__main__":
    sys.exit(console())
