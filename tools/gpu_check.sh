#!/usr/bin/env bash
# The one GPU check for jittor-pranet: everything worth measuring on a borrowed GPU, in one call.
#
#   bash tools/gpu_check.sh              # on the GPU machine (first thing run there); results in $OUT
#   bash tools/gpu_check.sh --dry-run    # on any CPU machine: every stage at small sizes, device cpu
#                                        # (also JITTOR_PRANET_DEVICE=cpu)
#
# Stages (each under `timeout`; a failing or timed-out stage never stops the next; the whole run
# stays within GPU_CHECK_BUDGET seconds, 470 by default, so one call fits 8 minutes; 8x on CPU):
#   install       Jittor + astunparse (+ numpy 1.26 when the image's numpy is 2.x) from .gpu-bundle/
#                 into .gpu-site/pyX.Y/ (tools/gpu_bundle.sh --install: --no-index, image untouched)
#   env           versions, GPU, driver (JSON)
#   doctor        how the runtime configured Jittor; compiles Jittor's CUDA core and externs when cold
#   parity        forward parity on the device, PraNet-V2 Res2Net and PVT, 352x352, batch 2, every
#                 tensor <= 5e-5 relative to the PyTorch reference (NVIDIA_TF32_OVERRIDE=0: float32)
#   train_parity  one train-mode forward+loss+backward, PraNet-V2/PVT float32: loss <= 1e-5,
#                 gradients <= 1e-3 of each tensor's max (the bounds of tests/reference/test_train_parity.py)
#   bench         `jittor-pranet bench` on the device: inference b1 and b16, training b8 with the
#                 256/352/448 recipe, Jittor vs PyTorch synchronised, peak device memory, first-call time
#   fp16          `--precision fp16` inference against float32 (probabilities within 1e-2) and its speed
#   train         ~2 minutes of quickstart training on synthetic polyps; checks that the loss falls
# Output (<= 8 files in $OUT, default gpu_check_out/): gpu_check.json and gpu_check.md (every stage:
# status, seconds, headline numbers, full results), gpu_check.log (all stage logs), parity.json,
# bench.json, bench.md.  Jittor's kernel cache (~/.cache/jittor) is shared by all stages.
set -u
cd "$(dirname "$0")/.."
DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1
DEVICE="${JITTOR_PRANET_DEVICE:-cuda}"
[ "$DRY" = 1 ] && DEVICE=cpu
OUT="${OUT:-gpu_check_out}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")"
PY="${PYTHON:-python3}"
SCALE=1                          # CPU runs get 8x the time boxes (kernels compile on 2 cores)
[ "$DEVICE" = cpu ] && SCALE=8
BUDGET="${GPU_CHECK_BUDGET:-$((470 * SCALE))}"
LOG="$OUT/gpu_check.log"
: > "$LOG"
: > "$WORK/stages.tsv"
export JITTOR_PRANET_DEVICE="$DEVICE" PYTHONUNBUFFERED=1 FIX_TORCH_ERROR=0
SITE="$PWD/.gpu-site/$("$PY" -c 'import sys; print("py%d.%d" % sys.version_info[:2])')"
export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
T0=$SECONDS

if [ "$DEVICE" = cuda ]; then   # the measurement sizes
  SIZE=352; BATCH=2; TP_SIZE=256; FP16=(--size 352 --batch 16 --repeats 10)
  BENCH=(--models pranet_v2_res2net --batches 1,16 --train-batch 8 --multiscale 256,352,448 --repeats 5
         --variants torch,jittor,jittor_fused --eval-images 0)
  TRAIN=(train.time_limit_min=1.6)
else                            # CPU: every stage exercised at small sizes
  SIZE=64; BATCH=1; TP_SIZE=64; FP16=(--model pranet_v2_pvt --size 64 --batch 1 --repeats 1)
  BENCH=(--models pranet_v2_pvt --batches 1 --train-batch 1 --size 64 --multiscale 64 --repeats 1
         --variants torch,jittor --eval-images 0)
  TRAIN=(data.synthetic.n_train=40 data.synthetic.n_test=4 data.train_size=64 train.batch_size=4
         train.epochs=3 train.time_limit_min=1.0)
fi

stage() {  # stage NAME LIMIT CMD...: run CMD under a time box cut to what is left of the budget
  local name=$1 limit=$(($2 * SCALE)); shift 2
  local left=$((BUDGET - (SECONDS - T0) - 5))
  [ "$left" -lt "$limit" ] && limit=$left
  local t=$SECONDS rc
  if [ "$limit" -lt 5 ]; then
    rc=125; echo "=== [$name] skipped: budget spent" | tee -a "$LOG"
  else
    echo "=== [$name] limit ${limit}s: $*" | tee -a "$LOG"
    timeout --kill-after=5 "$limit" "$@" >> "$LOG" 2>&1
    rc=$?
  fi
  printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - t))" "$limit" >> "$WORK/stages.tsv"
  echo >> "$LOG"  # Jittor's progress lines end without a newline
  echo "=== [$name] rc=$rc in $((SECONDS - t))s" | tee -a "$LOG"
}

if "$PY" -c "import jittor_utils" 2>/dev/null; then
  stage install 20 "$PY" -c "import jittor_utils, numpy; print('Jittor already importable; numpy', numpy.__version__)"
else
  stage install 20 env PYTHON="$PY" bash tools/gpu_bundle.sh --install
fi
stage env 15 "$PY" tools/gpu_stages.py env --json "$WORK/env.json"
stage doctor 75 "$PY" -m jittor_pranet doctor --device "$DEVICE"
stage parity 75 env NVIDIA_TF32_OVERRIDE=0 "$PY" -m jittor_pranet parity --device "$DEVICE" \
  --model pranet_v2_res2net --model pranet_v2_pvt --size "$SIZE" --batch "$BATCH" --json "$OUT/parity.json"
stage train_parity 40 env NVIDIA_TF32_OVERRIDE=0 "$PY" tools/gpu_stages.py train-parity --device "$DEVICE" \
  --size "$TP_SIZE" --json "$WORK/train_parity.json"
stage bench 95 "$PY" -m jittor_pranet bench --device "$DEVICE" "${BENCH[@]}" \
  --json "$OUT/bench.json" --markdown "$OUT/bench.md"
stage fp16 25 "$PY" tools/gpu_stages.py fp16 --device "$DEVICE" "${FP16[@]}" --json "$WORK/fp16.json"
stage train 125 bash -c '"$0" -m jittor_pranet quickstart --device "$1" --no-progress --run-dir "$2" \
  data.synthetic.root="$3" "${@:5}"; "$0" tools/gpu_stages.py train-loss --run-dir "$2" --json "$4"' \
  "$PY" "$DEVICE" "$WORK/quickstart" "$WORK/synthetic" "$WORK/train.json" "${TRAIN[@]}"

"$PY" tools/gpu_stages.py summary --work "$WORK" --out "$OUT" --device "$DEVICE" | tee -a "$LOG"
echo "total $((SECONDS - T0)) s; results in $OUT/"
rm -rf "$WORK"
