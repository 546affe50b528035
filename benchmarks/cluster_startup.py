"""Cluster start-up: from the last ``ringrun`` starting to the first collective completing.

    python benchmarks/cluster_startup.py                  # 2 machines x 2 workers, 5 rounds
    python benchmarks/cluster_startup.py --machines 3 --workers 1 --rounds 9
    python benchmarks/cluster_startup.py --netmod ucx,ofi --rounds 30   # MPI's transports

Each "machine" is an independent ``ringrun -np K`` on loopback with its own RINGTRAIN_CONFIG
(the same cluster, its own task). In every round the machines start one after the other, the
chief last (it is also run chief first, alternating, so both orders count); the clock starts
just before the last ``ringrun`` is started and stops when the last worker's first all-reduce
has returned (wall-clock time stamps printed by the workers). The median over rounds is
reported, with its parts: join = until ``ringtrain.init()`` returned everywhere (rendezvous,
MPI connect/accept, communicator set-up), then the first all-reduce itself.

``--netmod`` runs the rounds once per MPICH netmod (``MPIR_CVAR_CH4_NETMOD``; ``ucx`` with
``UCX_TLS=tcp,self``, as between real machines) and also counts the rounds in which a machine
failed (e.g. a worker killed by SIGSEGV in ``MPI_Finalize``) and those where UCX printed its
request-leak warning: why clusters use libfabric (``ofi``) by default.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

WORKER = textwrap.dedent("""
    import time
    import numpy as np
    import ringtrain as rt
    comm = rt.init()
    joined = time.time()
    comm.allreduce(np.arange(4.0) + rt.rank())
    print(f"STAMP rank={rt.rank()} joined={joined:.6f} done={time.time():.6f}", flush=True)
""")


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def one_round(program: str, machines: int, workers: int, chief_last: bool,
              netmod: str | None = None) -> dict:
    ports = free_ports(machines)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    base = {k: v for k, v in os.environ.items()
            if not k.startswith("RINGTRAIN_") and k != "TF_CONFIG"}
    base["RINGTRAIN_SECRET"] = "benchmark-secret"
    if netmod is not None:
        base["MPIR_CVAR_CH4_NETMOD"] = netmod
        if netmod == "ucx":
            base["UCX_TLS"] = "tcp,self"
    order = list(range(1, machines)) + [0] if chief_last else list(range(machines))
    procs = []
    started = 0.0
    for i, index in enumerate(order):
        env = dict(base, RINGTRAIN_CONFIG=json.dumps(
            {"cluster": cluster, "task": {"type": "worker", "index": index}}))
        if i == len(order) - 1:
            started = time.time()
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "ringrun", "-np", str(workers), program], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    stamps, failed, leaked = [], [], False
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        leaked = leaked or "was not returned to mpool" in out
        if proc.returncode != 0:
            failed.append(out.strip().splitlines()[-1] if out.strip() else f"exit "
                          f"{proc.returncode}")
        for line in out.splitlines():
            if "STAMP" in line:
                fields = dict(f.split("=") for f in line.split("STAMP", 1)[1].split())
                stamps.append((float(fields["joined"]), float(fields["done"])))
    if len(stamps) != machines * workers:
        raise SystemExit(f"expected {machines * workers} workers' stamps, got {len(stamps)}:\n"
                         + "\n".join(failed))
    joined = max(j for j, _ in stamps) - started
    done = max(d for _, d in stamps) - started
    return {"total": done, "join": joined, "first_allreduce": done - joined,
            "failed": failed, "leaked": leaked}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--machines", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="workers per machine")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--netmod", default=None,
                        help="comma-separated MPICH netmods to compare (ucx, ofi); default: "
                             "what ringrun picks")
    args = parser.parse_args()
    netmods = args.netmod.split(",") if args.netmod else [None]
    with tempfile.TemporaryDirectory() as tmp:
        program = os.path.join(tmp, "first_collective.py")
        with open(program, "w") as f:
            f.write(WORKER)
        one_round(program, args.machines, args.workers, True)  # warm the file caches
        # the netmods take turns round by round, so both see the same machine load
        results: dict = {n: [] for n in netmods}
        for r in range(args.rounds):
            for netmod in netmods:
                results[netmod].append(one_round(program, args.machines, args.workers,
                                                 r % 2 == 0, netmod))
    for netmod, rounds in results.items():
        label = f"MPIR_CVAR_CH4_NETMOD={netmod}" if netmod else "ringrun's default transport"
        print(f"cluster start-up, {args.machines} machines x {args.workers} workers on "
              f"loopback, {label}, {args.rounds} rounds (median, min-max):")
        for key in ("total", "join", "first_allreduce"):
            values = [r[key] for r in rounds]
            print(f"  {key:16} {statistics.median(values):7.3f} s   "
                  f"({min(values):.3f}-{max(values):.3f})")
        failed = [line for r in rounds for line in r["failed"]]
        print(f"  rounds with UCX's request-leak warning: {sum(r['leaked'] for r in rounds)}; "
              f"with a machine that failed after its first all-reduce: "
              f"{sum(bool(r['failed']) for r in rounds)}")
        for line in sorted(set(failed)):
            print(f"    {line}")


if __name__ == "__main__":
    main()
