#!/usr/bin/env bash
# Prove, on a machine without a GPU, that Jittor's CUDA path builds against the GPU machine's stack:
# CUDA 13.0 toolkit + cuDNN 9 + cuBLAS from PyPI, compiled through jittor_pranet.runtime.
#
#   bash tools/cuda_build_check.sh                  # venv in .cuda-venv/ (git-ignored), report in cuda_build_check.json
#   CUDA_VENV=/path/venv PYTHON312=python3.12 bash tools/cuda_build_check.sh
#
# 1. a Python 3.12 venv (Jittor 1.3.11 and the CUDA wheels as on the GPU image; made once, needs pip's
#    index the first time, ~3 GB);
# 2. tools/cuda_build_check.py in it with JITTOR_PRANET_CUDA_BUILD_ONLY=1 and nvcc from the
#    nvidia-cuda-nvcc wheel: Jittor's core, libcuda_extern, cuBLAS, cuRAND, cub and cuDNN ops are
#    compiled (~5-8 min on 2 cores the first time; seconds when Jittor's cache is warm).
# The JSON report lists files compiled per target, the helper_cuda.h fix and what needs a driver.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${CUDA_VENV:-.cuda-venv}"
PY312="${PYTHON312:-$(command -v python3.12 || ls /root/.pyenv/versions/3.12*/bin/python3.12 2>/dev/null | head -n1 || true)}"
REPORT="${REPORT:-cuda_build_check.json}"
# The GPU image's versions (CUDA 13.0 toolkit; torch cu130's cuDNN/cuBLAS/cuRAND/cuFFT/cuSPARSE).
WHEELS=(
  "nvidia-cuda-nvcc==13.0.88" "nvidia-cuda-crt==13.0.88" "nvidia-nvvm==13.0.88"
  "nvidia-cuda-runtime==13.0.96" "nvidia-cuda-cccl==13.0.85"
  "nvidia-cudnn-cu13==9.24.0.43" "nvidia-cublas==13.1.1.3" "nvidia-curand==10.4.0.35"
  "nvidia-cufft==12.0.0.61" "nvidia-cusparse==12.6.3.3" "nvidia-nvjitlink==13.0.88"
)
if [ ! -x "$VENV/bin/python" ]; then
  [ -n "$PY312" ] || { echo "error: no python3.12 found (set PYTHON312)" >&2; exit 2; }
  "$PY312" -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import jittor_utils, nvidia.cudnn, nvidia.cu13" 2>/dev/null; then
  "$VENV/bin/pip" install -q "jittor==1.3.11.0" "numpy<2" pillow tqdm astunparse "${WHEELS[@]}"
fi
SITE=$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
export nvcc_path="$SITE/nvidia/cu13/bin/nvcc"   # the pip toolkit, not a system one on PATH
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
"$VENV/bin/python" tools/cuda_build_check.py --json "$REPORT" --arch "${CUDA_ARCH:-90}"
