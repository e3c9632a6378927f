#!/usr/bin/env bash
# The paper's full training budget (100 epochs of the x6 augmented set) for ConnectedResUNets and the
# UNet and ResUNet baselines on ONE GPU machine that has PyTorch but no MONAI and no package index.
#
#   here:   scripts/gpu_train.sh prepare            -> .gpu_carry/ (wheels for the GPU machine's
#           Python 3.12, a compact copy of the prepared training ROIs); prints its size
#   there:  scripts/gpu_train.sh run [EPOCHS]       -> $OUT (or runs/gpu): fp16 best weights of each
#           network (split in 15 MiB parts where larger: `cat model.pt.part-* > model.pt` here) and
#           logs.tgz (training logs, learning curves, score records); EPOCHS defaults to the paper's 100
#   CPU check of the same path here:  GPU_TRAIN_TINY=1 scripts/gpu_train.sh run 1
#
# The x6 set is made on the fly: train.yaml's random rot90 / CLAHE augmentation over 6x the epochs
# (the same number of optimizer steps as 100 epochs of the offline x6 set, 138 per x6 epoch at
# batch 8), validating once per x6 epoch. The carried ROI images are JPEG (quality 95) and the masks
# 1-bit PNG, so that the repository (its weights are ~56 MiB) plus the carry stay under the device
# tool's 64 MiB; the crops' sources are JPEGs already (docs/deviations.md).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
carry="$repo/.gpu_carry"
networks=${GPU_TRAIN_NETWORKS:-connected_resunets unet resunet}

prepare() {
  local data="$repo/runs/data/cdd_cesm_dm"
  [ -f "$data/datalist.json" ] || python "$repo/scripts/prepare_shipped_training_data.py"
  rm -rf "$carry" && mkdir -p "$carry/wheels"
  python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux2014_x86_64 -d "$carry/wheels" monai==1.6.1 pytorch-ignite==0.5.5 fire termcolor
  python - "$data" "$carry/data" <<'EOF'
import json, sys
from pathlib import Path
from PIL import Image
source, target = Path(sys.argv[1]), Path(sys.argv[2])
datalist = json.loads((source / "datalist.json").read_text())
for split, items in datalist.items():
    if split == "skipped":
        continue
    for item in items:
        for key, suffix in (("image", ".jpg"), ("label", ".png")):
            name = Path(item[key]).with_suffix(suffix)
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            picture = Image.open(source / item[key])
            if key == "image":
                picture.convert("L").save(target / name, quality=95)
            else:
                picture.point(lambda v: 255 if v > 127 else 0).convert("1").save(target / name, optimize=True)
            item[key] = str(name)
(target / "datalist.json").write_text(json.dumps(datalist, indent=1))
EOF
  local tree carried
  tree=$(cd "$repo" && git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1)
  carried=$(du -sb "$carry" | cut -f1)
  echo "carry: $((carried / 1048576)) MiB + tracked tree $((tree / 1048576)) MiB = $(((carried + tree) / 1048576)) MiB (device limit 64)"
  [ $((carried + tree)) -lt $((64 * 1048576)) ] || { echo "too large for the device tool"; exit 1; }
}

run() {
  local epochs=${1:-100} out=${OUT:-$repo/runs/gpu} data="$carry/data" extra=()
  python3 -c "import monai" 2>/dev/null || {
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site "$carry"/wheels/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  }
  export PYTHONPATH="$repo/monai_bundle${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
  [ -f "$data/datalist.json" ] || data="$repo/runs/data/cdd_cesm_dm"
  if [ -n "${GPU_TRAIN_TINY:-}" ]; then  # the CPU check: tiny networks, 32 px, a few steps
    data="$repo/monai_bundle/sample_data/rois"
    extra=(--roi_size "[32,32]" --network_def#features "[8,16,32,64]" --batch_size 2)
  fi
  mkdir -p "$out"
  cd "$repo/monai_bundle"
  for network in $networks; do
    local dir="$repo/runs/gpu_$network"
    mkdir -p "$dir"
    echo "$(date -u +%FT%TZ) $network: $((epochs * 6)) epochs (= $epochs of the x6 set)"
    python3 -m monai.bundle run --config_file "['configs/common.yaml','configs/train.yaml']" \
      --logging_file configs/logging.conf --network_name "$network" --dataset_dir "$data" \
      --output_dir "$dir" --ckpt_dir "$dir" --epochs $((epochs * 6)) --val_interval 6 \
      --num_workers "${GPU_TRAIN_WORKERS:-8}" "${extra[@]}" > "$dir/train.log" 2>&1 \
      || { tail -30 "$dir/train.log"; exit 1; }
    local weights
    weights="$out/$(python3 -c 'import sys; from connected_unets.bundle import weights_name; print(weights_name(sys.argv[1]))' "$network")"
    if [ -n "${GPU_TRAIN_TINY:-}" ]; then  # tiny networks are not the catalogue's: copy them as they are
      cp "$dir/$(basename "$weights")" "$weights"
    else
      python3 "$repo/scripts/export_weights.py" "$network" "$dir" --to "$out" > /dev/null
    fi
    if [ "$(stat -c %s "$weights")" -gt $((15 * 1048576)) ]; then  # the device returns files of <= 16 MiB
      split -b 15M -d "$weights" "$weights.part-" && rm "$weights"
    fi
    echo "$(date -u +%FT%TZ) $network: best $(tr -d '\n ' < "$dir/$(basename "${weights%.pt}").json")"
  done
  # the device returns at most 8 files: every log and score record in one archive
  (cd "$repo/runs" && tar czf "$out/logs.tgz" gpu_*/train.log gpu_*/*_log.csv gpu_*/*.json)
}

case "${1:-}" in
  prepare) prepare ;;
  run) shift; run "$@" ;;
  *) echo "usage: $0 prepare | run [EPOCHS]"; exit 2 ;;
esac
