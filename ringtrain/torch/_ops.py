"""Horovod's collective functions on torch tensors: allreduce, allgather, broadcast, alltoall,
their async and in-place forms, handles (poll/synchronize), objects, barrier and join."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..comm.base import Communicator, ReduceOp
from ..errors import NotInitializedError
from ..world import process_group
from . import _convert
from ._compression import Compression

# --- reduction ops (Horovod's hvd.Average, hvd.Sum, ...) ---------------------------------------

Average = ReduceOp.AVG
Sum = ReduceOp.SUM
Min = ReduceOp.MIN
Max = ReduceOp.MAX


class _Unsupported:
    """A Horovod op ringtrain does not implement; using it raises NotImplementedError."""

    def __init__(self, name: str, advice: str):
        self.name = name
        self.advice = advice

    def __repr__(self) -> str:
        return f"hvd.{self.name}"


Adasum = _Unsupported("Adasum", "use op=hvd.Average (the default) and scale the learning rate "
                                "by hvd.size()")
Product = _Unsupported("Product", "reduce logarithms with op=hvd.Sum, or gather with "
                                  "hvd.allgather and multiply")


def resolve_op(op: Any, average: bool | None, what: str) -> ReduceOp:
    """Horovod's op/average arguments as a ReduceOp (default Average)."""
    if op is not None and average is not None:
        raise ValueError(f"{what}: got both op= and the deprecated average=; pass only "
                         f"op=hvd.Average or op=hvd.Sum")
    if op is None:
        return Sum if average is False else Average
    if isinstance(op, _Unsupported):
        raise NotImplementedError(f"{what}: op=hvd.{op.name} is not supported by ringtrain; "
                                  f"{op.advice}")
    if not isinstance(op, ReduceOp):
        raise TypeError(f"{what}: op must be hvd.Average, hvd.Sum, hvd.Min or hvd.Max, "
                         f"got {op!r}")
    return op


def comm() -> Communicator:
    """The process group's communicator, or NotInitializedError saying to call init()."""
    try:
        return process_group.comm()
    except NotInitializedError:
        raise NotInitializedError("ringtrain.torch has not been initialized; call hvd.init() "
                                  "first") from None


def _number(value: Any, what: str, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what}: {name} must be a number, got {type(value).__name__}")
    return float(value)


def _check_root(root_rank: Any, what: str) -> int:
    if isinstance(root_rank, bool) or not isinstance(root_rank, int):
        raise TypeError(f"{what}: root_rank must be an int rank, got {type(root_rank).__name__}")
    world = comm().world_size
    if not 0 <= root_rank < world:
        raise ValueError(f"{what}: root_rank={root_rank} is not a rank of this job of {world} "
                         f"worker(s) (valid: 0..{world - 1})")
    return root_rank


# --- handles -------------------------------------------------------------------------------------

class _Pending:
    __slots__ = ("finish", "handle")

    def __init__(self, handle: Any, finish: Callable[[Any], Any]):
        self.handle = handle        # the communicator's Handle (keeps the buffers alive)
        self.finish = finish        # turns the handle's result into the tensor(s) returned


_handles: dict[int, _Pending] = {}
_handle_ids = itertools.count(1)
_handle_lock = threading.Lock()


def _register(handle: Any, finish: Callable[[Any], Any]) -> int:
    with _handle_lock:
        handle_id = next(_handle_ids)
        _handles[handle_id] = _Pending(handle, finish)
    return handle_id


def poll(handle: int) -> bool:
    """True when the async operation behind ``handle`` has finished (synchronize won't block)."""
    with _handle_lock:
        pending = _handles.get(handle)
    if pending is None:
        raise ValueError(f"poll: {handle!r} is not a handle of a pending operation (it was "
                         f"never returned by an *_async function, or was already synchronized)")
    return pending.handle.done()


def synchronize(handle: int) -> Any:
    """Wait for an async operation and return its result (None for an unknown handle)."""
    with _handle_lock:
        pending = _handles.pop(handle, None)
    if pending is None:
        return None
    return pending.finish(pending.handle.wait())


