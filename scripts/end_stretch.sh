#!/usr/bin/env bash
# End a training stretch of NETWORK (run folder runs/<network>/, started from the shipped weights):
# record it in the training ledger and, when its best validation Dice beats the shipped weights',
# export them to monai_bundle/models/ as fp16 (atomically; the previous good file stays on any
# error), check bf16 inference against fp32 for them, and score them with tight and loose boxes.
# With COMMIT=1 the new weights, their record and the ledger are committed (once per stretch: each
# commit of weights stays in the history). scripts/continue_training.sh calls this at its end.
# Usage: [COMMIT=1] scripts/end_stretch.sh NETWORK START_STEP
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
network=${1:?network}
start=${2:?cumulative steps of the weights the stretch started from}
run="$repo/runs/$network"
name=$(python -c 'import sys; from connected_unets.bundle import weights_name; print(weights_name(sys.argv[1]))' "$network")
shipped="$repo/monai_bundle/models/$name"
better=$(python - "$run/${name%.pt}.json" "${shipped%.pt}.json" <<'PY'
import json, sys
from pathlib import Path
new = json.loads(Path(sys.argv[1]).read_text())["score"]
old = json.loads(Path(sys.argv[2]).read_text())["score"] if Path(sys.argv[2]).is_file() else float("-inf")
print("yes" if new > old else "no")
PY
)
from="shipped $name (step $start)"
if [ "$better" = yes ]; then
  python "$repo/scripts/export_weights.py" "$network" "$run"
  python "$repo/scripts/check_inference_precision.py" --model "$network"
  "$repo/scripts/evaluate_shipped.sh" "$network"
  python "$repo/scripts/training_ledger.py" add "$network" "$run" --start-step "$start" --start-from "$from" --committed
  if [ "${COMMIT:-0}" = 1 ]; then
    cd "$repo"
    git add "monai_bundle/models/$name" "monai_bundle/models/${name%.pt}.json" monai_bundle/docs/ledger monai_bundle/docs/README.md docs/learning_curve.png
    git commit -q -m "Weights: $network after a training stretch to step $(python scripts/training_ledger.py shipped-step "$network") (fp16; ledger and learning curve)"
    echo "committed $(git log -1 --format=%h)"
  fi
else
  python "$repo/scripts/training_ledger.py" add "$network" "$run" --start-step "$start" --start-from "$from"
  echo "$network: the stretch's best does not beat the shipped weights; they stay"
fi
