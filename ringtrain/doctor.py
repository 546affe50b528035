"""``ringrun --doctor``: a pre-flight check of a job's workers, run as the job's program.

Every worker reports its host (its cluster task in a ``RINGTRAIN_CONFIG`` job, which ringrun
passes as ``--machine``), the versions of Python, ringtrain, NumPy, torch, mpi4py and the MPI
library, and whether shared memory works; rank 0 prints one report: where MPI started, the
versions (any skew named with its ranks and machines), shared memory, the chief's rendezvous
(``--rendezvous``, in a cluster), the bandwidth of every link of the ring (each rank sends to
the next at once, as the ring all-reduce does; the slowest link named) and one all-reduce's bus
bandwidth. Exit code 0 when nothing is wrong, else 1. What keeps workers from starting at all
(a host MPI cannot reach, the chief's port taken) is checked by ringrun (``ringrun.doctor``).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import mmap
import os
import platform
import socket
import sys
import tempfile
import time
from collections.abc import Sequence

import numpy as np

from .comm.base import ReduceOp
from .world import process_group

#: Bytes each link carries per measurement, and measurements per link (best counts).
LINK_BYTES = 8 << 20
LINK_REPEATS = 3
ALLREDUCE_BYTES = 4 << 20
VERSIONED = ("Python", "ringtrain", "NumPy", "torch", "mpi4py", "MPI")


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def local_facts(machine: str | None = None) -> dict[str, str]:
    from mpi4py import MPI

    from . import __version__

    host = socket.gethostname()
    return {"host": host, "machine": machine or host, "Python": platform.python_version(),
            "ringtrain": __version__, "NumPy": np.__version__, "torch": _version("torch"),
            "mpi4py": _version("mpi4py"),
            "MPI": " ".join(MPI.Get_library_version().split("\n")[0].split()),
            "shm": _shared_memory()}


def _shared_memory() -> str:
    """'ok (N GiB free)' when a shared mapping in /dev/shm works, else what failed."""
    try:
        stat = os.statvfs("/dev/shm")
        with tempfile.TemporaryFile(dir="/dev/shm") as f:
            f.truncate(1 << 20)
            with mmap.mmap(f.fileno(), 1 << 20) as shared:
                shared[:4] = b"ring"
                if shared[:4] != b"ring":
                    return "unusable: a write did not read back"
    except OSError as exc:
        return f"unusable: {exc}"
    return f"ok ({stat.f_bavail * stat.f_frsize / 2**30:.1f} GiB free)"


def ranges(ranks: Sequence[int]) -> str:
    """'rank 3' or 'ranks 0-2, 5'."""
    parts, ranks = [], sorted(ranks)
    start = prev = ranks[0]
    for r in [*ranks[1:], None]:
        if r is not None and r == prev + 1:
            prev = r
            continue
        parts.append(f"{start}" if start == prev else f"{start}-{prev}")
        if r is not None:
            start = prev = r
    return f"rank{'s' if len(ranks) > 1 else ''} {', '.join(parts)}"


def skew(facts: Sequence[dict[str, str]]) -> list[str]:
    """One line per version that differs between workers, naming who has which (and on which
    machines, when the workers are on more than one)."""
    machines = {f.get("machine") for f in facts}
    lines = []
    for key in VERSIONED:
        by_value: dict[str, list[int]] = {}
        for rank, f in enumerate(facts):
            by_value.setdefault(f[key], []).append(rank)
        if len(by_value) > 1:
            lines.append(f"{key} differs: " + "; ".join(
                f"{value} on {ranges(ranks)}" + (
                    f" ({', '.join(dict.fromkeys(facts[r]['machine'] for r in ranks))})"
                    if len(machines) > 1 else "")
                for value, ranks in by_value.items()))
    return lines


def _link_seconds(comm) -> float:
    """Seconds this rank took to receive LINK_BYTES from the previous rank (best of a few),
    while it sends as much to the next."""
    from mpi4py import MPI

    mpi = comm.mpi_comm
    n, r = comm.world_size, comm.rank
    send = np.ones(LINK_BYTES, dtype=np.uint8)
    recv = np.empty_like(send)
    best = float("inf")
    for _ in range(LINK_REPEATS):
        mpi.Barrier()
        start = time.perf_counter()
        mpi.Sendrecv([send, MPI.BYTE], (r + 1) % n, 7, [recv, MPI.BYTE], (r - 1) % n, 7)
        best = min(best, time.perf_counter() - start)
    return best


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ringtrain.doctor")
    parser.add_argument("--machine", help="this machine's cluster task (given by ringrun)")
    parser.add_argument("--rendezvous", help="the chief's rendezvous (given by ringrun)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    comm = process_group.init()
    facts = comm.allgather_object(local_facts(args.machine))
    n = comm.world_size
    links = comm.allgather_object(_link_seconds(comm)) if n > 1 else []
    busbw = None
    if n > 1:
        data = np.ones(ALLREDUCE_BYTES // 4, dtype=np.float32)
        comm.allreduce(data, out=data)      # warm-up: buffers, shared-memory slots
        seconds = float("inf")
        for _ in range(LINK_REPEATS):
            comm.barrier()
            start = time.perf_counter()
            comm.allreduce(data, op=ReduceOp.SUM, out=data)
            seconds = min(seconds, max(comm.allgather_object(time.perf_counter() - start)))
        busbw = ALLREDUCE_BYTES / seconds * 2 * (n - 1) / n
    if comm.rank != 0:
        return 0
    problems = skew(facts)
    hosts: dict[str, list[int]] = {}
    machines: dict[str, list[int]] = {}
    for rank, f in enumerate(facts):
        hosts.setdefault(f["host"], []).append(rank)
        machines.setdefault(f["machine"], []).append(rank)
    say = [(f"ringrun doctor: {n} worker(s) on {len(hosts)} host(s), checked in "
            f"{time.perf_counter() - started:.1f} s")]
    if args.rendezvous:      # a cluster: one ringrun per machine, each named by its task
        say.append("  MPI started on every machine: " + "; ".join(
            f"{machine} on {facts[ranks[0]]['host']} ({ranges(ranks)})"
            for machine, ranks in machines.items()))
        say.append(f"  rendezvous: the chief, {args.rendezvous}, was reached by all "
                   f"{len(machines)} machines")
    else:
        say.append("  MPI started on every host: " + "; ".join(
            f"{host} ({ranges(ranks)})" for host, ranks in hosts.items()))
    say.append(f"  {facts[0]['MPI']}")
    if problems:
        say += [f"  version skew: {line}" for line in problems]
    else:
        say.append("  versions agree on every worker: " + ", ".join(
            f"{key} {facts[0][key]}" for key in VERSIONED if key != "MPI"))
    for host, ranks in hosts.items():
        shm = facts[ranks[0]]["shm"]
        say.append(f"  shared memory on {host}: {shm}")
        if not shm.startswith("ok"):
            problems.append(f"shared memory on {host}: {shm}")
    if links:
        rates = [LINK_BYTES / s / 1e9 for s in links]
        slowest = int(np.argmin(rates))
        say.append(f"  ring links ({LINK_BYTES >> 20} MiB each way at once, best of "
                   f"{LINK_REPEATS}): " + ", ".join(
                       f"{(r - 1) % n}->{r} {rate:.2f} GB/s" for r, rate in enumerate(rates)))
        say.append(f"  slowest link: {(slowest - 1) % n}->{slowest} "
                   f"({facts[(slowest - 1) % n]['machine']} -> {facts[slowest]['machine']}) at "
                   f"{rates[slowest]:.2f} GB/s, "
                   f"{rates[slowest] / float(np.median(rates)):.2f}x the median")
        say.append(f"  all-reduce of {ALLREDUCE_BYTES >> 20} MiB (best of {LINK_REPEATS}): bus "
                   f"bandwidth "
                   f"{busbw / 1e9:.2f} GB/s")
    say.append("ringrun doctor: " + ("OK" if not problems else
                                     f"{len(problems)} problem(s): " + "; ".join(problems)))
    print("\n".join(say), flush=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
