#!/usr/bin/env bash
# CESM -> DM synthesis on the shipped data, end to end and resumable (docs/synthesis.md):
#   1. prepare the DM ROIs (scripts/prepare_shipped_training_data.py) and the CESM ROIs without any
#      DM validation patient (scripts/prepare_cyclegan_domains.py), when not done yet;
#   2. train the CycleGAN (configs/cyclegan_train.yaml) into runs/cyclegan/, continuing from its last
#      saved epoch when it was interrupted; sized for about an hour on a 2-core CPU (128 x 128 crops,
#      32 generator and discriminator filters, 9 residual blocks, bf16 where the CPU has bf16 units);
#   3. translate every CESM ROI into DM style (connected-unets synthesize) into runs/synthetic/cesm_to_dm/;
#   4. measure the translation (scripts/synthesis_quality.py) into runs/synthetic/quality/.
# Re-run it after any interruption; finished steps are quick to redo (3 and 4 take minutes).
# Usage: scripts/train_cyclegan.sh [extra `monai.bundle run` overrides of the training, e.g. --epochs 20]
#   GPU (the tutorial's full size): CYCLEGAN_SIZE=full scripts/train_cyclegan.sh
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
dm="$repo/runs/data/cdd_cesm_dm"
cesm="$repo/runs/data/cdd_cesm_cm"
out="${CYCLEGAN_OUT:-$repo/runs/cyclegan}"
synthetic="$repo/runs/synthetic/cesm_to_dm"
cd "$repo"
[ -f "$dm/datalist.json" ] || python scripts/prepare_shipped_training_data.py
[ -f "$cesm/datalist.json" ] || python scripts/prepare_cyclegan_domains.py --dm "$dm" --out "$cesm"

if [ "${CYCLEGAN_SIZE:-cpu}" = full ]; then
  sizes=(--crop_size 256 --gan_filters 64 --disc_filters 64 --epochs 200 --lr_schedule linear --decay_epochs 100)
else
  # about an hour: 24 epochs of max(#CESM, #DM) = 255 steps = 6120 steps at a median 0.53 s a step (bf16,
  # 2 threads, the real run on the quiet 2-core AMX Xeon; docs/synthesis.md, "Measured step time"); the last
  # 12 epochs decay linearly. More: re-run with a larger --epochs (it resumes).
  sizes=(--crop_size 128 --gan_filters 32 --disc_filters 32 --epochs 24 --lr_schedule linear --decay_epochs 12)
fi
mkdir -p "$out"
(cd monai_bundle && python -m monai.bundle run --config_file "['configs/common.yaml','configs/cyclegan_train.yaml']" \
  --logging_file configs/logging.conf --domain_a "$cesm" --domain_b "$dm" --output_dir "$out" "${sizes[@]}" "$@")

python -m connected_unets.cli synthesize --from "$cesm" --out "$synthetic" --weights "$out/cyclegan_train_state.pt"
python scripts/synthesis_quality.py --source "$cesm" --synthetic "$synthetic" --reference "$dm" --out "$repo/runs/synthetic/quality"
