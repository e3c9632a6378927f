#!/usr/bin/env bash
# The paper's model comparison (Table 2) on the shipped CDD-CESM DM data: all six networks and the
# three Connected ones without ASPP, trained with the bundle's train config on the same patient-wise
# split, for the same number of epochs, then scored the same way (validation patients, tight and
# loosened boxes). Every step resumes: re-run the same command after an interruption, or with more
# epochs to continue all runs. Afterwards `python scripts/results_table.py` writes the table.
# Usage: scripts/compare_models.sh [EPOCHS (default 100, the paper's)] [extra train overrides...]
#   CPU pilot of this session: scripts/compare_models.sh 1
#   Only some networks: COMPARE_TAGS="resunet connected_resunets" scripts/compare_models.sh 1
#   Another seed, in its own folder: COMPARE_RUNS=runs/compare_seed1 scripts/compare_models.sh 1 --seed 1
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
epochs=${1:-100}
shift $(( $# >= 1 ? 1 : 0 ))
data="$repo/runs/data/cdd_cesm_dm"
runs=$(mkdir -p "${COMPARE_RUNS:-$repo/runs/compare}" && cd "${COMPARE_RUNS:-$repo/runs/compare}" && pwd)
[ -f "$data/datalist.json" ] || python "$repo/scripts/prepare_shipped_training_data.py"
cd "$repo/monai_bundle"
# the catalogue's networks (connected_unets.bundle.NETWORKS): each single U-Net, then the Connected
# networks built on it, with ASPP and without (tag <name>_noaspp, the names scripts/results_table.py reads)
all_tags=$(python - <<'EOF'
from connected_unets.bundle import NETWORKS

for single, info in NETWORKS.items():
    if info.base is None:
        print(single, *(tag for name, other in NETWORKS.items() if other.base == single for tag in (name, name + "_noaspp")))
EOF
)
for tag in ${COMPARE_TAGS:-$all_tags}; do
  network=${tag%_noaspp}
  aspp=$([ "$tag" = "$network" ] && echo True || echo False)  # Python literals: fire reads "false" as a string
  out="$runs/$tag"
  mkdir -p "$out"
  echo "$(date -u +%FT%TZ) $tag: training to epoch $epochs"
  # bn_momentum 0.1: a short budget leaves Keras' 0.01 running statistics useless (docs/deviations.md)
  python -m monai.bundle run --config_file "['configs/common.yaml','configs/train.yaml']" --logging_file configs/logging.conf \
    --network_name "$network" --use_aspp "$aspp" --dataset_dir "$data" --output_dir "$out" --ckpt_dir "$out" \
    --model_file "$out/model.pt" --epochs "$epochs" --bn_momentum 0.1 --num_workers 0 --seed 0 "$@" \
    >> "$out/train.log" 2>&1 || { tail -20 "$out/train.log"; exit 1; }
  for boxes in tight:0.0 loose:0.3; do
    report="$out/eval_${boxes%%:*}"
    [ "$report/summary.json" -nt "$out/model.pt" ] && continue  # scored since the last best model
    python -m monai.bundle run --config_file "['configs/common.yaml','configs/train.yaml','configs/evaluate.yaml']" \
      --logging_file configs/logging.conf --network_name "$network" --use_aspp "$aspp" --model_file "$out/model.pt" \
      --dataset_dir "$data" --output_dir "$report" --box_extra_margin "${boxes##*:}" \
      > "$report.log" 2>&1 || { tail -20 "$report.log"; exit 1; }
  done
  echo "$(date -u +%FT%TZ) $tag: done ($(python -c 'import json,sys; print(json.load(open(sys.argv[1])))' "$out/model.json"))"
done
