"""Worker for tests/test_comm_mpi.py: every collective, op, dtype and algorithm at any world size.

Inputs depend on the rank (``rank * K + arange(n) % M``, chosen so every sum is exact in the
dtype) and every result is compared with a closed-form expectation. Prints ``COMM-OK rank=R
checks=N`` at the end; any failure raises (and the job exits non-zero).
"""

import sys

import numpy as np

import ringtrain as rt
from ringtrain import ReduceOp
from ringtrain.comm import kernels
from ringtrain.comm.buffers import ResultBuffers

c = rt.init()
R, N = rt.rank(), rt.size()
checks = 0
# small segments so that modest arrays already take the ring's pipelined multi-segment path
if hasattr(c, "segment_bytes"):
    c.segment_bytes = 64
    c.shm_chunk_bytes = 1024    # several blocks through the shared-memory slots for 1031
if hasattr(c, "auto_ring_bytes"):
    c.auto_ring_bytes = c.auto_ring_p2p_bytes = 512     # "auto" picks both within these lengths


def check(got, expected, what):
    global checks
    got = np.asarray(got)
    expected = np.asarray(expected)
    if got.shape != expected.shape or got.dtype != expected.dtype or not np.array_equal(
            got, expected):
        raise AssertionError(f"rank {R}: {what}: got {got.dtype}{got.shape} {got.ravel()[:8]}, "
                             f"expected {expected.dtype}{expected.shape} {expected.ravel()[:8]}")
    checks += 1


def scale_for(dtype):
    """(K, M): values r*K + i%M stay exact for sums over N ranks in ``dtype``."""
    dtype = np.dtype(dtype)
    if dtype in (np.int8, np.uint8):
        return 3, 7
    if dtype in (np.float16, np.int16, np.uint16):
        return 100, 100
    return 1000, 1 << 20


def value(rank, n, dtype, shape=None):
    k, m = scale_for(dtype)
    v = (rank * k + np.arange(n) % m).astype(dtype)
    return v.reshape(shape) if shape is not None else v


DTYPES = [np.float16, np.float32, np.float64, np.int32, np.int64, np.uint8, np.int8]
LENGTHS = sorted({0, 1, 2, N - 1, N + 1, 7, 13, 97, 1031})
ALGS = ["ring", "ring-p2p", "native", "auto"]
STREAM_BYTES = getattr(c, "stream_bytes", None)
#: "ring" and "ring-stream" take the multi-step ring at every length, "ring-one-shot" the
#: single step at every length; "auto" mixes them (up to 64 bytes in one step), so one path's
#: use of the shared slots follows the other's
ONE_SHOT_BYTES = {"ring": 0, "ring-stream": 0, "ring-one-shot": 1 << 20, "auto": 64}
#: how the C loop of the shared-memory ring writes its slots: by timing (the default), with
#: streaming stores, or through the cache on even ranks and streamed on odd ones (the result
#: must not depend on how a rank chose)
SLOT_WRITES = {"ring-slots-streamed": 1, "ring-slots-mixed": R % 2}
#: "ring-cross" reads and writes the other ranks' buffers directly at every length (where the
#: system allows it; _cross_memory_shm), "auto" from 2 KiB; the others never
CROSS_MEMORY_BYTES = {"ring-cross": 0, "auto": 2048}
CROSS_MEMORY = getattr(getattr(c, "_shm", None), "cross_memory", False)
#: there, "ring-cross" takes new results of every length from shared memory on even ranks
#: (the others write into those through their mappings, into the odd ranks' through the kernel)
SHARED_RESULTS = {"ring-cross": 0 if R % 2 == 0 else None}
cross_calls = mapped_writes = 0
if CROSS_MEMORY:
    def counted(src, dst, op, _real=c._cross_memory_shm):
        global cross_calls
        cross_calls += 1
        return _real(src, dst, op)

    def mapped(peer, offset, nbytes, _real=c._result_target):
        global mapped_writes
        target = _real(peer, offset, nbytes)
        mapped_writes += target[0] == 0
        return target

    c._cross_memory_shm = counted
    c._result_target = mapped


