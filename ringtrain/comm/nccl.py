"""The ``nccl`` backend: collectives on GPU arrays (CuPy arrays, torch CUDA tensors) over NCCL.

One NCCL communicator per worker, on the worker's GPU, created from a unique id that rank 0
makes and broadcasts over the host (MPI) communicator. The host communicator stays in charge
of everything that is not GPU data movement: host arrays and objects, barriers, and — for
every NCCL call too — the contract check (the 128-byte descriptor exchange that turns a
mismatch into ``CollectiveMismatch`` on every rank) and the stall watchdog. Each NCCL call is
enqueued from the host communicator's communication thread, right after its descriptor
exchange, so NCCL calls and host collectives keep one order on every rank.

Streams: a collective runs on this communicator's own CUDA stream, ordered after the
producer's current stream by an event (no device-wide synchronisation), and the caller's
current stream waits for the collective's completion event before using the result. Inputs
and outputs stay referenced by the handle until that event has passed.

``algorithm="native"`` (and ``"auto"``) is NCCL's own collective; ``"ring"`` is our ring
(ring.py's schedule) over NCCL grouped send/recv with a CuPy kernel for the reduction.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .. import env
from ..errors import CommError
from . import contract as C
from . import ring
from .base import Handle, ReduceOp
from .device import OverHost, adapter_for

# NCCL's enum values (nccl.h), used when the installed CuPy does not name one
_NCCL_DTYPES = {"int8": 0, "uint8": 1, "int32": 2, "uint32": 3, "int64": 4, "uint64": 5,
                "float16": 6, "float32": 7, "float64": 8, "bfloat16": 9}
_NCCL_OPS = {ReduceOp.SUM: 0, ReduceOp.MAX: 2, ReduceOp.MIN: 3, ReduceOp.AVG: 4}


def nccl_dtype(name: str) -> int:
    """NCCL's datatype code for a dtype name (bool travels as uint8)."""
    name = "uint8" if name == "bool" else name
    if name not in _NCCL_DTYPES:
        raise TypeError(f"NCCL cannot reduce or move dtype {name}; cast to one of "
                        f"{', '.join(_NCCL_DTYPES)}")
    return _NCCL_DTYPES[name]


def ring_allreduce(length: int, rank: int, world_size: int,
                   sendrecv: Callable[[tuple[int, int], int, tuple[int, int], int], None],
                   reduce: Callable[[tuple[int, int]], None],
                   copy: Callable[[tuple[int, int]], None]) -> None:
    """Our ring all-reduce over any transport, as calls on element ranges of one buffer.

    ``sendrecv(send_range, right, recv_range, left)`` sends this rank's result elements in
    ``send_range`` to the right neighbour while receiving the left neighbour's elements for
    ``recv_range`` into a scratch buffer; ``reduce(range)`` folds the scratch into the result;
    ``copy(range)`` stores it. The NCCL backend passes grouped ncclSend/ncclRecv and CuPy
    kernels; the tests pass MPI Sendrecv on NumPy arrays.
    """
    if world_size == 1 or length == 0:
        return
    bounds = ring.chunk_bounds(length, world_size)
    left, right = ring.neighbours(rank, world_size)
    owned = ring.allreduce_owned(rank, world_size)
    for send, recv in ring.reduce_scatter_steps(rank, world_size, owned):
        sendrecv(bounds[send], right, bounds[recv], left)
        reduce(bounds[recv])
    for send, recv in ring.allgather_steps(rank, world_size, owned):
        sendrecv(bounds[send], right, bounds[recv], left)
        copy(bounds[recv])


