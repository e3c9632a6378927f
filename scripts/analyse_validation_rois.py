"""What limits the validation Dice: threshold, ensembles, weight averages and the ellipse baseline.

Every validation lesion's ROI goes through each model at the ROI level, as `configs/evaluate.yaml`
scores it (the bundle's validation pipeline, fp32, the plain network), once with its tight box and
once with the box loosened by ``--loose`` per side. The probabilities are kept under
``runs/validation_rois/`` (one file per weights file and box kind), so a second look is cheap. The
table gives, per model and box kind: Dice after the threshold and the largest component at several
thresholds, the median ratio of predicted to true mass area, and pixel precision and recall at
0.5, and the paired difference of Dice at 0.5 to the first model's (points, 95 % bootstrap CI
over lesions). Extra rows: the mean probability of all the models (an ensemble), the mean of their weights
(``--average``, models of one network), and a filled ellipse inside the box (no network).

    python scripts/analyse_validation_rois.py connected_resunets=monai_bundle/models/model.pt unet=monai_bundle/models/unet.pt
    python scripts/analyse_validation_rois.py --average connected_resunets=monai_bundle/models/model.pt connected_resunets=runs/connected_resunets/model.pt
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
from pathlib import Path

import numpy as np
import torch
from monai.bundle import ConfigParser
from monai.transforms import KeepLargestConnectedComponent
from tqdm import tqdm

from connected_unets.evaluation import bootstrap_ci
from connected_unets.inference import load_weights
from connected_unets.io import atomic_output
from connected_unets.metrics import dice
from connected_unets.precision import cpu_model

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "monai_bundle"
THRESHOLDS = (0.3, 0.4, 0.5, 0.6)
LARGEST = KeepLargestConnectedComponent(applied_labels=[1], is_onehot=False, connectivity=2)


def bundle_config(network: str, dataset_dir: Path, margin: float) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config([str(BUNDLE / "configs" / name) for name in ("common.yaml", "train.yaml")])
    parser.update({"bundle_root": str(BUNDLE), "dataset_dir": str(dataset_dir), "network_name": network, "box_extra_margin": margin})
    return parser


def roi_probabilities(network: str, state: dict[str, torch.Tensor], dataset_dir: Path, margin: float) -> dict[str, np.ndarray]:
    """Sigmoid outputs, masks and ellipse baselines of the validation ROIs for one set of weights."""
    parser = bundle_config(network, dataset_dir, margin)
    model = parser.get_parsed_content("network_def")
    model.load_state_dict({key: value.float() if value.is_floating_point() else value for key, value in state.items()})
    model.eval()
    dataset = parser.get_parsed_content("validate#dataset")
    probs, labels, ellipses = [], [], []
    with torch.inference_mode():
        for index in tqdm(range(len(dataset)), desc=f"{network}, margin {margin:g}", unit="ROI", leave=False):
            item = dataset[index]
            probs.append(torch.sigmoid(model(item["image"][None].float()))[0, 0].numpy().astype(np.float16))
            labels.append(np.asarray(item["label"][0]) > 0)
            ellipses.append(box_ellipse(item["box"], item["roi_box"], margin, labels[-1].shape))
    return {"prob": np.stack(probs), "label": np.stack(labels), "ellipse": np.stack(ellipses)}


def box_ellipse(box: list[float], roi_box: list[int], margin: float, shape: tuple[int, ...]) -> np.ndarray:
    """The filled ellipse inside the (loosened) box, in the ROI's pixels."""
    x0, y0, x1, y1 = (float(v) for v in box)
    dx, dy = margin * (x1 - x0), margin * (y1 - y0)
    rx0, ry0, rx1, ry1 = roi_box
    sx, sy = shape[1] / (rx1 - rx0), shape[0] / (ry1 - ry0)
    cx, cy = ((x0 + x1) / 2 - rx0) * sx, ((y0 + y1) / 2 - ry0) * sy
    ax, ay = ((x1 - x0) / 2 + dx) * sx, ((y1 - y0) / 2 + dy) * sy
    yy, xx = np.mgrid[: shape[0], : shape[1]] + 0.5
    return ((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2 <= 1.0


def cached(network: str, state: dict[str, torch.Tensor], dataset_dir: Path, margin: float, cache: Path) -> dict[str, np.ndarray]:
    digest = hashlib.sha256(b"".join(value.float().numpy().tobytes() for value in state.values())).hexdigest()[:16]
    path = cache / f"{network}_{digest}_{margin:g}.npz"
    if path.is_file():
        return dict(np.load(path))
    arrays = roi_probabilities(network, state, dataset_dir, margin)
    cache.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:  # its name ends in .npz: numpy adds nothing
        np.savez_compressed(tmp, **arrays)
    return arrays


def scores(prob: np.ndarray, label: np.ndarray, reference: np.ndarray | None = None) -> tuple[list[str], np.ndarray]:
    """Cells: mean Dice at each threshold, median area ratio, precision and recall at 0.5, and the
    paired Dice difference at 0.5 to ``reference`` (per-lesion Dice); also the per-lesion Dice at 0.5."""
    cells = []
    for threshold in THRESHOLDS:
        masks = [np.asarray(LARGEST(torch.from_numpy(p.astype(np.float32) > threshold)[None]))[0] for p in prob]
        per_lesion = np.array([dice(m, g) for m, g in zip(masks, label)])
        cells.append(f"{per_lesion.mean():.4f}")
        if threshold == 0.5:
            half, at_half = masks, per_lesion
    cells.append(f"{statistics.median(m.sum() / g.sum() for m, g in zip(half, label)):.2f}")
    cells.append(f"{statistics.mean((m & g).sum() / max(m.sum(), 1) for m, g in zip(half, label)):.3f}")
    cells.append(f"{statistics.mean((m & g).sum() / g.sum() for m, g in zip(half, label)):.3f}")
    if reference is None:
        cells.append("")
    else:
        low, high = bootstrap_ci(100 * (at_half - reference))
        cells.append(f"{100 * (at_half - reference).mean():+.1f} ({low:+.1f} to {high:+.1f})")
    return cells, at_half


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("models", nargs="+", help="NETWORK=WEIGHTS, e.g. connected_resunets=monai_bundle/models/model.pt")
    parser.add_argument("--average", action="store_true", help="add the model whose weights are the mean of the given ones (one network)")
    parser.add_argument("--dataset-dir", type=Path, default=REPO / "runs" / "data" / "cdd_cesm_dm")
    parser.add_argument("--loose", type=float, default=0.3, help="loosening per side for the loose boxes (default %(default)s)")
    parser.add_argument("--cache", type=Path, default=REPO / "runs" / "validation_rois")
    parser.add_argument("--out", type=Path, default=None, help="write the table here as well")
    args = parser.parse_args()
    models: list[tuple[str, str, dict[str, torch.Tensor]]] = []  # (row name, network, weights)
    for spec in args.models:
        network, _, weights = spec.partition("=")
        if not weights:
            parser.error(f"{spec}: expected NETWORK=WEIGHTS")
        model = bundle_config(network, args.dataset_dir, 0.0).get_parsed_content("network_def")
        try:
            load_weights(model, weights)
        except (OSError, ValueError) as err:  # a missing file, not weights, another network's weights
            parser.error(str(err))
        models.append((f"{network} `{weights}`", network, torch.load(weights, map_location="cpu", weights_only=True)))
    given = len(models)
    if args.average:
        if len({network for _, network, _ in models}) != 1 or given < 2:
            parser.error("--average needs two or more weights files of one network")
        states = [state for _, _, state in models]
        mean = {key: torch.stack([s[key].float() for s in states]).mean(0) if states[0][key].is_floating_point() else states[0][key] for key in states[0]}
        models.append((f"mean of the {given} weights", models[0][1], mean))

    header = ["model", "boxes", *(f"Dice at {t:g}" for t in THRESHOLDS), "area ratio (median)", "precision", "recall", "Dice at 0.5 minus the first model's, points (95 % CI)"]
    lines = [
        f"{cpu_model()}, torch {torch.__version__}, fp32; {args.dataset_dir.name} validation ROIs; loose = +{args.loose:.0%} per side.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for boxes, margin in (("tight", 0.0), ("loose", args.loose)):
        runs = [(name, cached(network, state, args.dataset_dir, margin, args.cache)) for name, network, state in models]
        label = runs[0][1]["label"]
        rows = [(name, arrays["prob"]) for name, arrays in runs]
        if given > 1:
            rows.append((f"mean probability of the {given} models", np.mean([arrays["prob"].astype(np.float32) for _, arrays in runs[:given]], axis=0)))
        rows.append(("filled ellipse inside the box", runs[0][1]["ellipse"].astype(np.float32)))
        reference = None
        for name, prob in rows:
            cells, per_lesion = scores(prob, label, reference)
            reference = per_lesion if reference is None else reference
            lines.append(f"| {name} | {boxes} | " + " | ".join(cells) + " |")
    table = "\n".join(lines) + "\n"
    print(table)
    if args.out is not None:
        with atomic_output(args.out) as tmp:
            tmp.write_text(table)


if __name__ == "__main__":
    main()
