#!/usr/bin/env bash
# The GPU check, for a machine with one NVIDIA GPU (run from anywhere in the repository):
#   bash benchmarks/gpu_check.sh
# installs what the GPU paths need (CuPy for CUDA 12, torch with CUDA when the installed one has
# none, ringtrain with MPI and test extras), runs tests/test_gpu.py (the tests marked `gpu`:
# NCCL at world size 1, gradient buckets over NCCL on CUDA streams in fp32/fp16/bf16, torch on
# CUDA with two workers staged through one GPU, the graph core and Keras fit on CuPy; and the
# CPU stand-ins of the same file) and benchmarks/gpu.py, and ends with one summary line.
# Each step has its own time limit (90 + 120 + 180 + 90 s): the check stays under 8 minutes.
# Without network the installs fail quietly and what is installed is used; a GPU test skipped
# for want of CuPy or CUDA torch shows in the summary and fails the check.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PYTHONUNBUFFERED=1
log() { echo "gpu_check: $*"; }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || {
    echo "gpu_check: SUMMARY no NVIDIA GPU visible (nvidia-smi failed)"; exit 1; }
timeout 90 python3 -m pip install -q 'cupy-cuda12x>=13' -e '.[mpi,dev]' 2>&1 | tail -3
python3 -c "import torch; assert torch.cuda.is_available()" 2>/dev/null \
    || timeout 120 python3 -m pip install -q torch 2>&1 | tail -3
python3 -c "import cupy, torch; print('gpu_check: CuPy', cupy.__version__, 'NCCL',
cupy.cuda.nccl.get_version(), 'torch', torch.__version__, 'CUDA', torch.cuda.is_available())"

log "tests/test_gpu.py (-rs: a skipped GPU test says why)"
timeout 180 python3 -m pytest -q -rs tests/test_gpu.py 2>&1 | tee /tmp/gpu_tests.log | tail -25
tests_rc=${PIPESTATUS[0]}
tests=$(grep -E '[0-9]+ (passed|failed|error)' /tmp/gpu_tests.log | tail -1)
gpu_skips=$(grep -c 'SKIPPED.*\(GPU\|CUDA\|CuPy\)' /tmp/gpu_tests.log)

log "benchmarks/gpu.py"
timeout 90 python3 benchmarks/gpu.py --sizes 1M,16M,256M,1G --repeats 10 2>&1 \
    | tee /tmp/gpu_bench.log
bench_rc=${PIPESTATUS[0]}
bench=$([ "$bench_rc" = 0 ] && echo "benchmark ok" || echo "benchmark FAILED (rc $bench_rc)")

echo "gpu_check: SUMMARY tests: ${tests:-none ran} (rc ${tests_rc}, GPU tests skipped:" \
     "${gpu_skips}); ${bench}"
[ "$tests_rc" = 0 ] && [ "$bench_rc" = 0 ] && [ "$gpu_skips" = 0 ]
