#!/usr/bin/env bash
# The paper's Connected-vs-single comparison at a budget that means something, and the peer a user
# would pick instead, all at the cumulative step count of the ConnectedResUNets stretch:
#   UNet continued from its shipped weights, ResUNet from scratch, to STEPS cumulative optimizer steps;
#   MONAI's DynUNet (configs/dynunet.yaml, nnU-Net-style) for the same WALL-clock time as that stretch.
# One training job at a time; each run resumes where it stopped (re-run the same command).
# Usage: scripts/train_baselines.sh STEPS DYNUNET_EPOCHS   e.g. scripts/train_baselines.sh 1012 30
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
steps=${1:?cumulative optimizer steps to reach, e.g. 1012}
dynunet_epochs=${2:?DynUNet epochs matching the ConnectedResUNets stretch wall time}
data="$repo/runs/data/cdd_cesm_dm"
[ -f "$data/datalist.json" ] || python "$repo/scripts/prepare_shipped_training_data.py"
per_epoch=$(python -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["training"]) // 8)' "$data/datalist.json")
shipped_steps=$(python "$repo/scripts/training_ledger.py" shipped-step unet)
unet_weights=$(python -c 'from connected_unets.bundle import weights_file; print(weights_file("unet"))')
echo "$(date -u +%FT%TZ) unet: continue from step $shipped_steps to $steps steps"
# train.sh, not continue_training.sh: a baseline for the comparison, its weights are not shipped
"$repo/scripts/train.sh" unet "$data" --init_weights "$unet_weights" --epochs $(( (steps - shipped_steps) / per_epoch )) > "$repo/runs/unet.log" 2>&1
echo "$(date -u +%FT%TZ) resunet: from scratch to $steps steps"
"$repo/scripts/train.sh" resunet "$data" --epochs $(( steps / per_epoch )) > "$repo/runs/resunet.log" 2>&1
echo "$(date -u +%FT%TZ) dynunet: $dynunet_epochs epochs"
"$repo/scripts/train.sh" dynunet "$data" --epochs "$dynunet_epochs" > "$repo/runs/dynunet.log" 2>&1
echo "$(date -u +%FT%TZ) done"
