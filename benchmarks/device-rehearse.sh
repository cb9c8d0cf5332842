#!/usr/bin/env bash
# Rehearse on this CPU exactly what the GPU machine will run, before spending any device time on it:
#  1. a virtual environment holding only the GPU image's packages at its versions (torch 2.11.0,
#     torchvision 0.26.0, numpy, safetensors, huggingface_hub, tqdm, pillow, scipy, scikit-image,
#     opencv-python-headless, matplotlib, pytest, timm; no piq, no adaaug) — made once, then reused;
#  2. a copy of the working tree made the way the device tool makes it (the files git does not ignore,
#     no .git) plus .device/ (run benchmarks/device-prepare.sh first);
#  3. in that copy, with PIP_NO_INDEX=1 and the venv's python3 first on PATH: pytest -m cuda (collection
#     and skips), then `benchmarks/gpu.sh --device cpu` (the whole suite, CI-sized) and
#     `benchmarks/gpu-lease.sh --device cpu` (the lease: the suite's core, then gpu-compare.sh at its tiny
#     size with a --deadline), each with its own $OUT, checked: exit status 0, at most 8 files with plain
#     names, no part failed, every row scored with finite errors, the lease within its 570 s.
#
#   bash benchmarks/device-rehearse.sh [--fresh]      # --fresh: rebuild the environment first
# Environment: REHEARSE_PYTHON (python3.12), REHEARSE_HOME (~/.cache/adaaug-rehearse), REHEARSE_PACKAGES.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
HOME_DIR=${REHEARSE_HOME:-$HOME/.cache/adaaug-rehearse}
BASE_PY=${REHEARSE_PYTHON:-python3.12}
PACKAGES=${REHEARSE_PACKAGES:-"torch==2.11.0 torchvision==0.26.0 numpy safetensors huggingface_hub tqdm pillow scipy scikit-image opencv-python-headless matplotlib pytest timm"}
if ! "$BASE_PY" -c pass 2>/dev/null && [ -z "${REHEARSE_PYTHON:-}" ] && command -v pyenv >/dev/null; then
  BASE_PY=$(ls -d "$(pyenv root)"/versions/3.12*/bin/python3.12 2>/dev/null | tail -1)  # pyenv's, not on PATH
