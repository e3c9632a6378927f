#!/usr/bin/env bash
# Train (or continue training) one network with the bundle's train config; resumes from the last
# saved training state in runs/<network>/, so it can be re-run after any interruption.
# Usage: scripts/train.sh NETWORK [DATASET_DIR] [extra `monai.bundle run` overrides...]
#   e.g. scripts/train.sh connected_resunets runs/data/cdd_cesm_dm --epochs 100
# A peer of the catalogue (dynunet) has its own config, configs/NETWORK.yaml, merged after train.yaml.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
network=${1:?network name, e.g. connected_resunets}
dataset=$(realpath "${2:-$repo/runs/data/cdd_cesm_dm}")
shift $(( $# >= 2 ? 2 : 1 ))
out="$repo/runs/$network"
mkdir -p "$out"
cd "$repo/monai_bundle"
configs="'configs/common.yaml','configs/train.yaml'"
[ -f "configs/$network.yaml" ] && configs+=",'configs/$network.yaml'"
python -m monai.bundle run --config_file "[$configs]" --logging_file configs/logging.conf \
  --network_name "$network" --dataset_dir "$dataset" --output_dir "$out" --ckpt_dir "$out" "$@"
