"""GPU arrays in collectives: recognising them, and moving them through pinned host memory.

Two array libraries put data on a GPU that a collective may be handed: CuPy arrays and torch
CUDA tensors. Each gets a small adapter (``DeviceArrays``) that knows its library's shapes,
dtypes, raw pointers, current stream and copies; everything above the adapters — staging through
pinned host buffers for the MPI backend (``StagedCommunicator``) and the NCCL backend
(``nccl.py``) — is written against that interface only, so the logic is unit-tested with NumPy
standing in for a device (tests register a fake adapter).

Neither library is imported here unless the caller already did: a CPU-only program never pays
for (or needs) CuPy or torch.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .base import Communicator, Handle, ReduceOp


class DeviceArrays:
    """What the collectives need to know about one GPU array library."""

    name = "device"

    def owns(self, x: Any) -> bool:
        """True when ``x`` is a device array of this library."""
        raise NotImplementedError

    def wire_dtype(self, x: Any, reducing: bool) -> np.dtype:
        """The NumPy dtype ``x`` travels as: its own, or for bfloat16 float32 when reduced
        (exact for the sum of two values, and what NCCL/torch accumulate in) and the int16 bit
        pattern when only moved."""
        raise NotImplementedError

    def shape(self, x: Any) -> tuple[int, ...]:
        return tuple(x.shape)

    def empty(self, shape: tuple[int, ...], like: Any) -> Any:
        """A new device array of ``like``'s dtype and device, of ``shape``."""
        raise NotImplementedError

    def to_host(self, x: Any, host: np.ndarray) -> None:
        """Copy ``x`` (converted to ``host.dtype``) into ``host`` and wait for the copy."""
        raise NotImplementedError

    def from_host(self, host: np.ndarray, like: Any, out: Any = None) -> Any:
        """``host`` as a device array of ``like``'s dtype on its device (into ``out`` if given)."""
        raise NotImplementedError


class CupyArrays(DeviceArrays):
    name = "cupy"

    def owns(self, x: Any) -> bool:
        cupy = sys.modules.get("cupy")
        return cupy is not None and isinstance(x, cupy.ndarray)

    def wire_dtype(self, x: Any, reducing: bool) -> np.dtype:
        return np.dtype(x.dtype)        # CuPy's dtypes are NumPy's

    def empty(self, shape: tuple[int, ...], like: Any) -> Any:
        import cupy

        with like.device:
            return cupy.empty(shape, like.dtype)

    def to_host(self, x: Any, host: np.ndarray) -> None:
        src = x if x.dtype == host.dtype else x.astype(host.dtype)
        src.get(out=host.reshape(src.shape))   # synchronous on the current stream

    def from_host(self, host: np.ndarray, like: Any, out: Any = None) -> Any:
        import cupy

        dst = out if out is not None else cupy.empty(host.shape, like.dtype)
        if host.dtype == dst.dtype:
            dst.set(host.reshape(dst.shape))
        else:
            dst[...] = cupy.asarray(host).astype(dst.dtype)
        # the pinned buffer goes back to the pool: the copy must have read it
        cupy.cuda.get_current_stream().synchronize()
        return dst


class TorchCudaArrays(DeviceArrays):
    name = "torch"

    def owns(self, x: Any) -> bool:
        torch = sys.modules.get("torch")
        return torch is not None and isinstance(x, torch.Tensor) and x.is_cuda

    def wire_dtype(self, x: Any, reducing: bool) -> np.dtype:
        import torch

        if x.dtype == torch.bfloat16:
            return np.dtype(np.float32 if reducing else np.int16)
        return np.dtype(torch.empty(0, dtype=x.dtype).numpy().dtype)

    def empty(self, shape: tuple[int, ...], like: Any) -> Any:
        return like.new_empty(shape)

    def _host_tensor(self, host: np.ndarray, like: Any) -> Any:
        import torch

        tensor = torch.from_numpy(host)
        if like.dtype == torch.bfloat16 and host.dtype == np.int16:
            tensor = tensor.view(torch.bfloat16)
        return tensor

    def to_host(self, x: Any, host: np.ndarray) -> None:
        import torch

        dst = self._host_tensor(host, x).view(x.shape)
        src = x.detach()
        if src.dtype != dst.dtype:
            src = src.to(dst.dtype)
        dst.copy_(src, non_blocking=True)
        torch.cuda.current_stream(x.device).synchronize()

    def from_host(self, host: np.ndarray, like: Any, out: Any = None) -> Any:
        import torch

        src = self._host_tensor(host, like).view(like.shape)
        dst = out if out is not None else torch.empty_like(like)
        dst.copy_(src, non_blocking=True)      # converts on the device when dtypes differ
        # the pinned buffer goes back to the pool: the copy must have read it
        torch.cuda.current_stream(like.device).synchronize()
        return dst


