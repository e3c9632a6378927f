"""Offline quality of a CycleGAN translation (docs/synthesis.md), on the ROIs `connected-unets synthesize` wrote.

1. Structure kept: SSIM of each source ROI vs its translation, and the cycle reconstruction error
   (A -> B -> A), from the synthesis folder's translation.csv, with bootstrap 95 % CIs.
2. Looks like the target domain: FID (MONAI's FIDMetric) on features of our own segmentation
   network's encoder (connected_unets.translation_quality.FEATURE_LAYER) for source vs target-training
   ROIs and translated vs target-training ROIs, with target-validation vs target-training as the
   floor two samples of one domain reach. Not comparable with the Inception FID of the literature.
3. The check that matters: the shipped segmenter's Dice on the translated ROIs against the
   carried-over masks vs on the untranslated source ROIs (same lesions: paired, patient-clustered
   CI of the difference), for tight boxes (and loosened ones with --margins 0 0.3).

Writes quality.json and quality.md into --out (and one evaluation report per scored set).
Usage: python scripts/synthesis_quality.py --source runs/data/cdd_cesm_cm --synthetic runs/synthetic/cesm_to_dm \
           --reference runs/data/cdd_cesm_dm --out runs/synthetic/quality
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from connected_unets.bundle import DEFAULT_NETWORK, open_config, open_workflow, parsed, resolve_device, weights_file
from connected_unets.data.domains import read_domain
from connected_unets.evaluation import bootstrap_ci, paired_bootstrap_ci, run_evaluation
from connected_unets.inference import load_weights
from connected_unets.io import atomic_output
from connected_unets.precision import resolve_precision
from connected_unets.transforms import LoadMammogramd
from connected_unets.translation_quality import FEATURE_LAYER, fid, roi_features

logger = logging.getLogger("synthesis_quality")
REPO = Path(__file__).resolve().parents[1]


def _mean_ci(values: list[float]) -> dict[str, Any]:
    low, high = bootstrap_ci(np.asarray(values))
    return {"mean": float(np.mean(values)), "ci": [low, high], "n": len(values)}


def translation_measures(synthetic: Path) -> dict[str, Any]:
    """Mean SSIM and cycle error with CIs from the synthesis folder's translation.csv."""
    with (synthetic / "translation.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    return {"ssim_source_vs_translated": _mean_ci([float(r["ssim"]) for r in rows]), "cycle_mae": _mean_ci([float(r["cycle_mae"]) for r in rows])}


def _features(items: list[dict[str, Any]], network: torch.nn.Module, device: torch.device) -> torch.Tensor:
    """Encoder features of the ROIs of ``items`` through the validation pipeline (common.yaml's)."""
    parser = open_config([])
    load, pipeline = LoadMammogramd(keys=["image", "label"], label_keys="label"), parsed(parser, "roi_preprocessing")
    rois = (pipeline(load({k: item[k] for k in ("image", "label", "box") if k in item}))["image"] for item in items)
    return roi_features(network, rois, FEATURE_LAYER, device=device)


def domain_distances(source: Path, synthetic: Path, reference: Path, model: str, device: torch.device) -> dict[str, Any]:
    """FIDs on the segmenter's encoder features (see the module docstring)."""
    parser = open_config([], overrides={"network_name": model})
    network = parsed(parser, "network_def").to(device)
    load_weights(network, weights_file(model))
    sets = {
        "source": read_domain(source, "training", "source").items,
        "translated": read_domain(synthetic, "training", "translated").items,
        "target_training": read_domain(reference, "training", "target").items,
        "target_validation": read_domain(reference, "validation", "target").items,
    }
    features = {name: _features(items, network, device) for name, items in sets.items()}
    reference_features = features.pop("target_training")
    return {
        "feature_layer": f"{model}.{FEATURE_LAYER} (spatial mean, {reference_features.shape[1]} values)",
        "n": {name: len(items) for name, items in sets.items()},
        "fid_vs_target_training": {name: fid(block, reference_features) for name, block in features.items()},
        "note": "FID on our segmentation encoder's features: comparable only within this table, not with Inception FID",
    }


def _dice_by_lesion(report: Path) -> dict[str, tuple[str, float]]:
    with (report / "cases.csv").open(newline="") as f:
        return {row["lesion"]: (row["patient"], float(row["dice"])) for row in csv.DictReader(f)}


def _evaluate(report: Path, folder: Path, model: str, margin: float, device: torch.device, precision: str) -> dict[str, Any]:
    """evaluate.yaml on the 'training' split of ``folder`` (what evaluation_workflow runs, with the
    scoring precision as an extra override: bf16 makes it several times faster on a CPU with bf16 units)."""
    override = {
        "output_dir": str(report), "dataset_dir": str(folder), "evaluate_split": "training", "network_name": model,
        "device": device, "detections_file": None, "box_extra_margin": margin, "validate#inferer#precision": precision,
    }  # fmt: skip
    workflow = open_workflow(["train.yaml", "evaluate.yaml"], None, override)
    workflow.initialize()
    return run_evaluation(workflow)


def segmenter_dice(source: Path, synthetic: Path, out: Path, model: str, device: torch.device, margins: list[float], precision: str) -> dict[str, Any]:
    """The shipped segmenter on untranslated and translated ROIs (same lesions, same masks), per box margin."""
    results: dict[str, Any] = {}
    for margin in margins:
        block: dict[str, Any] = {}
        for name, folder in (("untranslated", source), ("translated", synthetic)):
            report = out / f"dice_{name}_margin{margin:g}"
            summary = _evaluate(report, folder, model, margin, device, precision)
            block[name] = {"dice": summary["dice"], "report": str(report)}
        untranslated = _dice_by_lesion(Path(block["untranslated"]["report"]))
        translated = _dice_by_lesion(Path(block["translated"]["report"]))
        common = sorted(set(untranslated) & set(translated))
        gain = [translated[k][1] - untranslated[k][1] for k in common]
        low, high = paired_bootstrap_ci([translated[k][1] for k in common], [untranslated[k][1] for k in common], [untranslated[k][0] for k in common])
        block["difference"] = {"mean": float(np.mean(gain)) if gain else None, "ci_patient": [low, high], "n": len(common)}
        results[f"margin {margin:g}"] = block
    return results


def _fmt(block: dict[str, Any], key: str = "ci") -> str:
    low, high = block[key]
    return f"{block['mean']:.3f} [{low:.3f}, {high:.3f}]"


def markdown(record: dict[str, Any]) -> str:
    lines = ["# Translation quality", "", f"Model: `{record['model']}`; synthetic ROIs: `{record['synthetic']}`.", ""]
    t = record["translation"]
    lines += ["| measure | mean [95 % CI] | n |", "|---|---|---|",
              f"| SSIM source vs translated | {_fmt(t['ssim_source_vs_translated'])} | {t['ssim_source_vs_translated']['n']} |",
              f"| cycle reconstruction error (fraction of range) | {_fmt(t['cycle_mae'])} | {t['cycle_mae']['n']} |", ""]  # fmt: skip
    d = record["fid"]
    lines += [f"FID to the target domain's training ROIs, features of {d['feature_layer']} ({d['note']}):", "",
              "| ROIs | n | FID |", "|---|---|---|"]  # fmt: skip
    lines += [f"| {name} | {d['n'][name]} | {value:.2f} |" for name, value in d["fid_vs_target_training"].items()]
    lines += ["", "Shipped segmenter, Dice against the (carried-over) masks, mean [95 % CI]; difference paired by lesion, patients resampled:", "",
              "| boxes | untranslated | translated | translated - untranslated |", "|---|---|---|---|"]  # fmt: skip
    for margin, block in record["dice"].items():
        u, tr, diff = block["untranslated"]["dice"], block["translated"]["dice"], block["difference"]
        lines.append(f"| {margin} | {_fmt(u)} | {_fmt(tr)} | {_fmt(diff, 'ci_patient') if diff['mean'] is not None else 'n/a'} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=REPO / "runs/data/cdd_cesm_cm", help="datalist folder of the untranslated ROIs (domain A)")
    parser.add_argument("--synthetic", type=Path, default=REPO / "runs/synthetic/cesm_to_dm", help="folder `connected-unets synthesize` wrote")
    parser.add_argument("--reference", type=Path, default=REPO / "runs/data/cdd_cesm_dm", help="datalist folder of the target domain (B)")
    parser.add_argument("--out", type=Path, default=REPO / "runs/synthetic/quality")
    parser.add_argument("--model", default=DEFAULT_NETWORK, help="shipped segmenter (default %(default)s)")
    parser.add_argument("--margins", type=float, nargs="+", default=[0.0], help="box extra margins to score, e.g. 0 0.3 (default 0)")
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--precision", default="fp32", choices=("auto", "fp32", "bf16"),
        help="scoring arithmetic; fp32 (default) is what the Segmenter uses for the shipped weights (they failed its bf16 check); auto: bf16 where fast",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        device = resolve_device(args.device)
        record = {
            "model": args.model,
            "source": str(args.source),
            "synthetic": str(args.synthetic),
            "reference": str(args.reference),
            "translation": translation_measures(args.synthetic),
            "fid": domain_distances(args.source, args.synthetic, args.reference, args.model, device),
            "precision": resolve_precision(args.precision, device),
            "dice": segmenter_dice(args.source, args.synthetic, args.out, args.model, device, args.margins, resolve_precision(args.precision, device)),
        }
    except (ValueError, OSError) as err:
        print(f"synthesis_quality: error: {err}", file=sys.stderr)
        return 2
    with atomic_output(args.out / "quality.json") as tmp:
        tmp.write_text(json.dumps(record, indent=1))
    with atomic_output(args.out / "quality.md") as tmp:
        tmp.write_text(markdown(record))
    print(markdown(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
