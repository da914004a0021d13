#!/usr/bin/env bash
# Installs jittor-pranet into the Python that runs it (a venv, a conda env, a pyenv or uv Python, or
# the user's site), with or without root:
#   - oneDNN 2.x, Jittor's CPU convolutions (without it they are ~100x slower and Jittor would try to
#     download its own copy at first import). With root or passwordless sudo and apt-get: Debian's
#     libdnnl-dev. Otherwise, or with --no-apt, or when apt fails: PyPI's onednn-cpu-gomp and
#     onednn-devel-cpu-gomp 2022.2.1 (oneDNN 2.6, the version Debian 12 ships) into the same
#     environment; jittor_pranet.runtime finds them under sys.prefix or the user base (~/.local).
#     PyPI's newer `onednn` wheels are oneDNN 3.x, whose API Jittor 1.3.11's ops do not compile with.
#   - OpenMPI (openmpi-bin, libopenmpi-dev) through apt when it can: only multi-process training
#     (`mpirun -np N jittor-pranet train ...`) and its test need it; skipped with a warning otherwise.
#   - the package itself, editable, with extras (default torch,test; torch==2.13.0 is a local CPU wheel
#     for CPython 3.11 here, on other Pythons pip fetches PyPI's much larger CUDA build).
#   - then `python -m jittor_pranet doctor --strict`: Jittor compiles its core on the first import
#     (2-5 min on 2 cores) and the check fails when convolutions would run without oneDNN.
# The interpreter is $PYTHON, else `python`, else `python3`; pip is `python -m pip`, else `uv pip`
# (a uv venv has no pip). Outside a venv, a site-packages that is not writable means `pip --user`;
# a system Python marked EXTERNALLY-MANAGED (PEP 668, Debian's) is refused: make a venv first.
# Idempotent: skips what is already there. Each step prints its time.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  cat <<'EOF'
usage: bash tools/install.sh [--no-apt] [--pip-onednn] [--user] [--extras LIST] [--python PY] [--dry-run]
  --no-apt       never run apt-get or sudo: oneDNN from PyPI (unless the system has one), no OpenMPI
  --pip-onednn   oneDNN from PyPI into this environment even when the system has one (it is then
                 the one used: the environment's wheels come first)
  --user         pip install --user (automatic outside a venv when site-packages is not writable)
  --extras LIST  the package's extras, comma-separated ('' for none; default: torch,test)
  --python PY    the interpreter to install into (default: $PYTHON, else python, else python3)
  --dry-run      print the commands that would change something, run none of them
EOF
}

die() { echo "error: $*" >&2; exit 2; }

NO_APT=0; PIP_ONEDNN=0; USER_SITE=0; DRY=0; EXTRAS="torch,test"; PY="${PYTHON:-}"
while [ $# -gt 0 ]; do
  case "$1" in
    --no-apt) NO_APT=1 ;;
    --pip-onednn) PIP_ONEDNN=1 ;;
    --user) USER_SITE=1 ;;
    --dry-run) DRY=1 ;;
    --extras) [ $# -ge 2 ] && [[ "$2" != -* ]] || die "--extras needs a value (e.g. --extras torch,test or --extras '')"
              EXTRAS="$2"; shift ;;
    --extras=*) EXTRAS="${1#--extras=}" ;;
    --python) [ $# -ge 2 ] && [[ "$2" != -* ]] || die "--python needs a value"; PY="$2"; shift ;;
    --python=*) PY="${1#--python=}" ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option '$1' (bash tools/install.sh --help)" ;;
  esac
  shift
done
[[ "$EXTRAS" =~ ^([A-Za-z0-9][A-Za-z0-9_.-]*(,[A-Za-z0-9][A-Za-z0-9_.-]*)*)?$ ]] || die "--extras takes names separated by commas, got '$EXTRAS'"

if [ -z "$PY" ]; then
  PY="$(command -v python || command -v python3 || true)"
  [ -n "$PY" ] || die "no python or python3 on PATH (give one with --python)"
elif ! command -v "$PY" >/dev/null 2>&1; then
  die "python interpreter '$PY' not found"
fi
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 8))' 2>/dev/null \
  || die "$PY is not a Python >= 3.8"

run() {  # print a command that changes something; run it unless --dry-run
  echo "+ $*"
  [ "$DRY" = 1 ] || "$@"
}
T0=$SECONDS; STEP_T=$SECONDS
step_done() { echo "install.sh: $1 took $((SECONDS - STEP_T)) s"; STEP_T=$SECONDS; }

