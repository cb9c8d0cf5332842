#!/usr/bin/env bash
# Fill .device/ (git-ignored) with what a run on the lent GPU machine needs and its image lacks:
#   .device/wheels/  wheels of the pure-Python packages adaaug imports that the image does not hold (piq);
#   .device/data/    the CIFAR-10 JPEG archives (training split, dev split) and their checksums;
#   .device/backbone/  with --backbone-weights FILE: a copy of that corruption-network file (a published one such as
#                    EDSR's edsr_baseline_x4.pt or DeepAugment's CAE model_final.state, or a .safetensors file);
#                    gpu-compare.sh and gpu-lease.sh pass it on as --backbone-weights. Without the option it is
#                    emptied: AdA then uses adaaug's packaged weights;
#   .device/COMMIT   the commit (and whether the tree had local changes), for the results.
# Then it measures what would travel (the tree git does not ignore, plus .device/) against 64 MiB.
#
#   bash benchmarks/device-prepare.sh DATA_DIR        # or set ADAAUG_DATA instead of passing DATA_DIR
#   bash benchmarks/device-prepare.sh DATA_DIR --backbone-weights edsr_baseline_x4.pt
# DATA_DIR holds cifar10-jpeg-train.tar.gz and cifar10-jpeg-test-dev.tar.gz: CIFAR-10 as JPEG ImageFolder trees
# (train/<class>/<n>.jpg, test/<class>/<n>.jpg) packed with tar + gzip, and a SHA256SUMS of them if you have one.
# Run it from anywhere, on a machine that reaches the package index; rerunning it is cheap.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${ADAAUG_DATA:-}
WEIGHTS=""
while [ $# -gt 0 ]; do
  case "$1" in
    --backbone-weights) [ $# -ge 2 ] || { echo "error: --backbone-weights needs a FILE"; exit 1; }
                        WEIGHTS=$2; shift 2;;
    --backbone-weights=*) WEIGHTS=${1#*=}; shift;;
    -*) echo "error: unknown option $1 (known: --backbone-weights FILE)"; exit 1;;
    *) DATA=$1; shift;;
  esac
done
[ -z "$WEIGHTS" ] || { [ -f "$WEIGHTS" ] && [ -s "$WEIGHTS" ]; } \
  || { echo "error: --backbone-weights $WEIGHTS is not a readable, non-empty file"; exit 1; }
[ -n "$DATA" ] || { echo "error: pass the folder holding the CIFAR-10 JPEG archives (DATA_DIR, or ADAAUG_DATA)"; exit 1; }
LIMIT_MIB=64
WHEELS=("piq==0.8.0")   # pure Python; torch and torchvision, its only needs, are on the image
ARCHIVES=(cifar10-jpeg-train.tar.gz cifar10-jpeg-test-dev.tar.gz)

mkdir -p .device/wheels .device/data
grep -qx '/.device/' .gitignore 2>/dev/null || { echo "error: .gitignore lacks /.device/ (it must not be committed)"; exit 1; }

for spec in "${WHEELS[@]}"; do
  name=${spec%%==*}; version=${spec##*==}
  if ls .device/wheels/"${name}-${version}"-*.whl >/dev/null 2>&1; then
    echo "wheel: ${name} ${version} already in .device/wheels"
    continue
  fi
  rm -f .device/wheels/"${name}"-*.whl
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .device/wheels "$spec" \
    || { echo "error: could not download the wheel $spec (is the package index reachable?)"; exit 1; }
  echo "wheel: downloaded $(ls .device/wheels/"${name}"-*.whl)"
done

if [ ! -d "$DATA" ]; then
  echo "error: data folder $DATA does not exist; pass the folder holding ${ARCHIVES[*]}" \
       "as the first argument or in ADAAUG_DATA"
  exit 1
fi
for f in "${ARCHIVES[@]}"; do
  if [ ! -f "$DATA/$f" ]; then
    echo "error: $DATA/$f is missing; pass the folder holding ${ARCHIVES[*]} as the first argument or in ADAAUG_DATA"
    exit 1
  fi
  cmp -s "$DATA/$f" ".device/data/$f" 2>/dev/null || { cp -f "$DATA/$f" ".device/data/$f" && chmod u+w ".device/data/$f"; }
done
if [ -f "$DATA/SHA256SUMS" ]; then
  cp -f "$DATA/SHA256SUMS" .device/data/SHA256SUMS && chmod u+w .device/data/SHA256SUMS
  (cd .device/data && grep -E "$(IFS='|'; echo "${ARCHIVES[*]}")" SHA256SUMS | sha256sum -c --quiet -) \
    || { echo "error: checksums of the archives in .device/data do not match $DATA/SHA256SUMS"; exit 1; }
  echo "data: ${ARCHIVES[*]} copied and checked against SHA256SUMS"
else
  echo "data: ${ARCHIVES[*]} copied (no SHA256SUMS beside them to check)"
fi

rm -rf .device/backbone
if [ -n "$WEIGHTS" ]; then
  mkdir -p .device/backbone
  cp -f "$WEIGHTS" ".device/backbone/$(basename "$WEIGHTS")" && chmod u+w ".device/backbone/$(basename "$WEIGHTS")"
  echo "backbone weights: .device/backbone/$(basename "$WEIGHTS"), passed on as --backbone-weights" \
       "(add --backbone cae to gpu-compare.sh or gpu-lease.sh for a CAE file)"
else
  echo "backbone weights: none given (--backbone-weights FILE); AdA uses adaaug's packaged weights"
fi

if git rev-parse --git-dir >/dev/null 2>&1; then
  commit=$(git rev-parse --short HEAD)
  [ -n "$(git status --porcelain --untracked-files=no)" ] && commit="${commit}+local-changes"
  echo "$commit" > .device/COMMIT
  echo "commit: $commit"
  tree=$(git ls-files -z --cached --others --exclude-standard | xargs -0 -r stat -c %s -- 2>/dev/null \
         | awk '{s += $1} END {print s + 0}')
else
  echo "note: not a git checkout; the travelling size is estimated from the whole folder"
  tree=$(du -sb --exclude=.device . | cut -f1)
fi
dev=$(du -sb .device | cut -f1)
total=$((tree + dev))
awk -v t="$tree" -v d="$dev" -v l="$LIMIT_MIB" \
  'BEGIN {printf "size: tree %.1f MiB + .device %.1f MiB = %.1f MiB (limit %d MiB)\n", t/1048576, d/1048576, (t+d)/1048576, l}'
if [ "$total" -gt $((LIMIT_MIB * 1048576)) ]; then
  echo "error: more than ${LIMIT_MIB} MiB would travel; remove untracked files or ignore them"
  exit 1
fi
echo "ready: name .device in the call's carry"
