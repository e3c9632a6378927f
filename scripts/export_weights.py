"""Copy a trained best model into the bundle as fp16 (half the size; loads into the fp32 network).

Usage: ``python scripts/export_weights.py NETWORK [RUN_DIR]`` — reads the catalogue's weights file
of NETWORK (``connected_unets.bundle``: ``model.pt`` for ConnectedResUNets, ``<network>.pt`` otherwise)
and its score JSON from ``runs/<network>/``, writes them into ``monai_bundle/models/``.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import torch

from connected_unets.bundle import weights_name
from connected_unets.io import atomic_output

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    network = sys.argv[1]
    run_dir = Path(sys.argv[2]) if len(sys.argv) > 2 else REPO / "runs" / network
    name = weights_name(network)
    source = run_dir / name
    state = torch.load(source, map_location="cpu", weights_only=True)
    half = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in state.items()}  # NCHW, as built
    target = REPO / "monai_bundle" / "models" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(target) as tmp:
        torch.save(half, tmp)
    shutil.copyfile(source.with_suffix(".json"), target.with_suffix(".json"))
    print(f"{target}: {target.stat().st_size / 1e6:.1f} MB from {source}")


if __name__ == "__main__":
    main()
