#!/usr/bin/env bash
# Wheels for the GPU machine, which has no network: what jittor-pranet needs there and its image lacks.
#
#   bash tools/gpu_bundle.sh              # fetch into .gpu-bundle/ (git-ignored; needs pip's index)
#   bash tools/gpu_bundle.sh --install    # offline: install from .gpu-bundle/ into .gpu-site/pyX.Y/ for $PYTHON
#
# The image (Python 3.12, torch 2.11+cu130, numpy, scipy, pillow, opencv-python-headless, tqdm, pyyaml,
# h5py, pytest; cuDNN 9 and cuBLAS as pip packages) lacks Jittor and Jittor's astunparse (+ six).
# Jittor 1.3.11 reads numpy arrays through numpy 1.x's struct layout (src/pyjt/numpy.h; its setup.py
# pins numpy<2), so when the image's numpy is 2.x, numpy 1.26.4 travels too.
# --install never touches the image's site-packages: the packages go to .gpu-site/pyX.Y/ (pip --target,
# --no-index, --no-deps, exact files), which tools/gpu_check.sh puts first on PYTHONPATH; this
# package itself runs from the working tree.  Jittor is an sdist on PyPI: it is built here into a
# pure-Python wheel (its C++ sources are compiled by Jittor itself at first import).
set -euo pipefail
cd "$(dirname "$0")/.."
BUNDLE="${BUNDLE:-.gpu-bundle}"
PY="${PYTHON:-python3}"
# One folder per Python version: the wheels there (numpy) are built for it.
SITE="${GPU_SITE:-.gpu-site/$("$PY" -c 'import sys; print("py%d.%d" % sys.version_info[:2])')}"
PINS=("jittor==1.3.11.0" "astunparse==1.6.3" "six==1.17.0" "numpy==1.26.4")

if [ "${1:-}" = "--install" ]; then
  [ -d "$BUNDLE" ] || { echo "error: no $BUNDLE/ (run tools/gpu_bundle.sh where pip's index is reachable)" >&2; exit 2; }
  pkgs=("jittor==1.3.11.0" "astunparse==1.6.3" "six==1.17.0")
  npver=$("$PY" -c "import numpy; print(numpy.__version__)" 2>/dev/null || echo none)
  case "$npver" in 1.*) ;; *) pkgs+=("numpy==1.26.4");; esac
  echo "image numpy: $npver; installing ${pkgs[*]} into $SITE/"
  "$PY" -m pip install --no-index --find-links "$BUNDLE" --no-deps --target "$SITE" --upgrade -q "${pkgs[@]}"
  inc=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['include'])")
  [ -f "$inc/Python.h" ] || echo "warning: $inc/Python.h is missing: Jittor cannot compile its core with this Python" >&2
  PYTHONPATH="$PWD/$SITE:$PWD" "$PY" -c "import numpy, jittor_utils; print('numpy', numpy.__version__, 'from', numpy.__file__)"
  exit 0
fi

rm -rf "$BUNDLE.tmp" && mkdir -p "$BUNDLE.tmp"
# Jittor: build the wheel from the sdist (no dependencies pulled here).
"$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$BUNDLE.tmp" "jittor==1.3.11.0" 2>/dev/null \
  || "$PY" -m pip wheel -q --no-deps -w "$BUNDLE.tmp" "jittor==1.3.11.0"
# The rest as binary wheels for CPython 3.12 manylinux x86_64, whatever this machine is.
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp --abi cp312 \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 -d "$BUNDLE.tmp" \
  "astunparse==1.6.3" "six==1.17.0" "numpy==1.26.4"
rm -rf "$BUNDLE" && mv "$BUNDLE.tmp" "$BUNDLE"
ls -l "$BUNDLE"
du -sh "$BUNDLE"
