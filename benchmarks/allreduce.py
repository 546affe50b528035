"""All-reduce benchmark: our ring vs MPI_Allreduce vs "auto" vs torch.distributed gloo, and the
call forms users write against the machine's memory floor.

    ringrun -np 2 python benchmarks/allreduce.py                # full tables
    ringrun -np 2 python benchmarks/allreduce.py --sizes 4K,64M --form-sizes 64M --repeats 30

The call-form table times, with the default algorithm, ``comm.allreduce(x)`` (a new result
array each call; "fresh pages": the same with the pool of result arrays off, so each result
faults its pages in; where the size accesses the other ranks' buffers directly, "allreduce(x)
private": the same with results from a pool of private memory instead of the shared memory
the other ranks fill with streaming stores), ``comm.allreduce(x, out=y)`` (preallocated; from ``stream_bytes`` up also
"plain stores": the same without the streaming stores that write such a result),
``comm.allreduce(y, out=y)`` (in place; where the size accesses the other ranks' buffers
directly, also "slots": the same through the shared-memory ring's slots, the A/B of that
choice; where it takes the slots, "slots cached" and "slots streamed": its slots written one
way only, where the default times both, block by block, and takes the cheaper) and
``allreduce_many`` of a 784-1024-1024-10 MLP's gradients.
Its floor: every rank streams ``c += a`` on its own arrays (``--stream-mib``) at the same
time, which gives the bytes per second the memory bus moves with all ranks busy; an in-place
all-reduce of S bytes over N ranks on one machine must read every rank's input and write
every rank's result, 2 * N * S bytes, so floor = 2 * N * S / bandwidth.

Every method runs on the same in-place float32 buffer, alternately within each round (each
method starting a round in turn), so slow drifts of a shared machine hit all methods alike. A
sample is the time of one call (of a batch of calls for small sizes), the slowest rank's time
counts, and the table shows the median over rounds: time, algbw = bytes / time, busbw =
algbw * 2 (N - 1) / N, and ratios. Then the cost of the contract check and of the reduction
kernels (C extension vs NumPy) on rank 0.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

import ringtrain as rt
from ringtrain.comm import kernels
from ringtrain.comm.base import ReduceOp
from ringtrain.comm.buffers import ResultBuffers

UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
DEFAULT_SIZES = "4K,16K,64K,256K,1M,4M,16M,64M,256M"
DEFAULT_FORM_SIZES = "4M,16M,64M"
#: the gradients of a 784-1024-1024-10 MLP (weights and biases), float32
MLP_GRADIENTS = [(784, 1024), (1024,), (1024, 1024), (1024,), (1024, 10), (10,)]


def parse_size(text: str) -> int:
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    if text and text[-1] in UNITS:
        return int(float(text[:-1]) * UNITS[text[-1]])
    return int(text)


def human(nbytes: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if nbytes >= scale:
            return f"{nbytes / scale:g} {unit}"
    return f"{nbytes} B"


def gloo_group(comm):
    """A torch.distributed gloo group over the same ranks, or None without torch."""
    try:
        import torch
        import torch.distributed as dist
    except ImportError:
        return None, None
    path = comm.broadcast_object(tempfile.mktemp(prefix="ringtrain_gloo_") if comm.rank == 0
                                 else None)
    store = dist.FileStore(path, comm.world_size)
    dist.init_process_group("gloo", store=store, rank=comm.rank, world_size=comm.world_size)
    comm.barrier()
    if comm.rank == 0:
        os.unlink(path)
    return torch, dist


def cross_memory(comm) -> bool:
    """Whether large all-reduces access the other ranks' buffers directly (one node)."""
    shm = getattr(comm, "_shm", None)
    return shm is not None and shm.cross_memory and comm.ring_transport == "auto"


