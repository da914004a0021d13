#!/usr/bin/env bash
# One prepared GPU check for jittor-pranet (issue #5): install, CUDA parity, CUDA benchmark.
#
# Run from the repository root on a fresh machine with an NVIDIA GPU, e.g.
#     bash tools/gpu_check.sh            # results land in ${OUT:-gpu_check_out}/
# Finishes in under 8 minutes in one call (stage limits 45+20+120+150+140 s = 475 s); a
# failing stage does not stop the later ones; the summary at the end says what ran.
#   1. install the package (editable, no dependencies fetched) and report the environment;
#   2. forward parity of Jittor on CUDA for one Res2Net and one PVT model (352x352, batch 2, every
#      tensor <= 5e-5 relative, as tests/test_parity.py; the PyTorch reference runs on the CPU);
#   3. the quick benchmark on CUDA (Jittor vs PyTorch on the same GPU, torch.cuda.synchronize /
#      jt.sync_all timing, device memory), JSON + Markdown.
# Jittor compiles its CUDA kernels with nvcc on first use, which dominates a cold run; stage
# limits leave room for that.  Not run in the session that wrote it (no GPU there): see
# docs/benchmarks.md.
set -u
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu_check_out}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
export JITTOR_PRANET_DEVICE=cuda use_cutt=0 use_cutlass=0 FIX_TORCH_ERROR=0 PYTHONUNBUFFERED=1
STATUS=()
stage() {  # stage NAME SECONDS CMD...
    local name=$1 secs=$2; shift 2
    local t0=$SECONDS
    echo "=== [$name] (limit ${secs}s): $*"
    timeout --kill-after=10 "$secs" "$@" > "$OUT/$name.log" 2>&1
    local rc=$?
    tail -n 40 "$OUT/$name.log"
    STATUS+=("$name rc=$rc $((SECONDS - t0))s")
    echo "=== [$name] rc=$rc in $((SECONDS - t0))s"
    return $rc
}

# 1. install + environment (no network on the device machine: no dependency resolution)
stage install 45 "$PY" -m pip install --no-deps --no-build-isolation -e . || true
stage env 20 "$PY" - <<'EOF' || true
import importlib, subprocess, sys
for mod in ("jittor", "torch", "numpy"):
    try:
        m = importlib.import_module(mod)
        print(mod, getattr(m, "__version__", "?"))
    except Exception as exc:  # report, do not stop
        print(mod, "NOT IMPORTABLE:", exc)
try:
    import torch
    print("torch.cuda.is_available:", torch.cuda.is_available(),
          torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
except Exception:
    pass
print(subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv"],
                     capture_output=True, text=True).stdout)
EOF
stage doctor 120 "$PY" -m jittor_pranet doctor --device cuda || true

# 2. CUDA forward parity (first CUDA compile happens here)
stage parity 150 "$PY" -m jittor_pranet parity --device cuda --model pranet_v2_res2net --model pranet_v2_pvt \
    --size 352 --batch 2 --json "$OUT/parity.json" || true

# 3. quick CUDA benchmark (one model, batch 1 inference, batch 2 training, 3 rounds)
stage bench 140 "$PY" tools/benchmark.py --device cuda --quick --eval-images 0 \
    --json "$OUT/bench.json" --markdown "$OUT/bench.md" || true

echo
echo "=== summary (logs and JSON in $OUT/)"
for s in "${STATUS[@]}"; do echo "  $s"; done
