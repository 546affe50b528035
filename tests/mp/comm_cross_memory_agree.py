"""Worker for tests/test_comm_mpi.py: rank 1 turns cross-memory access off
(RINGTRAIN_CROSS_MEMORY=0) and the others leave it on; the ranks must agree to go without it
(they would otherwise wait in different protocols), and the all-reduces stay right. Prints
``AGREE-OK rank=R cross_memory=0|1``."""

import os

if os.environ.get("PMI_RANK") == "1":          # before init(), which reads the variable
    os.environ["RINGTRAIN_CROSS_MEMORY"] = "0"

import numpy as np

import ringtrain as rt

c = rt.init()
R, N = rt.rank(), rt.size()
c.cross_memory_bytes = 0                        # every size would take it, were it on
for n in (1, 97, 1031):
    x = R * 1000.0 + np.arange(n)
    got = c.allreduce(x)
    assert np.array_equal(got, 1000.0 * N * (N - 1) / 2 + N * np.arange(n)), (R, n, got[:4])
print(f"AGREE-OK rank={R} cross_memory={int(c._shm.cross_memory)}", flush=True)