def transport(comm) -> str:
    if getattr(comm, "_shm", None) is not None and comm.ring_transport != "p2p":
        steps = "neighbour flags" if getattr(comm._shm, "_step", None) else "node barrier"
        direct = (f", cross-memory access from {human(comm.cross_memory_bytes)}"
                  if cross_memory(comm) else ", no cross-memory access")
        return f"shared memory ({human(comm.shm_chunk_bytes)} chunks, steps by {steps}{direct})"
    return f"MPI messages ({human(getattr(comm, 'segment_bytes', 0))} segments)"


def auto_from(comm) -> int:
    if getattr(comm, "_shm", None) is not None and comm.ring_transport != "p2p":
        return comm.auto_ring_bytes
    return getattr(comm, "auto_ring_p2p_bytes", 0)


def timed(comm, fn, batch: int) -> float:
    """Seconds per call of the slowest rank, for ``batch`` back-to-back calls."""
    comm.barrier()
    start = time.perf_counter()
    for _ in range(batch):
        fn()
    mine = (time.perf_counter() - start) / batch
    return max(comm.allgather_object(mine))


def rotated(methods: dict, round_index: int) -> list:
    """The methods in the order of this round: each starts a round in turn, so whatever the
    first (or last) call of a round pays is shared out evenly."""
    items = list(methods.items())
    k = round_index % len(items)
    return items[k:] + items[:k]