class _Cuda:
    """The CuPy pieces: device arrays as CuPy arrays (zero-copy for torch tensors), streams."""

    def __init__(self, device_id: int):
        import cupy
        from cupy.cuda import nccl

        self.cupy, self.nccl = cupy, nccl
        self.device = cupy.cuda.Device(device_id)
        with self.device:
            self.stream = cupy.cuda.Stream(non_blocking=True)

    def view(self, x: Any) -> tuple[Any, str]:
        """(CuPy array sharing ``x``'s memory, dtype name); bfloat16 tensors as int16 bits."""
        if isinstance(x, self.cupy.ndarray):
            return x, x.dtype.name
        import torch

        if x.dtype == torch.bfloat16:
            return self.cupy.asarray(x.detach().view(torch.int16)), "bfloat16"
        return self.cupy.asarray(x.detach()), str(x.dtype).removeprefix("torch.")

    def producer_stream(self, x: Any) -> Any:
        if isinstance(x, self.cupy.ndarray):
            return self.cupy.cuda.get_current_stream()
        import torch

        return self.cupy.cuda.ExternalStream(torch.cuda.current_stream(x.device).cuda_stream)

    def after(self, stream: Any) -> None:
        """Make our stream wait for everything enqueued on ``stream`` so far."""
        event = self.cupy.cuda.Event(disable_timing=True)
        event.record(stream)
        self.stream.wait_event(event)

    def done_event(self) -> Any:
        event = self.cupy.cuda.Event(disable_timing=True)
        event.record(self.stream)
        return event


class _NcclHandle(Handle):
    """Completed when the collective's CUDA event has passed; ``wait`` makes the caller's
    stream wait for it and converts the result (torch tensors come back as torch tensors)."""

    def __init__(self, owner: NcclCommunicator, event: Any, consumer: Any, result: Any,
                 refs: tuple, what: str):
        self._owner, self._event, self._consumer = owner, event, consumer
        self._result, self._refs, self._what = result, refs, what

    def done(self) -> bool:
        return self._event.query()

    def wait(self, timeout: float | None = None) -> Any:
        limit = env.get("RINGTRAIN_TIMEOUT") if timeout is None else timeout
        deadline = time.monotonic() + limit
        while not self._event.query():
            self._owner._check_async(self._what)
            if time.monotonic() > deadline:
                self._owner._abort(f"{self._what} did not finish within {limit:g} s "
                                   f"(RINGTRAIN_TIMEOUT); another rank may have stopped")
            time.sleep(50e-6)
        self._consumer.wait_event(self._event)
        self._refs = ()
        return self._result

    def wait_on_device(self) -> Any:
        """The result, with the stream that was current at the call waiting for the
        collective on the device while the host goes on (torch.distributed's NCCL
        ``work.wait()``). Keep the handle and ``wait()`` on it later: that host check is
        what surfaces NCCL errors and timeouts; until then it keeps the buffers alive."""
        self._consumer.wait_event(self._event)
        return self._result


