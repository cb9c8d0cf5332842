#!/usr/bin/env bash
# The CIFAR-10 comparison on one GPU in one command (stopped at 9 minutes; plans itself for 500 s or --deadline):
# nominal, AdA (EDSR), AugMix and AdA + AugMix, each a ResNet-9 trained with Page's fast recipe on the
# training archive in .device/data, scored on the dev archive's clean images and on a CIFAR-10-C-format
# set that `adaaug make-c --workers` builds from them on the CPU cores meanwhile (`adaaug gpu-compare`).
# Writes compare-<device>-<rows>.json and .md (2 files) under $OUT when set, else under
# benchmarks/results/, after every row, replacing those of an earlier run (--overwrite).
#
#   bash benchmarks/device-prepare.sh                        # here, first: wheels and data into .device/
#   bash benchmarks/gpu-compare.sh                           # on the GPU machine, the four rows
#   bash benchmarks/gpu-compare.sh --rows nominal augmix     # some rows (two commands can share the rows)
#   bash benchmarks/gpu-compare.sh --device cpu              # the tiny CPU rehearsal (figures not meaningful)
#   bash benchmarks/gpu-compare.sh --deadline $(( $(date +%s) + 300 ))   # plan for what is left until then
# Other arguments go to `adaaug gpu-compare` (--size tiny|full, --ada-steps, --epochs, --ada-share, ...).
# A corruption-network file that device-prepare.sh put in .device/backbone/ is passed as --backbone-weights
# (unless the arguments name one). ADAAUG_STOP_AFTER_S (540) and ADAAUG_KILL_AFTER_S (20): when to interrupt it,
# and to kill it after that.
set -u
cd "$(dirname "$0")/.."
source benchmarks/device-env.sh
args=("$@")
case " $* " in *" --device "*) ;; *) args=(--device cuda "${args[@]}");; esac
case " ${args[*]} " in *" --device cpu "*)
  case " $* " in *" --size "*) ;; *) args=(--size tiny "${args[@]}");; esac
  echo "note: --device cpu: a rehearsal; its figures are not meaningful";; esac
case " $* " in *" --backbone-weights "*) ;; *)
  weights=(.device/backbone/*)
  if [ -f "${weights[0]}" ]; then
    [ ${#weights[@]} -eq 1 ] || { echo "error: .device/backbone/ holds ${#weights[@]} files; rerun device-prepare.sh" \
                                       "with one --backbone-weights FILE" >&2; exit 2; }
    args+=(--backbone-weights "${weights[0]}")
    echo "note: AdA's corruption network takes the weights of ${weights[0]} (device-prepare.sh put it there)"
  fi;; esac
case " $* " in *" --data "*) ;; *) args+=(--data .device/data/cifar10-jpeg-train.tar.gz);; esac  # device-prepare.sh
case " $* " in *" --dev "*) ;; *) args+=(--dev .device/data/cifar10-jpeg-test-dev.tar.gz);; esac   # put them there
WORK=${ADAAUG_WORK:-${TMPDIR:-/tmp}/adaaug-gpu-compare}
exec timeout --signal=INT --kill-after="${ADAAUG_KILL_AFTER_S:-20}" "${ADAAUG_STOP_AFTER_S:-540}" \
  "$PY" -m adaaug gpu-compare --out "$RESULTS" --overwrite --work "$WORK" --no-progress "${args[@]}"
