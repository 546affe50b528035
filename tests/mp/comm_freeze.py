"""Worker for tests/test_failures.py: rank 1 keeps the others waiting in an allreduce.

``comm_freeze.py stop``: rank 1 stops itself (SIGSTOP: a frozen process). ``comm_freeze.py
busy SECONDS``: rank 1 computes for about SECONDS in C code that holds the GIL (sum over a
range), so its watchdog thread cannot answer, then joins. Lines carry wall-clock stamps."""

import os
import signal
import sys
import time

import numpy as np

import ringtrain as rt

mode = sys.argv[1]
c = rt.init()
c.allreduce(np.ones(3))
if rt.rank() == 1:
    if mode == "stop":
        print(f"FREEZING {time.time():.3f}", flush=True)
        os.kill(os.getpid(), signal.SIGSTOP)
    else:
        start = time.perf_counter()
        sum(range(10**6))
        rate = 10**6 / (time.perf_counter() - start)
        print(f"BUSY {time.time():.3f}", flush=True)
        sum(range(int(rate * float(sys.argv[2]))))      # one C call: the GIL is never released
        print(f"BUSY-DONE {time.time():.3f}", flush=True)
else:
    print(f"WAITING {time.time():.3f}", flush=True)
total = c.allreduce(np.full(4, rt.rank() + 1.0))
print(f"DONE {total.tolist()}", flush=True)