class NcclCommunicator(OverHost):
    """GPU collectives over NCCL; host arrays and objects through ``host`` (MPI or local)."""

    backend = "nccl"

    def __init__(self, host: Any, device_id: int):
        self.host = host
        self.rank, self.world_size = host.rank, host.world_size
        self.local_rank, self.local_size = host.local_rank, host.local_size
        self.device_id = device_id
        self._cuda = _Cuda(device_id)
        nccl = self._cuda.nccl
        uid = host.broadcast_object(nccl.get_unique_id() if host.rank == 0 else None)
        try:
            with self._cuda.device:
                self._nccl = nccl.NcclCommunicator(self.world_size, uid, self.rank)
        except nccl.NcclError as exc:
            raise CommError(f"rank {self.rank}: NCCL could not start on GPU {device_id}: {exc}. "
                            f"NCCL needs one distinct GPU per worker (several workers on one "
                            f"GPU: RINGTRAIN_BACKEND=mpi stages GPU arrays through host "
                            f"memory)") from None

    def __repr__(self) -> str:
        return f"<NcclCommunicator rank {self.rank}/{self.world_size} GPU {self.device_id}>"

    # --- errors ----------------------------------------------------------------------------

    def _check_async(self, what: str) -> None:
        try:
            self._nccl.check_async_error()
        except self._cuda.nccl.NcclError as exc:
            self._abort(f"{what} failed in NCCL: {exc}")

    def _abort(self, message: str) -> None:
        self._nccl.abort()
        raise CommError(f"rank {self.rank}: {message}")

    # --- the common path of every device collective -----------------------------------------

    def _device_call(self, what: str, desc: bytes, x: Any, result: Any,
                     enqueue: Callable[[int], None], async_op: bool, refs: tuple) -> Any:
        """Check the contract on the host, then enqueue ``enqueue(stream_ptr)`` on our stream
        after the producer's work; returns the result (or a handle)."""
        cuda = self._cuda
        producer = cuda.producer_stream(x)

        def job() -> Any:
            self.host._verify(desc)
            # The communication thread's current device is GPU 0 unless set: events created
            # for another GPU's streams must be made on that GPU.
            with cuda.device:
                cuda.after(producer)
                try:
                    enqueue(cuda.stream.ptr)
                except cuda.nccl.NcclError as exc:
                    self._abort(f"{what} failed in NCCL: {exc}")
                return cuda.done_event()

        job.__qualname__ = f"{type(self).__name__}.{what}.<locals>.job"   # the watchdog's name
        event = self.host._launch(job, False, ())   # watched like any host collective
        handle = _NcclHandle(self, event, producer, result, refs + (x,), what)
        return handle if async_op else handle.wait()

    # --- collectives -----------------------------------------------------------------------

    def allreduce(self, x, op: ReduceOp = ReduceOp.SUM, algorithm: str | None = None, out=None,
                  async_op: bool = False):
        if adapter_for(x) is None:
            return self.host.allreduce(x, op, algorithm, out=out, async_op=async_op)
        rop = C.check_op(op, "allreduce")
        alg = C.check_algorithm(algorithm, "allreduce")
        src, dtype = self._cuda.view(x)
        if dtype != "bfloat16":
            C.check_reducible(np.dtype(dtype), rop, "allreduce")
        result = out if out is not None else _empty_like(x)
        dst, _ = self._cuda.view(result)
        desc = C.descriptor("allreduce", tuple(src.shape), _descriptor_dtype(src, dtype), rop,
                            algorithm="ring" if alg == "ring" else "native",
                            name=C.operation_name())
        code = nccl_dtype(dtype)

        def enqueue(stream: int) -> None:
            if alg == "ring" and self.world_size > 1:
                self._ring(src, dst, code, rop, stream)
                return
            self._nccl.allReduce(src.data.ptr, dst.data.ptr, src.size, code,
                                 _NCCL_OPS[rop], stream)

        return self._device_call("allreduce", desc, x, result, enqueue, async_op, (result,))

    def allreduce_many(self, arrays: Sequence, op: ReduceOp = ReduceOp.SUM,
                       algorithm: str | None = None, bucket_bytes: int | None = None,
                       async_op: bool = False):
        if not any(adapter_for(a) is not None for a in arrays):
            return self.host.allreduce_many(arrays, op, algorithm, bucket_bytes, async_op)
        # NCCL fuses the calls of one group itself: one grouped launch per list
        handles = [self.allreduce(a, op, algorithm, async_op=True) for a in arrays]
        if async_op:
            return _ListHandle(handles)
        return [h.wait() for h in handles]

    def broadcast(self, x, root: int = 0, out=None, async_op: bool = False):
        if adapter_for(x) is None:
            return self.host.broadcast(x, root, out=out, async_op=async_op)
        r = C.check_root(root, self.world_size, "broadcast")
        src, dtype = self._cuda.view(x)
        result = out if out is not None else _empty_like(x)
        dst, _ = self._cuda.view(result)
        desc = C.descriptor("broadcast", tuple(src.shape), _descriptor_dtype(src, dtype), root=r,
                            name=C.operation_name())

        def enqueue(stream: int) -> None:
            nbytes = src.size * src.itemsize
            self._nccl.broadcast(src.data.ptr, dst.data.ptr, nbytes, _NCCL_DTYPES["uint8"], r,
                                 stream)

        return self._device_call("broadcast", desc, x, result, enqueue, async_op, (result,))

    def allgather(self, x, async_op: bool = False):
        """Ragged first dimensions: the row counts are exchanged first (host), then each
        rank's rows are broadcast from it into its place (one NCCL group)."""
        if adapter_for(x) is None:
            return self.host.allgather(x, async_op=async_op)
        src, dtype = self._cuda.view(x)
        if src.ndim == 0:
            src = src.reshape(1)
        rows = self.host.allgather_object(int(src.shape[0]))
        result = _empty_like(x, (sum(rows), *src.shape[1:]))
        dst, _ = self._cuda.view(result)
        row_bytes = int(np.prod(src.shape[1:], dtype=np.int64)) * src.itemsize
        desc = C.descriptor("allgather", tuple(src.shape), _descriptor_dtype(src, dtype),
                            name=C.operation_name())
        u8 = _NCCL_DTYPES["uint8"]

        def enqueue(stream: int) -> None:
            nccl = self._cuda.nccl
            offsets = np.concatenate([[0], np.cumsum(rows)]) * row_bytes
            nccl.groupStart()
            try:
                for peer, count in enumerate(rows):
                    send = src.data.ptr if peer == self.rank else dst.data.ptr + int(offsets[peer])
                    self._nccl.broadcast(send, dst.data.ptr + int(offsets[peer]),
                                         count * row_bytes, u8, peer, stream)
            finally:
                nccl.groupEnd()

        return self._device_call("allgather", desc, x, result, enqueue, async_op, (result,))

    def reduce_scatter(self, x, op: ReduceOp = ReduceOp.SUM, async_op: bool = False,
                       algorithm: str | None = None):
        """Rank r gets part r of ``np.array_split(reduced, world_size)`` along axis 0: uneven
        parts are an ncclReduce per part, grouped (ncclReduceScatter needs equal parts)."""
        if adapter_for(x) is None:
            return self.host.reduce_scatter(x, op, async_op=async_op, algorithm=algorithm)
        rop = C.check_op(op, "reduce_scatter")
        src, dtype = self._cuda.view(x)
        C.check_axis0(src, "reduce_scatter")
        parts = C.check_splits(None, src.shape[0], self.world_size, "reduce_scatter")
        row = int(np.prod(src.shape[1:], dtype=np.int64))
        result = _empty_like(x, (parts[self.rank], *src.shape[1:]))
        dst, _ = self._cuda.view(result)
        desc = C.descriptor("reduce_scatter", tuple(src.shape), _descriptor_dtype(src, dtype),
                            rop, algorithm="native", name=C.operation_name())
        code = nccl_dtype(dtype)

        def enqueue(stream: int) -> None:
            nccl = self._cuda.nccl
            start = 0
            nccl.groupStart()
            try:
                for peer, count in enumerate(parts):
                    offset = start * row * src.itemsize
                    self._nccl.reduce(src.data.ptr + offset, dst.data.ptr, count * row, code,
                                      _NCCL_OPS[rop], peer, stream)
                    start += count
            finally:
                nccl.groupEnd()

        return self._device_call("reduce_scatter", desc, x, result, enqueue, async_op,
                                 (result,))

    def alltoall(self, x, splits: Sequence[int] | None = None, async_op: bool = False):
        """Grouped ncclSend/ncclRecv; the receive counts come from a host exchange first."""
        if adapter_for(x) is None:
            return self.host.alltoall(x, splits, async_op=async_op)
        src, dtype = self._cuda.view(x)
        C.check_axis0(src, "alltoall")
        parts = C.check_splits(splits, src.shape[0], self.world_size, "alltoall")
        received = [row[self.rank] for row in self.host.allgather_object(parts)]
        result = _empty_like(x, (sum(received), *src.shape[1:]))
        dst, _ = self._cuda.view(result)
        row_bytes = int(np.prod(src.shape[1:], dtype=np.int64)) * src.itemsize
        desc = C.descriptor("alltoall", tuple(src.shape), _descriptor_dtype(src, dtype),
                            name=C.operation_name())
        u8 = _NCCL_DTYPES["uint8"]

        def enqueue(stream: int) -> None:
            nccl = self._cuda.nccl
            send_off = np.concatenate([[0], np.cumsum(parts)]) * row_bytes
            recv_off = np.concatenate([[0], np.cumsum(received)]) * row_bytes
            nccl.groupStart()
            try:
                for peer in range(self.world_size):
                    if parts[peer]:
                        self._nccl.send(src.data.ptr + int(send_off[peer]),
                                        parts[peer] * row_bytes, u8, peer, stream)
                    if received[peer]:
                        self._nccl.recv(dst.data.ptr + int(recv_off[peer]),
                                        received[peer] * row_bytes, u8, peer, stream)
            finally:
                nccl.groupEnd()

        return self._device_call("alltoall", desc, x, result, enqueue, async_op, (result,))

    # --- our ring over NCCL send/recv --------------------------------------------------------

    def _ring(self, src: Any, dst: Any, code: int, op: ReduceOp, stream: int) -> None:
        cupy, nccl = self._cuda.cupy, self._cuda.nccl
        flat_src, flat = src.reshape(-1), dst.reshape(-1)
        with self._cuda.stream:
            flat[...] = flat_src
            scratch = cupy.empty_like(flat)
        item = flat.itemsize

        def sendrecv(send: tuple[int, int], right: int, recv: tuple[int, int],
                     left: int) -> None:
            nccl.groupStart()
            try:
                self._nccl.send(flat.data.ptr + send[0] * item, send[1] - send[0], code, right,
                                stream)
                self._nccl.recv(scratch.data.ptr + recv[0] * item, recv[1] - recv[0], code,
                                left, stream)
            finally:
                nccl.groupEnd()

        combine = {ReduceOp.SUM: cupy.add, ReduceOp.AVG: cupy.add,
                   ReduceOp.MIN: cupy.minimum, ReduceOp.MAX: cupy.maximum}[op]

        def reduce(r: tuple[int, int]) -> None:
            with self._cuda.stream:
                combine(flat[r[0]:r[1]], scratch[r[0]:r[1]], out=flat[r[0]:r[1]])

        def copy(r: tuple[int, int]) -> None:
            with self._cuda.stream:
                flat[r[0]:r[1]] = scratch[r[0]:r[1]]

        ring_allreduce(flat.size, self.rank, self.world_size, sendrecv, reduce, copy)
        if op is ReduceOp.AVG:
            with self._cuda.stream:
                flat /= self.world_size

    def shutdown(self) -> None:
        try:
            self.host.synchronize()
            self._cuda.stream.synchronize()
            self._nccl.destroy()
        finally:
            self.host.shutdown()


class _ListHandle(Handle):
    def __init__(self, handles: list[Handle]):
        self._handles = handles

    def wait(self, timeout: float | None = None) -> list:
        return [h.wait(timeout) for h in self._handles]

    def done(self) -> bool:
        return all(h.done() for h in self._handles)


def _descriptor_dtype(arr: Any, name: str) -> np.dtype:
    """The dtype the contract descriptor records (bfloat16 as its int16 bits)."""
    return np.dtype(np.int16) if name == "bfloat16" else np.dtype(arr.dtype)


def _empty_like(x: Any, shape: tuple[int, ...] | None = None) -> Any:
    """A new device array of ``x``'s library, dtype and device."""
    return adapter_for(x).empty(tuple(x.shape) if shape is None else shape, x)
