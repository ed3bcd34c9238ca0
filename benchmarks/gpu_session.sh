#!/usr/bin/env bash
# Everything this project runs on a lent GPU, in one call of the device tool
# (15 minutes of device time per session, one command of at most 10):
#   1. the CUDA tests (skipped on CPU-only machines),
#   2. benchmarks/bench_gpu_schedules.py (issue 12: sequential against tree schedule),
#   3. configs/generalized_accuracy_r64.yaml (issue 14 item 4 at the paper's R = 64).
# Data travels in .gpu/data (TENSORRNN_DATA layout: fashion-mnist/*.gz, mnist/*.gz) and
# python-flint as a wheel in .gpu/whl; the machine's own python3 holds torch.
# Results land in $OUT; the grid stops at GRID_SECONDS so that what finished comes back.
set -u
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
GRID_SECONDS=${GRID_SECONDS:-330}
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1 TENSORRNN_DATA=$PWD/.gpu/data CUBLAS_WORKSPACE_CONFIG=:4096:8
if ls .gpu/whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl \
    && export PYTHONPATH=$PYTHONPATH:/tmp/site
fi
nvidia-smi -L; python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
date -u +"start %FT%TZ"
timeout 60 python3 -m pytest -q -p no:cacheprovider -k cuda tests/test_networks.py tests/test_modp.py tests/test_generalized.py 2>&1 | tail -5
timeout 120 python3 benchmarks/bench_gpu_schedules.py --json "$OUT/gpu_schedules.json" | tee "$OUT/gpu_schedules.md"
date -u +"grid %FT%TZ"
timeout "$GRID_SECONDS" python3 -c "from tensorrnn.cli import main; main()" compare \
  --config configs/generalized_accuracy_r64.yaml --jobs 12 --threads 1 -q > "$OUT/grid.log" 2>&1
echo "grid rc $?"; tail -3 "$OUT/grid.log"
# Checkpoints stay behind: with them the archive passed the 16 MiB a returned file may have.
tar czf "$OUT/generalized_accuracy_r64.tgz" --exclude='*.pt' results/generalized_accuracy_r64
date -u +"end %FT%TZ"
