"""Multi-machine test program: join, then check an all-reduce and the rank layout."""

import os
import sys
import time

import numpy as np

import ringtrain as rt

started = time.monotonic()
comm = rt.init()
rank, size = rt.rank(), rt.size()
n = int(os.environ.get("CLUSTER_TEST_N", "7"))
x = rank * 1000.0 + np.arange(n)
got = comm.allreduce(x)
want = sum(r * 1000.0 for r in range(size)) + size * np.arange(n)
if not np.array_equal(got, want):
    print(f"rank {rank}: allreduce mismatch {got} != {want}", flush=True)
    sys.exit(3)
ranks = comm.allgather_object((rank, os.environ.get("CLUSTER_TEST_MACHINE", "?")))
# One write per line: processes of one machine share the pipe, and print() writes the text and
# the newline separately (unbuffered under ringrun/mpiexec), so lines could interleave.
os.write(1, (f"OK rank={rank} size={size} layout={ranks} "
             f"first_collective_s={time.monotonic() - started:.3f} "
             f"netmod={os.environ.get('MPIR_CVAR_CH4_NETMOD')}\n").encode())
