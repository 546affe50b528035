"""Worker for tests/test_comm_mpi.py: small all-reduces in one step, larger ones over the
ring and the largest by cross-memory access (where the system allows it), interleaved, so each
path reuses shared slots and step flags the others have just used (at 4 ranks some rank is not
a ring neighbour of another). Inputs depend on the rank; every result is compared
with its closed form; each rank in turn arrives late, so a step that does not wait for every
rank it reads from would read a stale slot. Prints ``ONE-SHOT-OK rank=R calls=N``."""

import time

import numpy as np

import ringtrain as rt
from ringtrain import ReduceOp

c = rt.init()
R, N = rt.rank(), rt.size()
c.one_shot_bytes = 256          # float64: up to 32 elements in one step, more over the ring
c.shm_chunk_bytes = 512         # the ring then takes several blocks of its slots
c.cross_memory_bytes = 3000     # 500 and 1031 elements by cross-memory access
calls = 0
for i in range(400):
    n = (0, 1, 3, N - 1, 31, 32, 33, 97, 500, 1031)[i % 10]
    x = R * 1000.0 + i + np.arange(n)
    expect = 1000.0 * N * (N - 1) / 2 + N * (i + np.arange(n))
    op = (ReduceOp.SUM, ReduceOp.AVG, ReduceOp.MAX)[i % 3]
    if op is ReduceOp.AVG:
        expect = expect / N
    elif op is ReduceOp.MAX:
        expect = (N - 1) * 1000.0 + i + np.arange(n)
    got = c.allreduce(x, op=op, algorithm="ring") if i % 2 else c.allreduce(x, op=op, out=x,
                                                                            algorithm="ring")
    if not np.array_equal(got, expect):
        raise AssertionError(f"rank {R}, call {i} ({n} elements, {op}): {got[:5]} != "
                             f"{expect[:5]}")
    calls += 1
    if i % (N + 1) == R:
        time.sleep(0.002)
print(f"ONE-SHOT-OK rank={R} calls={calls} shared_memory={getattr(c, '_shm', None) is not None}",
      flush=True)
