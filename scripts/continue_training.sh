#!/usr/bin/env bash
# One more training stretch of a shipped model on the shipped training data, starting from its
# committed weights (the catalogue's file in monai_bundle/models/: model.pt for connected_resunets,
# <network>.pt otherwise). Resumable: re-run the same command after an interruption (the stretch
# goes on from runs/<network>/). When the stretch ends, scripts/end_stretch.sh records it in the
# training ledger and ships its best weights if they beat the shipped ones (COMMIT=1 commits them).
# Usage: [COMMIT=1] scripts/continue_training.sh [NETWORK] [extra overrides, e.g. --epochs 40]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
network=${1:-connected_resunets}
shift $(( $# >= 1 ? 1 : 0 ))
weights=$(python -c 'import sys; from connected_unets.bundle import weights_file; print(weights_file(sys.argv[1]))' "$network")
start=$(python "$repo/scripts/training_ledger.py" shipped-step "$network")
[ -d "$repo/runs/data/cdd_cesm_dm" ] || python "$repo/scripts/prepare_shipped_training_data.py"
"$repo/scripts/train.sh" "$network" "$repo/runs/data/cdd_cesm_dm" --init_weights "$weights" "$@"
"$repo/scripts/end_stretch.sh" "$network" "$start"
