"""Cost of the replica guard: one check (hash every parameter, all-gather the digests) against
one all-reduce of the same parameters (a lower bound on a training step's time) and against
the chief writing them as a checkpoint file (what every save does after its check).

    ringrun -np 2 python benchmarks/replica_guard.py --sizes 1M,11M --repeats 5

``--sizes``: parameters (float32 elements) per model, split into tensors of at most 1 M
elements. The amortized cost is the check's time divided by RINGTRAIN_CHECK_REPLICAS_EVERY's
default (1000 steps), as a share of the all-reduce's time; the slowest rank's time counts.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

import ringtrain as rt
from ringtrain.checkpoint import write_state
from ringtrain.comm.replicas import check_replicas

DEFAULT_EVERY = 1000


def parse_count(text: str) -> int:
    text = text.strip().upper()
    scale = {"K": 1 << 10, "M": 1 << 20}.get(text[-1:], 1)
    return int(float(text.rstrip("KM")) * scale)


def slowest(comm, seconds: float) -> float:
    return float(comm.allreduce(np.array([seconds]), op=rt.ReduceOp.MAX)[0])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1M,11M")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    comm = rt.init()
    rows = []
    for count in map(parse_count, args.sizes.split(",")):
        rng = np.random.default_rng(0)
        sizes = [min(1 << 20, count - start) for start in range(0, count, 1 << 20)]
        params = [rng.standard_normal(n).astype(np.float32) for n in sizes]
        named = [(f"layer{i}", p) for i, p in enumerate(params)]
        check, reduce, save = [], [], []
        for _ in range(args.repeats):       # alternate, so drifts of the machine hit all
            comm.barrier()
            start = time.perf_counter()
            check_replicas(comm, named, "benchmark")
            check.append(slowest(comm, time.perf_counter() - start))
            comm.barrier()
            start = time.perf_counter()
            comm.allreduce_many(params)
            reduce.append(slowest(comm, time.perf_counter() - start))
            comm.barrier()
            start = time.perf_counter()
            if comm.rank == 0:
                with tempfile.TemporaryDirectory() as directory:
                    write_state(os.path.join(directory, "ckpt-1.npz"),
                                {"objects": dict(named)})
            save.append(slowest(comm, time.perf_counter() - start))
        rows.append((count, *(float(np.median(t)) for t in (check, reduce, save))))
    if comm.rank == 0:
        print(f"world {comm.world_size}, median of {args.repeats}, slowest rank")
        print(f"{'params':>10} {'check ms':>10} {'allreduce ms':>13} {'check/allreduce':>16} "
              f"{'per step at every=' + str(DEFAULT_EVERY):>24} {'save ms':>9} "
              f"{'check/save':>11}")
        for count, c, r, w in rows:
            print(f"{count:>10} {c * 1e3:>10.2f} {r * 1e3:>13.2f} {c / r:>16.2f} "
                  f"{100 * c / DEFAULT_EVERY / r:>23.3f}% {w * 1e3:>9.2f} {c / w:>11.2f}")


if __name__ == "__main__":
    main()