#: adapters in the order they are tried; tests append a NumPy-backed fake
ADAPTERS: list[DeviceArrays] = [CupyArrays(), TorchCudaArrays()]


def adapter_for(x: Any) -> DeviceArrays | None:
    """The adapter of a device array, or None for host data (NumPy, lists, CPU tensors)."""
    if type(x) is np.ndarray:       # the common case, at once (subclasses ask the adapters)
        return None
    for adapter in ADAPTERS:
        if adapter.owns(x):
            return adapter
    return None


def pinned_empty(nbytes: int) -> np.ndarray:
    """A page-locked host buffer of ``nbytes`` (CuPy's or torch's allocator; plain memory when
    neither is usable), as a uint8 NumPy array."""
    cupy = sys.modules.get("cupy")
    if cupy is not None:
        import cupyx

        return cupyx.empty_pinned((nbytes,), np.uint8)
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        return torch.empty(nbytes, dtype=torch.uint8, pin_memory=True).numpy()
    return np.empty(nbytes, np.uint8)


class PinnedPool:
    """Pinned staging buffers kept across steps: pinning memory costs far more than a copy, so
    a training loop that all-reduces the same gradient sizes every step pins them once."""

    def __init__(self, allocate: Callable[[int], np.ndarray] = pinned_empty):
        self._allocate = allocate
        self._free: dict[int, list[np.ndarray]] = {}
        self._lent: dict[int, np.ndarray] = {}      # id(view handed out) -> its allocation
        self._lock = threading.Lock()
        self.allocations = 0

    def take(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        with self._lock:
            free = self._free.get(nbytes)
            raw = free.pop() if free else None
        if raw is None:
            raw = self._allocate(nbytes)
            self.allocations += 1
        view = raw.view(dtype).reshape(shape)
        with self._lock:
            self._lent[id(view)] = raw
        return view

    def give(self, view: np.ndarray) -> None:
        with self._lock:
            raw = self._lent.pop(id(view))
            self._free.setdefault(raw.nbytes, []).append(raw)


class _StagedHandle(Handle):
    """An async collective on staged device data: the copy back to the device runs in wait()."""

    def __init__(self, inner: Handle, finish: Callable[[Any], Any]):
        self._inner = inner
        self._finish = finish
        self._done = False
        self._result: Any = None

    def wait(self, timeout: float | None = None) -> Any:
        if not self._done:
            self._result = self._finish(self._inner.wait(timeout))
            self._done = True
        return self._result

    def done(self) -> bool:
        return self._done or self._inner.done()


class OverHost(Communicator):
    """A communicator that adds device arrays to a host communicator (``self.host``) and hands
    it everything else. The methods ``Communicator`` declares are forwarded by name:
    ``__getattr__`` only sees names the class lacks, and the base class has them all."""

    host: Communicator

    def __getattr__(self, name: str) -> Any:
        # everything without device arrays (synchronize, mpi_comm, check, _launch...)
        if name == "host":      # not set yet (during __init__): no recursion
            raise AttributeError(name)
        return getattr(self.host, name)

    def barrier(self, *, after_pending: bool = True) -> None:
        self.host.barrier(after_pending=after_pending)

    def broadcast_object(self, obj: Any, root: int = 0) -> Any:
        return self.host.broadcast_object(obj, root)

    def allgather_object(self, obj: Any) -> list:
        return self.host.allgather_object(obj)

    def join(self) -> int:
        return self.host.join()

    def shutdown(self) -> None:
        self.host.shutdown()


class StagedCommunicator(OverHost):
    """Collectives on device arrays for a host backend (MPI, local): each device input is copied
    into a reused pinned host buffer, the host communicator runs the collective there in place,
    and the result is copied back to the device. Host arrays go straight to the host backend.

    This is the path for machines without NCCL and for several workers sharing one GPU (NCCL
    refuses duplicate GPUs in one communicator). Contract checks, the stall watchdog and error
    translation are the host backend's, unchanged.
    """

    def __init__(self, host: Communicator, pool: PinnedPool | None = None):
        self.host = host
        self.pool = pool if pool is not None else PinnedPool()
        self.backend = host.backend
        self.rank, self.world_size = host.rank, host.world_size
        self.local_rank, self.local_size = host.local_rank, host.local_size

    def __repr__(self) -> str:
        return f"<StagedCommunicator over {self.host!r}>"

    def _stage(self, adapter: DeviceArrays, x: Any, reducing: bool) -> np.ndarray:
        dtype = adapter.wire_dtype(x, reducing)
        if reducing and dtype == np.float16:
            # 16 bits added in float32, as the CPU path adds them: rounded once, no overflow
            # mid-sum (the copy back to the device converts)
            dtype = np.dtype(np.float32)
        buf = self.pool.take(adapter.shape(x), dtype)
        adapter.to_host(x, buf)
        return buf

    def _run(self, run: Callable[[bool], Any], finish: Callable[[Any], Any],
             staged: Sequence[np.ndarray], async_op: bool) -> Any:
        def done(result: Any) -> Any:
            try:
                return finish(result)
            finally:
                for buf in staged:
                    self.pool.give(buf)

        if async_op:
            return _StagedHandle(run(True), done)
        try:
            result = run(False)
        except BaseException:
            for buf in staged:
                self.pool.give(buf)
            raise
        return done(result)

    def allreduce(self, x, op: ReduceOp = ReduceOp.SUM, algorithm: str | None = None, out=None,
                  async_op: bool = False):
        adapter = adapter_for(x)
        if adapter is None:
            return self.host.allreduce(x, op, algorithm, out=out, async_op=async_op)
        buf = self._stage(adapter, x, reducing=True)
        return self._run(
            lambda a: self.host.allreduce(buf, op, algorithm, out=buf, async_op=a),
            lambda res: adapter.from_host(res, x, out), [buf], async_op)

    def allreduce_many(self, arrays: Sequence, op: ReduceOp = ReduceOp.SUM,
                       algorithm: str | None = None, bucket_bytes: int | None = None,
                       async_op: bool = False):
        adapters = [adapter_for(a) for a in arrays]
        if not any(adapters):
            return self.host.allreduce_many(arrays, op, algorithm, bucket_bytes, async_op)
        staged = [a if ad is None else self._stage(ad, a, reducing=True)
                  for a, ad in zip(arrays, adapters)]
        pinned = [s for s, ad in zip(staged, adapters) if ad is not None]

        def finish(results: list) -> list:
            return [r if ad is None else ad.from_host(r, a)
                    for r, a, ad in zip(results, arrays, adapters)]

        return self._run(
            lambda a: self.host.allreduce_many(staged, op, algorithm, bucket_bytes, a),
            finish, pinned, async_op)

    def broadcast(self, x, root: int = 0, out=None, async_op: bool = False):
        adapter = adapter_for(x)
        if adapter is None:
            return self.host.broadcast(x, root, out=out, async_op=async_op)
        buf = self._stage(adapter, x, reducing=False)
        return self._run(lambda a: self.host.broadcast(buf, root, out=buf, async_op=a),
                         lambda res: adapter.from_host(res, x, out), [buf], async_op)

    def _reshaped(self, name: str, x, async_op: bool, *args, **kwargs):
        """allgather / reduce_scatter / alltoall: results of a new shape, new device arrays."""
        adapter = adapter_for(x)
        call = getattr(self.host, name)
        if adapter is None:
            return call(x, *args, async_op=async_op, **kwargs)
        buf = self._stage(adapter, x, reducing=name == "reduce_scatter")

        def finish(res: np.ndarray) -> Any:
            result = adapter.empty(res.shape, x)
            return adapter.from_host(res, result, out=result)

        return self._run(lambda a: call(buf, *args, async_op=a, **kwargs), finish, [buf],
                         async_op)

    def allgather(self, x, async_op: bool = False):
        return self._reshaped("allgather", x, async_op)

    def reduce_scatter(self, x, op: ReduceOp = ReduceOp.SUM, async_op: bool = False,
                       algorithm: str | None = None):
        return self._reshaped("reduce_scatter", x, async_op, op, algorithm=algorithm)

    def alltoall(self, x, splits: Sequence[int] | None = None, async_op: bool = False):
        return self._reshaped("alltoall", x, async_op, splits)

