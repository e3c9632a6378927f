#!/usr/bin/env bash
# Continue training a shipped model on the shipped training data, starting from its weights
# (the catalogue's file in monai_bundle/models/: model.pt for connected_resunets, <network>.pt otherwise).
# Resumable: re-run the same command after an interruption. The best model is written to
# runs/<network>/; copy it to monai_bundle/models/ with scripts/export_weights.py when it is better.
# Usage: scripts/continue_training.sh [NETWORK] [extra overrides, e.g. --epochs 200]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
network=${1:-connected_resunets}
shift $(( $# >= 1 ? 1 : 0 ))
weights=$(python -c 'import sys; from connected_unets.bundle import weights_file; print(weights_file(sys.argv[1]))' "$network")
[ -d "$repo/runs/data/cdd_cesm_dm" ] || python "$repo/scripts/prepare_shipped_training_data.py"
exec "$repo/scripts/train.sh" "$network" "$repo/runs/data/cdd_cesm_dm" --init_weights "$weights" "$@"