def bench_allreduce(comm, sizes, repeats, torch_dist):
    torch, dist = torch_dist
    n = comm.world_size
    rows = []
    for nbytes in sizes:
        x = np.zeros(nbytes // 4, np.float32)
        methods = {alg: (lambda x=x, alg=alg: comm.allreduce(x, out=x, algorithm=alg))
                   for alg in ("ring", "native", "auto")}
        if dist is not None:
            tensor = torch.from_numpy(x)
            methods["gloo"] = lambda t=tensor: dist.all_reduce(t)
        batch = max(1, min(200, (1 << 22) // max(nbytes, 1)))
        reps = repeats if nbytes < (64 << 20) else max(7, repeats // 2)
        for fn in methods.values():       # warm-up: connections, scratch buffers, caches
            timed(comm, fn, 1)
        samples = {name: [] for name in methods}
        for r in range(reps):
            for name, fn in rotated(methods, r):
                samples[name].append(timed(comm, fn, batch))
        med = {name: float(np.median(v)) for name, v in samples.items()}
        rows.append((nbytes, med))
        if comm.rank == 0:
            print_row(nbytes, med, n)
            sys.stdout.flush()
    return rows


def print_header(methods):
    cols = "".join(f"{m + ' us':>12}{'busbw':>8}" for m in methods)
    print(f"{'size':>10}{cols}{'ring/nat':>10}{'auto/nat':>10}{'ring/gloo':>10}")


def print_row(nbytes, med, n):
    factor = 2 * (n - 1) / n if n > 1 else 1.0
    cols = "".join(f"{med[m] * 1e6:12.1f}{nbytes / med[m] * factor / 1e9:8.2f}" for m in med)
    ratio = f"{med['ring'] / med['native']:10.2f}{med['auto'] / med['native']:10.2f}"
    ratio += f"{med['ring'] / med['gloo']:10.2f}" if "gloo" in med else f"{'-':>10}"
    print(f"{human(nbytes):>10}{cols}{ratio}")


def memory_setup() -> str:
    """The allocator settings (MALLOC_* variables) and transparent huge pages, for the header."""
    malloc = " ".join(f"{k}={v}" for k, v in sorted(os.environ.items())
                      if k.startswith("MALLOC_")) or "glibc defaults (no MALLOC_* set)"
    thp = []
    for name in ("enabled", "defrag"):
        try:
            with open(f"/sys/kernel/mm/transparent_hugepage/{name}") as f:
                thp.append(f"{name} {f.read().strip()}")
        except OSError:
            thp.append(f"{name} unknown")
    return f"allocator: {malloc}; transparent huge pages: {', '.join(thp)}"


def stores(comm) -> str:
    """Whether and from which size the ring writes out-of-place results with streaming stores."""
    threshold = getattr(comm, "stream_bytes", None)
    if not kernels.STREAM or threshold is None:
        return "no streaming stores"
    return f"streaming stores for out-of-place results from {human(threshold)}"


def stream_bandwidth(comm, mib: int, repeats: int) -> float:
    """Bytes per second the memory bus moves while every rank streams ``c += a`` at once
    (reads a and c, writes c: 3 bytes per byte of c), summed over the ranks; median."""
    n = (mib << 20) // 8
    a = np.ones(n, np.float64)
    c = np.ones(n, np.float64)
    c += a                                  # fault the pages in before timing
    seconds = [timed(comm, lambda: np.add(c, a, out=c), 1) for _ in range(repeats)]
    return 3 * c.nbytes * comm.world_size / float(np.median(seconds))


def overriding(obj, name: str, value, call):
    """``call()`` with ``obj.name`` set to ``value``, restored afterwards."""
    saved = getattr(obj, name)
    setattr(obj, name, value)
    try:
        return call()
    finally:
        setattr(obj, name, saved)


def unpooled(comm, call):
    """``call()`` with the communicator's pool of result arrays off: every new result faults
    fresh pages in, as before the pool (comm/buffers.py) existed."""
    return overriding(comm._results, "limit_bytes", 0, call)


def plain_stores(comm, call):
    """``call()`` with ordinary stores where the ring writes a large out-of-place result with
    streaming stores (``stream_bytes``, kernels.copy): the A/B of that choice."""
    return overriding(comm, "stream_bytes", 1 << 62, call)


def slot_writes(mode: int, call):
    """``call()`` with the shared-memory ring's slots written one way: 0 through the cache, 1
    with streaming stores (the default, -1, times both and takes the cheaper)."""
    saved = kernels._c.set_slot_writes(mode)
    try:
        return call()
    finally:
        kernels._c.set_slot_writes(saved)


def private_results(comm, pool, call):
    """``call()`` with new results from ``pool``, a pool of private memory, where the
    communicator's own pool hands out shared memory that the other ranks write into with
    streaming stores (cross-memory all-reduces): the A/B of that choice."""
    return overriding(comm, "_results", pool, call)


def through_slots(comm, call):
    """``call()`` with the shared-memory ring's slots where the size would access the other
    ranks' buffers directly (``cross_memory_bytes``): the A/B of that choice."""
    return overriding(comm, "ring_transport", "slots", call)


def bench_forms(comm, sizes, repeats, bandwidth):
    """The call forms users write (default algorithm), each against the memory floor."""
    n = comm.world_size
    forms_rows = []

    def floor(nbytes):
        return 2 * n * nbytes / bandwidth

    cases = []
    for nbytes in sizes:
        x = np.ones(nbytes // 4, np.float32)
        y = np.zeros_like(x)
        methods = {
            "allreduce(x)": lambda x=x: comm.allreduce(x),
            "fresh pages": lambda x=x: unpooled(comm, lambda: comm.allreduce(x)),
            "out=y": lambda x=x, y=y: comm.allreduce(x, out=y),
            "in place": lambda y=y: comm.allreduce(y, out=y),
        }
        if kernels.STREAM and getattr(comm, "stream_bytes", None) is not None \
                and nbytes >= comm.stream_bytes:
            methods["out=y plain stores"] = lambda x=x, y=y: plain_stores(
                comm, lambda: comm.allreduce(x, out=y))
        if cross_memory(comm) and nbytes >= comm.cross_memory_bytes:
            private = ResultBuffers(comm.result_cache_bytes)
            methods["allreduce(x) private"] = lambda x=x, pool=private: private_results(
                comm, pool, lambda: comm.allreduce(x))
            methods["in place slots"] = lambda y=y: through_slots(
                comm, lambda: comm.allreduce(y, out=y))
        elif hasattr(kernels._c, "set_slot_writes") and getattr(comm, "_shm", None) is not None:
            for mode, name in ((0, "slots cached"), (1, "slots streamed")):
                methods[f"in place {name}"] = lambda y=y, mode=mode: slot_writes(
                    mode, lambda: comm.allreduce(y, out=y))
        cases.append((human(nbytes), nbytes, methods))
    grads = [np.ones(shape, np.float32) for shape in MLP_GRADIENTS]
    total = sum(g.nbytes for g in grads)
    cases.append((f"MLP {human(total)}", total,
                  {"allreduce_many": lambda: comm.allreduce_many(grads),
                   "fresh pages": lambda: unpooled(comm, lambda: comm.allreduce_many(grads))}))
    for label, nbytes, methods in cases:
        for fn in methods.values():
            timed(comm, fn, 1)
        samples = {name: [] for name in methods}
        reps = repeats if nbytes < (64 << 20) else max(7, repeats // 2)
        for r in range(reps):
            for name, fn in rotated(methods, r):
                samples[name].append(timed(comm, fn, 1))
        med = {name: float(np.median(v)) for name, v in samples.items()}
        forms_rows.append((label, nbytes, med))
        if comm.rank == 0:
            cols = "  ".join(f"{name} {t * 1e3:8.2f} ms {t / floor(nbytes):5.2f}x"
                             for name, t in med.items())
            print(f"{label:>14}  floor {floor(nbytes) * 1e3:7.2f} ms  {cols}")
            sys.stdout.flush()
    return forms_rows


def bench_check(comm, repeats):
    """Cost of the contract check: the same 4 KiB all-reduce with the check on and off."""
    x = np.zeros(1024, np.float32)
    saved = comm.check
    out = {}
    samples = {True: [], False: []}
    for _ in range(repeats):
        for flag in (True, False):
            comm.check = flag
            samples[flag].append(timed(comm, lambda: comm.allreduce(x, out=x,
                                                                    algorithm="native"), 200))
    comm.check = saved
    for flag in (True, False):
        out[flag] = float(np.median(samples[flag]))
    return out


def bench_fusion(comm, repeats):
    """100 arrays of 1 KiB: one allreduce each, or allreduce_many's fusion buckets."""
    arrays = [np.zeros(256, np.float32) for _ in range(100)]
    one_by_one, fused = [], []
    for _ in range(repeats):
        one_by_one.append(timed(comm, lambda: [comm.allreduce(a) for a in arrays], 5))
        fused.append(timed(comm, lambda: comm.allreduce_many(arrays), 5))
    return float(np.median(one_by_one)), float(np.median(fused))


def bench_kernels(repeats):
    """reduce3 (dst = a + b, and AVG's fused divide) per dtype: C extension vs NumPy."""
    rows = []
    c_reduce3 = kernels.reduce3 if kernels.BACKEND == "c" else None
    for dtype in (np.float16, np.float32, np.float64):
        for nbytes in (256 << 10, 16 << 20):
            n = nbytes // np.dtype(dtype).itemsize
            a = (np.arange(n) % 100).astype(dtype)
            b = (np.arange(n) % 7).astype(dtype)
            dst = np.empty_like(a)
            for op, divisor, label in ((ReduceOp.SUM, 1, "sum"), (ReduceOp.AVG, 2, "avg")):
                res = {}
                impls = {"numpy": kernels.numpy_reduce3}
                if c_reduce3 is not None:
                    impls["c"] = c_reduce3
                for name, fn in impls.items():
                    reps = repeats * (20 if nbytes < (1 << 20) else 1)
                    ts = []
                    for _ in range(reps):
                        t0 = time.perf_counter()
                        fn(dst, a, b, op, divisor)
                        ts.append(time.perf_counter() - t0)
                    res[name] = float(np.median(ts))
                rows.append((np.dtype(dtype).name, nbytes, label, res))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=DEFAULT_SIZES,
                        help=f"comma-separated message sizes (default {DEFAULT_SIZES})")
    parser.add_argument("--form-sizes", default=DEFAULT_FORM_SIZES,
                        help=f"sizes for the call-form table (default {DEFAULT_FORM_SIZES}; "
                             f"empty: skip it)")
    parser.add_argument("--stream-mib", type=int, default=256,
                        help="MiB per array of the c += a bandwidth measurement (default 256)")
    parser.add_argument("--repeats", type=int, default=21, help="rounds per size (median)")
    parser.add_argument("--no-gloo", action="store_true", help="skip torch.distributed gloo")
    parser.add_argument("--skip-kernels", action="store_true", help="skip the kernel timings")
    args = parser.parse_args(argv)
    sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    form_sizes = [parse_size(s) for s in args.form_sizes.split(",") if s.strip()]

    comm = rt.init()
    torch_dist = (None, None) if args.no_gloo else gloo_group(comm)
    if comm.rank == 0:
        print(f"# {comm.world_size} ranks, backend {comm.backend}, kernels {kernels.BACKEND}, "
              f"contract check {'on' if comm.check else 'off'}, "
              f"ring over {transport(comm)}, auto uses the ring from "
              f"{human(auto_from(comm))}; "
              f"median of {args.repeats} rounds; busbw in GB/s")
        print(f"# {memory_setup()}; {stores(comm)}")
    if form_sizes:
        bandwidth = stream_bandwidth(comm, args.stream_mib, max(5, args.repeats // 2))
        if comm.rank == 0:
            print(f"# memory bandwidth, {comm.world_size} ranks streaming c += a on "
                  f"{args.stream_mib} MiB at once: {bandwidth / 1e9:.1f} GB/s; floor of an "
                  f"all-reduce of S bytes = 2 * {comm.world_size} * S / bandwidth; call forms "
                  f"with the default algorithm, median ms and ratio to the floor")
        bench_forms(comm, form_sizes, args.repeats, bandwidth)
    if comm.rank == 0:
        print()
        print_header(["ring", "native", "auto"] + (["gloo"] if torch_dist[1] else []))
    bench_allreduce(comm, sizes, args.repeats, torch_dist)

    check = bench_check(comm, args.repeats)
    if comm.rank == 0:
        print(f"\n# contract check, 4 KiB native all-reduce: on {check[True] * 1e6:.1f} us, "
              f"off {check[False] * 1e6:.1f} us, cost {(check[True] - check[False]) * 1e6:.1f} "
              f"us per collective")
    single, fused = bench_fusion(comm, args.repeats)
    if comm.rank == 0:
        print(f"# 100 arrays of 1 KiB: 100 allreduce calls {single * 1e6:.0f} us, one "
              f"allreduce_many {fused * 1e6:.0f} us ({single / fused:.0f}x)")
    if not args.skip_kernels and comm.rank == 0:
        print(f"\n# reduction kernel dst = a + b (avg: then / 2), one core; C extension "
              f"{'loaded' if kernels.BACKEND == 'c' else 'not loaded'}")
        print(f"{'dtype':>8}{'size':>10}{'op':>5}{'numpy us':>11}{'C us':>10}{'speed-up':>10}")
        for dtype, nbytes, label, res in bench_kernels(max(3, args.repeats // 3)):
            c_us = f"{res['c'] * 1e6:10.1f}{res['numpy'] / res['c']:10.1f}" if "c" in res \
                else f"{'-':>10}{'-':>10}"
            print(f"{dtype:>8}{human(nbytes):>10}{label:>5}{res['numpy'] * 1e6:11.1f}{c_us}")
    if torch_dist[1] is not None:
        torch_dist[1].destroy_process_group()


if __name__ == "__main__":
    main()