def _clear_handles() -> None:
    with _handle_lock:
        _handles.clear()


# --- allreduce -----------------------------------------------------------------------------------

def _allreduce_async(tensor: torch.Tensor, in_place: bool, op: ReduceOp, prescale: float,
                     postscale: float, what: str) -> int:
    """All-reduce ``tensor`` into a new tensor or, ``in_place``, into ``tensor`` itself.

    The reduction runs in place on ``work``: the tensor's own memory when that is possible
    (in place, contiguous, a dtype NumPy can reduce), else a contiguous copy.
    """
    _convert.check_tensor(tensor, what)
    if tensor.dtype == torch.bool and op in (Sum, Average):
        raise TypeError(f"{what}: op={op.name} is not defined for bool tensors; use hvd.Max or "
                        f"hvd.Min, or cast to an integer dtype")
    source = tensor.detach()
    # The collectives average floating dtypes only; integers are summed, then divided here.
    integer_average = op is Average and not source.is_floating_point()
    if not _convert.reducible(source):
        work = source.to(torch.float32, memory_format=torch.contiguous_format)
    elif in_place and source.is_contiguous():
        work = source
    else:
        work = source.clone(memory_format=torch.contiguous_format)
    if prescale != 1.0:
        work.mul_(prescale)
    array = _convert.as_array(work)
    group = comm()
    handle = group.allreduce(array, op=Sum if integer_average else op, out=array,
                             async_op=True)

    def finish(_result: Any) -> torch.Tensor:
        result = work
        if integer_average:
            result = torch.div(result, group.world_size, rounding_mode="trunc")
        if postscale != 1.0:
            result = result.mul_(postscale) if result.is_floating_point() \
                else (result * postscale).to(result.dtype)
        if not in_place:
            return result.to(source.dtype)
        if result.data_ptr() != source.data_ptr():
            with torch.no_grad():
                source.copy_(result)
        return tensor

    return _register(handle, finish)


def allreduce_async(tensor: torch.Tensor, average: bool | None = None, name: str | None = None,
                    op: Any = None, prescale_factor: float = 1.0, postscale_factor: float = 1.0,
                    process_set: Any = None) -> int:
    """Start averaging (or summing, min, max) ``tensor`` over all workers; returns a handle.

    The input is not modified; ``synchronize(handle)`` returns a new tensor
    ``postscale_factor * op(prescale_factor * tensor)``. ``name`` is accepted for Horovod
    compatibility (ringtrain matches collectives by call order, not by name).
    """
    _no_process_sets(process_set, "allreduce_async")
    rop = resolve_op(op, average, "allreduce_async")
    return _allreduce_async(tensor, False, rop,
                            _number(prescale_factor, "allreduce_async", "prescale_factor"),
                            _number(postscale_factor, "allreduce_async", "postscale_factor"),
                            "allreduce_async")


def allreduce_async_(tensor: torch.Tensor, average: bool | None = None, name: str | None = None,
                     op: Any = None, prescale_factor: float = 1.0, postscale_factor: float = 1.0,
                     process_set: Any = None) -> int:
    """In-place ``allreduce_async``: ``synchronize(handle)`` returns ``tensor`` itself."""
    _no_process_sets(process_set, "allreduce_async_")
    rop = resolve_op(op, average, "allreduce_async_")
    return _allreduce_async(tensor, True, rop,
                            _number(prescale_factor, "allreduce_async_", "prescale_factor"),
                            _number(postscale_factor, "allreduce_async_", "postscale_factor"),
                            "allreduce_async_")


class _AllreduceFunction(torch.autograd.Function):
    """allreduce as an autograd function: the gradient is all-reduced with the same op."""

    @staticmethod
    def forward(ctx, tensor, op, prescale, postscale):
        ctx.op, ctx.prescale, ctx.postscale = op, prescale, postscale
        return synchronize(_allreduce_async(tensor, False, op, prescale, postscale, "allreduce"))

    @staticmethod
    def backward(ctx, grad_output):
        grad = synchronize(_allreduce_async(grad_output, False, ctx.op, ctx.prescale,
                                            ctx.postscale, "allreduce (backward)"))
        return grad, None, None, None


