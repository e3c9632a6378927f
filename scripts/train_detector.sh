#!/usr/bin/env bash
# Train (or continue training) the mass detector on the shipped CDD-CESM DM mammograms, then ship
# its best weights as fp16 into monai_bundle/models/detector.pt (+ their record detector.json).
#
# Resumable: the training state is saved after every epoch in runs/detector/; re-run the same
# command after an interruption and it goes on after the last finished epoch. The run also ends
# by itself, state saved, at the last epoch boundary within MAX_MINUTES; running it again continues.
# One job at a time: it uses every CPU core (give the machine to it alone).
#
# Usage: [EPOCHS=40] [MAX_MINUTES=60] [CDD_CESM_DM=DIR] [DETECTION_DATA=DIR] scripts/train_detector.sh [extra `monai.bundle run` overrides]
#   e.g. scripts/train_detector.sh --batch_size 2
# The datalist is prepared first when missing (scripts/prepare_shipped_detection_data.py: the
# segmentation's patient split, is_mass = 0 images as negatives) from the CDD-CESM DM folder
# $CDD_CESM_DM (default: shared/data/cdd_cesm_dm in the folder that holds the repository; docs/data.md).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
data=$(realpath -m "${DETECTION_DATA:-$repo/runs/data/cdd_cesm_dm_detection}")
out="$repo/runs/detector"
epochs=${EPOCHS:-40}
minutes=${MAX_MINUTES:-60}
source=${CDD_CESM_DM:-$(dirname "$repo")/shared/data/cdd_cesm_dm}
[ -f "$data/datalist.json" ] || python "$repo/scripts/prepare_shipped_detection_data.py" "$source" "$data"
mkdir -p "$out"
cd "$repo/monai_bundle"
python -m monai.bundle run --config_file "['configs/common.yaml','configs/detect_train.yaml']" --logging_file configs/logging.conf \
  --dataset_dir "$data" --output_dir "$out" --detector_file "$out/detector.pt" --epochs "$epochs" --max_minutes "$minutes" "$@"
# ship the best weights: fp16 (half the size; they load into the fp32 network), checked to load first
python - "$out/detector.pt" "$repo/monai_bundle/models/detector.pt" <<'EOF'
import shutil, sys
from pathlib import Path

import torch

from connected_unets.bundle import open_config, parsed
from connected_unets.inference import load_weights
from connected_unets.io import atomic_output

source, target = Path(sys.argv[1]), Path(sys.argv[2])
if not source.is_file():
    sys.exit(f"{source}: no best weights yet (no validation has run); nothing shipped")
load_weights(parsed(open_config(["detect_inference.yaml"]), "detector_network"), source)
state = torch.load(source, map_location="cpu", weights_only=True)
with atomic_output(target) as tmp:
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in state.items()}, tmp)
with atomic_output(target.with_suffix(".json")) as tmp:
    shutil.copyfile(source.with_suffix(".json"), tmp)
print(f"shipped {target} ({target.stat().st_size / 2**20:.1f} MiB) and {target.with_suffix('.json').name}")
EOF
