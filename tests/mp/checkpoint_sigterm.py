"""Run under ``ringrun -np N``: a CheckpointManager save after every step; SIGTERM to every
worker as the chief enters ``save``.

``checkpoint_sigterm.py DIR [--term-at K]``: every step adds ``allreduce(rank + 1)`` to ``w``, so
after s steps ``w == s * N(N+1)/2``; each rank also draws from its own random stream (per-worker
state). With ``--term-at K`` (and no ``DIR/termed`` yet) the chief, at the first line of the
save after step K, waits until the others are inside that save and sends SIGTERM to every
worker, itself included (what ringrun does when it stops a job). Prints ``START step=<s>``
after restoring and ``DONE w=<w0> draws=<x>`` at the end (10 steps).
"""

import argparse
import os
import signal
import time

import numpy as np

import ringtrain as rt
from ringtrain import checkpoint

parser = argparse.ArgumentParser()
parser.add_argument("dir")
parser.add_argument("--term-at", type=int, default=-1)
args = parser.parse_args()

comm = rt.init()
rank, size = rt.rank(), rt.size()
w = np.zeros(3)
step = np.zeros(1, dtype=np.int64)
gen = np.random.default_rng(100 + rank)
ckpt = checkpoint.Checkpoint(w=w, step=step, rng=gen)
manager = checkpoint.CheckpointManager(ckpt, args.dir, max_to_keep=3)
manager.restore_or_initialize()
print(f"START step={int(step[0])}", flush=True)
pids = comm.allgather_object(os.getpid())
marker = os.path.join(args.dir, "termed")

if rank == 0 and args.term_at >= 0 and not os.path.exists(marker):
    gather = ckpt._worker_states            # the first thing save does after its checks

    def terminate_then_gather():
        if int(step[0]) == args.term_at:
            open(marker, "w").close()
            time.sleep(1.0)                 # the other workers are waiting in the gather
            for pid in pids:
                os.kill(pid, signal.SIGTERM)
        return gather()

    ckpt._worker_states = terminate_then_gather

draws = 0.0
while step[0] < 10:
    w += comm.allreduce(np.full(3, rank + 1.0))
    draws += gen.random()
    step += 1
    manager.save()
print(f"DONE w={w[0]:.1f} draws={draws:.6f}", flush=True)
