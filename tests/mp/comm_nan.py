"""Worker for tests/test_comm_mpi.py: MIN and MAX propagate NaN (NumPy's minimum/maximum) on
every algorithm, transport, float dtype and length, through allreduce, allreduce_many and
reduce_scatter.

Rank r's input holds NaN where ``i % (N + 1) == r`` (positions ``== N`` have none anywhere)
and ``(r + 1) * (1 + i % 5)`` elsewhere, with -inf/+inf at a few of those, so every rank can
compute the expected result of every rank's inputs. Prints ``NAN-OK rank=R checks=K``.
"""

import numpy as np

import ringtrain as rt
from ringtrain import ReduceOp

c = rt.init()
R, N = rt.rank(), rt.size()
checks = 0
if hasattr(c, "auto_ring_bytes"):
    c.auto_ring_bytes = c.auto_ring_p2p_bytes = 64       # "auto" picks both within these lengths
    c.segment_bytes = 64                                 # several ring segments
    c.shm_chunk_bytes = 256


def value(rank, n, dtype):
    i = np.arange(n)
    v = ((rank + 1) * (1 + i % 5)).astype(np.float64)
    v[i % 7 == 3] = -np.inf if rank % 2 else np.inf
    v[i % (N + 1) == rank] = np.nan
    return v.astype(dtype)


def expected(op, n, dtype):
    ufunc = np.maximum if op is ReduceOp.MAX else np.minimum
    return ufunc.reduce([value(r, n, dtype) for r in range(N)]) if n else np.zeros(0, dtype)


def check(got, want, what):
    global checks
    if got.dtype != want.dtype or got.shape != want.shape or not np.array_equal(
            got, want, equal_nan=True):
        raise AssertionError(f"rank {R}: {what}: got {got[:12]}, expected {want[:12]}")
    checks += 1


def use(name):
    if hasattr(c, "ring_transport"):
        c.ring_transport = "p2p" if name == "ring-p2p" else "auto"
        # "ring-cross": the other ranks' buffers accessed directly (where the system allows it)
        c.cross_memory_bytes = 0 if name == "ring-cross" else 1 << 62
    return name.split("-")[0]


# The case: rank 0 holds 1.0, the others NaN; every rank must get all-NaN.
for name in ("native", "ring", "ring-p2p", "ring-cross", "auto"):
    alg = use(name)
    for op in (ReduceOp.MAX, ReduceOp.MIN):
        x = np.full(4, 1.0 if R == 0 else np.nan)
        want = np.full(4, np.nan) if N > 1 else x
        check(c.allreduce(x, op=op, algorithm=alg), want, f"{name} {op.name} [1.0 | nan]")

LENGTHS = sorted({1, 2, max(N - 1, 1), N + 1, 7, 13, 97, 1031})
for name in ("native", "ring", "ring-p2p", "ring-cross", "auto"):
    alg = use(name)
    for dt in (np.float16, np.float32, np.float64):
        for op in (ReduceOp.MAX, ReduceOp.MIN):
            for n in LENGTHS:
                x = value(R, n, dt)
                check(c.allreduce(x, op=op, algorithm=alg), expected(op, n, dt),
                      f"allreduce {name} {np.dtype(dt)} {op.name} n={n}")
            arrays = [value(R, n, dt) for n in LENGTHS]
            for got, n in zip(c.allreduce_many(arrays, op=op, algorithm=alg, bucket_bytes=256),
                              LENGTHS):
                check(got, expected(op, n, dt), f"allreduce_many {name} {op.name} n={n}")
            rows = 3 * N + 1
            x = value(R, rows, dt)
            got = c.reduce_scatter(x, op=op, algorithm=alg)
            check(got, np.array_split(expected(op, rows, dt), N)[R],
                  f"reduce_scatter {name} {np.dtype(dt)} {op.name}")

print(f"NAN-OK rank={R} checks={checks}", flush=True)
