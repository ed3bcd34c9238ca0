#!/usr/bin/env bash
# Everything this project runs on a lent GPU, in one call of the device tool
# (15 minutes of device time per session, one command of at most 10). Stages, in order,
# chosen by STAGES (default: the first three, the session of 2026-11-26):
#   tests      the CUDA tests (skipped on CPU-only machines);
#   schedules  benchmarks/bench_gpu_schedules.py (issue 12: sequential against tree schedule);
#   grid       configs/generalized_accuracy_r64.yaml (issue 14 item 4 at the paper's R = 64);
#   long       bench_gpu_schedules.py --long (issue 23: d = 784, r = 100 under every schedule,
#              chunked and a CUDA-graphed sequential step included);
#   modp       benchmarks/bench_modp_gpu.py (issue 23: exact rank mod p up to N = 65536);
#   graphs     bench_gpu_schedules.py --graphs (every case, each schedule with and without a
#              CUDA graph), then benchmarks/gpu_graph_check.py (training with and without the
#              graphed step: equal numbers, seconds per epoch);
#   paper      configs/generalized_accuracy_paper_lr.yaml, then generalized_accuracy_softplus.yaml
#              (issue 22 item 5: the paper's rate 1e-4, and softplus networks; post hoc);
#   tune784    configs/tune_long_chains_d784.yaml (issue 27: equal tuning at d = 784), stopped at
#              TUNE_SECONDS; the study comes back as a tgz and resumes where a later call carries
#              it in (carry: results/tune/long_chains_d784); commit its winners before compare784;
#   compare784 docs/results/tune_long_chains_d784/compare.yaml, the winners' 3-seed test runs
#              (into results/tune/long_chains_d784/compare, for docs/results/long_chains_d784_tuned).
# e.g. STAGES="tests long modp" bash benchmarks/gpu_session.sh
# Data travels in .gpu/data (TENSORRNN_DATA layout: fashion-mnist/*.gz, mnist/*.gz) and
# python-flint as a wheel in .gpu/whl; the machine's own python3 holds torch.
# Results land in $OUT; the grid stops at GRID_SECONDS so that what finished comes back.
set -u
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
STAGES=${STAGES:-tests schedules grid}
GRID_SECONDS=${GRID_SECONDS:-330}
TUNE_SECONDS=${TUNE_SECONDS:-500}
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1 TENSORRNN_DATA=$PWD/.gpu/data CUBLAS_WORKSPACE_CONFIG=:4096:8
if ls .gpu/whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl \
    && export PYTHONPATH=$PYTHONPATH:/tmp/site
fi
# Without python-flint (a training-only call that left the 10 MB wheel behind to fit the 64 MiB a
# call carries), a stand-in module lets tensorrnn import; any use of flint then raises, loudly.
if ! PYTHONPATH=$PYTHONPATH python3 -c "import flint" 2>/dev/null; then
  mkdir -p /tmp/flint_stand_in
  printf 'def __getattr__(name):\n    raise ImportError(f"flint.{name}: python-flint is not installed here")\n' \
    > /tmp/flint_stand_in/flint.py
  export PYTHONPATH=$PYTHONPATH:/tmp/flint_stand_in
fi
nvidia-smi -L; python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
stage() { [[ " $STAGES " == *" $1 "* ]] && { date -u +"$1 %FT%TZ"; }; }
if stage tests; then
  timeout 60 python3 -m pytest -q -p no:cacheprovider -k cuda tests/test_networks.py tests/test_modp.py tests/test_generalized.py 2>&1 | tail -5
fi
if stage schedules; then
  timeout 120 python3 benchmarks/bench_gpu_schedules.py --json "$OUT/gpu_schedules.json" | tee "$OUT/gpu_schedules.md"
fi
if stage grid; then
  timeout "$GRID_SECONDS" python3 -c "from tensorrnn.cli import main; main()" compare \
    --config configs/generalized_accuracy_r64.yaml --jobs 12 --threads 1 -q > "$OUT/grid.log" 2>&1
  echo "grid rc $?"; tail -3 "$OUT/grid.log"
  # Checkpoints stay behind: with them the archive passed the 16 MiB a returned file may have.
  tar czf "$OUT/generalized_accuracy_r64.tgz" --exclude='*.pt' results/generalized_accuracy_r64
fi
if stage long; then
  timeout 150 python3 benchmarks/bench_gpu_schedules.py --long --chunks 16 64 --json "$OUT/gpu_long.json" | tee "$OUT/gpu_long.md"
fi
if stage modp; then
  timeout 200 python3 benchmarks/bench_modp_gpu.py --budget 120 --json "$OUT/gpu_modp.json" | tee "$OUT/gpu_modp.md"
fi
if stage graphs; then
  timeout 120 python3 benchmarks/bench_gpu_schedules.py --graphs --json "$OUT/gpu_graphs.json" | tee "$OUT/gpu_graphs.md"
  timeout 200 python3 benchmarks/gpu_graph_check.py --json "$OUT/gpu_graph_check.json" | tee "$OUT/gpu_graph_check.md"
fi
if stage paper; then
  for grid in generalized_accuracy_paper_lr:240 generalized_accuracy_softplus:120; do
    timeout "${grid#*:}" python3 -c "from tensorrnn.cli import main; main()" compare \
      --config "configs/${grid%:*}.yaml" --jobs 12 --threads 1 -q > "$OUT/${grid%:*}.log" 2>&1
    echo "${grid%:*} rc $?"; tail -3 "$OUT/${grid%:*}.log"
    tar czf "$OUT/${grid%:*}.tgz" --exclude='*.pt' "results/${grid%:*}"
  done
fi
if stage tune784; then
  timeout "$TUNE_SECONDS" python3 -c "from tensorrnn.cli import main; main()" tune \
    --config configs/tune_long_chains_d784.yaml --jobs 3 --threads 1 -q > "$OUT/tune784.log" 2>&1
  echo "tune784 rc $?"; tail -3 "$OUT/tune784.log"
  tar czf "$OUT/tune_long_chains_d784.tgz" --exclude='*.pt' results/tune/long_chains_d784
fi
if stage compare784; then
  timeout "$GRID_SECONDS" python3 -c "from tensorrnn.cli import main; main()" compare \
    --config docs/results/tune_long_chains_d784/compare.yaml --jobs 9 --threads 1 -q > "$OUT/compare784.log" 2>&1
  echo "compare784 rc $?"; tail -3 "$OUT/compare784.log"
  tar czf "$OUT/long_chains_d784_tuned.tgz" --exclude="*.pt" results/tune/long_chains_d784/compare
fi
date -u +"end %FT%TZ"
