"""Worker for tests/test_diagnostics.py: rank 0 waits in an allreduce for three late ranks.

Rank 1 sleeps, rank 2 computes (``python``: a pure-Python loop; ``c``: one C call that holds
the GIL), rank 3 waits in a barrier of a second communicator (ranks 1 and 3) that rank 1 joins
only after its sleep. Each prints ``LINE <what> <line number>`` of the line it stalls on."""

import inspect
import sys
import time

import numpy as np
from mpi4py import MPI

import ringtrain as rt
from ringtrain.comm.mpi import MPICommunicator

SECONDS = float(sys.argv[2])
c = rt.init()
pair = MPICommunicator(MPI.COMM_WORLD.Split(1 if rt.rank() in (1, 3) else 0, rt.rank()))
c.allreduce(np.ones(3))


def here() -> int:
    return inspect.currentframe().f_back.f_lineno + 1


def nap():
    print(f"LINE sleep {here()}", flush=True)
    time.sleep(SECONDS)


def spin():
    end = time.monotonic() + SECONDS
    n = 0
    print(f"LINE spin {here()}", flush=True)
    while time.monotonic() < end:
        n += 1


def crunch():
    # the fastest of a few timings: one cold timing underrates the speed, and the long call
    # then ended before the stall warning it must outlast
    rate = 0.0
    for _ in range(5):
        start = time.perf_counter()
        sum(range(10**6))
        rate = max(rate, 10**6 / (time.perf_counter() - start))
    print(f"LINE crunch {here()}", flush=True)
    sum(range(int(rate * SECONDS)))


if rt.rank() == 1:
    nap()
    pair.barrier()
elif rt.rank() == 2:
    spin() if sys.argv[1] == "python" else crunch()
elif rt.rank() == 3:
    print(f"LINE barrier {here()}", flush=True)
    pair.barrier()
else:
    print(f"WAITING {time.time():.3f}", flush=True)
total = c.allreduce(np.full(2, rt.rank() + 1.0))
print(f"DONE {total.tolist()}", flush=True)
pair.shutdown()
