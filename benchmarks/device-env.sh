# Sourced by gpu.sh, gpu-compare.sh and gpu-lease.sh: the Python environment of a run, on the GPU machine or here.
#   PY         the interpreter: $PYTHON, else python3 (the image's, holding torch)
#   PYTHONPATH the checkout (adaaug runs from its source, nothing is built) + the wheels of .device/wheels,
#              installed with no index into a folder outside the tree (ADAAUG_DEVICE_SITE)
#   RESULTS    where results go: $OUT when the device tool sets it, else benchmarks/results
#   ADAAUG_COMMIT  from .device/COMMIT (the machine's copy of the tree has no git history)
# Once set up and checked it exports ADAAUG_DEVICE_ENV=ready: a script started from one that sourced it (gpu-lease.sh
# runs gpu.sh and gpu-compare.sh) inherits the environment and skips the install and the check.
# Needs: run from the repository root.
PY=${PYTHON:-python3}
RESULTS=${OUT:-benchmarks/results}
mkdir -p "$RESULTS"
if [ "${ADAAUG_DEVICE_ENV:-}" != ready ]; then
  export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 PIP_NO_INDEX=1
  SITE=${ADAAUG_DEVICE_SITE:-${TMPDIR:-/tmp}/adaaug-device-site}
  if compgen -G ".device/wheels/*.whl" >/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
      .device/wheels/*.whl || { echo "error: installing .device/wheels failed" >&2; exit 1; }
    export PYTHONPATH="$PWD:$SITE${PYTHONPATH:+:$PYTHONPATH}"
  else
    echo "note: no .device/wheels (run benchmarks/device-prepare.sh here first); using what $PY has" >&2
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
  fi
  [ -f .device/COMMIT ] && export ADAAUG_COMMIT="$(cat .device/COMMIT)"
  "$PY" - <<'PYEOF' || { echo "error: the environment cannot import adaaug and its needs (see above)" >&2; exit 1; }
import platform, torch, torchvision, numpy, piq, adaaug
print(f"python {platform.python_version()} | torch {torch.__version__} (CUDA {torch.version.cuda}) | "
      f"torchvision {torchvision.__version__} | numpy {numpy.__version__} | piq {piq.__version__} | "
      f"adaaug {adaaug.__version__} from {adaaug.__path__[0]} | GPU: "
      f"{torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'} | {platform.machine()}")
PYEOF
  export ADAAUG_DEVICE_ENV=ready
fi
