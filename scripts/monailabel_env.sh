#!/usr/bin/env bash
# Create (or reuse) the MONAI Label virtualenv: monailabel 0.8.5 and what this project's package
# needs, for scripts/monailabel_serve.sh and tests/monailabel/. Usage: scripts/monailabel_env.sh [--force]
#
# monailabel 0.8.5 needs numpy < 2 (pydicom-seg, numpymaxflow) and pydicom < 3 (pydicom-seg imports a
# module pydicom 3 removed), so it cannot share the main .venv (numpy 2, pydicom 3). torch and
# torchvision are pinned to the builds on this machine's disk (torch 2.14.1 / torchvision 0.29.1;
# PyPI's torchvision does not import beside the CPU torch 2.13 wheel of the main .venv); unpinned,
# pip would download a multi-GB CUDA build. The pins also reach sam2's build environment
# (PIP_CONSTRAINT), the one monailabel dependency that ships only as source.
#
# Our package itself is not installed: scripts/monailabel_serve.sh puts this checkout's
# monai_bundle/ on PYTHONPATH, so the server always runs the code (and bundle) of the checkout it
# is started from, and one venv serves any checkout. What the package needs beyond monailabel's
# dependencies is installed in versions that accept numpy 1.26 and pydicom 2.4 (highdicom 0.22 is
# the last release for pydicom 2). The venv is reused when it was made by this same script (a
# stamp of the script's sha256) and still imports monailabel and our package.
#
# Environment: MONAILABEL_VENV (default .venv-monailabel in the repository), PYTHON (python3.11).
set -euo pipefail
SCRIPT=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
cd "$(dirname "$SCRIPT")/.."
VENV=${MONAILABEL_VENV:-.venv-monailabel}
PY=${PYTHON:-python3.11}

STAMP_FILE=$VENV/.connected-unets-env
STAMP=$(sha256sum "$SCRIPT" | cut -d' ' -f1)

check() {
    PYTHONPATH="$PWD/monai_bundle" "$VENV/bin/python" - <<'EOF'
import monailabel, numpy, pydicom, torch
import connected_unets.inference, connected_unets.io, connected_unets.writers, highdicom, slicerio  # noqa: F401
assert numpy.__version__.startswith("1."), numpy.__version__
assert pydicom.__version__.startswith("2."), pydicom.__version__
print(f"monailabel {monailabel.__version__}, torch {torch.__version__}, numpy {numpy.__version__}, pydicom {pydicom.__version__}")
EOF
}

if [ "${1:-}" != "--force" ] && [ -x "$VENV/bin/monailabel" ] && [ "$(cat "$STAMP_FILE" 2>/dev/null)" = "$STAMP" ] && check 2>/dev/null; then
    echo "reusing $VENV"
    exit 0
fi

if [ -e "$VENV" ] && [ ! -f "$VENV/pyvenv.cfg" ]; then
    echo "refusing to replace $VENV: it is not a virtualenv" >&2
    exit 1
fi
start=$SECONDS
rm -rf "$VENV"
"$PY" -m venv "$VENV"
PIP="$VENV/bin/pip"
constraints=$(mktemp --suffix=.txt)
trap 'rm -f "$constraints"' EXIT
printf 'torch==2.14.1\ntorchvision==0.29.1\nnumpy<2\npydicom<3\n' > "$constraints"
export PIP_CONSTRAINT=$constraints SAM2_BUILD_CUDA=0 PIP_DISABLE_PIP_VERSION_CHECK=1
# wheel folders on this kind of machine (torch 2.14.1, torchvision 0.29.1 among them): used when there
for folder in /opt/wheels /opt/pypi/files /opt/pypi-more/files; do
    if [ -d "$folder" ]; then PIP_FIND_LINKS="${PIP_FIND_LINKS:+$PIP_FIND_LINKS }$folder"; fi
done
export PIP_FIND_LINKS=${PIP_FIND_LINKS:-}

"$PIP" install --quiet torch==2.14.1 torchvision==0.29.1
"$PIP" install --quiet monai==1.6.1 monailabel==0.8.5
# what this project's package needs besides monailabel's dependencies
"$PIP" install --quiet "highdicom==0.22.0" "slicerio>=1.4,<2" "pylibjpeg>=2.0" "pylibjpeg-libjpeg>=2.1" \
    "pylibjpeg-openjpeg>=2.3" "pylibjpeg-rle>=2.0" "xlrd>=2.0" "matplotlib>=3.8" pyyaml
"$PIP" check
check
echo "$STAMP" > "$STAMP_FILE"
echo "created $VENV in $((SECONDS - start)) s"
