"""Worker for tests/test_failures.py: every rank prints the /dev/shm files it has mapped
(MPI's shared memory), then rank 1 ends the job abnormally: ``kill`` (SIGKILL),
``raise`` (an uncaught exception) or ``wait`` (everyone waits for ringrun to be stopped)."""

import os
import signal
import sys
import time

import numpy as np

import ringtrain as rt

c = rt.init()
c.allreduce(np.ones(1 << 17))     # 1 MiB: the ring through the shared-memory window
with open("/proc/self/maps") as f:
    files = sorted({line.split()[5] for line in f if " /dev/shm/" in line})
print("SHM", *files, flush=True)
c.barrier()
mode = sys.argv[1]
if rt.rank() == 1 and mode == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
if rt.rank() == 1 and mode == "raise":
    raise RuntimeError("failing on purpose")
time.sleep(60)
