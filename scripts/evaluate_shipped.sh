#!/usr/bin/env bash
# Score a bundle model on the validation patients of the shipped training data, with tight boxes and
# with boxes loosened by 30 % per side. The reports (summary.md, cases.csv, summary.json, roc.png,
# montage.png; see docs/evaluation.md) go to runs/eval/<network>/{tight,loose}/, or to $EVAL_OUT/{tight,loose}/.
# Usage: [EVAL_OUT=DIR] scripts/evaluate_shipped.sh [NETWORK] [WEIGHTS]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
network=${1:-connected_resunets}
weights=${2:-$(python -c 'import sys; from connected_unets.bundle import weights_file; print(weights_file(sys.argv[1]))' "$network")}
[ -d "$repo/runs/data/cdd_cesm_dm" ] || python "$repo/scripts/prepare_shipped_training_data.py"
eval_out=$(realpath -m "${EVAL_OUT:-$repo/runs/eval/$network}")  # before the cd: a relative EVAL_OUT is the caller's
cd "$repo/monai_bundle"
configs="'configs/common.yaml','configs/train.yaml','configs/evaluate.yaml'"
[ -f "configs/$network.yaml" ] && configs+=",'configs/$network.yaml'"  # a peer of the catalogue (dynunet)
for boxes in tight:0.0 loose:0.3; do
  out="$eval_out/${boxes%%:*}"
  mkdir -p "$out"
  python -m monai.bundle run --config_file "[$configs]" \
    --logging_file configs/logging.conf --network_name "$network" --model_file "$weights" \
    --dataset_dir "$repo/runs/data/cdd_cesm_dm" --output_dir "$out" \
    --box_extra_margin "${boxes##*:}" > "$out.log" 2>&1 || { tail -20 "$out.log"; exit 1; }
  echo "$network ${boxes%%:*} boxes: $(python -c 'import json, sys; s = json.load(open(sys.argv[1]))
print("Dice %.3f IoU %.3f over %d lesions" % (s["dice"]["mean"], s["iou"]["mean"], s["n_cases"]))' "$out/summary.json")"
done
