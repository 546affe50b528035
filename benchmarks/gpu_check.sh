#!/usr/bin/env bash
# The GPU check, for a machine with one NVIDIA GPU (run from the repository root):
#   bash benchmarks/gpu_check.sh
# installs what the GPU paths need (CuPy for CUDA 12, ringtrain with MPI and test extras),
# runs the tests marked `gpu` and benchmarks/gpu.py, and ends with one summary line.
# Finishes in a few minutes; each step has its own time limit.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PYTHONUNBUFFERED=1
log() { echo "gpu_check: $*"; }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || {
    echo "gpu_check: SUMMARY no NVIDIA GPU visible (nvidia-smi failed)"; exit 1; }
python3 -m pip install -q 'cupy-cuda12x>=13' -e '.[mpi,dev]' 2>&1 | tail -3
python3 -c "import torch; assert torch.cuda.is_available()" 2>/dev/null \
    || python3 -m pip install -q torch 2>&1 | tail -3

log "tests marked gpu"
timeout 240 python3 -m pytest -q -m gpu tests/ 2>&1 | tee /tmp/gpu_tests.log | tail -15
tests=$(grep -E '(passed|failed|error)' /tmp/gpu_tests.log | tail -1)

log "benchmarks/gpu.py"
timeout 200 python3 benchmarks/gpu.py --sizes 1M,16M,256M,1G --repeats 10 2>&1 \
    | tee /tmp/gpu_bench.log
bench=$([ "${PIPESTATUS[0]}" = 0 ] && echo "benchmark ok" || echo "benchmark FAILED")

echo "gpu_check: SUMMARY tests: ${tests:-none ran}; ${bench}"