# What the interpreter is: in a venv/conda env?  site-packages writable?  marked externally managed?
read -r IN_VENV WRITABLE MANAGED < <("$PY" - <<'EOF'
import os, sys, sysconfig
venv = sys.prefix != sys.base_prefix or os.path.isdir(os.path.join(sys.prefix, "conda-meta"))
purelib = sysconfig.get_paths()["purelib"]
writable = os.access(purelib if os.path.isdir(purelib) else sys.prefix, os.W_OK)
managed = os.path.isfile(os.path.join(sysconfig.get_paths()["stdlib"], "EXTERNALLY-MANAGED"))
print(int(venv), int(writable), int(managed))
EOF
)
if [ "$IN_VENV" = 0 ]; then
  if [ "$MANAGED" = 1 ] && [ -z "${PIP_BREAK_SYSTEM_PACKAGES:-}" ]; then
    die "$PY is the system's Python (EXTERNALLY-MANAGED, PEP 668): make a venv first, e.g." \
        "$PY -m venv ~/venvs/jittor-pranet && . ~/venvs/jittor-pranet/bin/activate && bash tools/install.sh"
  fi
  [ "$WRITABLE" = 1 ] || USER_SITE=1
fi

PIP=("$PY" -m pip install -q --disable-pip-version-check)
if ! "$PY" -m pip --version >/dev/null 2>&1; then
  if command -v uv >/dev/null 2>&1; then
    [ "$USER_SITE" = 0 ] || die "uv pip has no --user: use a venv (uv venv) or install pip"
    PIP=(uv pip install -q --python "$PY")
  else
    run "$PY" -m ensurepip --upgrade
  fi
fi
[ "$USER_SITE" = 0 ] || PIP+=(--user)

# apt is used only with root or passwordless sudo (a non-root user gets the PyPI path, no prompt)
SUDO=()
CAN_APT=0
if [ "$NO_APT" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then CAN_APT=1
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then CAN_APT=1; SUDO=(sudo -n)
  fi
fi

# Which oneDNN jittor_pranet.runtime would link (the module needs only the standard library)
onednn_found() {
  "$PY" - <<'EOF'
import importlib.util, sys
spec = importlib.util.spec_from_file_location("_jp_runtime", "jittor_pranet/runtime.py")
rt = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = rt
spec.loader.exec_module(rt)
found = rt.find_onednn()
print(f"oneDNN {found.version_text} ({found.source})" if found else "")
EOF
}
ONEDNN_PIP=$("$PY" -c 'import ast, sys
tree = ast.parse(open("jittor_pranet/runtime.py").read())
for node in tree.body:
    if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "ONEDNN_PIP_PACKAGES":
        print(" ".join(ast.literal_eval(node.value)))')
ONEDNN="$(onednn_found)"

APT_PACKAGES=()
[ -n "$ONEDNN" ] || [ "$PIP_ONEDNN" = 1 ] || APT_PACKAGES+=(libdnnl-dev)
command -v mpicc >/dev/null 2>&1 || APT_PACKAGES+=(openmpi-bin libopenmpi-dev)
if [ ${#APT_PACKAGES[@]} -gt 0 ] && [ "$CAN_APT" = 1 ]; then
  if run "${SUDO[@]}" apt-get update -qq \
     && run "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${APT_PACKAGES[@]}"; then
    [ "$DRY" = 1 ] || ONEDNN="$(onednn_found)"
  else
    echo "warning: apt-get install ${APT_PACKAGES[*]} failed; oneDNN comes from PyPI instead" >&2
  fi
  step_done "apt-get"
fi
if ! command -v mpicc >/dev/null 2>&1 && { [ "$DRY" = 0 ] || [ "$CAN_APT" = 0 ]; }; then
  echo "warning: OpenMPI is not installed (it needs root or sudo: apt-get install openmpi-bin" \
       "libopenmpi-dev); only multi-process training (mpirun) needs it, everything else works" >&2
fi

PKG="."
[ -z "$EXTRAS" ] || PKG=".[$EXTRAS]"
if [ -n "$ONEDNN" ] && [ "$PIP_ONEDNN" = 0 ]; then
  echo "install.sh: using $ONEDNN"
  run "${PIP[@]}" -e "$PKG"
else
  [ "$PIP_ONEDNN" = 1 ] || echo "install.sh: no usable oneDNN 2.x found"
  echo "install.sh: oneDNN from PyPI: $ONEDNN_PIP"
  # shellcheck disable=SC2086
  run "${PIP[@]}" -e "$PKG" $ONEDNN_PIP
fi
step_done "pip install"

run "$PY" -m jittor_pranet doctor --strict
step_done "doctor (first import compiles Jittor)"
echo "install.sh: done in $((SECONDS - T0)) s"
