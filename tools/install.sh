#!/usr/bin/env bash
# Installs everything jittor-pranet needs on a fresh Debian/Ubuntu machine (CPU or GPU):
#   - oneDNN from Debian (libdnnl-dev): Jittor's CPU convolutions; without it they are ~100x slower
#     and Jittor would try to download its own copy at first import
#   - OpenMPI from Debian (openmpi-bin, libopenmpi-dev): data-parallel training with
#     `mpirun -np N jittor-pranet train ...` and its test; single processes never load it
#   - the package itself (editable) with the optional extras: torch (parity, benchmarks) and test
# Idempotent: skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=""
[ -f /usr/include/dnnl.h ] || APT_PACKAGES="libdnnl-dev"
command -v mpicc >/dev/null 2>&1 || APT_PACKAGES="$APT_PACKAGES openmpi-bin libopenmpi-dev"
if [ -n "$APT_PACKAGES" ]; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $APT_PACKAGES >/dev/null
  else
    echo "warning: no apt-get; install oneDNN (libdnnl) yourself or convolutions will be ~100x slower;" \
         "OpenMPI is only needed for multi-process training" >&2
  fi
fi

python -m pip install -q --disable-pip-version-check -e ".[torch,test]"
python -m jittor_pranet doctor
