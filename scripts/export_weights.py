"""Copy a trained best model into the bundle as fp16 (half the size; loads into the fp32 network).

Reads the catalogue's weights file of NETWORK (``connected_unets.bundle``: ``model.pt`` for
ConnectedResUNets, ``<network>.pt`` otherwise) and its score JSON from RUN_DIR (default
``runs/<network>/``), checks that the weights load into that network, and writes both into
``monai_bundle/models/`` (or ``--to``) atomically: an interrupted export leaves the previous good
weights in place, and weights of another network are refused before anything is written.

    python scripts/export_weights.py connected_resunets [runs/connected_resunets] [--to DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from connected_unets.bundle import network_names, weights_name
from connected_unets.inference import load_weights
from connected_unets.io import atomic_output
from connected_unets.networks import get_network

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("network", choices=network_names())
    parser.add_argument("run_dir", type=Path, nargs="?", default=None)
    parser.add_argument("--to", type=Path, default=REPO / "monai_bundle" / "models", help="target folder (default: the bundle's models/)")
    args = parser.parse_args()
    run_dir = args.run_dir or REPO / "runs" / args.network
    name = weights_name(args.network)
    source = run_dir / name
    try:
        load_weights(get_network(args.network, in_channels=3, out_channels=1), source)  # refuse another network's weights
        state = torch.load(source, map_location="cpu", weights_only=True)
        record = json.loads(source.with_suffix(".json").read_text())
    except (ValueError, OSError) as err:
        sys.exit(f"export_weights: {err}")
    half = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in state.items()}  # NCHW, as built
    target = args.to / name
    with atomic_output(target) as tmp:
        torch.save(half, tmp)
    with atomic_output(target.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(record, indent=1))
    print(f"{target}: {target.stat().st_size / 1e6:.1f} MB from {source}")


if __name__ == "__main__":
    main()