def allreduce(tensor: torch.Tensor, average: bool | None = None, name: str | None = None,
              compression: Any = None, op: Any = None, prescale_factor: float = 1.0,
              postscale_factor: float = 1.0, process_set: Any = None) -> torch.Tensor:
    """``tensor`` averaged (default), summed, min'd or max'd over all workers; a new tensor.

    Differentiable: if ``tensor`` requires grad, the gradient is all-reduced the same way.
    ``compression`` (``hvd.Compression.fp16``) compresses what travels between workers.
    """
    _no_process_sets(process_set, "allreduce")
    rop = resolve_op(op, average, "allreduce")
    pre = _number(prescale_factor, "allreduce", "prescale_factor")
    post = _number(postscale_factor, "allreduce", "postscale_factor")
    _convert.check_tensor(tensor, "allreduce")
    compression = Compression.none if compression is None else compression
    compressed, ctx = compression.compress(tensor)
    if compressed.requires_grad and torch.is_grad_enabled():
        reduced = _AllreduceFunction.apply(compressed, rop, pre, post)
    else:
        reduced = synchronize(_allreduce_async(compressed, False, rop, pre, post, "allreduce"))
    return compression.decompress(reduced, ctx)


def allreduce_(tensor: torch.Tensor, average: bool | None = None, name: str | None = None,
               op: Any = None, prescale_factor: float = 1.0, postscale_factor: float = 1.0,
               process_set: Any = None) -> torch.Tensor:
    """In-place ``allreduce``; returns ``tensor``."""
    return synchronize(allreduce_async_(tensor, average, name, op, prescale_factor,
                                        postscale_factor, process_set))


# --- allgather -----------------------------------------------------------------------------------

def allgather_async(tensor: torch.Tensor, name: str | None = None,
                    process_set: Any = None) -> int:
    """Start concatenating every worker's ``tensor`` along dimension 0 (first dimensions may
    differ; the others must match); ``synchronize`` returns the result in rank order.
    A 0-d tensor counts as one row."""
    _no_process_sets(process_set, "allgather_async")
    _convert.check_tensor(tensor, "allgather_async")
    source = tensor.detach().contiguous()
    if source.dim() == 0:
        source = source.reshape(1)
    handle = comm().allgather(_convert.as_array(source), async_op=True)
    return _register(handle, lambda result: _convert.from_array(result, source.dtype))


class _AllgatherFunction(torch.autograd.Function):
    """allgather as an autograd function: every worker's gradient of the gathered tensor is
    averaged (Horovod's rule), and each worker keeps the rows it contributed."""

    @staticmethod
    def forward(ctx, tensor):
        gathered = synchronize(allgather_async(tensor))
        rows = torch.tensor([tensor.shape[0] if tensor.dim() else 1], dtype=torch.int64)
        ctx.counts = synchronize(allgather_async(rows)).tolist()
        ctx.scalar = tensor.dim() == 0
        return gathered

    @staticmethod
    def backward(ctx, grad_output):
        averaged = synchronize(_allreduce_async(grad_output, False, Average, 1.0, 1.0,
                                                "allgather (backward)"))
        me = comm().rank
        start = sum(ctx.counts[:me])
        grad = averaged.narrow(0, start, ctx.counts[me])
        return grad.reshape(()) if ctx.scalar else grad


def allgather(tensor: torch.Tensor, name: str | None = None, process_set: Any = None
              ) -> torch.Tensor:
    """Every worker's ``tensor`` concatenated along dimension 0 in rank order (differentiable)."""
    _no_process_sets(process_set, "allgather")
    _convert.check_tensor(tensor, "allgather")
    if tensor.requires_grad and torch.is_grad_enabled():
        return _AllgatherFunction.apply(tensor)
    return synchronize(allgather_async(tensor))


# --- broadcast -----------------------------------------------------------------------------------

