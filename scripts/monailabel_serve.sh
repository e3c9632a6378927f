#!/usr/bin/env bash
# Start the MONAI Label server with the Connected-UNets app (scripts/monailabel_app), offline.
#
#   scripts/monailabel_serve.sh --studies DIR_OR_URL [--port N] [--host H] [--networks LIST] [--device D] [-- MONAILABEL_ARGS...]
#
# --studies: a folder of mammograms (PNG, JPEG, TIFF, DICOM, NIfTI, NRRD; MONAI Label writes its
#            datastore_v2.json and labels/ there) or a DICOMweb URL, e.g. http://127.0.0.1:8042/dicom-web
#            for Orthanc with its DICOMweb plugin (series of Modality MG are the studies).
# --port (8000), --host (127.0.0.1; 0.0.0.0 to serve other machines), --networks (connected_resunets;
# a comma-separated list or "all"), --device (auto|cpu|cuda). Anything after "--" goes to
# `monailabel start_server` as it is (e.g. -- --conf modality "").
#
# Nothing is downloaded at start or at inference: the app loads the bundle's own weights, adds no
# SAM2 or model-zoo model and writes DICOM SEG itself (no dcmqi); the variables below also keep
# MONAI Label's optional background jobs (scoring, tracking) from starting. The environment comes
# from scripts/monailabel_env.sh ($MONAILABEL_VENV, default .venv-monailabel).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${MONAILABEL_VENV:-$ROOT/.venv-monailabel}
STUDIES="" PORT=8000 HOST=127.0.0.1 NETWORKS="" DEVICE=auto

usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
    case "$1" in
        --studies) STUDIES=${2:?--studies needs a folder or URL}; shift 2 ;;
        --port) PORT=${2:?--port needs a number}; shift 2 ;;
        --host) HOST=${2:?--host needs an address}; shift 2 ;;
        --networks) NETWORKS=${2:?--networks needs a list}; shift 2 ;;
        --device) DEVICE=${2:?--device needs auto, cpu or cuda}; shift 2 ;;
        -h|--help) usage ;;
        --) shift; break ;;
        *) echo "unknown option $1" >&2; usage ;;
    esac
done
[ -n "$STUDIES" ] || { echo "--studies DIR_OR_URL is required" >&2; usage; }
case "$PORT" in ''|*[!0-9]*) echo "--port $PORT: not a port number" >&2; exit 2 ;; esac
if [ ! -x "$VENV/bin/python" ] || [ ! -e "$VENV/bin/monailabel" ]; then
    echo "no MONAI Label environment at $VENV: create it with scripts/monailabel_env.sh" >&2
    exit 1
fi
case "$STUDIES" in
    http://*|https://*) ;;
    *) [ -d "$STUDIES" ] || { echo "--studies $STUDIES: no such folder" >&2; exit 1; }
       STUDIES=$(cd "$STUDIES" && pwd) ;;
esac

# this checkout's package and bundle (the venv holds monailabel and the package's dependencies only)
export PYTHONPATH="$ROOT/monai_bundle${PYTHONPATH:+:$PYTHONPATH}"
export MONAI_LABEL_AUTO_UPDATE_SCORING=false MONAI_LABEL_TRACKING_ENABLED=false
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 BUNDLE_DOWNLOAD_SRC=github
conf=(--conf device "$DEVICE")
[ -z "$NETWORKS" ] || conf+=(--conf networks "$NETWORKS")
echo "MONAI Label (Connected-UNets) at http://$HOST:$PORT/ with studies $STUDIES; ready when the log says 'Application startup complete'"
# python -m monailabel.main is what the `monailabel` launcher runs (it takes `python` from PATH and
# splits quoted arguments)
exec "$VENV/bin/python" -m monailabel.main start_server --app "$ROOT/scripts/monailabel_app" --studies "$STUDIES" \
    --host "$HOST" --port "$PORT" "${conf[@]}" "$@"