def use(name):
    """The algorithm argument for ``name``; "ring-p2p" is the ring over MPI messages (the
    transport between machines), "ring" uses shared memory when every rank shares a node;
    "ring-stream" writes every out-of-place result there with streaming stores."""
    if hasattr(c, "ring_transport"):
        c.ring_transport = "p2p" if name == "ring-p2p" else "auto"
        c.stream_bytes = 0 if name == "ring-stream" else STREAM_BYTES
        c.one_shot_bytes = ONE_SHOT_BYTES.get(name, 0)
        c.cross_memory_bytes = CROSS_MEMORY_BYTES.get(name, 1 << 62)
    if CROSS_MEMORY:
        c._results.clear()
        c._results.shared_bytes = SHARED_RESULTS.get(name, c.cross_memory_bytes)
        c._results.min_bytes = 0 if name in SHARED_RESULTS else ResultBuffers.min_bytes
    if kernels.BACKEND == "c":
        kernels._c.set_slot_writes(SLOT_WRITES.get(name, -1))
    return name.split("-")[0]


# --- allreduce: every algorithm x dtype x op x length -------------------------------------------
for name in ALGS + ["ring-one-shot", "ring-stream", "ring-slots-streamed", "ring-slots-mixed",
                    "ring-cross"]:
    alg = use(name)
    for dt in DTYPES:
        k, _ = scale_for(dt)
        ops = [ReduceOp.SUM, ReduceOp.MIN, ReduceOp.MAX]
        if np.dtype(dt).kind == "f":
            ops.append(ReduceOp.AVG)
        for n in LENGTHS:
            x = value(R, n, dt)
            before = x.copy()
            base = np.arange(n) % scale_for(dt)[1]
            for op in ops:
                if op is ReduceOp.SUM:
                    exp = (k * N * (N - 1) // 2 + N * base).astype(dt)
                elif op is ReduceOp.AVG:
                    exp = ((k * N * (N - 1) / 2 + N * base) / N).astype(dt)
                elif op is ReduceOp.MIN:
                    exp = value(0, n, dt)
                else:
                    exp = value(N - 1, n, dt)
                check(c.allreduce(x, op=op, algorithm=alg), exp, f"allreduce {alg} {dt} {op} {n}")
                check(x, before, "allreduce must not modify its input")
            # in place, explicit out=, async
            y = x.copy()
            r = c.allreduce(y, out=y, algorithm=alg)
            exp = (k * N * (N - 1) // 2 + N * base).astype(dt)
            assert r is y
            check(y, exp, f"allreduce in place {alg} {dt} {n}")
            out = np.empty_like(x)
            h = c.allreduce(x, op=ReduceOp.MAX, out=out, algorithm=alg, async_op=True)
            assert h.wait() is out and h.done()
            check(out, value(N - 1, n, dt), f"allreduce async out= {alg} {dt} {n}")
            # a destination that starts one element past an aligned address
            shifted = np.zeros(n + 1, dt)
            c.allreduce(x, out=shifted[1:], algorithm=alg)
            check(shifted, np.concatenate([np.zeros(1, dt), exp]), f"unaligned out= {name} {dt} {n}")

    # bool: MIN is "every rank", MAX is "any rank"
    n = 11
    flags = (np.arange(n) + R) % 3 == 0
    every = np.all([(np.arange(n) + r) % 3 == 0 for r in range(N)], axis=0)
    anyr = np.any([(np.arange(n) + r) % 3 == 0 for r in range(N)], axis=0)
    check(c.allreduce(flags, op=ReduceOp.MIN, algorithm=alg), every, f"bool MIN {alg}")
    check(c.allreduce(flags, op=ReduceOp.MAX, algorithm=alg), anyr, f"bool MAX {alg}")

    # strided input and strided out=; 0-d and multi-dimensional arrays
    m = value(R, 60, np.float64, (6, 10))
    exp = value(0, 60, np.float64, (6, 10)) * N + 1000 * N * (N - 1) // 2
    check(c.allreduce(m[:, ::2], algorithm=alg), exp[:, ::2], f"strided input {alg}")
    dst = np.zeros((6, 10))
    c.allreduce(m[:, ::2], out=dst[:, 1::2], algorithm=alg)
    check(dst[:, 1::2], exp[:, ::2], f"strided out {alg}")
    check(dst[:, ::2], np.zeros((6, 5)), f"strided out leaves the rest {alg}")
    check(c.allreduce(np.float32(R + 1), algorithm=alg), np.float32(N * (N + 1) / 2),
          f"0-d {alg}")
    check(c.allreduce(m, algorithm=alg), exp, f"2-d {alg}")

    # async ordering: many async calls interleaved with sync ones, results in order
    handles = [(i, c.allreduce(value(R, 5, np.int64) + i, algorithm=alg, async_op=True))
               for i in range(20)]
    mid = c.allreduce(value(R, 3, np.int32), algorithm=alg)
    handles += [(i, c.allreduce(value(R, 5, np.int64) + i, algorithm=alg, async_op=True))
                for i in range(20, 40)]
    check(mid, value(0, 3, np.int32) * N + 1000 * N * (N - 1) // 2, "sync between asyncs")
    for i, h in handles:
        check(h.wait(), value(0, 5, np.int64) * N + 1000 * N * (N - 1) // 2 + N * i,
              f"async order {i} {alg}")

    # reduce_scatter: rank r gets part r of np.array_split(sum, N) along axis 0
    for rows in sorted({0, 1, N - 1, N, 5, 13}):
        x = value(R, rows * 3, np.float32, (rows, 3))
        total = sum(value(r, rows * 3, np.float64, (rows, 3)) for r in range(N))
        part = np.array_split(total, N)[R].astype(np.float32)
        check(c.reduce_scatter(x, algorithm=alg), part, f"reduce_scatter {alg} rows={rows}")
        check(c.reduce_scatter(x, op=ReduceOp.AVG, algorithm=alg),
              np.array_split(total / N, N)[R].astype(np.float32), f"reduce_scatter AVG {rows}")
        check(c.reduce_scatter(x, op=ReduceOp.MAX, algorithm=alg, async_op=True).wait(),
              np.array_split(value(N - 1, rows * 3, np.float32, (rows, 3)), N)[R],
              f"reduce_scatter MAX async {rows}")

# --- broadcast -----------------------------------------------------------------------------------
for dt in DTYPES + [np.bool_, np.complex64]:
    for n in (0, 1, 13):
        for root in sorted({0, N - 1}):
            x = value(R, n, dt) if dt is not np.bool_ else np.arange(n) % (R + 2) == 0
            exp = value(root, n, dt) if dt is not np.bool_ else np.arange(n) % (root + 2) == 0
            before = x.copy()
            check(c.broadcast(x, root=root), exp, f"broadcast {dt} {n} root={root}")
            check(x, before, "broadcast must not modify its input")
            y = x.copy()
            assert c.broadcast(y, root=root, out=y) is y
            check(y, exp, f"broadcast in place {dt} {n}")
            check(c.broadcast(x, root=root, async_op=True).wait(), exp, "broadcast async")

# --- allgather: the first dimension differs per rank --------------------------------------------
for dt in (np.float16, np.int64, np.bool_):
    for extra in (0, 1, 2):
        rows = (R + extra) % 3            # includes ranks with zero rows
        x = (R * 1000 + np.arange(rows * 2)).reshape(rows, 2).astype(dt)
        exp = np.concatenate([(r * 1000 + np.arange(((r + extra) % 3) * 2))
                              .reshape(-1, 2).astype(dt) for r in range(N)])
        check(c.allgather(x), exp, f"allgather {dt} extra={extra}")
        check(c.allgather(x, async_op=True).wait(), exp, "allgather async")
check(c.allgather(np.int32(R)), np.arange(N, dtype=np.int32), "allgather 0-d")

# --- alltoall -------------------------------------------------------------------------------------
for rows in (0, 1, N, 7):
    x = (R * 1000 + np.arange(rows * 2)).reshape(rows, 2).astype(np.int64)
    parts = [np.array_split((r * 1000 + np.arange(rows * 2)).reshape(rows, 2), N)[R]
             for r in range(N)]
    check(c.alltoall(x), np.concatenate(parts).astype(np.int64), f"alltoall even {rows}")
# uneven splits: rank r sends j+r rows to rank j
sends = [j + R for j in range(N)]
x = (R * 1000 + np.arange(sum(sends))).astype(np.float32)
got = c.alltoall(x, splits=sends)
exp = []
for r in range(N):
    offs = np.cumsum([0] + [j + r for j in range(N)])
    exp.append((r * 1000 + np.arange(offs[-1]))[offs[R]:offs[R + 1]])
check(got, np.concatenate(exp).astype(np.float32), "alltoall uneven")

# --- allreduce_many: fusion buckets ----------------------------------------------------------------
arrays = [value(R, (i % 7) + 1, (np.float32, np.float64, np.int32)[i % 3]) for i in range(100)]
expected = [value(0, a.size, a.dtype) * N + (1000 * N * (N - 1) // 2) for a in arrays]
for threshold in (None, 0, 40, 1 << 30):
    for name in ALGS:
        alg = use(name)
        got = c.allreduce_many(arrays, algorithm=alg, bucket_bytes=threshold)
        for g, e in zip(got, expected):
            check(g, e.astype(g.dtype), f"allreduce_many {alg} threshold={threshold}")
got = c.allreduce_many([a.astype(np.float64) for a in arrays], op=ReduceOp.AVG,
                       async_op=True).wait()
for g, e in zip(got, expected):
    check(g, e.astype(np.float64) / N, "allreduce_many AVG async")
check(len(c.allreduce_many([])), 0, "allreduce_many of nothing")
# an array of at least direct_bytes is reduced on its own, between fused neighbours
mixed = [value(R, n, np.float32) for n in (3, c.direct_bytes // 4 + 1, 5)]
for name in ALGS:
    alg = use(name)
    got = c.allreduce_many(mixed, algorithm=alg)
    for g, a in zip(got, mixed):
        k, _ = scale_for(np.float32)
        check(g, value(0, a.size, np.float32) * N + np.float32(k * N * (N - 1) // 2),
              f"allreduce_many {alg} with a direct array")

# --- the shared-memory ring's slot writes: chosen by timing both ways ------------------------
if kernels.BACKEND == "c" and getattr(c, "_shm", None) is not None:
    use("ring")                         # -1: the cheaper way as timed
    kernels._c.slot_costs(True)         # clears the timings of the variants above
    x = value(R, 40 * N * c.shm_chunk_bytes // 4, np.int32)       # 40 blocks
    k, m = scale_for(np.int32)
    check(c.allreduce(x, algorithm="ring"),
          (k * N * (N - 1) // 2 + N * (np.arange(x.size) % m)).astype(np.int32),
          "allreduce over many blocks, slot writes chosen by timing")
    assert all(t > 0 for t in kernels._c.slot_costs()), \
        f"rank {R}: a way of writing the slots was never timed: {kernels._c.slot_costs()}"

# --- cross-memory access: a rank whose access fails makes every rank raise (no partial result)
if CROSS_MEMORY:
    from ringtrain.errors import CommError

    use("ring-cross")
    x = value(R, 97, np.float32)
    k, m = scale_for(np.float32)
    exp = (k * N * (N - 1) // 2 + N * (np.arange(97) % m)).astype(np.float32)
    real = kernels.peer_reduce
    for failing in ("reading", "writing"):
        def refused(dst, own, scratch, sources, targets, *args, failing=failing):
            if failing == "writing":        # the reads and the reduction happen, then it fails
                real(dst, own, scratch, sources, (), *args)
            raise OSError(1, f"{failing} refused for the test")

        if R == N - 1:
            kernels.peer_reduce = refused
        y = x.copy()
        try:
            c.allreduce(y, out=y, algorithm="ring")
        except CommError as exc:
            text = str(exc)
            assert f"rank(s) [{N - 1}] could not access" in text and \
                "RINGTRAIN_CROSS_MEMORY=0" in text, text
            assert ("refused for the test" in text) == (R == N - 1), text
        else:
            raise AssertionError(f"rank {R}: a failed access ({failing}) on rank {N - 1} must "
                                 f"raise here")
        finally:
            kernels.peer_reduce = real
        # the next call works (the failure belongs to the barrier it was marked for)
        check(c.allreduce(x, algorithm="ring"), exp, "allreduce after a failed access")

    # with the contract check off, sizes that differ are caught before any rank touches another's
    # buffers (it would read and write past the smaller ones)
    from ringtrain.errors import CollectiveMismatch

    saved, c.check = c.check, False
    try:
        c.allreduce(value(R, 97 + R, np.float32), algorithm="ring")
    except CollectiveMismatch as exc:
        assert "every rank must pass the same size; rank 0: 388 bytes, rank 1: 392 bytes" in \
            str(exc), exc
    else:
        raise AssertionError(f"rank {R}: sizes that differ must raise here")
    finally:
        c.check = saved
    check(c.allreduce(x, algorithm="ring"), exp, "allreduce after sizes that differed")

# --- objects, barrier ------------------------------------------------------------------------------
obj = c.broadcast_object({"rank": R, "list": list(range(R))}, root=N - 1)
assert obj == {"rank": N - 1, "list": list(range(N - 1))}, obj
assert c.allgather_object(("r", R)) == [("r", r) for r in range(N)]
c.barrier()
assert rt.is_chief() == (R == 0) and 0 <= rt.local_rank() < rt.local_size()
assert rt.init() is c, "init() must be idempotent"

print(f"COMM-OK rank={R} size={N} backend={c.backend} checks={checks} "
      f"cross_memory={int(CROSS_MEMORY)} cross_calls={cross_calls} "
      f"mapped_writes={mapped_writes}", flush=True)
sys.exit(0)
