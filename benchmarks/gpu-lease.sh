#!/usr/bin/env bash
# One lease of the GPU machine in one command that ends within 570 s (call it with a time limit of 590 s):
#  1. the suite's core, in about 150 s (`gpu.sh --parts cuda-tests per-example step sync --backbones edsr
#     --budget-s 140`): pytest -m cuda; EDSR's per-example pass batched vs vmap vs a loop vs shared weights;
#     one AdA step against its floor; one ada(x, y) with no host synchronisation inside the M-step loop
#     (torch.cuda.set_sync_debug_mode("error"));
#  2. the CIFAR-10 comparison, nominal, AdA, AugMix and AdA + AugMix (`gpu-compare.sh --deadline ...`): its
#     calibration plans epochs and M for the time left, and a row still training at the deadline stops there.
# Results go under $OUT (else benchmarks/results/) as soon as they exist: suite-<device>.json and .md after
# every suite part, compare-<device>-all4.json and .md after the plan and after every row, and
# lease-<device>.log (this command's output): 5 files. A stop at any point keeps what was measured before it.
#
#   bash benchmarks/device-prepare.sh DATA      # here, first: wheels, data (and any --backbone-weights FILE)
#   bash benchmarks/device-rehearse.sh          # here: this command with --device cpu, the image's versions
#   bash benchmarks/gpu-lease.sh                # on the GPU machine, from the repository root
#   bash benchmarks/gpu-lease.sh --device cpu   # the CPU rehearsal (CI sizes; figures not meaningful)
# Options: --device cuda|cpu (cuda), --seconds N (570: the whole command), --core-seconds N (140: the suite's
# budget). Other arguments go to gpu-compare.sh (--rows, --ada-steps, --backbone, --backbone-weights, ...).
set -u
cd "$(dirname "$0")/.."
START=$(date +%s)
DEVICE=cuda TOTAL=570 CORE=140
compare_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --device|--seconds|--core-seconds)
      [ $# -ge 2 ] || { echo "error: $1 needs a value" >&2; exit 2; }
      case "$1" in --device) DEVICE=$2;; --seconds) TOTAL=$2;; --core-seconds) CORE=$2;; esac
      shift 2;;
    *) compare_args+=("$1"); shift;;
  esac
done
case "$TOTAL$CORE" in *[!0-9]*) echo "error: --seconds and --core-seconds take whole seconds" >&2; exit 2;; esac
if [ "$CORE" -lt 30 ] || [ "$TOTAL" -lt $((CORE + 120)) ]; then
  echo "error: need --core-seconds ≥ 30 and --seconds ≥ --core-seconds + 120 (got $CORE and $TOTAL)" >&2; exit 2
fi
END=$((START + TOTAL))
RESULTS=${OUT:-benchmarks/results}
mkdir -p "$RESULTS"
LOG="$RESULTS/lease-${DEVICE%%:*}.log"

lease() {
  source benchmarks/device-env.sh  # once: gpu.sh and gpu-compare.sh inherit it
  echo "== gpu-lease on $DEVICE: ends by $(date -d "@$END" '+%H:%M:%S') ($TOTAL s); the core first, budget $CORE s"
  local rc_core=0 rc_compare=0 now left
  ADAAUG_STOP_AFTER_S=$((CORE + 20)) ADAAUG_KILL_AFTER_S=5 bash benchmarks/gpu.sh --device "$DEVICE" \
    --parts cuda-tests per-example step sync --backbones edsr --budget-s "$CORE" || rc_core=$?
  now=$(date +%s); left=$((END - now))
  echo "== gpu-lease: the core took $((now - START)) s (exit $rc_core); the comparison has $left s"
  if [ "$left" -lt 90 ]; then
    echo "error: under 90 s left; the comparison is not started" >&2; rc_compare=1
  else  # it plans for the time until END − 30 s, is interrupted at END − 15 s and killed at END − 5 s
    ADAAUG_STOP_AFTER_S=$((left - 15)) ADAAUG_KILL_AFTER_S=10 bash benchmarks/gpu-compare.sh --device "$DEVICE" \
      --deadline $((END - 30)) "${compare_args[@]}" || rc_compare=$?
  fi
  echo "== gpu-lease: done in $(( $(date +%s) - START )) s; suite exit $rc_core, comparison exit $rc_compare"
  [ "$rc_core" -eq 0 ] && [ "$rc_compare" -eq 0 ]
}
lease 2>&1 | tee "$LOG"
exit "${PIPESTATUS[0]}"
