#!/usr/bin/env bash
# ConnectedResUNets with vs without the CycleGAN's synthetic pairs, at the same budget
# (docs/synthesis.md, "Results"). Both runs start from the same weights (default: the shipped
# model.pt), take the same number of optimizer steps with the same validation points (epochs of
# EPOCH_LENGTH steps; the run with synthetic pairs goes through its larger training set more slowly)
# and keep their best validation epoch; each is then scored on the DM validation patients with tight
# and loosened boxes, and scripts/synthesis_comparison.py prints the paired table.
# Resumable: re-run after an interruption (each run resumes from runs/synthesis_compare/<run>/).
# One job at a time: each run uses every CPU core.
# Usage: [EPOCHS=6] [EPOCH_LENGTH=23] [INIT=weights.pt|none] scripts/compare_synthetic.sh [extra train overrides]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
network=connected_resunets
data="$repo/runs/data/cdd_cesm_dm"
synthetic="$repo/runs/synthetic/cesm_to_dm/datalist.json"
out="$repo/runs/synthesis_compare"
# INIT=none: both runs from the same random initialisation (the paper's from-scratch comparison)
init=${INIT:-$(python -c 'import sys; from connected_unets.bundle import weights_file; print(weights_file(sys.argv[1]))' "$network")}
start=()
[ "$init" = none ] || start=(--init_weights "$(realpath "$init")")
[ -f "$synthetic" ] || { echo "$synthetic: no synthetic datalist; run scripts/train_cyclegan.sh first" >&2; exit 2; }
for run in real real_synthetic; do
  extra=()
  [ "$run" = real_synthetic ] && extra=(--synthetic_datalist "$synthetic")
  mkdir -p "$out/$run"
  (cd "$repo/monai_bundle" && python -m monai.bundle run --config_file "['configs/common.yaml','configs/train.yaml']" \
    --logging_file configs/logging.conf --network_name "$network" --dataset_dir "$data" \
    --output_dir "$out/$run" --ckpt_dir "$out/$run" "${start[@]}" \
    --epochs "${EPOCHS:-6}" --epoch_length "${EPOCH_LENGTH:-23}" "${extra[@]}" "$@") \
    > "$out/$run/train.log" 2>&1 || { tail -20 "$out/$run/train.log"; exit 1; }
  EVAL_OUT="$out/$run/eval" "$repo/scripts/evaluate_shipped.sh" "$network" "$out/$run/model.pt"
done
python "$repo/scripts/synthesis_comparison.py" "$out"
