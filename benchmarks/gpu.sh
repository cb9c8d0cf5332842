#!/usr/bin/env bash
# The device benchmark as one command, for a machine with a CUDA GPU (about 8 minutes):
#   CUDA tests, per-example passes (batched vs vmap vs loop vs shared), an AdA step against its floor
#   per backbone, the ImageNet-preset step at 128 px, peak memory against chunk_size.
# Writes benchmarks/results/suite-cuda.{json,md} and prints the markdown.
#
#   bash benchmarks/gpu.sh                 # on the GPU machine, from the repository root
#   bash benchmarks/gpu.sh --device cpu    # the same suite, CI-sized, on a CPU
#   bash benchmarks/gpu.sh --parts step    # some parts only
# Extra arguments go to `adaaug bench --suite`. A part that fails or runs past its limit is recorded
# and the suite goes on; the whole run is stopped after 9 minutes.
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && PY=.venv/bin/python
args=("$@")
case " $* " in *" --device "*) ;; *) args=(--device cuda "${args[@]}");; esac
"$PY" -c "import torch, platform; print('torch', torch.__version__, '| CUDA', torch.version.cuda, '| GPU:', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none', '|', platform.machine())"
exec timeout --signal=INT --kill-after=30 540 "$PY" -m adaaug bench --suite "${args[@]}"
