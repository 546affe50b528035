"""The backend-independent half of a communicator: argument checks, contract checks, async
handles, fusion buckets; a backend supplies only the data movement (the ``_`` methods)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .. import env
from ..errors import CollectiveMismatch, RingtrainError
from . import contract as C
from .base import Communicator, Handle, ReduceOp
from .buffers import ResultBuffers
from .executor import DoneHandle, OrderedExecutor, main_thread_waits


def _flat(arr: np.ndarray) -> np.ndarray:
    """A 1-d view of a C-contiguous array (0-d arrays become one element)."""
    return arr.reshape(-1)


def _bytes(arr: np.ndarray) -> np.ndarray:
    """A 1-d uint8 view of a C-contiguous array, for dtype-agnostic data movement."""
    return arr.reshape(-1).view(np.uint8)


#: rounds of unchanged offers, every rank's main thread waiting, before the ranks give up
#: agreeing on a named operation (about 1 s with the growing pause between rounds)
_STUCK_ROUNDS = 60


def _names_apart(offers: list[tuple[str, list[str], bool]]) -> str:
    """What each rank is in, and which named operations some rank has not started."""
    doing = ", ".join(f"rank {r} in {what}" for r, (what, _, _) in enumerate(offers))
    started = list(dict.fromkeys(name for _, names, _ in offers for name in names))
    lacking = "; ".join(
        f"{name} not started on "
        f"{C.ranks_text([r for r, (_, names, _) in enumerate(offers) if name not in names])}"
        for name in started[:4])
    return f"the workers started differently named operations ({doing})" + \
        (f": {lacking}" if lacking else "")


def _same_buffer(a: np.ndarray, b: np.ndarray) -> bool:
    return (a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
            and a.strides == b.strides and a.shape == b.shape)


class CommunicatorBase(Communicator):
    """Validates every call, exchanges contract descriptors, orders async work.

    Subclasses implement, for flat contiguous NumPy arrays: ``_exchange`` (all-gather of the
    fixed-size descriptors), ``_allreduce``, ``_broadcast``, ``_allgatherv``,
    ``_reduce_scatter``, ``_alltoallv``, ``_barrier``, ``_bcast_obj``, ``_allgather_obj``, and
    ``_pick_algorithm``. They run on the communication thread (or inline, one at a time).
    """

    backend = "base"
    #: ``allreduce_many`` reduces an array of at least this many bytes on its own, from the
    #: input straight into the result: packing it into a fusion buffer would read and write
    #: it once more, which costs more than one more collective's latency from about this size
    #: (tens of microseconds per call against ~0.1 ms to copy 256 KiB twice)
    direct_bytes = 256 << 10
    #: bytes of result arrays that callers dropped, kept to serve the next call of the same
    #: size without faulting fresh pages in (buffers.py); the memory this may hold idle
    result_cache_bytes = 256 << 20

    def __init__(self, rank: int, world_size: int, local_rank: int, local_size: int,
                 check: bool | None = None):
        self.rank = rank
        self.world_size = world_size
        self.local_rank = local_rank
        self.local_size = local_size
        self.check = env.get("RINGTRAIN_CHECK_COLLECTIVES") if check is None else bool(check)
        self._executor = OrderedExecutor(f"ringtrain-comm-{self.backend}")
        self._closed = False
        self._results = ResultBuffers(self.result_cache_bytes)

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} rank {self.rank}/{self.world_size} "
                f"local {self.local_rank}/{self.local_size} check={self.check}>")

    # --- plumbing ----------------------------------------------------------------------------

    def _launch(self, job: Callable[[], Any], async_op: bool, refs: tuple) -> Any:
        if async_op:
            return self._executor.submit(job, refs, C.operation_name())
        return self._executor.run(job, C.operation_name())

    def _verify(self, desc: bytes, first_dim_free: bool = False) -> memoryview | None:
        """Exchange descriptors and raise CollectiveMismatch on every rank if they differ.

        Where the ranks started differently named operations, they first run the named
        operations they agree on (``_run_agreed_name``), until their current calls match."""
        if not self.check:
            return None
        while True:
            raw = self._exchange(desc)
            try:
                C.verify(raw, desc, self.world_size, first_dim_free)
                return raw
            except C.NamesDiffer:
                self._run_agreed_name(desc)

    def _run_agreed_name(self, desc: bytes) -> None:
        """Agree with the other ranks on a named operation that every rank has started (this
        rank's current one, described by ``desc``, or one in its queue) and run it; return
        when it ran (or when it is this rank's current one, which the caller checks again).

        The choice is the first name in rank 0's order that every rank offers. While there is
        none, the ranks offer again (a rank may start its part later), rank 0 warning every
        ``RINGTRAIN_STALL_WARNING`` seconds; a rank that is lost is the watchdog's to find.
        When no rank can start anything more (each one's main thread waits for a collective)
        and the offers stay the same for ``_STUCK_ROUNDS`` rounds, every rank raises
        CollectiveMismatch instead of waiting forever."""
        mine = self._executor.running_name()
        doing = mine or f"an unnamed {C.KINDS[C.unpack(desc, 1)[0][C.F_KIND]]}"
        warn_after = env.get("RINGTRAIN_STALL_WARNING")
        started = time.monotonic()
        next_warning = started + warn_after if warn_after > 0 else float("inf")
        pause, stuck, previous = 2e-4, 0, None
        while True:
            blocked = main_thread_waits()       # before the queue: what it queued is in it
            offer = ([mine] if mine else []) + self._executor.queued_names()
            offers = self._allgather_obj((doing, offer, blocked))
            names = [set(o) for _, o, _ in offers]
            common = [name for name in offers[0][1] if all(name in n for n in names)]
            if common:
                if common[0] != mine:
                    self._executor.run_queued(common[0])
                return
            # every rank computes the same from the same offers, so all raise together
            stuck = stuck + 1 if all(b for _, _, b in offers) and offers == previous else 0
            previous = offers
            if stuck >= _STUCK_ROUNDS:
                raise CollectiveMismatch(
                    f"{_names_apart(offers)}; every rank waits for a collective, so none can "
                    f"start the others' operations. Named operations pair by name (as in "
                    f"Horovod): every worker must start each of them")
            now = time.monotonic()
            if self.rank == 0 and now >= next_warning:
                next_warning = now + warn_after
                print(f"ringtrain: the ranks have waited {now - started:.0f} s for each "
                      f"other's named operations: {_names_apart(offers)}. Named operations "
                      f"pair by name: every worker must start each of them "
                      f"(RINGTRAIN_STALL_WARNING)", file=sys.stderr, flush=True)
            time.sleep(pause)       # the others may start theirs later
            pause = min(2 * pause, 0.02)

    def _abandon(self, kind: str, wait: bool = True) -> None:
        """This rank's arguments were invalid: still take part in the descriptor exchange, so
        the other ranks raise CollectiveMismatch instead of waiting for data that never comes.
        ``wait=False`` queues the exchange behind this rank's async collectives in flight and
        returns at once (their peers may not have started them yet)."""
        if not self.check or self.world_size == 1 or self._closed:
            return
        desc = C.invalid_descriptor(kind)
        if not wait:
            self._executor.submit(lambda: self._exchange(desc))  # its error is nobody's
            return
        try:
            self._executor.run(lambda: self._exchange(desc))
        except RingtrainError:  # the caller raises its own, more precise error
            return

    def _checked(self, kind: str, validate: Callable[[], Any]) -> Any:
        try:
            return validate()
        except (TypeError, ValueError):
            self._abandon(kind)
            raise

    # --- allreduce ---------------------------------------------------------------------------

    def allreduce(self, x, op: ReduceOp = ReduceOp.SUM, algorithm: str | None = None, out=None,
                  async_op: bool = False):
        def validate():
            arr = C.as_array(x, "allreduce")
            rop = C.check_op(op, "allreduce")
            C.check_reducible(arr.dtype, rop, "allreduce")
            alg = C.check_algorithm(algorithm, "allreduce")
            if out is not None:
                C.check_out(out, arr.shape, arr.dtype, "allreduce")
            return arr, rop, alg

        arr, rop, alg = self._checked("allreduce", validate)
        alg = self._pick_algorithm(alg, arr.nbytes)
        desc = C.descriptor("allreduce", arr.shape, arr.dtype, rop, algorithm=alg,
                            name=C.operation_name())

        def job():
            self._verify(desc)
            return self._allreduce_array(arr, out, rop, alg)

        return self._launch(job, async_op, (arr, out))

    def _allreduce_array(self, arr: np.ndarray, out: np.ndarray | None, op: ReduceOp,
                         alg: str) -> np.ndarray:
        contiguous = arr.flags.c_contiguous
        if out is None:                                 # the common cases first: cheap tests
            dst = self._results.empty(arr.shape, arr.dtype)
            src = arr if contiguous else np.ascontiguousarray(arr)
        elif out is arr and contiguous:
            src = dst = out                             # in place
        else:
            dst = out if out.flags.c_contiguous else np.empty(arr.shape, arr.dtype)
            if contiguous and (dst is arr or _same_buffer(dst, arr)):
                src = dst                               # in place through another view
            elif contiguous and not np.may_share_memory(arr, dst):
                src = arr
            else:
                src = np.ascontiguousarray(arr).copy()  # overlapping or strided input
        if dst.size:
            flat_dst = _flat(dst)
            self._allreduce(flat_dst if src is dst else _flat(src), flat_dst, op, alg)
        if out is not None and dst is not out:
            out[...] = dst
            return out
        return dst

    def allreduce_many(self, arrays: Sequence, op: ReduceOp = ReduceOp.SUM,
                       algorithm: str | None = None, bucket_bytes: int | None = None,
                       async_op: bool = False):
        """All-reduce many arrays through buckets (``plan_buckets``); returns a list of new
        arrays.

        Arrays of one dtype are packed in order into buckets of at most ``bucket_bytes``
        (``RINGTRAIN_BUCKET_BYTES``); an array larger than that, or of at least
        ``direct_bytes``, is reduced on its own straight from the input into its result
        (packing it would cost a pass over memory that the saved call does not repay).
        Every rank must pass the same arrays (shapes, dtypes) in the same order. With
        ``async_op=True`` the handle's ``wait()`` returns the list.
        """
        arrs, rop, alg, limit = self._checked(
            "allreduce", lambda: _check_many(arrays, op, algorithm, bucket_bytes))
        plans = [self._plan_bucket(arrs, bucket, rop, alg)
                 for bucket in plan_buckets(arrs, limit, self.direct_bytes)]
        return self._launch(lambda: self._reduce_buckets(arrs, plans, rop), async_op,
                            tuple(arrs))

    def _plan_bucket(self, arrs: list[np.ndarray], bucket: list[int], op: ReduceOp, alg: str
                     ) -> tuple[list[int], str, bytes]:
        """A bucket's algorithm (picked by its size) and its contract descriptor: a bucket of
        several arrays travels as one flat array and names its members' shapes."""
        first = arrs[bucket[0]]
        alg = self._pick_algorithm(alg, sum(arrs[i].nbytes for i in bucket))
        if len(bucket) == 1:
            return bucket, alg, C.descriptor("allreduce", first.shape, first.dtype, op,
                                             algorithm=alg, name=C.operation_name())
        total = sum(arrs[i].size for i in bucket)
        return bucket, alg, C.descriptor("allreduce", (total,), first.dtype, op, algorithm=alg,
                                         count=len(bucket),
                                         members=tuple(arrs[i].shape for i in bucket),
                                         name=C.operation_name())

    def _reduce_buckets(self, arrs: list[np.ndarray], plans: list, op: ReduceOp) -> list:
        """On the communication thread: each bucket's contract check, then its reduction; a
        bucket of one array goes from input to result, the others are packed into one array
        and their results are views of it."""
        results: list = [None] * len(arrs)
        for bucket, alg, desc in plans:
            self._verify(desc)
            if len(bucket) == 1:
                results[bucket[0]] = self._allreduce_array(arrs[bucket[0]], None, op, alg)
                continue
            fused = self._results.empty((sum(arrs[i].size for i in bucket),),
                                        arrs[bucket[0]].dtype)
            np.concatenate([arrs[i].reshape(-1) for i in bucket], out=fused)
            self._allreduce(fused, fused, op, alg)
            start = 0
            for i in bucket:
                stop = start + arrs[i].size
                results[i] = fused[start:stop].reshape(arrs[i].shape)
                start = stop
        return results

    # --- broadcast, allgather, reduce_scatter, alltoall --------------------------------------

    def broadcast(self, x, root: int = 0, out=None, async_op: bool = False):
        def validate():
            arr = C.as_array(x, "broadcast")
            r = C.check_root(root, self.world_size, "broadcast")
            if out is not None:
                C.check_out(out, arr.shape, arr.dtype, "broadcast")
            return arr, r

        arr, r = self._checked("broadcast", validate)
        desc = C.descriptor("broadcast", arr.shape, arr.dtype, root=r, name=C.operation_name())

        def job():
            self._verify(desc)
            dst = out if out is not None and out.flags.c_contiguous \
                else self._results.empty(arr.shape, arr.dtype)
            if self.rank == r and not _same_buffer(dst, arr):
                dst[...] = arr
            if dst.size:
                self._broadcast(_bytes(dst), r)
            if out is not None and dst is not out:
                out[...] = dst
                return out
            return dst

        return self._launch(job, async_op, (arr, out))

    def allgather(self, x, async_op: bool = False):
        """Concatenation along axis 0 in rank order; the first dimension may differ per rank.

        A 0-d array counts as one row, so gathering scalars gives an array of world_size."""
        arr = self._checked("allgather", lambda: C.as_array(x, "allgather"))
        if arr.ndim == 0:
            arr = arr.reshape(1)
        src = np.ascontiguousarray(arr)
        desc = C.descriptor("allgather", arr.shape, arr.dtype, name=C.operation_name())

        def job():
            if self.world_size == 1:
                return src.copy()
            raw = self._verify(desc, first_dim_free=True)
            if raw is None:
                raw = self._exchange(desc)
            rows = C.dim0s(raw, self.world_size)
            row_bytes = int(np.prod(arr.shape[1:], dtype=np.int64)) * arr.dtype.itemsize
            dst = self._results.empty((sum(rows), *arr.shape[1:]), arr.dtype)
            if dst.size:
                self._allgatherv(_bytes(src), _bytes(dst), [n * row_bytes for n in rows])
            return dst

        return self._launch(job, async_op, (src,))

    def reduce_scatter(self, x, op: ReduceOp = ReduceOp.SUM, async_op: bool = False,
                       algorithm: str | None = None):
        """Rank r gets part r of ``np.array_split(reduced, world_size)`` along axis 0."""
        def validate():
            arr = C.as_array(x, "reduce_scatter")
            C.check_axis0(arr, "reduce_scatter")
            rop = C.check_op(op, "reduce_scatter")
            C.check_reducible(arr.dtype, rop, "reduce_scatter")
            alg = C.check_algorithm(algorithm, "reduce_scatter")
            return arr, rop, alg

        arr, rop, alg = self._checked("reduce_scatter", validate)
        alg = self._pick_algorithm(alg, arr.nbytes, shm_capable=False)
        desc = C.descriptor("reduce_scatter", arr.shape, arr.dtype, rop, algorithm=alg,
                            name=C.operation_name())

        def job():
            self._verify(desc)
            src = np.ascontiguousarray(arr)
            rows = C.check_splits(None, arr.shape[0], self.world_size, "reduce_scatter")
            row = int(np.prod(arr.shape[1:], dtype=np.int64))
            dst = self._results.empty((rows[self.rank], *arr.shape[1:]), arr.dtype)
            if src.size:
                self._reduce_scatter(_flat(src), _flat(dst), [n * row for n in rows], rop, alg)
            return dst

        return self._launch(job, async_op, (arr,))

    def alltoall(self, x, splits: Sequence[int] | None = None, async_op: bool = False):
        """Rows of ``x`` partitioned by ``splits`` (even split by default) go to ranks 0..N-1;
        returns the received rows concatenated in rank order."""
        def validate():
            arr = C.as_array(x, "alltoall")
            C.check_axis0(arr, "alltoall")
            parts = C.check_splits(splits, arr.shape[0], self.world_size, "alltoall")
            return arr, parts

        arr, parts = self._checked("alltoall", validate)
        src = np.ascontiguousarray(arr)
        desc = C.descriptor("alltoall", arr.shape, arr.dtype, name=C.operation_name())

        def job():
            self._verify(desc, first_dim_free=True)
            row_bytes = int(np.prod(arr.shape[1:], dtype=np.int64)) * arr.dtype.itemsize
            recv_rows = self._alltoall_counts(parts)
            dst = self._results.empty((sum(recv_rows), *arr.shape[1:]), arr.dtype)
            self._alltoallv(_bytes(src), [n * row_bytes for n in parts], _bytes(dst),
                            [n * row_bytes for n in recv_rows])
            return dst

        return self._launch(job, async_op, (src,))

    # --- synchronisation and objects ---------------------------------------------------------

    def barrier(self, *, after_pending: bool = True) -> None:
        if not after_pending:
            if self.world_size > 1:
                self._barrier_beside_queue()
            return
        desc = C.descriptor("barrier")

        def job():
            # the descriptor all-gather already waits for every rank
            if self._verify(desc) is None:
                self._barrier()

        self._launch(job, False, ())

    def broadcast_object(self, obj: Any, root: int = 0) -> Any:
        r = self._checked("broadcast_object",
                          lambda: C.check_root(root, self.world_size, "broadcast_object"))
        desc = C.descriptor("broadcast_object", root=r)

        def job():
            self._verify(desc)
            return self._bcast_obj(obj, r)

        return self._launch(job, False, ())

    def allgather_object(self, obj: Any) -> list:
        desc = C.descriptor("allgather_object")

        def job():
            self._verify(desc)
            return self._allgather_obj(obj)

        return self._launch(job, False, ())

    def join(self) -> int:
        """Horovod's join: this rank has no more data. Until every rank has joined it stands in
        for the others' allreduces (Sum or Average) with zeros, so an average still divides by
        world_size; any other collective raises CollectiveMismatch on the ranks that called it
        (the joined ranks skip it). Returns the rank that joined last (on a tie, the highest).

        Without contract checks there are no descriptors to read the others' calls from, and
        join() only waits for every rank to call it."""
        if self.world_size == 1:
            self.synchronize()
            return 0
        if not self.check:
            return super().join()
        served = [0]

        def job():
            # one watched step per collective served: it waits in the descriptor exchange
            raw = self._exchange(C.descriptor("join", count=served[0]))
            rows = C.unpack(raw, self.world_size)
            joined = [i for i, r in enumerate(rows) if r[C.F_KIND] == C.JOIN]
            if len(joined) == self.world_size:
                return max(range(self.world_size), key=lambda i: (-rows[i][C.F_COUNT], i))
            calls = [r for r in rows if r[C.F_KIND] != C.JOIN]
            departed = tuple(i for i, r in enumerate(rows)
                             if r[C.F_KIND] == C.KIND_CODE["shutdown"])
            if departed:
                error = CollectiveMismatch(
                    f"join: rank {self.rank} waited for the other ranks to join, but "
                    f"{'rank' if len(departed) == 1 else 'ranks'} "
                    f"{', '.join(map(str, departed))} ended without calling join()")
                error.departed = departed
                raise error
            served[0] += 1      # refused calls count too: the rank joined before them
            if (C.join_refusal(calls[0], joined) or C.describe_mismatch(calls, False)
                    or any(r[C.F_FLAGS] & C.FLAG_INVALID for r in calls)):
                return None     # the others raise CollectiveMismatch; no data moves
            shape, dtype, op, alg = C.joined_stand_in(calls[0])
            zeros = _flat(np.zeros(shape, dtype))
            if zeros.size:
                self._allreduce(zeros, zeros, op, alg)      # in place, as src is dst
            return None

        while True:
            last = self._launch(job, False, ())
            if last is not None:
                return last

    def synchronize(self) -> None:
        """Wait until every collective submitted so far on this rank has finished."""
        self._executor.drain()

    def shutdown(self) -> None:
        """Finish queued collectives, then release the engine (a collective: every rank).

        With contract checks on, the ranks exchange a last descriptor, so a rank whose program
        ends while others still wait in a collective makes them raise CollectiveMismatch
        instead of hanging (MPI_Finalize would otherwise wait for them forever)."""
        if self._closed:
            return
        self._executor.close()
        self._closed = True
        self._results.clear()
        together = False
        try:
            if self.check and self.world_size > 1:
                desc = C.descriptor("shutdown")
                C.verify(self._exchange_at_shutdown(desc), desc, self.world_size, False)
            elif self.world_size > 1:
                self._meet_at_shutdown()
            together = True
        finally:
            # After a mismatch other ranks wait in a collective: release nothing collectively.
            self._release(together)

    # --- what a backend provides -------------------------------------------------------------

    def _pick_algorithm(self, algorithm: str, nbytes: int, shm_capable: bool = True) -> str:
        """Resolve "auto" for a message of ``nbytes``; identical on every rank."""
        return "native"

    def _exchange(self, desc: bytes) -> memoryview:
        raise NotImplementedError

    def _allreduce(self, src: np.ndarray, dst: np.ndarray, op: ReduceOp, alg: str) -> None:
        raise NotImplementedError

    def _broadcast(self, buf: np.ndarray, root: int) -> None:
        raise NotImplementedError

    def _allgatherv(self, src: np.ndarray, dst: np.ndarray, counts: list[int]) -> None:
        raise NotImplementedError

    def _reduce_scatter(self, src: np.ndarray, dst: np.ndarray, counts: list[int],
                        op: ReduceOp, alg: str) -> None:
        raise NotImplementedError

    def _alltoall_counts(self, send_rows: list[int]) -> list[int]:
        raise NotImplementedError

    def _alltoallv(self, src: np.ndarray, send_counts: list[int], dst: np.ndarray,
                   recv_counts: list[int]) -> None:
        raise NotImplementedError

    def _barrier(self) -> None:
        raise NotImplementedError

    def _barrier_beside_queue(self) -> None:
        """A barrier of every rank that runs in the caller's thread, outside the ordered queue."""
        raise NotImplementedError

    def _bcast_obj(self, obj: Any, root: int) -> Any:
        raise NotImplementedError

    def _allgather_obj(self, obj: Any) -> list:
        raise NotImplementedError

    def _exchange_at_shutdown(self, desc: bytes) -> memoryview:
        return self._exchange(desc)

    def _meet_at_shutdown(self) -> None:
        """Without contract checks: wait for the other ranks' shutdown, raising
        CollectiveMismatch when they wait in a collective instead (where a backend can tell)."""

    def _release(self, together: bool = True) -> None:
        """Free the engine's resources; ``together``: every rank is shutting down too, so
        collective frees are safe (False: some rank still waits in a collective)."""


def _check_many(arrays: Any, op: Any, algorithm: Any, bucket_bytes: Any
                ) -> tuple[list[np.ndarray], ReduceOp, str, int]:
    """``allreduce_many``'s arguments, checked: the arrays, op, algorithm and bucket size."""
    what = "allreduce_many"
    if isinstance(arrays, np.ndarray) or not isinstance(arrays, Sequence):
        raise TypeError(f"{what}: arrays must be a list or tuple of arrays, got "
                        f"{type(arrays).__name__}")
    arrs = [C.as_array(a, what, f"arrays[{i}]") for i, a in enumerate(arrays)]
    rop = C.check_op(op, what)
    for a in arrs:
        C.check_reducible(a.dtype, rop, what)
    return arrs, rop, C.check_algorithm(algorithm, what), check_bucket_bytes(bucket_bytes, what)


def check_bucket_bytes(bucket_bytes: Any, what: str) -> int:
    """``bucket_bytes`` as a non-negative int (``None``: ``RINGTRAIN_BUCKET_BYTES``)."""
    limit = env.get("RINGTRAIN_BUCKET_BYTES") if bucket_bytes is None else bucket_bytes
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 0:
        raise ValueError(f"{what}: bucket_bytes must be a non-negative number of bytes (0: no "
                         f"fusion), got {limit!r}")
    return int(limit)


def plan_buckets(arrays: Sequence[Any], limit: int, direct: int | None = None
                 ) -> list[list[int]]:
    """Indices of ``arrays`` (NumPy arrays or torch tensors: anything with ``nbytes`` and
    ``dtype``) grouped into buckets, the one planner for graph models' ``allreduce_many``
    and torch's gradient buckets: arrays of one dtype in order, at most ``limit`` bytes per
    bucket (an array larger than ``limit``, or of at least ``direct`` bytes when given, gets
    a bucket of its own). Buckets are listed in the order of their first array.

    The plan depends only on sizes, dtypes and order, so it is identical on every rank."""
    buckets: list[list[int]] = []
    open_bucket: dict[Any, tuple[list[int], int]] = {}
    for i, a in enumerate(arrays):
        nbytes = int(a.nbytes)
        if nbytes > limit or (direct is not None and nbytes >= direct):
            buckets.append([i])
            continue
        current = open_bucket.get(a.dtype)
        if current is None or current[1] + nbytes > limit:
            current = ([], 0)
            buckets.append(current[0])
        current[0].append(i)
        open_bucket[a.dtype] = (current[0], current[1] + nbytes)
    return buckets


__all__ = ["CommunicatorBase", "DoneHandle", "Handle", "check_bucket_bytes", "plan_buckets"]
