"""The ``mpi`` backend: collectives on NumPy arrays over any mpi4py intracommunicator.

``algorithm="native"`` calls MPI's own collectives; ``"ring"`` runs our ring all-reduce
(see ring.py) over MPI point-to-point messages; ``"auto"`` picks by message size.
"""

from __future__ import annotations

import atexit
import functools
import itertools
import os
import sys
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from .. import env
from ..errors import CollectiveMismatch, CommError
from . import contract as C
from . import kernels, ring, watchdog
from .base import ReduceOp
from .buffers import PeerMappings
from .common import CommunicatorBase

#: ringtrain finalizes MPI itself (see take_over_finalize); "abandoned": never, because some
#: rank still waits in a collective and MPI_Finalize would wait for it forever.
_finalizing = {"owned": False, "abandoned": False}


def take_over_finalize() -> None:
    """Call before mpi4py.MPI is first imported: ringtrain, not mpi4py, finalizes MPI at exit,
    so that a rank leaving while others wait in a collective can skip MPI_Finalize (which
    would block) and still exit with its program's own exit code."""
    import mpi4py

    if "mpi4py.MPI" in sys.modules or _finalizing["owned"]:
        return      # imported before us: mpi4py finalizes (a leaving rank then exits with 1)
    mpi4py.rc.finalize = False
    _finalizing["owned"] = True
    atexit.register(finalize)


def finalize_is_safe() -> bool:
    """Whether this process may exit normally: MPI_Finalize will not block on a lost peer."""
    return _finalizing["owned"] or not _finalizing["abandoned"]


def finalize() -> None:
    """MPI_Finalize at exit, unless a rank still waits in a collective (then skipped)."""
    if not _finalizing["owned"] or _finalizing["abandoned"]:
        return
    from mpi4py import MPI

    if MPI.Is_initialized() and not MPI.Is_finalized():
        MPI.Finalize()


#: Seconds a rank that ends abruptly keeps driving MPI's progress engine (see deliver_sent).
DELIVER_SECONDS = 0.25


def deliver_sent(seconds: float = DELIVER_SECONDS) -> None:
    """Before a rank of a joined world (a cluster, torchrun's processes) ends without
    MPI_Finalize (os._exit): let the messages it already sent reach their peers. Transports with
    manual progress (OFI's tcp provider between the groups) queue a completed send and write it
    out only while the sender calls into MPI; exiting at once drops it, and the peer that needed
    it (e.g. the rank that left first, in its shutdown exchange) then waits forever instead of
    ending with its own exit code. (The ranks of one mpiexec job share memory: no such help.)"""
    if "mpi4py.MPI" not in sys.modules:
        return
    from mpi4py import MPI

    if not MPI.Is_initialized() or MPI.Is_finalized() \
            or MPI.Query_thread() < MPI.THREAD_MULTIPLE:
        return      # another thread may be inside MPI: calling in could corrupt its state
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        MPI.COMM_WORLD.Iprobe(MPI.ANY_SOURCE, MPI.ANY_TAG)   # any MPI call drives progress
        time.sleep(0.001)