def _broadcast_async(tensor: torch.Tensor, root_rank: int, in_place: bool, what: str) -> int:
    _convert.check_tensor(tensor, what)
    root = _check_root(root_rank, what)
    source = tensor.detach()
    if in_place and source.is_contiguous():
        work = source
    else:
        work = source.clone(memory_format=torch.contiguous_format)
    array = _convert.as_array(work)
    handle = comm().broadcast(array, root=root, out=array, async_op=True)

    def finish(_result: Any) -> torch.Tensor:
        if not in_place:
            return work
        if work.data_ptr() != source.data_ptr():
            with torch.no_grad():
                tensor.copy_(work)
        return tensor

    return _register(handle, finish)


def broadcast_async(tensor: torch.Tensor, root_rank: int, name: str | None = None,
                    process_set: Any = None) -> int:
    """Start copying ``root_rank``'s ``tensor`` to every worker; ``synchronize`` returns a new
    tensor (the input is not modified)."""
    _no_process_sets(process_set, "broadcast_async")
    return _broadcast_async(tensor, root_rank, False, "broadcast_async")


def broadcast_async_(tensor: torch.Tensor, root_rank: int, name: str | None = None,
                     process_set: Any = None) -> int:
    """In-place ``broadcast_async``: ``synchronize`` returns ``tensor`` holding root's value."""
    _no_process_sets(process_set, "broadcast_async_")
    return _broadcast_async(tensor, root_rank, True, "broadcast_async_")


class _BroadcastFunction(torch.autograd.Function):
    """broadcast as an autograd function: the gradient is averaged over workers and flows back
    to the root only (Horovod's rule)."""

    @staticmethod
    def forward(ctx, tensor, root_rank):
        ctx.root_rank = root_rank
        return synchronize(_broadcast_async(tensor, root_rank, False, "broadcast"))

    @staticmethod
    def backward(ctx, grad_output):
        grad = synchronize(_allreduce_async(grad_output, False, Average, 1.0, 1.0,
                                            "broadcast (backward)"))
        if comm().rank != ctx.root_rank:
            grad.zero_()
        return grad, None


def broadcast(tensor: torch.Tensor, root_rank: int, name: str | None = None,
              process_set: Any = None) -> torch.Tensor:
    """A new tensor holding ``root_rank``'s ``tensor`` on every worker (differentiable)."""
    _no_process_sets(process_set, "broadcast")
    _convert.check_tensor(tensor, "broadcast")
    if tensor.requires_grad and torch.is_grad_enabled():
        return _BroadcastFunction.apply(tensor, root_rank)
    return synchronize(_broadcast_async(tensor, root_rank, False, "broadcast"))


def broadcast_(tensor: torch.Tensor, root_rank: int, name: str | None = None,
               process_set: Any = None) -> torch.Tensor:
    """Overwrite ``tensor`` with ``root_rank``'s value, in place; returns ``tensor``."""
    return synchronize(broadcast_async_(tensor, root_rank, name, process_set))


# --- alltoall ------------------------------------------------------------------------------------

def _splits_list(splits: Any, rows: int, world: int) -> list[int]:
    if splits is None:
        if rows % world:
            raise ValueError(f"alltoall: without splits the first dimension ({rows}) must be "
                             f"divisible by the number of workers ({world}); pass splits=[...] "
                             f"with one row count per worker")
        return [rows // world] * world
    if isinstance(splits, torch.Tensor):
        values = splits.reshape(-1).tolist()
    else:
        try:
            values = list(splits)
        except TypeError:
            raise TypeError(f"alltoall: splits must be a list or tensor of {world} row counts, "
                            f"got {type(splits).__name__}") from None
    if any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in values):
        raise TypeError(f"alltoall: splits must hold integers, got {values}")
    values = [int(v) for v in values]
    if len(values) != world or any(v < 0 for v in values) or sum(values) != rows:
        raise ValueError(f"alltoall: splits must be {world} non-negative row counts (one per "
                         f"worker) summing to tensor.shape[0]={rows}; got {values}")
    return values


