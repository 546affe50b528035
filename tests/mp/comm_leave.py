"""Worker for tests/test_failures.py: rank 1 ends its program while the others wait in an
allreduce. ``comm_leave.py CODE catch|raise``: rank 1 exits with CODE after catching an error of
its own; the others either catch the CollectiveMismatch that follows and go on (as pytest does)
or let it end their program."""

import sys
import time

import numpy as np

import ringtrain as rt
from ringtrain.errors import CollectiveMismatch

code, others = int(sys.argv[1]), sys.argv[2]
c = rt.init()
c.allreduce(np.full(3, rt.rank(), dtype=np.float64))
if rt.rank() == 1:
    try:
        raise ValueError("a test failed on purpose")
    except ValueError:
        pass
    print(f"LEAVING {time.time():.3f}", flush=True)
    sys.exit(code)
time.sleep(0.3)       # rank 1 is in its shutdown by now
if others == "catch":
    try:
        c.allreduce(np.ones(5))
    except CollectiveMismatch as exc:
        print(f"CAUGHT departed={list(getattr(exc, 'departed', ()))}", flush=True)
    c.allreduce(np.ones(5))         # can never complete: rank 1 is gone
else:
    c.allreduce(np.ones(5))
print("UNREACHABLE", flush=True)