class MPICommunicator(CommunicatorBase):
    """A communicator over an mpi4py ``Intracomm`` (``COMM_WORLD`` or any other).

    The intracomm is duplicated (``dup=True``) so that our messages never match the user's own
    MPI traffic. ``local_rank``/``local_size`` default to this process's place among the ranks
    that share its node (``Split_type(COMM_TYPE_SHARED)``). MPI must be initialised with at
    least ``MPI_THREAD_SERIALIZED`` (mpi4py's default is MULTIPLE): collectives run either on
    the communication thread or in the caller's thread, never both at once (the stall
    watchdog, ``watchdog.py``, needs MULTIPLE and switches itself off below it).
    """

    backend = "mpi"
    #: elements of a ring step travel in segments of this many bytes, so that the receive of
    #: segment k+1 is under way while segment k is reduced, and the scratch stays in cache
    segment_bytes = 1 << 20
    #: "auto" uses the ring from this message size up (bytes), MPI_Allreduce below it. Through
    #: shared memory the ring (one step for small messages) was as fast as MPI_Allreduce or
    #: faster from 256 B at np 2 and 3, over MPI messages from 512 KiB (2-core VM, MPICH 5.0.2)
    auto_ring_bytes = 1 << 10
    auto_ring_p2p_bytes = 512 << 10
    #: on one node the ring moves data through a shared-memory window instead of MPI
    #: messages, in blocks of world_size x this many bytes ("p2p" forces MPI messages)
    shm_chunk_bytes = 1 << 19
    #: on one node, messages up to this size take a single step (``_one_shot_shm``): one
    #: barrier instead of the ring's 2 (N - 1), which is what small messages pay for
    one_shot_bytes = 64 << 10
    #: on one node, messages from this size up read and write the other ranks' buffers
    #: directly (``_cross_memory_shm``) where the system allows it (RINGTRAIN_CROSS_MEMORY).
    #: Below it the node's data stay in cache, where the slots' extra copy costs little and a
    #: system call per block more. None: the cache size / (4 * ranks on the node), set at
    #: start-up (4 MiB for 2 ranks and 32 MiB)
    cross_memory_bytes: int | None = None
    #: the blocks in which ``_cross_memory_shm`` reduces (three in cache at once)
    cross_memory_block_bytes = 256 << 10
    #: out-of-place results from this size up are written with streaming stores (kernels.copy):
    #: from there the sources and results of the node's ranks outgrow the last-level cache, so
    #: the destination is cold and ordinary stores would read every line of it first. None:
    #: the cache size / (2 * ranks on the node), set at start-up (8 MiB for 2 ranks and 32 MiB)
    stream_bytes: int | None = None
    #: between the ranks of one node: "auto" (by size: one step, the slots' ring, or
    #: cross-memory access), "slots" (never cross-memory) or "p2p" (MPI messages, the
    #: transport between machines)
    ring_transport = "auto"
    _watchdog: Any = None

    def __init__(self, intracomm: Any, *, local_rank: int | None = None,
                 local_size: int | None = None, check: bool | None = None, dup: bool = True):
        from mpi4py import MPI

        if not isinstance(intracomm, MPI.Intracomm) or intracomm == MPI.COMM_NULL:
            raise TypeError(f"MPICommunicator needs an mpi4py Intracomm, got "
                            f"{type(intracomm).__name__}")
        if MPI.Query_thread() < MPI.THREAD_SERIALIZED:
            raise CommError("MPI was initialised below MPI_THREAD_SERIALIZED; ringtrain runs "
                            "collectives on a communication thread. Set "
                            "mpi4py.rc.thread_level = 'serialized' (or 'multiple')")
        self._MPI = MPI
        self._owns_comm = dup
        self._comm = intracomm.Dup() if dup else intracomm
        self._node = self._comm.Split_type(MPI.COMM_TYPE_SHARED)
        if local_rank is None or local_size is None:
            local_rank, local_size = self._node.Get_rank(), self._node.Get_size()
        super().__init__(self._comm.Get_rank(), self._comm.Get_size(), local_rank, local_size,
                         check)
        self._desc_recv = bytearray(self.world_size * C.DESCRIPTOR_BYTES)
        self._mpi_ops = {ReduceOp.SUM: MPI.SUM, ReduceOp.AVG: MPI.SUM, ReduceOp.MIN: MPI.MIN,
                         ReduceOp.MAX: MPI.MAX}
        self._bool_ops = {ReduceOp.MIN: MPI.LAND, ReduceOp.MAX: MPI.LOR}
        # MPI leaves NaN to the implementation: MPICH's MIN/MAX keep or drop a NaN depending on
        # the operands' order (ranks can even disagree). NumPy's minimum/maximum propagate it,
        # as the ring's kernels do, so floats reduce through those.
        self._float_ops = {op: MPI.Op.Create(_numpy_op(ufunc), commute=True)
                           for op, ufunc in ((ReduceOp.MIN, np.minimum),
                                             (ReduceOp.MAX, np.maximum))}
        self._scratch: dict = {}
        if self.stream_bytes is None:
            self.stream_bytes = kernels.last_level_cache_bytes() // (2 * self.local_size)
        if self.cross_memory_bytes is None:
            self.cross_memory_bytes = kernels.last_level_cache_bytes() // (4 * self.local_size)
        self._shm: _SharedSlots | None = None
        # the other ranks' shared results mapped here: set wherever _cross_memory_shm can run
        self._peer_results: PeerMappings | None = None
        if 1 < self.world_size == self._node.Get_size() and self._node_is_one_job():
            self._shm = _SharedSlots(self._node, self._comm, self.shm_chunk_bytes)
            # the shared-memory ring's schedule: the chunk sent first, the chunks received at
            # each reduce-scatter step and at each all-gather step (the same every call)
            owned = ring.allreduce_owned(self.rank, self.world_size)
            rs = ring.reduce_scatter_steps(self.rank, self.world_size, owned)
            ag = ring.allgather_steps(self.rank, self.world_size, owned)
            self._shm_schedule = (rs[0][0], tuple(recv for _, recv in rs),
                                  tuple(recv for _, recv in ag))
            if self._shm.cross_memory:
                # results the others write into with streaming stores (_cross_memory_shm)
                self._results.shared_bytes = self.cross_memory_bytes
                self._peer_results = PeerMappings(self.result_cache_bytes * (self.local_size - 1))
        # Names the ranks a stalled collective waits for; ends a job whose rank froze.
        self._watchdog = watchdog.start(self._comm)

    def _node_is_one_job(self) -> bool:
        """Whether this node's ranks were all started by one mpiexec: separately started jobs
        joined into one world (world/join.py) may share a host but never a memory window."""
        MPI = self._MPI
        node = self._node.Get_group()
        ours = MPI.COMM_WORLD.Get_group()
        try:
            placed = MPI.Group.Translate_ranks(node, list(range(node.Get_size())), ours)
        finally:
            node.Free()
            ours.Free()
        return MPI.UNDEFINED not in placed

    @property
    def mpi_comm(self) -> Any:
        """The (duplicated) mpi4py communicator the collectives run on."""
        return self._comm

    def _launch(self, job: Callable[[], Any], async_op: bool, refs: tuple) -> Any:
        mpi_exception = self._MPI.Exception

        dog = self._watchdog
        # The collective's name, for the watchdog's messages: job is defined inside it.
        kind = job.__qualname__.rsplit(".<locals>", 1)[0].rsplit(".", 1)[-1]

        def guarded():
            if dog is not None:
                dog.enter(kind)
            try:
                return job()
            except mpi_exception as exc:
                raise CommError(f"MPI error on rank {self.rank}: {exc}") from exc
            finally:
                if dog is not None:
                    dog.leave()

        return super()._launch(guarded, async_op, refs)

    def split(self, member: bool, key: int) -> Any:
        """``MPI_Comm_split`` of this communicator into the members (ordered by ``key``) and
        the rest, who get None: a collective, checked and run in turn with the others (the
        communication thread may be inside one on the same MPI communicator)."""
        desc = C.descriptor("split")

        def job():
            self._verify(desc)
            return self._comm.Split(0 if member else self._MPI.UNDEFINED, key)

        sub = self._launch(job, False, ())
        return sub if member else None

    def _mpi_op(self, op: ReduceOp, dtype: np.dtype) -> Any:
        if dtype.kind == "b":
            return self._bool_ops[op]
        if dtype.kind == "f" and op in self._float_ops:
            return self._float_ops[op]
        return self._mpi_ops[op]

    # --- data movement (communication thread, or inline; one at a time) ----------------------

    def _exchange(self, desc: bytes) -> memoryview:
        MPI = self._MPI
        self._comm.Allgather([desc, MPI.BYTE], [self._desc_recv, MPI.BYTE])
        return memoryview(self._desc_recv)

    def _pick_algorithm(self, algorithm: str, nbytes: int, shm_capable: bool = True) -> str:
        if algorithm != "auto":
            return algorithm
        # the same on every rank: depends only on the (checked) message size and on whether
        # all ranks share a node (which every rank agrees on)
        if self.world_size == 1:
            return "native"
        shm = shm_capable and self._shm is not None and self.ring_transport != "p2p"
        return "ring" if nbytes >= (self.auto_ring_bytes if shm else self.auto_ring_p2p_bytes) \
            else "native"

    def _allreduce(self, src: np.ndarray, dst: np.ndarray, op: ReduceOp, alg: str) -> None:
        if alg == "ring":
            shm = self._shm
            if shm is not None and self.ring_transport != "p2p":
                if dst.nbytes <= min(self.one_shot_bytes, shm.chunk_bytes):
                    self._one_shot_shm(src, dst, op)
                elif (shm.cross_memory and self.ring_transport != "slots"
                      and dst.nbytes >= self.cross_memory_bytes
                      and kernels.peer_reduce_supports(dst.dtype)):
                    self._cross_memory_shm(src, dst, op)
                else:
                    self._ring_shm(src, dst, op)
                return
            self._ring(src, dst, ring.chunk_bounds(dst.size, self.world_size),
                       ring.allreduce_owned(self.rank, self.world_size), op, allgather=True)
            return
        mop = self._mpi_op(op, dst.dtype)
        if src is dst:
            self._comm.Allreduce(self._MPI.IN_PLACE, dst, mop)
        else:
            self._comm.Allreduce(src, dst, mop)
        if op is ReduceOp.AVG and self.world_size > 1:
            kernels.scale(dst, self.world_size)

    # --- the ring (schedule and its explanation: ring.py) ---------------------------------------

    def _tmp(self, dtype: np.dtype, elems: int) -> np.ndarray:
        buf = self._scratch.get(dtype)
        if buf is None or buf.size < elems:
            buf = self._scratch[dtype] = np.empty(elems, dtype)
        return buf

    def _ring(self, src: np.ndarray, dst: np.ndarray | None, bounds: list[tuple[int, int]],
              owned: int, op: ReduceOp, allgather: bool, final: np.ndarray | None = None
              ) -> None:
        """Reduce-scatter (then, with ``allgather``, all-gather) over the ring.

        ``src`` is never written. During reduce-scatter each chunk is received exactly once, so
        the reduction writes ``dst[chunk] = src[chunk] op received`` (three operands: no copy of
        ``src`` into ``dst`` is needed, and ``src`` may be ``dst``). The owned chunk's last
        reduction goes to ``final`` when given (reduce_scatter's output), and AVG's division is
        fused into that last reduction. All-gather receives straight into ``dst``.
        """
        n = self.world_size
        divisor = n if op is ReduceOp.AVG else 1
        if n == 1:
            a, b = bounds[0]
            target = final if final is not None else dst
            if target is not src:
                target[...] = src[a:b]
            return
        comm = self._comm
        left, right = ring.neighbours(self.rank, n)
        seg = max(1, self.segment_bytes // src.itemsize)
        tmp = self._tmp(src.dtype, 2 * seg)
        steps = ring.reduce_scatter_steps(self.rank, n, owned)
        for s, (send, recv) in enumerate(steps):
            last = s == n - 2
            sa, sb = bounds[send]
            ra, rb = bounds[recv]
            outgoing = src[sa:sb] if s == 0 else dst[sa:sb]
            target = final if last and final is not None else dst[ra:rb]
            scale = divisor if last else 1
            if rb - ra <= seg and sb - sa <= seg:
                # one segment each way: a single Sendrecv costs least
                comm.Sendrecv(outgoing, right, 0, tmp[:rb - ra], left, 0)
                kernels.reduce3(target, src[ra:rb], tmp[:rb - ra], op, scale)
                continue
            pieces = ring.segments(ra, rb, seg)
            recvs = [comm.Irecv(tmp[i * seg:i * seg + b - a], left, 0)
                     for i, (a, b) in enumerate(pieces[:2])]
            sends = [comm.Isend(outgoing[a - sa:b - sa], right, 0)
                     for a, b in ring.segments(sa, sb, seg)]
            for i, (a, b) in enumerate(pieces):
                slot = (i % 2) * seg
                recvs[i].Wait()
                kernels.reduce3(target[a - ra:b - ra], src[a:b], tmp[slot:slot + b - a], op,
                                scale)
                if i + 2 < len(pieces):
                    na, nb = pieces[i + 2]
                    recvs.append(comm.Irecv(tmp[slot:slot + nb - na], left, 0))
            self._MPI.Request.Waitall(sends)
        if not allgather:
            return
        for send, recv in ring.allgather_steps(self.rank, n, owned):
            sa, sb = bounds[send]
            ra, rb = bounds[recv]
            comm.Sendrecv(dst[sa:sb], right, 0, dst[ra:rb], left, 0)

    def _ring_shm(self, src: np.ndarray, dst: np.ndarray, op: ReduceOp) -> None:
        """The ring with a shared-memory transport, for ranks that all share one node.

        Each rank owns two slots in an ``MPI.Win.Allocate_shared`` window. "Sending" a chunk
        means writing it into one's own slot; "receiving" means reading the left neighbour's
        slot directly, so the reduction reads the neighbour's data in place (MPI messages would
        copy it once more into a receive buffer). Slots alternate between steps so one barrier
        per step suffices: a slot is rewritten only after the right neighbour has passed the
        barrier that follows its read. That barrier is between neighbours only (``shm.sync``:
        step flags in the window, kernels.step; MPI's node barrier without the C kernels), as
        a rank exchanges data with no one else. The buffer is processed in blocks of
        ``world_size * shm_chunk_bytes``, each a complete ring (same schedule as ``_ring``), so
        the slots stay in cache and main memory sees little more than src read and dst written.
        A large out-of-place ``dst`` is written with streaming stores (``stream_bytes``), so
        it is not read before it is written either.
        """
        n = self.world_size
        shm = self._shm
        mine, theirs = shm.views(src.dtype)
        per_chunk = max(1, min(mine[0].size, self.shm_chunk_bytes // src.itemsize))
        divisor = n if op is ReduceOp.AVG else 1
        first, rs, ag = self._shm_schedule
        stream = src is not dst and dst.nbytes >= self.stream_bytes
        # the loop below in C, in one call without the GIL (a Python step costs microseconds)
        done = kernels.ring_shm(src, dst, self._tmp(src.dtype, per_chunk), mine, theirs,
                                shm.flags, op, divisor, first, rs, ag, per_chunk, shm.slot,
                                shm.steps, stream)
        if done is not None:
            shm.slot, shm.steps = done
            return
        total = dst.size
        reduce3 = kernels.reduce3
        copy = functools.partial(kernels.copy, stream=True) if stream else np.copyto
        sync = shm.sync
        slot = shm.slot
        block = n * per_chunk
        full = ring.chunk_bounds(block, n)
        for start in range(0, total, block):
            bounds = full if total - start >= block else ring.chunk_bounds(total - start, n)
            a, b = bounds[first]
            mine[slot][:b - a] = src[start + a:start + b]          # send our raw chunk
            sync()
            for s, recv in enumerate(rs):
                a, b = bounds[recv]
                left = theirs[slot][:b - a]
                slot ^= 1
                out = mine[slot][:b - a]
                if s < n - 2:       # a partial sum: only the right neighbour needs it
                    reduce3(out, src[start + a:start + b], left, op)
                else:               # the owned chunk is complete: pass it on and keep it
                    reduce3(out, src[start + a:start + b], left, op, divisor)
                    copy(dst[start + a:start + b], out)
                sync()
            for s, recv in enumerate(ag):
                a, b = bounds[recv]
                left = theirs[slot][:b - a]
                copy(dst[start + a:start + b], left)
                slot ^= 1
                if s < n - 2:
                    mine[slot][:b - a] = left
                    sync()
            # No barrier after the last step: the next write goes to the other slot, which
            # the right neighbour finished reading before the previous barrier.
        shm.slot = slot

    def _one_shot_shm(self, src: np.ndarray, dst: np.ndarray, op: ReduceOp) -> None:
        """A small message on one node in a single step: every rank writes its whole input into
        its slot, waits until every rank has, and reduces all the slots itself, in rank order, so
        every rank computes the same result bit for bit (the ring needs 2 (N - 1) barriers,
        each a round trip between cores, which is all a small message costs).

        Slot reuse: a rank rewrites this slot two barriers later; with N <= 3 every barrier
        includes every rank (all are ring neighbours), so all reads of it are done by then.
        With more ranks the ring's next barrier involves neighbours only, so a barrier of all
        ranks after the reads keeps a farther rank from reading a rewritten slot.
        """
        n = self.world_size
        if dst.size == 0:
            return
        shm = self._shm
        slot = shm.slot
        parts = [views[slot][:src.size] for views in shm.slots_of_every_rank(src.dtype)]
        parts[self.rank][...] = src
        shm.sync_all()
        divisor = n if op is ReduceOp.AVG else 1
        reduce3 = kernels.reduce3
        reduce3(dst, parts[0], parts[1], op, divisor if n == 2 else 1)
        for i in range(2, n):
            reduce3(dst, dst, parts[i], op, divisor if i == n - 1 else 1)
        if n > 3:
            shm.sync_all()
        shm.slot = slot ^ 1

    def _cross_memory_shm(self, src: np.ndarray, dst: np.ndarray, op: ReduceOp) -> None:
        """A large message on one node, each byte moved once: rank r owns chunk r, reads it from
        every rank's ``src`` (the others' straight from their processes, process_vm_readv, in
        rank order, so the bits do not depend on the owner), reduces it block by block in
        cache, and writes each finished block into its own ``dst`` and every other rank's
        (process_vm_writev). The slots' ring copies every byte into a slot and out again; here
        memory sees each input read once and each result written once, with two barriers
        instead of 2 (N - 1).

        Barriers (every rank): 1, all are in the call and have published their buffers'
        addresses and size (sizes that differ, possible with the contract check off, raise on
        every rank before any access: they would read and write past the smaller buffers); 2,
        every chunk is written everywhere, and no one touches the others' buffers any more, so
        they are the caller's again. Only chunk r's owner reads or writes
        chunk r of any buffer, so ``src`` may be ``dst``. A failed access is marked before
        barrier 2; then every rank raises, none returns a result with a chunk missing.
        """
        n = self.world_size
        if dst.size == 0:
            return
        shm = self._shm
        isz = dst.itemsize
        shm.publish(src.ctypes.data, dst.ctypes.data, dst.nbytes,
                    self._results.shared_location(dst))
        shm.sync_all()
        peers = shm.published()
        if any(peer.nbytes != dst.nbytes for peer in peers):
            detail = ", ".join(f"rank {r}: {peer.nbytes} bytes" for r, peer in enumerate(peers))
            raise CollectiveMismatch(f"allreduce: every rank must pass the same size; {detail}")
        a, b = ring.chunk_bounds(dst.size, n)[self.rank]
        offset = a * isz
        sources = tuple(None if r == self.rank else (peer.pid, peer.src + offset)
                        for r, peer in enumerate(peers))
        targets = tuple(self._result_target(peer, offset, dst.nbytes)
                        for r, peer in enumerate(peers) if r != self.rank)
        scratch = self._tmp(np.dtype(np.uint8), 3 * self.cross_memory_block_bytes)
        failure = ""
        try:
            kernels.peer_reduce(dst[a:b], src[a:b], scratch, sources, targets, op,
                                n if op is ReduceOp.AVG else 1,
                                src is not dst and dst.nbytes >= self.stream_bytes)
        except OSError as exc:
            failure = str(exc)
            shm.mark_failure()
        shm.sync_all()
        self._peer_results.trim()
        failed = shm.failed_ranks()
        if failed:
            here = f" (here: {failure})" if failure else ""
            raise CommError(
                f"all-reduce on rank {self.rank}: rank(s) {failed} could not access the other "
                f"ranks' memory{here}; every rank raises, as the result is incomplete (an "
                f"in-place buffer holds partial sums). Set RINGTRAIN_CROSS_MEMORY=0 to use the "
                f"shared-memory ring instead")

    def _result_target(self, peer: _Published, offset: int, nbytes: int) -> tuple[int, int]:
        """Where this rank writes into ``peer``'s result at ``offset``: (0, address) in its
        shared block mapped here, else (its pid, address) for a write through the kernel."""
        if peer.shared is not None:
            fd, start = peer.shared
            here = self._peer_results.address(peer.pid, fd, start, nbytes)
            if here is not None:
                return 0, here + offset
        return peer.pid, peer.dst + offset

    def _broadcast(self, buf: np.ndarray, root: int) -> None:
        self._comm.Bcast(buf, root)

    def _allgatherv(self, src: np.ndarray, dst: np.ndarray, counts: list[int]) -> None:
        displs = np.cumsum([0, *counts[:-1]]).tolist()
        self._comm.Allgatherv(src, [dst, (counts, displs), self._MPI.BYTE])

    def _reduce_scatter(self, src: np.ndarray, dst: np.ndarray, counts: list[int],
                        op: ReduceOp, alg: str) -> None:
        if alg == "ring":
            starts = np.cumsum([0, *counts]).tolist()
            bounds = list(itertools.pairwise(starts))
            work = np.empty_like(src) if self.world_size > 2 else None
            self._ring(src, work, bounds, self.rank, op, allgather=False, final=dst)
            return
        self._comm.Reduce_scatter(src, dst, counts, self._mpi_op(op, src.dtype))
        if op is ReduceOp.AVG and self.world_size > 1:
            kernels.scale(dst, self.world_size)

    def _alltoall_counts(self, send_rows: list[int]) -> list[int]:
        send = np.asarray(send_rows, dtype=np.int64)
        recv = np.empty(self.world_size, dtype=np.int64)
        self._comm.Alltoall(send, recv)
        return recv.tolist()

    def _alltoallv(self, src, send_counts, dst, recv_counts) -> None:
        sdispls = np.cumsum([0, *send_counts[:-1]]).tolist()
        rdispls = np.cumsum([0, *recv_counts[:-1]]).tolist()
        BYTE = self._MPI.BYTE
        self._comm.Alltoallv([src, (send_counts, sdispls), BYTE],
                             [dst, (recv_counts, rdispls), BYTE])

    def _barrier(self) -> None:
        self._comm.Barrier()

    def _bcast_obj(self, obj: Any, root: int) -> Any:
        return self._comm.bcast(obj, root)

    def _allgather_obj(self, obj: Any) -> list:
        return self._comm.allgather(obj)

    def _exchange_at_shutdown(self, desc: bytes) -> memoryview:
        # Watched like a collective: a peer that computes on is named, a frozen one ends the job.
        dog = self._watchdog
        if dog is not None:
            dog.enter("shutdown")
        try:
            return self._exchange(desc)
        finally:
            if dog is not None:
                dog.leave()

    def _meet_at_shutdown(self) -> None:
        # No descriptor exchange (it would meet the others' unchecked collectives): a barrier
        # on the watchdog's own communicator, which the watchdog watches; ranks that wait in
        # a collective this rank never entered are heard at once and make it leave alone.
        dog = self._watchdog
        if dog is None:
            return
        dog.enter(watchdog.SHUTDOWN)
        try:
            arrived = dog.comm.Ibarrier()
            while not arrived.Test():
                stuck = dog.peers_in_collective()
                if stuck:
                    raise CollectiveMismatch(
                        f"{'rank' if len(stuck) == 1 else 'ranks'} {', '.join(map(str, stuck))}"
                        f" waited in a collective that rank {self.rank} never entered")
                time.sleep(0.005)
        finally:
            dog.leave()

    def _barrier_beside_queue(self) -> None:
        # On the watchdog's communicator (the collectives' is the communication thread's, which
        # may be waiting in an async collective the other ranks start only after this barrier).
        # Without a watchdog there is no second communicator: the ordered barrier.
        dog = self._watchdog
        if dog is None:
            self.barrier()
            return
        arrived = dog.comm.Ibarrier()
        started = time.monotonic()
        warn_every = env.get("RINGTRAIN_STALL_WARNING")
        warn_at = started + warn_every
        pause = 1e-5
        while not arrived.Test():
            now = time.monotonic()
            if now >= warn_at:
                print(f"ringtrain: rank {self.rank}: barrier() has waited {now - started:.0f} s "
                      f"for the other ranks to call barrier()", file=sys.stderr, flush=True)
                warn_at = now + warn_every
            time.sleep(pause)
            pause = min(2 * pause, 1e-3)

    def _release(self, together: bool = True) -> None:
        if self._MPI.Is_finalized():
            return
        if not together:
            # Window and communicator frees are collective and would wait forever for ranks
            # that are inside another collective; the process is ending, so leave them.
            if self._watchdog is not None:
                self._watchdog.abandon()
            _finalizing["abandoned"] = True
            return
        if self._watchdog is not None:
            self._watchdog.close()
        if self._shm is not None:
            self._shm.free()
        if self._peer_results is not None:
            self._peer_results.clear()
        self._node.Free()
        if self._owns_comm:
            self._comm.Free()
        for mpi_op in self._float_ops.values():
            mpi_op.Free()


def _numpy_op(ufunc: Any) -> Callable[[Any, Any, Any], None]:
    """An MPI user-op body: ``inout = ufunc(in, inout)`` on the buffers as NumPy arrays."""
    def reduce(inbuf: Any, inoutbuf: Any, datatype: Any) -> None:
        code = datatype.tocode()
        inout = np.frombuffer(inoutbuf, code)
        ufunc(np.frombuffer(inbuf, code), inout, out=inout)

    return reduce


class _SharedSlots:
    """Two slots of ``chunk_bytes`` per rank in one shared-memory window of the node, and after
    them a cache line of each rank's words: its step flag, its process id, the addresses of its
    buffers in a cross-memory all-reduce and the step of the barrier before which its accesses
    failed (``_PID`` ...)."""

    def __init__(self, node: Any, comm: Any, chunk_bytes: int):
        from mpi4py import MPI

        self._MPI = MPI
        self._node = node
        chunk_bytes = max(64, chunk_bytes // 64 * 64)
        self.chunk_bytes = chunk_bytes
        self.win = MPI.Win.Allocate_shared(2 * chunk_bytes + _FLAG_BYTES, 1, comm=node)
        self.win.Lock_all(MPI.MODE_NOCHECK)
        # every rank's segment, in the order of ``comm`` (whose ranks the ring's schedule names)
        n = comm.Get_size()
        me = comm.Get_rank()
        every = [self._segment(r) for r in comm.Get_group().Translate_ranks(
            list(range(n)), node.Get_group())]
        self._me, self._left = me, (me - 1) % n
        self._every = [seg[:2 * chunk_bytes] for seg in every]
        self._views: dict = {}
        self.slot = 0
        # The step barrier: neighbour flags through the C kernels (kernels.step), else MPI's
        # barrier over the node. Every rank loads the same build, so all use the same one.
        self._step = kernels.step
        self.steps = 0
        self.flags = [self._flag(every[r]) for r in (me, self._left, (me + 1) % n)]
        # the other ranks' flags in pairs, for the barrier of every rank (sync_all)
        others = [self._flag(seg) for r, seg in enumerate(every) if r != me]
        self._other_flags = [(others[i], others[min(i + 1, len(others) - 1)])
                             for i in range(0, len(others), 2)]
        self._words = [self._line(seg) for seg in every]
        self._my_words = self._words[me]
        self._my_words[:] = 0
        self._barrier()
        self.cross_memory = self._probe_cross_memory(node)

    def _probe_cross_memory(self, node: Any) -> bool:
        """Whether every rank can read and write every other rank's memory (kernels.peer_read,
        peer_write; the same answer on every rank): each publishes the address of a buffer
        holding a random word, reads the others' word and writes its own into their buffers'
        slot for it. Another process of the same pid in another pid namespace would not hold
        the word."""
        wanted = kernels.CROSS_MEMORY and env.get("RINGTRAIN_CROSS_MEMORY")
        n = len(self._words)
        probe = np.zeros(1 + n, np.uint64)          # our word, then one slot per rank
        probe[0] = np.frombuffer(os.urandom(8), np.uint64)[0]
        if wanted:
            try:
                kernels.allow_peer_access()
            except OSError:
                pass                    # the accesses below tell whether the system allows them
        mine = self._my_words
        mine[_PID], mine[_SRC], mine[_DST] = os.getpid(), probe.ctypes.data, probe[0]
        self._barrier()
        ok = wanted
        got = np.zeros(1, np.uint64)
        for r, theirs in enumerate(self._words):
            if not ok:
                break
            if r != self._me:
                pid, address = int(theirs[_PID]), int(theirs[_SRC])
                try:
                    kernels.peer_read(got, pid, address)
                    ok = got[0] == theirs[_DST]
                    kernels.peer_write(probe[:1], pid, address + 8 * (1 + self._me))
                except OSError:
                    ok = False
        self._barrier()
        ok = ok and all(probe[1 + r] == self._words[r][_DST] for r in range(n) if r != self._me)
        # also keeps ``probe`` alive until every rank is done with it
        return bool(node.allreduce(bool(ok), op=self._MPI.LAND))

    def publish(self, src: int, dst: int, nbytes: int, shared: tuple[int, int] | None) -> None:
        """Tells the other ranks where this rank's buffers are and their size, and where the
        result lies in shared memory: (memfd, offset) or None (read after the next barrier)."""
        mine = self._my_words
        mine[_SRC], mine[_DST], mine[_NBYTES] = src, dst, nbytes
        mine[_SHARED_FD], mine[_SHARED_OFFSET] = (0, 0) if shared is None \
            else (shared[0] + 1, shared[1])

    def published(self) -> list[_Published]:
        """What every rank published, in communicator order."""
        return [_Published(int(w[_PID]), int(w[_SRC]), int(w[_DST]), int(w[_NBYTES]),
                           (int(w[_SHARED_FD]) - 1, int(w[_SHARED_OFFSET]))
                           if w[_SHARED_FD] else None) for w in self._words]

    def mark_failure(self) -> None:
        """Tells the ranks at the next barrier (sync_all) that this rank's accesses failed; the
        step number keeps a later call from reading it as its own failure."""
        self._my_words[_FAILED_AT] = self.steps + 1

    def failed_ranks(self) -> list[int]:
        """The ranks that marked a failure before the barrier just passed."""
        return [r for r, w in enumerate(self._words) if int(w[_FAILED_AT]) == self.steps]

    def _segment(self, node_rank: int) -> np.ndarray:
        buf, _ = self.win.Shared_query(node_rank)
        return np.frombuffer(buf, dtype=np.uint8, count=2 * self.chunk_bytes + _FLAG_BYTES)

    def _line(self, segment: np.ndarray) -> np.ndarray:
        return segment[2 * self.chunk_bytes:].view(np.uint64)

    def _flag(self, segment: np.ndarray) -> np.ndarray:
        return self._line(segment)[:1]

    def slots_of_every_rank(self, dtype: np.dtype) -> list[list[np.ndarray]]:
        """[slot 0, slot 1] of every rank, in communicator order, as ``dtype`` arrays."""
        got = self._views.get(dtype)
        if got is None:
            c = self.chunk_bytes
            count = c // dtype.itemsize * dtype.itemsize
            got = self._views[dtype] = [[seg[i * c:i * c + count].view(dtype) for i in (0, 1)]
                                        for seg in self._every]
        return got

    def views(self, dtype: np.dtype) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """([my slot 0, my slot 1], [left's slot 0, left's slot 1]) as ``dtype`` arrays."""
        every = self.slots_of_every_rank(dtype)
        return every[self._me], every[self._left]

    def sync_all(self) -> None:
        """Returns once every rank of the node has reached this step."""
        if self._step is None:
            self._barrier()
            return
        self.steps += 1
        for a, b in self._other_flags:
            self._step(self.flags[0], a, b, self.steps)

    def sync(self) -> None:
        """Returns once both ring neighbours have written their slots of this step and read
        those of the step before (all that the slots' reuse needs: see _ring_shm)."""
        if self._step is None:
            self._barrier()
            return
        self.steps += 1
        self._step(*self.flags, self.steps)

    def _barrier(self) -> None:
        # MPI's separate-memory-model rule for shared windows: sync, barrier, sync
        self.win.Sync()
        self._node.Barrier()
        self.win.Sync()

    def free(self) -> None:
        self._views.clear()
        self._every = []
        self.flags = []
        self._words = []
        self._my_words = None
        self.win.Unlock_all()
        self.win.Free()


#: bytes after each rank's slots for its words (step flag first): a cache line of its own
_FLAG_BYTES = 64
#: the words' indices: process id, the cross-memory all-reduce's buffer addresses, the step of
#: the barrier before which its accesses failed, the buffers' size, the result's memfd + 1 (0:
#: not in shared memory) and its offset there
_PID, _SRC, _DST, _FAILED_AT, _NBYTES, _SHARED_FD, _SHARED_OFFSET = 1, 2, 3, 4, 5, 6, 7


class _Published(NamedTuple):
    """A rank's part of a cross-memory all-reduce: its process, the addresses of its buffers,
    their size and (memfd, offset) of its result where that lies in shared memory."""
    pid: int
    src: int
    dst: int
    nbytes: int
    shared: tuple[int, int] | None
