#!/usr/bin/env bash
# The device benchmark as one command, for a machine with a CUDA GPU (about 7 minutes; stopped at 8):
#   CUDA tests, per-example passes (batched vs vmap vs loop vs shared), an AdA step against its floor
#   per backbone, no host synchronisation in the M-step loop, the ImageNet-preset step at 128 px, peak
#   memory against chunk_size. (gpu-lease.sh runs its core, then the CIFAR-10 comparison, in one call.)
# Writes (replaces: --overwrite) suite-<device>.json and .md (2 files) under $OUT when set (the device tool
# returns what is there), else under benchmarks/results/, after every part: a part that fails or runs
# past its limit is recorded, the figures of the parts before it are kept, and the suite goes on.
#
#   bash benchmarks/device-prepare.sh      # here, first: wheels and data into .device/
#   bash benchmarks/gpu.sh                 # on the GPU machine, from the repository root
#   bash benchmarks/gpu.sh --device cpu    # the same suite, CI-sized, on a CPU (figures not meaningful)
#   bash benchmarks/gpu.sh --parts step    # some parts only
# Extra arguments go to `adaaug bench --suite` (--parts, --backbones, --budget-s, --sizes). python3 (or $PYTHON)
# is used as it is: packages come only from .device/wheels, installed with no index (benchmarks/device-env.sh).
# ADAAUG_STOP_AFTER_S (480) and ADAAUG_KILL_AFTER_S (20): when to interrupt it, and to kill it after that.
set -u
cd "$(dirname "$0")/.."
source benchmarks/device-env.sh
args=("$@")
case " $* " in *" --device "*) ;; *) args=(--device cuda "${args[@]}");; esac
case " $* " in *" --device cpu "*) echo "note: --device cpu: a CI-sized rehearsal; its figures are not meaningful";; esac
exec timeout --signal=INT --kill-after="${ADAAUG_KILL_AFTER_S:-20}" "${ADAAUG_STOP_AFTER_S:-480}" "$PY" -m adaaug bench --suite --out "$RESULTS" --overwrite \
  --no-progress "${args[@]}"