fi
"$BASE_PY" -c pass 2>/dev/null || { echo "error: no Python 3.12 (the image's) found; set REHEARSE_PYTHON"; exit 1; }
PYVER=$("$BASE_PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
VENV=$HOME_DIR/venv-$PYVER
[ "${1:-}" = "--fresh" ] && rm -rf "$VENV"
if [ ! -x "$VENV/bin/python3" ]; then
  echo "== creating $VENV (Python $PYVER): $PACKAGES"
  mkdir -p "$HOME_DIR"
  "$BASE_PY" -m venv "$VENV"
  # shellcheck disable=SC2086
  "$VENV/bin/pip" install -q $PACKAGES
fi
(cd / && env -u PYTHONPATH "$VENV/bin/python3" -) <<'PYEOF'
import importlib.util, sys
import torch, torchvision
print(f"== environment: python {sys.version.split()[0]}, torch {torch.__version__}, torchvision {torchvision.__version__}")
present = [m for m in ("piq", "adaaug", "torchattacks", "nbclient") if importlib.util.find_spec(m)]
if present:
    sys.exit(f"error: the rehearsal environment holds {present}, which the GPU image lacks; rebuild it with --fresh")
PYEOF
[ -d .device/wheels ] && [ -d .device/data ] || { echo "error: no .device/; run bash benchmarks/device-prepare.sh first"; exit 1; }

COPY=$(mktemp -d "${TMPDIR:-/tmp}/adaaug-rehearse.XXXXXX")
echo "== copying the tree to $COPY/tree as the device tool does (+ .device/)"
mkdir -p "$COPY/tree"
git ls-files -z --cached --others --exclude-standard \
  | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
  | tar --null -T - -cf - | tar -xf - -C "$COPY/tree"
cp -r .device "$COPY/tree/.device"
echo "   $(du -sh "$COPY/tree" | cut -f1) in all"

cd "$COPY/tree"
# one thread per process: on a CPU shared with other work, torch's spinning OpenMP threads can slow the
# CI-sized parts past their time limits; the rehearsal checks code paths, not speed
export PATH="$VENV/bin:$PATH" PIP_NO_INDEX=1 ADAAUG_CACHE="$COPY/cache" ADAAUG_DEVICE_SITE="$COPY/site" \
  ADAAUG_WORK="$COPY/work" OMP_NUM_THREADS=1
unset PYTHONPATH PYTHON VIRTUAL_ENV 2>/dev/null || true
status=0

check_out() {  # $1: folder, $2: what; at most 8 plain-named files, as the device tool returns them
  local n bad
  n=$(find "$1" -type f | wc -l)
  bad=$(find "$1" -type f | sed "s|^$1/||" | grep -v -E '^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+){0,2}$' || true)
  echo "   $2 wrote $n file(s): $(cd "$1" && find . -type f | sed 's|^\./||' | sort | tr '\n' ' ')"
  if [ "$n" -gt 8 ] || [ "$n" -eq 0 ] || [ -n "$bad" ]; then echo "FAIL: $2: $n files (1..8 allowed) $bad"; status=1; fi
}

echo "== pytest -m cuda (on a CPU: collection and skips)"
rc=0; python3 -m pytest -m cuda -q -p no:cacheprovider tests > "$COPY/pytest-cuda.log" 2>&1 || rc=$?
tail -3 "$COPY/pytest-cuda.log"
[ $rc -eq 0 ] || [ $rc -eq 5 ] || { echo "FAIL: pytest -m cuda exited $rc"; status=1; }

echo "== benchmarks/gpu.sh --device cpu"
mkdir -p "$COPY/out-suite"
rc=0; OUT="$COPY/out-suite" bash benchmarks/gpu.sh --device cpu > "$COPY/suite.log" 2>&1 || rc=$?
if [ $rc -eq 0 ]; then
  tail -25 "$COPY/suite.log"
  python3 - "$COPY/out-suite/suite-cpu.json" <<'PYEOF' || status=1
import json, sys
parts = json.load(open(sys.argv[1]))["parts"]
bad = {k: v.get("error") for k, v in parts.items() if v["status"] not in ("ok", "skipped")}
print("   parts:", {k: v["status"] for k, v in parts.items()})
sys.exit(f"FAIL: suite parts {bad}" if bad else 0)
PYEOF
else
  tail -40 "$COPY/suite.log"; echo "FAIL: gpu.sh exited $rc"; status=1
fi
check_out "$COPY/out-suite" gpu.sh

echo "== benchmarks/gpu-lease.sh --device cpu"
mkdir -p "$COPY/out-lease"
rc=0; t0=$(date +%s)
OUT="$COPY/out-lease" bash benchmarks/gpu-lease.sh --device cpu > "$COPY/lease.log" 2>&1 || rc=$?
took=$(( $(date +%s) - t0 ))
if [ $rc -eq 0 ]; then
  grep -E '^(== gpu-lease|  [a-z-]+: |\[gpu-compare .*(calibration|clean error))' "$COPY/lease.log" | cut -c1-160
  python3 - "$COPY/out-lease" "$took" <<'PYEOF' || status=1
import json, math, sys
from pathlib import Path
out, took = Path(sys.argv[1]), int(sys.argv[2])
parts = json.loads((out / "suite-cpu.json").read_text())["parts"]
want = {"cuda-tests": "skipped", "per-example": "ok", "step": "ok", "sync": "ok"}
got = {k: v["status"] for k, v in parts.items()}
edsr = all(list(parts.get(p, {}).get("backbones", {})) == ["edsr"] for p in ("per-example", "step", "sync"))
r = json.loads((out / "compare-cpu-all4.json").read_text())
rows = r["rows"]
bad = [k for k in ("nominal", "ada", "augmix", "ada+augmix")
       if k not in rows or not all(math.isfinite(rows[k][m]) for m in ("clean_error", "mce"))]
print(f"   lease: {took} s; suite parts {got}; comparison budget {r['calibration']['budget_s']} s, "
      f"plan: {r['calibration']['plan']}")
checks = {f"suite parts {got}, want {want}": got != want, "suite parts not on edsr alone": not edsr,
          f"rows missing or not finite: {bad}": bool(bad), "no --deadline reached gpu-compare": not r["settings"]["deadline"],
          f"it took {took} s, over 570": took > 570, "marked meaningful": bool(r.get("meaningful"))}
problems = [what for what, failed in checks.items() if failed]
sys.exit(f"FAIL: lease: {'; '.join(problems)}" if problems else 0)
PYEOF
else
  tail -40 "$COPY/lease.log"; echo "FAIL: gpu-lease.sh exited $rc after $took s"; status=1
fi
check_out "$COPY/out-lease" gpu-lease.sh

if [ $status -eq 0 ]; then
  echo "== rehearsal passed (python $PYVER, $(python3 -c 'import torch, torchvision; print(f"torch {torch.__version__}, torchvision {torchvision.__version__}")'), no index); logs in $COPY"
else
  echo "== rehearsal FAILED; logs in $COPY"
fi
exit $status