def _alltoall(tensor: torch.Tensor, splits: Any) -> tuple[torch.Tensor, torch.Tensor]:
    _convert.check_tensor(tensor, "alltoall")
    if tensor.dim() == 0:
        raise ValueError("alltoall: tensor must have at least one dimension (rows are sent "
                         "along dimension 0); reshape it to (1,)")
    group = comm()
    parts = _splits_list(splits, tensor.shape[0], group.world_size)
    source = tensor.detach().contiguous()
    received = group.alltoall(_convert.as_array(source), splits=parts)
    # Row counts: what rank r sent to me is parts_r[me]; one int per pair, exchanged the same way.
    counts = group.alltoall(np.asarray(parts, dtype=np.int32).reshape(-1, 1),
                            splits=[1] * group.world_size)
    return (_convert.from_array(received, source.dtype),
            torch.from_numpy(np.ascontiguousarray(counts.reshape(-1))))


class _AlltoallFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tensor, splits):
        output, received = _alltoall(tensor, splits)
        ctx.received = received
        ctx.mark_non_differentiable(received)
        return output, received

    @staticmethod
    def backward(ctx, grad_output, _grad_received):
        grad, _ = _alltoall(grad_output.contiguous(), ctx.received)
        return grad, None


def alltoall(tensor: torch.Tensor, splits: Any = None, name: str | None = None,
             process_set: Any = None) -> Any:
    """Send rows of ``tensor`` to every worker and gather the rows sent to this one.

    ``splits[r]`` rows (in order along dimension 0) go to rank r; without ``splits`` the rows
    are divided equally. Returns the received rows in rank order, and, when ``splits`` was
    given, also an int32 tensor of how many rows came from each rank (Horovod's return value).
    """
    _no_process_sets(process_set, "alltoall")
    _convert.check_tensor(tensor, "alltoall")
    if tensor.requires_grad and torch.is_grad_enabled():
        output, received = _AlltoallFunction.apply(tensor, splits)
    else:
        output, received = _alltoall(tensor, splits)
    return output if splits is None else (output, received)


# --- synchronisation and objects -----------------------------------------------------------------

def barrier(process_set: Any = None) -> None:
    """Block until every worker has called barrier()."""
    _no_process_sets(process_set, "barrier")
    comm().barrier()


def join(device: int = -1) -> int:
    """Every worker calls join() once it has no more data; returns the rank that joined last.

    ringtrain runs collectives in lock-step without a coordinator, so a worker that joined
    cannot stand in for the allreduces of the others: give every worker the same number of
    steps (``strategy.distribute_dataloader`` or ``torch.utils.data.DistributedSampler`` do)
    and call join() at the same point on all of them. ``device`` is accepted for Horovod
    compatibility.
    """
    arrivals = comm().allgather_object(time.time())
    return max(range(len(arrivals)), key=lambda r: (arrivals[r], r))


def broadcast_object(obj: Any, root_rank: int = 0, name: str | None = None,
                     process_set: Any = None) -> Any:
    """A picklable object from ``root_rank`` to every worker (returned on every worker)."""
    _no_process_sets(process_set, "broadcast_object")
    return comm().broadcast_object(obj, root=_check_root(root_rank, "broadcast_object"))


def allgather_object(obj: Any, name: str | None = None, process_set: Any = None) -> list:
    """Every worker's picklable object, as a list in rank order."""
    _no_process_sets(process_set, "allgather_object")
    return comm().allgather_object(obj)


def _no_process_sets(process_set: Any, what: str) -> None:
    if process_set is not None and process_set is not global_process_set:
        raise NotImplementedError(f"{what}: process sets are not supported by ringtrain; "
                                  f"every collective spans all workers (omit process_set=)")


class _GlobalProcessSet:
    """Horovod's ``hvd.global_process_set``: all workers (the only process set ringtrain has)."""

    process_set_id = 0

    def __repr__(self) -> str:
        return "hvd.global_process_set"


global_process_set = _GlobalProcessSet()
