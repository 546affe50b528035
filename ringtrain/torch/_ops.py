"""Horovod's collective functions on torch tensors: allreduce, allgather, broadcast, alltoall,
their async and in-place forms, handles (poll/synchronize), objects, barrier and join."""

from __future__ import annotations

import functools
import itertools
import math
import threading
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..comm import contract as C
from ..comm.base import Communicator, ReduceOp
from ..errors import CollectiveMismatch, NotInitializedError
from ..world import process_group
from . import _convert
from ._compression import Compression
from ._process_sets import active, current, takes_process_set

# --- reduction ops (Horovod's hvd.Average, hvd.Sum, ...) ---------------------------------------

Average = ReduceOp.AVG
Sum = ReduceOp.SUM
Min = ReduceOp.MIN
Max = ReduceOp.MAX


class _GatheredOp:
    """An op the communicators do not reduce (they sum, average, take minima and maxima):
    every worker's tensor is gathered and ``combine`` reduces the stack of them here, the same
    way on every worker (memory: size() copies of the tensor)."""

    def __init__(self, name: str, combine: Callable[[torch.Tensor], torch.Tensor]):
        self.name = name
        self.combine = combine

    def __repr__(self) -> str:
        return f"hvd.{self.name}"


def _adasum_pair(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Adasum of two vectors: ``(1 - a.b / 2|a|^2) a + (1 - a.b / 2|b|^2) b`` (a zero vector
    keeps its coefficient 1): orthogonal vectors add, equal ones give themselves back."""
    dot = torch.dot(a, b)
    a_coef = 1 - dot / (2 * torch.dot(a, a)) if bool(a.any()) else 1.0
    b_coef = 1 - dot / (2 * torch.dot(b, b)) if bool(b.any()) else 1.0
    return a_coef * a + b_coef * b


def _adasum(stacked: torch.Tensor) -> torch.Tensor:
    """Horovod's Adasum of the workers' tensors (rows of ``stacked``, a power of 2 of them),
    combined pairwise in the tree of its vector-halving distance-doubling: ranks (0, 1),
    (2, 3)... first, then those pairs' results, and so on; in float64."""
    parts = list(stacked.reshape(stacked.shape[0], -1).double())
    while len(parts) > 1:
        parts = [_adasum_pair(parts[i], parts[i + 1]) for i in range(0, len(parts), 2)]
    return parts[0]


Product = _GatheredOp("Product", lambda stacked: stacked.prod(dim=0))
Adasum = _GatheredOp("Adasum", _adasum)


def resolve_op(op: Any, average: bool | None, what: str) -> Any:
    """Horovod's op/average arguments as a ReduceOp (default Average)."""
    if op is not None and average is not None:
        raise ValueError(f"{what}: got both op= and the deprecated average=; pass only "
                         f"op=hvd.Average or op=hvd.Sum")
    if op is None:
        return Sum if average is False else Average
    if not isinstance(op, (ReduceOp, _GatheredOp)):
        raise TypeError(f"{what}: op must be hvd.Average, hvd.Sum, hvd.Min, hvd.Max, "
                        f"hvd.Product or hvd.Adasum, got {op!r}")
    return op


def comm() -> Communicator:
    """The communicator of the current call: its process set's, else the process group's
    (NotInitializedError saying to call init() before that)."""
    chosen = current()
    if chosen is not None:
        return chosen.comm
    try:
        return process_group.comm()
    except NotInitializedError:
        raise NotInitializedError("ringtrain.torch has not been initialized; call hvd.init() "
                                  "first") from None


def comm_for(tensor: torch.Tensor) -> Communicator:
    """The communicator that moves ``tensor``: ``comm()`` for CPU tensors; for CUDA tensors
    one that takes them (NCCL, or ``comm()`` staged through pinned host memory)."""
    group = comm()
    return _convert.communicator(group) if tensor.is_cuda else group


def _number(value: Any, what: str, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what}: {name} must be a number, got {type(value).__name__}")
    return float(value)


def _check_root(root_rank: Any, what: str) -> int:
    """``root_rank`` (a global rank, as in Horovod) as a rank of the current communicator."""
    if isinstance(root_rank, bool) or not isinstance(root_rank, int):
        raise TypeError(f"{what}: root_rank must be an int rank, got {type(root_rank).__name__}")
    chosen = current()
    if chosen is not None:
        return chosen.set_rank(root_rank, what)
    world = comm().world_size
    if not 0 <= root_rank < world:
        raise ValueError(f"{what}: root_rank={root_rank} is not a rank of this job of {world} "
                         f"worker(s) (valid: 0..{world - 1})")
    return root_rank


def _in_forward_set(backward: Callable) -> Callable:
    """An autograd backward runs among the workers (process set) of its forward."""
    @functools.wraps(backward)
    def run(ctx, *grads):
        with active(ctx.process_set):
            return backward(ctx, *grads)

    return run


# --- handles -------------------------------------------------------------------------------------

class _Pending:
    __slots__ = ("finish", "handles", "key")

    def __init__(self, handles: list, finish: Callable[[list], Any], key: tuple | None):
        self.handles = handles      # the communicator's Handles (they keep the buffers alive)
        self.finish = finish        # turns the handles' results into what synchronize returns
        self.key = key              # (kind, name) while a named operation is in flight


_handles: dict[int, _Pending] = {}
_handle_ids = itertools.count(1)
_handle_lock = threading.Lock()
# (kind, name) of named operations not synchronized yet: Horovod refuses a second one.
_in_flight: set[tuple[str, str]] = set()


#: the communicator's collective that an operation of this kind starts with
_FIRST_COLLECTIVE = {"grouped_allreduce": "allreduce", "grouped_allgather": "allgather",
                     "sparse_allreduce": "allgather", "reducescatter": "reduce_scatter",
                     "grouped_reducescatter": "reduce_scatter"}


def _claim_name(kind: str, name: Any, what: str) -> tuple[str, str] | None:
    """Reserve ``name`` for an operation of ``kind`` until it is synchronized.

    A name already in flight raises ValueError here; the other workers, which did not call
    this operation, get CollectiveMismatch from the contract check instead of waiting for it
    (every worker that made the same duplicate call raises the same ValueError)."""
    if name is None:
        return None
    if not isinstance(name, str):
        raise TypeError(f"{what}: name must be a str or None, got {type(name).__name__}")
    key = (kind, name)
    with _handle_lock:
        if key not in _in_flight:
            _in_flight.add(key)
            return key
    group = comm()
    # take part in the contract check, so no worker waits for us; queued behind the operation
    # in flight, which the other workers may start only later (after a barrier, say)
    group._abandon(_FIRST_COLLECTIVE.get(kind, kind), wait=False)
    raise ValueError(f"{what}: an {kind} named {name!r} is still in flight (not synchronized); "
                     f"names of concurrent operations must be unique: synchronize the first "
                     f"one or pick another name")


def _label(kind: str, name: Any) -> str | None:
    """What the workers match a named operation by (its kind and name), None without a name."""
    return None if name is None else f"{kind} {name!r}"


def _submit(key: tuple[str, str] | None, start: Callable[[], Any]) -> Any:
    """``start()`` (which submits collectives, matched across workers by ``key``'s name when
    there is one); the name is released if it fails."""
    if key is None:
        return start()
    try:
        with C.named(_label(*key)):
            return start()
    except BaseException:
        _release_name(key)
        raise


def _release_name(key: tuple[str, str] | None) -> None:
    if key is not None:
        with _handle_lock:
            _in_flight.discard(key)


def _register(handles: Any, finish: Callable[[Any], Any], key: tuple | None = None,
              grouped: bool = False) -> int:
    """A handle id for one communicator handle (``finish`` gets its result) or, ``grouped``,
    for a list of them (``finish`` gets the list of results)."""
    pending = _Pending(list(handles) if grouped else [handles],
                       finish if grouped else (lambda results: finish(results[0])), key)
    with _handle_lock:
        handle_id = next(_handle_ids)
        _handles[handle_id] = pending
    return handle_id


class _CallableHandle(int):
    """A handle that is also a function: Horovod's ``sparse_allreduce_async`` returns one that
    waits and returns the result when called; ``handle()`` is ``synchronize(handle)``."""

    def __call__(self) -> Any:
        return synchronize(self)


def poll(handle: int) -> bool:
    """True when the async operation behind ``handle`` has finished (synchronize won't block)."""
    with _handle_lock:
        pending = _handles.get(handle)
    if pending is None:
        raise ValueError(f"poll: {handle!r} is not a handle of a pending operation (it was "
                         f"never returned by an *_async function, or was already synchronized)")
    return all(h.done() for h in pending.handles)


def synchronize(handle: int) -> Any:
    """Wait for an async operation and return its result (None for an unknown handle)."""
    with _handle_lock:
        pending = _handles.pop(handle, None)
    if pending is None:
        return None
    try:
        results = [h.wait() for h in pending.handles]
    finally:
        _release_name(pending.key)
    return pending.finish(results)


def _clear_handles() -> None:
    with _handle_lock:
        _handles.clear()
        _in_flight.clear()


# --- allreduce -----------------------------------------------------------------------------------

def _scaled(tensor: torch.Tensor, factor: float) -> torch.Tensor:
    """``tensor * factor`` in ``tensor``'s dtype, computed as Horovod does: integers in
    float64, half precision in float32, then cast back (integers truncate toward zero)."""
    if not tensor.is_floating_point():
        return (tensor.double() * factor).to(tensor.dtype)
    if tensor.dtype in (torch.float16, torch.bfloat16):
        return (tensor.float() * factor).to(tensor.dtype)
    return tensor * factor


def _reduce_input(tensor: torch.Tensor, in_place: bool, op: Any, prescale: float,
                  what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(source, work)``: the detached input and the contiguous tensor that travels (the
    input's own memory when in place and possible, else a copy; bfloat16 as float32)."""
    _convert.check_tensor(tensor, what)
    if tensor.dtype == torch.bool and op in (Sum, Average, Product):
        raise TypeError(f"{what}: op=hvd.{op.name.title()} is not defined for bool tensors; use hvd.Max or "
                        f"hvd.Min, or cast to an integer dtype")
    if op is Adasum and not tensor.is_floating_point():
        raise TypeError(f"{what}: op=hvd.Adasum needs a floating-point tensor, got "
                        f"{tensor.dtype}; cast it (e.g. tensor.float())")
    source = tensor.detach()
    if prescale != 1.0:
        work = _scaled(source, prescale).contiguous()
    elif in_place and source.is_contiguous() and _convert.reducible(source):
        work = source
    else:
        work = source.clone(memory_format=torch.contiguous_format)
    if not _convert.reducible(work):
        work = work.float()
    return source, work


def _sum_or_average(op: Any, what: str) -> Any:
    """``op`` for a collective that can only sum or average: Adasum is NotImplementedError (a
    RuntimeError, like Horovod's error for it), any other op ValueError."""
    if op is Adasum:
        raise NotImplementedError(f"{what}: op=hvd.Adasum is for allreduce only (as in "
                                  f"Horovod); use hvd.Sum or hvd.Average")
    if op not in (Sum, Average):
        raise ValueError(f"{what}: op must be hvd.Average or hvd.Sum, got {op!r}")
    return op


def _check_adasum_size(world: int, what: str) -> None:
    if world & (world - 1):     # the same on every worker: all raise, none waits
        raise NotImplementedError(f"{what}: op=hvd.Adasum needs a power of 2 of workers (as "
                                  f"Horovod's on CPUs), got {world}; use hvd.Average")


def _wire_op(op: Any, work: torch.Tensor) -> ReduceOp:
    # The collectives average floating dtypes only; integers are summed, then divided here.
    return Sum if op is Average and not work.is_floating_point() else op


def _reduce_output(tensor: torch.Tensor, source: torch.Tensor, result: torch.Tensor,
                   in_place: bool, op: Any, sent: ReduceOp, world: int,
                   postscale: float) -> torch.Tensor:
    """The reduced ``result`` (in the work dtype) as the caller's tensor: averaged when the
    wire summed, post-scaled, cast back, or copied into ``tensor`` when in place."""
    if op is Average and sent is Sum:
        result = torch.div(result, world, rounding_mode="trunc") \
            if not result.is_floating_point() else result.div_(world)
    if postscale != 1.0:
        result = _scaled(result, postscale)
    if not in_place:
        return result.to(source.dtype)
    if result.data_ptr() != source.data_ptr():
        with torch.no_grad():
            source.copy_(result)
    return tensor


def _allreduce_async(tensor: torch.Tensor, in_place: bool, op: Any, prescale: float,
                     postscale: float, what: str, name: Any = None) -> int:
    """All-reduce ``tensor`` into a new tensor or, ``in_place``, into ``tensor`` itself.

    The reduction runs in place on ``work``: the tensor's own memory when that is possible
    (in place, contiguous, a dtype NumPy can reduce), else a contiguous copy.
    """
    source, work = _reduce_input(tensor, in_place, op, prescale, what)
    group = comm_for(work)
    if op is Adasum:
        _check_adasum_size(group.world_size, what)
    key = _claim_name("allreduce", name, what)
    if isinstance(op, _GatheredOp):
        handle = _submit(key, lambda: group.allgather(_convert.as_array(work.reshape(1, -1)),
                                                      async_op=True))

        def finish_gathered(gathered: Any) -> torch.Tensor:
            stacked = _convert.from_array(gathered, work.dtype)
            combined = op.combine(stacked).to(work.dtype).reshape(work.shape)
            return _reduce_output(tensor, source, combined, in_place, op, op,
                                  group.world_size, postscale)

        return _register(handle, finish_gathered, key)
    array = _convert.as_array(work)
    sent = _wire_op(op, work)
    handle = _submit(key, lambda: group.allreduce(array, op=sent, out=array, async_op=True))
    return _register(handle, lambda _result: _reduce_output(
        tensor, source, work, in_place, op, sent, group.world_size, postscale), key)


@takes_process_set
def allreduce_async(tensor: torch.Tensor, average: bool | None = None, name: str | None = None,
                    op: Any = None, prescale_factor: float = 1.0, postscale_factor: float = 1.0,
                    process_set: Any = None) -> int:
    """Start averaging (or summing, min, max) ``tensor`` over all workers; returns a handle.

    The input is not modified; ``synchronize(handle)`` returns a new tensor
    ``postscale_factor * op(prescale_factor * tensor)``. ``name``: until this handle is
    synchronized, another allreduce of the same name raises ValueError (Horovod's rule);
    collectives still pair up across workers by call order.
    """
    rop = resolve_op(op, average, "allreduce_async")
    return _allreduce_async(tensor, False, rop,
                            _number(prescale_factor, "allreduce_async", "prescale_factor"),
                            _number(postscale_factor, "allreduce_async", "postscale_factor"),
                            "allreduce_async", name)


@takes_process_set
def allreduce_async_(tensor: torch.Tensor, average: bool | None = None, name: str | None = None,
                     op: Any = None, prescale_factor: float = 1.0, postscale_factor: float = 1.0,
                     process_set: Any = None) -> int:
    """In-place ``allreduce_async``: ``synchronize(handle)`` returns ``tensor`` itself."""
    rop = resolve_op(op, average, "allreduce_async_")
    return _allreduce_async(tensor, True, rop,
                            _number(prescale_factor, "allreduce_async_", "prescale_factor"),
                            _number(postscale_factor, "allreduce_async_", "postscale_factor"),
                            "allreduce_async_", name)


class _AllreduceFunction(torch.autograd.Function):
    """allreduce as an autograd function: the gradient is all-reduced with the same op."""

    @staticmethod
    def forward(ctx, tensor, op, prescale, postscale):
        ctx.process_set = current()
        ctx.op, ctx.prescale, ctx.postscale = op, prescale, postscale
        return synchronize(_allreduce_async(tensor, False, op, prescale, postscale, "allreduce"))

    @staticmethod
    @_in_forward_set
    def backward(ctx, grad_output):
        grad = synchronize(_allreduce_async(grad_output, False, ctx.op, ctx.prescale,
                                            ctx.postscale, "allreduce (backward)"))
        return grad, None, None, None


@takes_process_set
def allreduce(tensor: torch.Tensor, average: bool | None = None, name: str | None = None,
              compression: Any = None, op: Any = None, prescale_factor: float = 1.0,
              postscale_factor: float = 1.0, process_set: Any = None) -> torch.Tensor:
    """``tensor`` averaged (default), summed, min'd or max'd over all workers; a new tensor.

    Differentiable: if ``tensor`` requires grad, the gradient is all-reduced the same way.
    ``compression`` (``hvd.Compression.fp16``) compresses what travels between workers.
    """
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


@takes_process_set
def allreduce_(tensor: torch.Tensor, average: bool | None = None, name: str | None = None,
               op: Any = None, prescale_factor: float = 1.0, postscale_factor: float = 1.0,
               process_set: Any = None) -> torch.Tensor:
    """In-place ``allreduce``; returns ``tensor``."""
    return synchronize(allreduce_async_(tensor, average, name, op, prescale_factor,
                                        postscale_factor, process_set))


# --- grouped allreduce: one fused operation for a list ------------------------------------------

def _tensor_list(tensors: Any, what: str) -> list[torch.Tensor]:
    if isinstance(tensors, torch.Tensor) or not isinstance(tensors, (list, tuple)):
        raise TypeError(f"{what}: tensors must be a list or tuple of tensors, got "
                        f"{type(tensors).__name__}")
    for i, t in enumerate(tensors):
        _convert.check_tensor(t, what, f"tensors[{i}]")
    return list(tensors)


def _grouped_allreduce_async(tensors: list[torch.Tensor], in_place: bool, op: Any,
                             prescale: float, postscale: float, what: str,
                             name: Any = None) -> int:
    """All tensors in one ``allreduce_many`` (fused buckets); an average travels as a sum
    and is divided afterwards, so one op serves every dtype. Products and Adasum are gathered,
    tensor by tensor (Adasum's coefficients are each tensor's own, as in Horovod)."""
    if isinstance(op, _GatheredOp):
        with C.named(_label("grouped_allreduce", name)):
            ids = [_allreduce_async(t, in_place, op, prescale, postscale, what) for t in tensors]
        key = _claim_name("grouped_allreduce", name, what)
        return _register([], lambda _: [synchronize(i) for i in ids], key, grouped=True)
    prepared = [_reduce_input(t, in_place, op, prescale, what) for t in tensors]
    key = _claim_name("grouped_allreduce", name, what)
    sent = Sum if op is Average else op
    on_gpu = [work for _, work in prepared if work.is_cuda]
    group = comm_for(on_gpu[0]) if on_gpu else comm()
    handle = _submit(key, lambda: group.allreduce_many(
        [_convert.as_array(work) for _, work in prepared], op=sent, async_op=True))

    def finish(results: Any) -> list[torch.Tensor]:
        out = []
        for t, (source, work), reduced in zip(tensors, prepared, results):
            work.copy_(_convert.from_array(reduced, work.dtype).reshape(work.shape))
            out.append(_reduce_output(t, source, work, in_place, op, sent, group.world_size,
                                      postscale))
        return out

    return _register(handle, finish, key)


def _grouped_args(tensors, average, op, prescale_factor, postscale_factor, process_set, what):
    return (_tensor_list(tensors, what), resolve_op(op, average, what),
            _number(prescale_factor, what, "prescale_factor"),
            _number(postscale_factor, what, "postscale_factor"))


@takes_process_set
def grouped_allreduce_async(tensors: Any, average: bool | None = None, name: str | None = None,
                            op: Any = None, prescale_factor: float = 1.0,
                            postscale_factor: float = 1.0, process_set: Any = None) -> int:
    """Start all-reducing a list of tensors as one fused operation; ``synchronize`` returns
    the list of new tensors (the inputs are not modified)."""
    what = "grouped_allreduce_async"
    ts, rop, pre, post = _grouped_args(tensors, average, op, prescale_factor, postscale_factor,
                                       process_set, what)
    return _grouped_allreduce_async(ts, False, rop, pre, post, what, name)


@takes_process_set
def grouped_allreduce_async_(tensors: Any, average: bool | None = None, name: str | None = None,
                             op: Any = None, prescale_factor: float = 1.0,
                             postscale_factor: float = 1.0, process_set: Any = None) -> int:
    """In-place ``grouped_allreduce_async``: ``synchronize`` returns the input tensors."""
    what = "grouped_allreduce_async_"
    ts, rop, pre, post = _grouped_args(tensors, average, op, prescale_factor, postscale_factor,
                                       process_set, what)
    return _grouped_allreduce_async(ts, True, rop, pre, post, what, name)


class _GroupedAllreduceFunction(torch.autograd.Function):
    """grouped_allreduce as an autograd function: the gradients are all-reduced, grouped,
    with the same op (as allreduce's)."""

    @staticmethod
    def forward(ctx, op, prescale, postscale, *tensors):
        ctx.process_set = current()
        ctx.op, ctx.prescale, ctx.postscale = op, prescale, postscale
        return tuple(synchronize(_grouped_allreduce_async(list(tensors), False, op, prescale,
                                                          postscale, "grouped_allreduce")))

    @staticmethod
    @_in_forward_set
    def backward(ctx, *grads):
        reduced = synchronize(_grouped_allreduce_async(
            [g.contiguous() for g in grads], False, ctx.op, ctx.prescale, ctx.postscale,
            "grouped_allreduce (backward)"))
        return (None, None, None, *reduced)


@takes_process_set
def grouped_allreduce(tensors: Any, average: bool | None = None, name: str | None = None,
                      compression: Any = None, op: Any = None, prescale_factor: float = 1.0,
                      postscale_factor: float = 1.0, process_set: Any = None
                      ) -> list[torch.Tensor]:
    """Every tensor of the list all-reduced (as ``allreduce``), in one fused operation;
    differentiable like ``allreduce``."""
    what = "grouped_allreduce"
    ts, rop, pre, post = _grouped_args(tensors, average, op, prescale_factor, postscale_factor,
                                       process_set, what)
    compression = Compression.none if compression is None else compression
    compressed = [compression.compress(t) for t in ts]
    wire = [c for c, _ in compressed]
    if torch.is_grad_enabled() and any(t.requires_grad for t in wire):
        reduced = list(_GroupedAllreduceFunction.apply(rop, pre, post, *wire))
    else:
        reduced = synchronize(_grouped_allreduce_async(wire, False, rop, pre, post, what, name))
    return [compression.decompress(r, ctx) for r, (_, ctx) in zip(reduced, compressed)]


@takes_process_set
def grouped_allreduce_(tensors: Any, average: bool | None = None, name: str | None = None,
                       op: Any = None, prescale_factor: float = 1.0,
                       postscale_factor: float = 1.0, process_set: Any = None
                       ) -> list[torch.Tensor]:
    """In-place ``grouped_allreduce``; returns the input tensors."""
    return synchronize(grouped_allreduce_async_(tensors, average, name, op, prescale_factor,
                                                postscale_factor, process_set))


# --- allgather -----------------------------------------------------------------------------------

@takes_process_set
def allgather_async(tensor: torch.Tensor, name: str | None = None,
                    process_set: Any = None) -> int:
    """Start concatenating every worker's ``tensor`` along dimension 0 (first dimensions may
    differ; the others must match); ``synchronize`` returns the result in rank order.
    A 0-d tensor counts as one row."""
    _convert.check_tensor(tensor, "allgather_async")
    source = tensor.detach().contiguous()
    if source.dim() == 0:
        source = source.reshape(1)
    key = _claim_name("allgather", name, "allgather_async")
    handle = _submit(key, lambda: comm_for(source).allgather(_convert.as_array(source),
                                                             async_op=True))
    return _register(handle, lambda result: _convert.from_array(result, source.dtype), key)


def _packed_for_gather(sources: list[torch.Tensor]) -> torch.Tensor:
    """One byte tensor for a fused allgather: a header (the number of tensors, a signature of
    their dtypes and shapes after the first dimension, each one's rows and bytes per row),
    then their bytes, each padded to 8 bytes so that every part can be viewed in place."""
    signature = zlib.crc32(repr([(str(t.dtype), tuple(t.shape[1:])) for t in sources]).encode())
    header = torch.tensor([len(sources), signature, *(t.shape[0] for t in sources),
                           *(math.prod(t.shape[1:]) * t.element_size() for t in sources)],
                          dtype=torch.int64)
    parts = [header.view(torch.uint8)]
    for t in sources:
        raw = t.reshape(-1).view(torch.uint8)
        parts += [raw, torch.zeros(-raw.numel() % 8, dtype=torch.uint8)]
    return torch.cat(parts)


def _unpacked_gather(gathered: torch.Tensor, sources: list[torch.Tensor], world: int,
                     what: str) -> list[torch.Tensor]:
    """Every rank's tensors out of a fused allgather's bytes, concatenated per tensor. Each
    rank's part describes itself, so every rank reads the same parts the same way and a rank
    whose list differs from rank 0's makes every rank raise the same error."""
    first = gathered[:16].view(torch.int64).tolist()
    pieces: list[list[torch.Tensor]] = [[] for _ in range(first[0])]
    offset = 0
    for rank in range(world):
        count, signature = gathered[offset:offset + 16].view(torch.int64).tolist()
        if [count, signature] != first:
            raise CollectiveMismatch(
                f"{what}: every rank must pass the same number of tensors, with the same dtypes "
                f"and shapes after the first dimension, in the same order; rank {rank} passed "
                f"{count} tensors, rank 0 {first[0]}"
                + (" (their dtypes or shapes differ)" if count == first[0] else ""))
        header = gathered[offset + 16:offset + 16 + 16 * count].view(torch.int64).tolist()
        offset += 16 + 16 * count
        for i, (rows, row_bytes) in enumerate(zip(header[:count], header[count:])):
            size = rows * row_bytes
            pieces[i].append(gathered[offset:offset + size])
            offset += size + -size % 8
    # rank 0's list matches every rank's, this one's included
    return [torch.cat(p).view(t.dtype).reshape(-1, *t.shape[1:]) for p, t in zip(pieces, sources)]


@takes_process_set
def grouped_allgather_async(tensors: Any, name: str | None = None,
                            process_set: Any = None) -> int:
    """Start ``allgather`` of every tensor of the list as one fused message (CUDA tensors:
    one allgather each); ``synchronize`` returns the list of gathered tensors."""
    what = "grouped_allgather_async"
    ts = _tensor_list(tensors, what)
    if any(t.is_cuda for t in ts):
        key = _claim_name("grouped_allgather", name, what)
        ids = _submit(key, lambda: [allgather_async(t) for t in ts])
        return _register([], lambda _: [synchronize(i) for i in ids], key, grouped=True)
    sources = [t.detach().contiguous() for t in ts]
    sources = [t.reshape(1) if t.dim() == 0 else t for t in sources]
    packed = _packed_for_gather(sources)
    key = _claim_name("grouped_allgather", name, what)
    group = comm()
    handle = _submit(key, lambda: group.allgather(_convert.as_array(packed), async_op=True))
    return _register(handle, lambda result: _unpacked_gather(
        _convert.from_array(result, torch.uint8), sources, group.world_size, what), key)


@takes_process_set
def grouped_allgather(tensors: Any, name: str | None = None, process_set: Any = None
                      ) -> list[torch.Tensor]:
    """``allgather`` of every tensor of the list (each differentiable like ``allgather``)."""
    what = "grouped_allgather"
    ts = _tensor_list(tensors, what)
    if torch.is_grad_enabled() and any(t.requires_grad for t in ts):
        return [allgather(t) for t in ts]
    return synchronize(grouped_allgather_async(ts, name))


class _AllgatherFunction(torch.autograd.Function):
    """allgather as an autograd function: every worker's gradient of the gathered tensor is
    averaged (Horovod's rule), and each worker keeps the rows it contributed."""

    @staticmethod
    def forward(ctx, tensor):
        ctx.process_set = current()
        gathered = synchronize(allgather_async(tensor))
        rows = torch.tensor([tensor.shape[0] if tensor.dim() else 1], dtype=torch.int64)
        ctx.counts = synchronize(allgather_async(rows)).tolist()
        ctx.scalar = tensor.dim() == 0
        return gathered

    @staticmethod
    @_in_forward_set
    def backward(ctx, grad_output):
        averaged = synchronize(_allreduce_async(grad_output, False, Average, 1.0, 1.0,
                                                "allgather (backward)"))
        me = comm().rank
        start = sum(ctx.counts[:me])
        grad = averaged.narrow(0, start, ctx.counts[me])
        return grad.reshape(()) if ctx.scalar else grad


@takes_process_set
def allgather(tensor: torch.Tensor, name: str | None = None, process_set: Any = None
              ) -> torch.Tensor:
    """Every worker's ``tensor`` concatenated along dimension 0 in rank order (differentiable)."""
    _convert.check_tensor(tensor, "allgather")
    if tensor.requires_grad and torch.is_grad_enabled():
        return _AllgatherFunction.apply(tensor)
    return synchronize(allgather_async(tensor))


# --- broadcast -----------------------------------------------------------------------------------

def _broadcast_async(tensor: torch.Tensor, root_rank: int, in_place: bool, what: str,
                     name: Any = None) -> int:
    _convert.check_tensor(tensor, what)
    root = _check_root(root_rank, what)
    key = _claim_name("broadcast", name, what)
    source = tensor.detach()
    if in_place and source.is_contiguous():
        work = source
    else:
        work = source.clone(memory_format=torch.contiguous_format)
    array = _convert.as_array(work)
    handle = _submit(key, lambda: comm_for(work).broadcast(array, root=root, out=array,
                                                           async_op=True))

    def finish(_result: Any) -> torch.Tensor:
        if not in_place:
            return work
        if work.data_ptr() != source.data_ptr():
            with torch.no_grad():
                tensor.copy_(work)
        return tensor

    return _register(handle, finish, key)


@takes_process_set
def broadcast_async(tensor: torch.Tensor, root_rank: int, name: str | None = None,
                    process_set: Any = None) -> int:
    """Start copying ``root_rank``'s ``tensor`` to every worker; ``synchronize`` returns a new
    tensor (the input is not modified)."""
    return _broadcast_async(tensor, root_rank, False, "broadcast_async", name)


@takes_process_set
def broadcast_async_(tensor: torch.Tensor, root_rank: int, name: str | None = None,
                     process_set: Any = None) -> int:
    """In-place ``broadcast_async``: ``synchronize`` returns ``tensor`` holding root's value."""
    return _broadcast_async(tensor, root_rank, True, "broadcast_async_", name)


class _BroadcastFunction(torch.autograd.Function):
    """broadcast as an autograd function: the gradient is averaged over workers and flows back
    to the root only (Horovod's rule)."""

    @staticmethod
    def forward(ctx, tensor, root_rank):
        ctx.process_set = current()
        ctx.root = _check_root(root_rank, "broadcast")
        return synchronize(_broadcast_async(tensor, root_rank, False, "broadcast"))

    @staticmethod
    @_in_forward_set
    def backward(ctx, grad_output):
        grad = synchronize(_allreduce_async(grad_output, False, Average, 1.0, 1.0,
                                            "broadcast (backward)"))
        if comm().rank != ctx.root:
            grad.zero_()
        return grad, None


@takes_process_set
def broadcast(tensor: torch.Tensor, root_rank: int, name: str | None = None,
              process_set: Any = None) -> torch.Tensor:
    """A new tensor holding ``root_rank``'s ``tensor`` on every worker (differentiable)."""
    _convert.check_tensor(tensor, "broadcast")
    if tensor.requires_grad and torch.is_grad_enabled():
        return _BroadcastFunction.apply(tensor, root_rank)
    return synchronize(_broadcast_async(tensor, root_rank, False, "broadcast"))


@takes_process_set
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
    if isinstance(splits, torch.Tensor) and (splits.is_floating_point() or
                                             splits.dtype == torch.bool):
        raise ValueError(f"alltoall: splits must be an integer tensor (torch.int32), got "
                         f"dtype {splits.dtype}")
    if any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in values):
        raise ValueError(f"alltoall: splits must hold integers, got {values}")
    values = [int(v) for v in values]
    if len(values) != world or any(v < 0 for v in values) or sum(values) != rows:
        raise ValueError(f"alltoall: splits must be {world} non-negative row counts (one per "
                         f"worker) summing to tensor.shape[0]={rows}; got {values}")
    return values


def _alltoall_parts(tensor: torch.Tensor, splits: Any, async_op: bool
                    ) -> tuple[list, Callable[[list], tuple[torch.Tensor, torch.Tensor]]]:
    """Start the two exchanges of an alltoall (the rows, then the row counts): their results
    (handles with ``async_op``) and the function that turns those into (rows, counts)."""
    _convert.check_tensor(tensor, "alltoall")
    if tensor.dim() == 0:
        raise ValueError("alltoall: tensor must have at least one dimension (rows are sent "
                         "along dimension 0); reshape it to (1,)")
    group = comm_for(tensor)
    try:
        parts = _splits_list(splits, tensor.shape[0], group.world_size)
    except (TypeError, ValueError):
        group._abandon("alltoall")  # the others get CollectiveMismatch instead of waiting
        raise
    source = tensor.detach().contiguous()
    received = group.alltoall(_convert.as_array(source), splits=parts, async_op=async_op)
    # Row counts: what rank r sent to me is parts_r[me]; one int per pair, exchanged the same way.
    counts = group.alltoall(np.asarray(parts, dtype=np.int32).reshape(-1, 1),
                            splits=[1] * group.world_size, async_op=async_op)

    def finish(results: list) -> tuple[torch.Tensor, torch.Tensor]:
        rows, row_counts = results
        return (_convert.from_array(rows, source.dtype),
                torch.from_numpy(np.ascontiguousarray(row_counts.reshape(-1))))

    return [received, counts], finish


def _alltoall(tensor: torch.Tensor, splits: Any) -> tuple[torch.Tensor, torch.Tensor]:
    results, finish = _alltoall_parts(tensor, splits, async_op=False)
    return finish(results)


class _AlltoallFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tensor, splits):
        ctx.process_set = current()
        output, received = _alltoall(tensor, splits)
        ctx.received = received
        ctx.mark_non_differentiable(received)
        return output, received

    @staticmethod
    @_in_forward_set
    def backward(ctx, grad_output, _grad_received):
        grad, _ = _alltoall(grad_output.contiguous(), ctx.received)
        return grad, None


@takes_process_set
def alltoall(tensor: torch.Tensor, splits: Any = None, name: str | None = None,
             process_set: Any = None) -> Any:
    """Send rows of ``tensor`` to every worker and gather the rows sent to this one.

    ``splits[r]`` rows (in order along dimension 0) go to rank r; without ``splits`` the rows
    are divided equally. Returns the received rows in rank order, and, when ``splits`` was
    given, also an int32 tensor of how many rows came from each rank (Horovod's return value).
    """
    _convert.check_tensor(tensor, "alltoall")
    if tensor.requires_grad and torch.is_grad_enabled():
        output, received = _AlltoallFunction.apply(tensor, splits)
    else:
        output, received = _alltoall(tensor, splits)
    return output if splits is None else (output, received)


@takes_process_set
def alltoall_async(tensor: torch.Tensor, splits: Any = None, name: str | None = None,
                   process_set: Any = None) -> int:
    """Start ``alltoall``; ``synchronize`` returns (received rows, received row counts per
    rank), as Horovod's does for this handle whether or not ``splits`` was given."""
    key = _claim_name("alltoall", name, "alltoall_async")
    return _submit(key, lambda: _register(*_alltoall_parts(tensor, splits, async_op=True), key,
                                          grouped=True))


# --- sparse tensors -----------------------------------------------------------------------------

@takes_process_set
def sparse_allreduce_async(tensor: torch.Tensor, name: str | None = None, op: Any = None,
                           process_set: Any = None) -> int:
    """Start reducing a sparse COO tensor over all workers as Horovod does: every worker's
    indices and values are gathered (values divided by size() for an average) and
    ``synchronize`` returns the sparse sum (uncoalesced: duplicate indices add up). The
    handle can also be called, as Horovod's: ``handle()`` waits and returns the result."""
    what = "sparse_allreduce_async"
    rop = _sum_or_average(resolve_op(op, None, what), what)
    if not isinstance(tensor, torch.Tensor) or tensor.layout != torch.sparse_coo:
        raise TypeError(f"{what}: tensor must be a sparse COO torch.Tensor (use allreduce_async "
                        f"for dense tensors)")
    key = _claim_name("sparse_allreduce", name, what)
    # allgather concatenates along dimension 0: indices travel as (nnz, ndim) rows.
    ids = _submit(key, lambda: [allgather_async(tensor._indices().t().contiguous()),
                                allgather_async(tensor._values().contiguous())])
    world = comm().world_size

    def finish(_: Any) -> torch.Tensor:
        indices, values = (synchronize(i) for i in ids)
        if rop is Average:
            values = values / world if values.is_floating_point() \
                else torch.div(values, world, rounding_mode="trunc")
        return torch.sparse_coo_tensor(indices.t(), values, tensor.shape,
                                       check_invariants=False)

    return _CallableHandle(_register([], finish, key, grouped=True))


# --- reducescatter ------------------------------------------------------------------------------

def _reducescatter_async(tensor: torch.Tensor, op: Any, prescale: float, postscale: float,
                         what: str, name: Any = None) -> int:
    _sum_or_average(op, what)
    _convert.check_tensor(tensor, what)
    if tensor.dim() == 0:
        raise ValueError(f"{what}: tensor must have at least one dimension (it is split "
                         f"along dimension 0); reshape it to (1,)")
    source, work = _reduce_input(tensor, False, op, prescale, what)
    key = _claim_name("reducescatter", name, what)
    group = comm_for(work)
    sent = _wire_op(op, work)
    handle = _submit(key, lambda: group.reduce_scatter(_convert.as_array(work), op=sent,
                                                       async_op=True))

    def finish(part: Any) -> torch.Tensor:
        mine = _convert.from_array(part, work.dtype)
        return _reduce_output(tensor, source, mine, False, op, sent, group.world_size,
                              postscale)

    return _register(handle, finish, key)


@takes_process_set
def reducescatter_async(tensor: torch.Tensor, name: str | None = None, op: Any = None,
                        process_set: Any = None, prescale_factor: float = 1.0,
                        postscale_factor: float = 1.0) -> int:
    """Start reducing ``tensor`` over all workers (average by default, or sum) and
    scattering the result along dimension 0: rank r gets part r of an even split (the first
    ``rows % size()`` ranks one row more); ``synchronize`` returns this rank's part."""
    what = "reducescatter_async"
    return _reducescatter_async(tensor, resolve_op(op, None, what),
                                _number(prescale_factor, what, "prescale_factor"),
                                _number(postscale_factor, what, "postscale_factor"), what,
                                name)


class _ReducescatterFunction(torch.autograd.Function):
    """reducescatter as an autograd function, with Horovod's gradient: this rank's part of
    the gradient is gathered from every rank (times size() for a sum, and the scale
    factors)."""

    @staticmethod
    def forward(ctx, tensor, op, prescale, postscale):
        ctx.process_set = current()
        ctx.factor = (comm().world_size if op is Sum else 1) * prescale * postscale
        return synchronize(_reducescatter_async(tensor, op, prescale, postscale,
                                                "reducescatter"))

    @staticmethod
    @_in_forward_set
    def backward(ctx, grad_output):
        grad = grad_output * ctx.factor if ctx.factor != 1 else grad_output
        return synchronize(allgather_async(grad.contiguous())), None, None, None


@takes_process_set
def reducescatter(tensor: torch.Tensor, name: str | None = None, compression: Any = None,
                  op: Any = None, process_set: Any = None, prescale_factor: float = 1.0,
                  postscale_factor: float = 1.0) -> torch.Tensor:
    """This rank's part of ``tensor`` reduced over all workers (see ``reducescatter_async``);
    differentiable. The input is not modified."""
    what = "reducescatter"
    rop = resolve_op(op, None, what)
    pre = _number(prescale_factor, what, "prescale_factor")
    post = _number(postscale_factor, what, "postscale_factor")
    _convert.check_tensor(tensor, what)
    compression = Compression.none if compression is None else compression
    compressed, ctx = compression.compress(tensor)
    if compressed.requires_grad and torch.is_grad_enabled():
        part = _ReducescatterFunction.apply(compressed, rop, pre, post)
    else:
        part = synchronize(_reducescatter_async(compressed, rop, pre, post, what, name))
    return compression.decompress(part, ctx)


@takes_process_set
def grouped_reducescatter_async(tensors: Any, name: str | None = None, op: Any = None,
                                process_set: Any = None, prescale_factor: float = 1.0,
                                postscale_factor: float = 1.0) -> int:
    """``reducescatter_async`` of every tensor of the list (queued back to back);
    ``synchronize`` returns the list of this rank's parts."""
    what = "grouped_reducescatter_async"
    ts = _tensor_list(tensors, what)
    rop = resolve_op(op, None, what)
    pre = _number(prescale_factor, what, "prescale_factor")
    post = _number(postscale_factor, what, "postscale_factor")
    _sum_or_average(rop, what)
    if any(t.is_cuda for t in ts):
        key = _claim_name("grouped_reducescatter", name, what)
        ids = _submit(key, lambda: [_reducescatter_async(t, rop, pre, post, what) for t in ts])
        return _register([], lambda _: [synchronize(i) for i in ids], key, grouped=True)
    return _fused_reducescatter_async(ts, rop, pre, post, what, name)


def _fused_reducescatter_async(ts: list[torch.Tensor], op: Any, prescale: float,
                               postscale: float, what: str, name: Any) -> int:
    """One reduce-scatter per dtype for the whole list. Rank r's parts of every tensor are
    packed into segment r of a buffer of size() equal segments (zero-padded to the longest),
    so the collective's even split hands every rank exactly its parts. A gathered signature
    of the list makes every rank raise the same error when the lists differ (equal segment
    sizes alone would not catch every difference)."""
    for t in ts:
        _convert.check_tensor(t, what)
        if t.dim() == 0:
            raise ValueError(f"{what}: every tensor must have at least one dimension (it is "
                             f"split along dimension 0); reshape 0-d tensors to (1,)")
    inputs = [_reduce_input(t, False, op, prescale, what) for t in ts]
    group = comm()
    world, rank = group.world_size, group.rank
    signature = zlib.crc32(repr([(str(t.dtype), tuple(t.shape)) for t in ts]).encode())
    by_dtype: dict[torch.dtype, list[int]] = {}
    for i, (_, work) in enumerate(inputs):
        by_dtype.setdefault(work.dtype, []).append(i)
    rows = [[len(part) for part in np.array_split(np.arange(t.shape[0]), world)] for t in ts]
    row_elems = [math.prod(t.shape[1:]) for t in ts]
    plans = []
    for dtype, members in by_dtype.items():
        segment = max(sum(rows[i][r] * row_elems[i] for i in members) for r in range(world))
        packed = torch.zeros(world * max(segment, 1), dtype=dtype)
        for i in members:
            flat = inputs[i][1].reshape(-1)
            start = 0
            for r in range(world):
                size = rows[i][r] * row_elems[i]
                offset = r * max(segment, 1) + sum(rows[j][r] * row_elems[j]
                                                   for j in members[:members.index(i)])
                packed[offset:offset + size] = flat[start:start + size]
                start += size
        plans.append((members, packed, _wire_op(op, packed)))
    key = _claim_name("grouped_reducescatter", name, what)

    def start() -> list:
        handles = [group.allgather(np.array([signature], dtype=np.int64), async_op=True)]
        handles += [group.reduce_scatter(_convert.as_array(packed), op=sent, async_op=True)
                    for _, packed, sent in plans]
        return handles

    def finish(results: list) -> list[torch.Tensor]:
        signatures = np.asarray(results[0]).tolist()
        if len(set(signatures)) > 1:
            odd = next(r for r, sig in enumerate(signatures) if sig != signatures[0])
            raise CollectiveMismatch(
                f"{what}: every rank must pass the same tensors (number, shapes, dtypes, "
                f"order); rank {odd}'s list differs from rank 0's")
        out: list[Any] = [None] * len(ts)
        for (members, packed, sent), part in zip(plans, results[1:]):
            mine = _convert.from_array(part, packed.dtype)
            offset = 0
            for i in members:
                size = rows[i][rank] * row_elems[i]
                piece = mine[offset:offset + size].reshape(rows[i][rank], *ts[i].shape[1:])
                out[i] = _reduce_output(ts[i], inputs[i][0], piece, False, op, sent, world,
                                        postscale)
                offset += size
        return out

    return _register(_submit(key, start), finish, key, grouped=True)


@takes_process_set
def grouped_reducescatter(tensors: Any, name: str | None = None, compression: Any = None,
                          op: Any = None, process_set: Any = None,
                          prescale_factor: float = 1.0, postscale_factor: float = 1.0
                          ) -> list[torch.Tensor]:
    """``reducescatter`` of every tensor of the list (each differentiable)."""
    what = "grouped_reducescatter"
    ts = _tensor_list(tensors, what)
    if compression is not None or (torch.is_grad_enabled() and
                                   any(t.requires_grad for t in ts)):
        return [reducescatter(t, compression=compression, op=op,
                              prescale_factor=prescale_factor,
                              postscale_factor=postscale_factor) for t in ts]
    return synchronize(grouped_reducescatter_async(ts, name, op, None, prescale_factor,
                                                   postscale_factor))


# --- synchronisation and objects -----------------------------------------------------------------

@takes_process_set
def barrier(process_set: Any = None) -> None:
    """Block until every worker has called barrier(). As in Horovod, async operations in
    flight are not waited for (workers may have started different ones: they pair up later)."""
    comm().barrier(after_pending=False)


def join(device: int = -1) -> int:
    """This worker has no more data: until every worker has called join() it stands in for the
    others' allreduces (Sum or Average, DistributedOptimizer's gradients included) with zeros,
    so averages still divide by size(), as in Horovod; any other collective called meanwhile
    raises on the workers that called it. Returns the rank that joined last. ``device`` is
    accepted for Horovod compatibility."""
    return comm().join()


@takes_process_set
def broadcast_object(obj: Any, root_rank: int = 0, name: str | None = None,
                     process_set: Any = None) -> Any:
    """A picklable object from ``root_rank`` to every worker (returned on every worker)."""
    return comm().broadcast_object(obj, root=_check_root(root_rank, "broadcast_object"))


@takes_process_set
def allgather_object(obj: Any, name: str | None = None, process_set: Any = None) -> list:
    """Every worker's picklable object, as a list in rank order."""
    return comm().allgather_object(obj)
