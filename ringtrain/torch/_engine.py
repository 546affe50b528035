"""Gradient averaging for torch models: gradients are all-reduced in place, in fused buckets,
as soon as a bucket is full, overlapping the rest of backward.

Buckets: ``comm.common.plan_buckets`` (the planner graph models use too) over a list of
parameters that is the same on every rank: parameters of one dtype in order, up to
``bucket_bytes``. A bucket of several parameters owns a flat buffer allocated
once, and their ``.grad`` tensors are views into it; a bucket of one parameter (a large one)
is all-reduced in the ``.grad`` tensor autograd produced, with no copy at all.

One round of averaging:

1. During backward, each parameter's post-accumulate-grad hook marks it ready; in a fused
   bucket it first makes sure ``.grad`` is the view into the buffer (autograd replaces
   ``.grad`` after ``zero_grad(set_to_none=True)``: the hook copies the new gradient in and
   re-seats the view).
2. A bucket whose parameters are all ready is all-reduced asynchronously, but only after every
   bucket before it, so every rank issues the same collectives in the same order whatever the
   readiness order.
3. At the end of the backward pass (an autograd engine callback) the buckets not launched yet
   are launched: a parameter that got no gradient on this rank contributes its existing
   ``.grad`` or zeros. Then the round waits for every bucket, so ``.grad`` holds the average
   when ``backward()`` returns (gradient clipping works as in single-process code).
4. The last message carries two flags per parameter, "this rank had a dense gradient" and
   "a sparse one"; a parameter that no rank had a gradient for keeps ``.grad = None``,
   exactly like one process. Sparse gradients (``nn.Embedding(sparse=True)``) stay sparse
   unless ``sparse_as_dense``: their slots send zeros, and at the end of the round every rank
   gathers every rank's indices and values of the parameters flagged sparse (Horovod's way).

The first bucket plan follows rank 0's parameter registration order reversed (roughly the
order backward produces gradients). After the first round that saw gradients, rank 0's
observed order (parameters without a gradient last) is broadcast and every rank re-plans the
buckets once, so a model whose registration order differs from its use, or that has unused
parameters, still overlaps communication with backward.

On a GPU (parameters on one CUDA device) the buckets are flat CUDA buffers, and "launch" and
"wait" are stream operations (``_streams.py``): a bucket's all-reduce is enqueued on a side
stream after an event recorded on the stream that produced its gradients, and the end of the
round makes the current stream (and later ``optimizer.step()``'s) wait for an event recorded
on the side stream after the collectives. The host does not wait for the GPU, except to read
the "had a gradient" flags when some parameter had none, and in the staged (MPI) path, which
copies through host memory.

With ``backward_passes_per_step = k`` a round spans k backward passes (gradients accumulate in
the views in between); inside ``no_sync()`` passes do not count. ``optimizer.step()`` runs a
round first if none ran since the previous step, so ranks whose backward produced no gradient
still take part in the same collectives.
"""

from __future__ import annotations

import os
import time
import warnings
import weakref
from collections.abc import Sequence
from typing import Any

import torch
from torch.autograd import Variable

from .. import env
from ..comm import stragglers
from ..comm.base import ReduceOp
from ..comm.common import check_bucket_bytes, plan_buckets
from ..comm.replicas import ReplicaGuard
from ..errors import CollectiveMismatch, ConfigError
from . import _convert, _streams
from ._compression import Compression
from ._ops import comm
from ._precision import SIXTEEN_BIT, SixteenBitAllreduce

# id(parameter) -> (weak parameter, weak engine): which engine averages each parameter's gradient
# (a newer engine takes a parameter over). Nothing is stored on the parameter itself, so
# models still pickle.
_owners: dict[int, tuple[weakref.ref, weakref.ref]] = {}


def owner(param: torch.Tensor) -> GradientEngine | None:
    """The live engine that averages ``param``'s gradient, or None."""
    entry = _owners.get(id(param))
    return entry[1]() if entry is not None and entry[0]() is param else None


# The id of the running backward pass (graph task), so that one end-of-pass callback is queued
# per pass even when an earlier pass died half-way; older torch builds lack it.
_graph_task_id = getattr(torch._C, "_current_graph_task_id", lambda: 0)


def _describe(shape: tuple, dtype: str) -> str:
    return f"shape {tuple(shape)} {dtype}"


def check_same_everywhere(entries: list[tuple[str, tuple, str]], what: str,
                          group: Any = None) -> list[list]:
    """All-gather ``(name, shape, dtype)`` lists and raise CollectiveMismatch on every rank,
    naming the differences, unless every rank has exactly rank 0's set. Returns all lists."""
    everyone = (comm() if group is None else group).allgather_object(entries)
    reference = {name: (shape, dtype) for name, shape, dtype in everyone[0]}
    problems: list[str] = []
    for rank, theirs in enumerate(everyone[1:], start=1):
        mine = {name: (shape, dtype) for name, shape, dtype in theirs}
        missing = sorted(set(reference) - set(mine))
        extra = sorted(set(mine) - set(reference))
        if missing:
            problems.append(f"rank {rank} lacks {_names(missing)} that rank 0 has")
        if extra:
            problems.append(f"rank {rank} has {_names(extra)} that rank 0 lacks")
        for name in sorted(set(reference) & set(mine)):
            if mine[name] != reference[name]:
                problems.append(f"'{name}' has {_describe(*mine[name])} on rank {rank} but "
                                f"{_describe(*reference[name])} on rank 0")
    if problems:
        shown = "; ".join(problems[:6])
        more = f"; and {len(problems) - 6} more" if len(problems) > 6 else ""
        raise CollectiveMismatch(f"{what}: every worker must build the same model (same "
                                 f"parameter names, shapes and dtypes): {shown}{more}")
    return everyone


def _names(names: list[str]) -> str:
    quoted = ", ".join(f"'{n}'" for n in names[:5])
    return quoted + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def describe_parameters(named: Sequence[tuple[str, torch.Tensor]]) -> list[tuple[str, tuple, str]]:
    return [(name, tuple(p.shape), str(p.dtype).replace("torch.", "")) for name, p in named]


class _Finished:
    """The handle of a bucket all-reduced synchronously."""

    @staticmethod
    def wait() -> None:
        return None


_FINISHED = _Finished()


def overlap_by_default(group: Any, on_gpu: bool = False) -> bool:
    """``RINGTRAIN_OVERLAP``; ``auto``: on a GPU (``on_gpu``) always: the GPU computes while the
    host only enqueues; on CPUs when this machine's cores (those this process may run on) cover
    every local worker's torch threads plus its communication thread.

    Without a spare core the communication thread only takes time slices from the compute
    threads, and the ring's steps, which need both neighbours running at once, wait for the
    scheduler: then all buckets go at the end of backward, when the compute threads are idle.
    """
    setting = str(env.get("RINGTRAIN_OVERLAP")).strip().lower()
    if setting in ("1", "true", "yes", "on"):
        return True
    if setting in ("0", "false", "no", "off"):
        return False
    if setting != "auto":
        raise ConfigError(f"RINGTRAIN_OVERLAP={setting!r}: use auto, 1 or 0")
    if on_gpu:
        return True
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:          # not Linux
        cores = os.cpu_count() or 1
    return cores >= group.local_size * (torch.get_num_threads() + 1)


class _Slot:
    """One parameter: its place in the bucket plan and the tensor its gradient travels in."""

    __slots__ = ("bucket", "index", "name", "param", "position", "spare", "view")

    def __init__(self, name: str, param: torch.Tensor):
        self.name, self.param = name, param
        self.bucket: _Bucket
        self.index = 0                          # within the bucket
        self.position = 0                       # within the whole plan (its flag)
        self.view: torch.Tensor | None = None   # in the fused buffer (fused buckets only)
        self.spare: torch.Tensor | None = None  # zeros to send when a direct slot has no grad


class _Bucket:
    """Parameters all-reduced as one message: a fused flat buffer, or one parameter's own
    gradient (``direct``). The last bucket also carries every parameter's flag."""

    __slots__ = ("array", "buffer", "ctx", "direct", "flags", "flat", "handle", "index",
                 "previous", "queued", "ready", "remaining", "slots", "wire")

    def __init__(self, index: int, slots: list[_Slot], flags: int = 0,
                 dtype: torch.dtype | None = None, device: torch.device | None = None):
        self.index = index
        self.slots = slots
        self.direct = len(slots) == 1 and not flags
        self.flat: torch.Tensor | None = None
        self.array: Any = None
        self.flags: torch.Tensor | None = None
        if not self.direct:
            sizes = [s.param.numel() for s in slots]
            total = sum(sizes)
            dtype = slots[0].param.dtype if slots else dtype
            device = slots[0].param.device if slots else device
            self.flat = torch.zeros(total + flags, dtype=dtype, device=device)
            self.array = _convert.as_array(self.flat)
            if flags:
                self.flags = self.flat[total:]
            offset = 0
            for slot, n in zip(slots, sizes):
                slot.view = self.flat[offset:offset + n].view(slot.param.shape)
                offset += n
        for i, slot in enumerate(slots):
            slot.bucket, slot.index = self, i
            if self.direct:
                slot.view = None
        self.buffer: torch.Tensor | None = None     # what travels this round
        self.wire: torch.Tensor | None = None
        self.ctx: Any = None
        self.handle: Any = None
        self.previous: Any = None   # last round's handle, waited on the device only
        self.ready = [False] * len(slots)
        self.remaining = len(slots)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.slots]

    def reset(self) -> None:
        self.ready = [False] * len(self.slots)
        self.remaining = len(self.slots)
        self.handle = self.buffer = self.wire = self.ctx = None


class GradientEngine:
    """Averages (or sums) the gradients of ``named_parameters`` across all workers.

    ``named_parameters``: ``(name, parameter)`` pairs, names unique; parameters that do not
    require grad are skipped. Checks on every rank that the names, shapes and dtypes match
    rank 0's (CollectiveMismatch otherwise). ``active=None`` means "only when there are
    several workers": in a world of one the gradients are already the average. ``group``: the
    Communicator to use (default: the process group's). ``overlap``: launch buckets during
    backward (default ``RINGTRAIN_OVERLAP``; see ``overlap_by_default``).
    """

    def __init__(self, named_parameters: Sequence[tuple[str, torch.Tensor]], *,
                 op: ReduceOp = ReduceOp.AVG, compression: Any = None,
                 backward_passes_per_step: int = 1, predivide: float = 1.0,
                 bucket_bytes: int | None = None, algorithm: str | None = None,
                 what: str = "DistributedOptimizer", active: bool | None = None,
                 group: Any = None, overlap: bool | None = None,
                 streams: _streams.Streams | None = None, sparse_as_dense: bool = False):
        if op not in (ReduceOp.AVG, ReduceOp.SUM):
            raise ValueError(f"{what}: gradients can be averaged (op=hvd.Average) or summed "
                             f"(op=hvd.Sum), got {op!r}")
        if isinstance(backward_passes_per_step, bool) or \
                not isinstance(backward_passes_per_step, int) or backward_passes_per_step < 1:
            raise ValueError(f"{what}: backward_passes_per_step must be an int >= 1, got "
                             f"{backward_passes_per_step!r}")
        bucket_bytes = check_bucket_bytes(bucket_bytes, what)
        named = [(name, p) for name, p in named_parameters if p.requires_grad]
        for name, p in named:
            _convert.check_tensor(p, what, f"parameter '{name}'")
            if not p.is_floating_point():
                raise TypeError(f"{what}: parameter '{name}' has dtype {p.dtype}; only floating "
                                f"parameters have gradients to average")
        self.what = what
        self.op = op
        self.compression = Compression.none if compression is None else compression
        self.k = backward_passes_per_step
        self.predivide = float(predivide)
        # Resolved once: the collectives would read the environment on every call.
        self.algorithm = env.get("RINGTRAIN_ALGORITHM") if algorithm is None else algorithm
        self.comm = comm() if group is None else group
        # The buckets live where the parameters do. CUDA gradients travel through a
        # communicator that takes them (NCCL, or staged through pinned host memory), launched
        # on a side stream ordered by events (see _streams.py).
        places = {p.device for _, p in named}
        if len(places) > 1:
            raise ValueError(f"{what}: the parameters are on several devices "
                             f"({', '.join(sorted(map(str, places)))}); gradients are averaged "
                             f"in buckets on one device: move the model there (model.to(...))")
        self.device = places.pop() if places else _convert.device()
        self.bucket_comm = _convert.communicator(self.comm) if self.device.type == "cuda" \
            else self.comm
        self.streams = _streams.for_device(self.device) if streams is None else streams
        self._done: Any = None          # the side stream's event the next step must wait on
        self.active = self.comm.world_size > 1 if active is None else bool(active)
        self.bucket_bytes = bucket_bytes
        self.overlap = overlap_by_default(self.comm, self.streams is not None) \
            if overlap is None else bool(overlap)
        self.accumulate = 0             # depth of no_sync() contexts
        self.skip = False               # inside optimizer.skip_synchronize()
        self.user_synchronized = False  # optimizer.synchronize() was called since the last step
        self.closed: str | bool = False
        self._passes = 0                # backward passes counted in the current round
        self._task: int | None = None   # the backward pass whose end-of-pass callback is queued
        self._next = 0                  # the next bucket to launch
        self._rounds_since_step = 0
        self._no_grad: list[_Slot] = []  # slots sent as zeros this round (no .grad here)
        # Sparse gradients stay sparse (Horovod's sparse_as_dense=False): their slots send zeros
        # and the sparse gradients of every rank are gathered at the end of the round.
        self.sparse_as_dense = bool(sparse_as_dense)
        self._sparse: dict[int, _Slot] = {}     # position -> slot with a sparse .grad here
        # sparse_as_dense: parameters whose sparse .grad travelled dense this round; their
        # average is made sparse again before the update (Horovod's documented behaviour:
        # torch.optim.SparseAdam takes sparse gradients only).
        self._densified: dict[int, torch.Tensor] = {}
        self._hooks: list[Any] = []
        self.replicas = ReplicaGuard(self.comm, what)

        everyone = check_same_everywhere(describe_parameters(named), what, self.comm)
        self.recorder = stragglers.recorder_for(self.comm) if self.active else None
        self._optimizer_start = 0.0
        # Rank 0's order reversed: parameters registered last get gradients first in backward,
        # so their bucket fills (and starts all-reducing) first.
        by_name = dict(named)
        self.slots = {name: _Slot(name, by_name[name]) for name, _, _ in reversed(everyone[0])}
        self.buckets = self._plan(list(self.slots.values()))
        # Gradient order seen during the current round, until the buckets have been re-planned.
        self._observed: list[str] | None = []
        self._own()
        if self.active:
            self._install()

    # --- set-up ----------------------------------------------------------------------------

    def _plan(self, slots: list[_Slot]) -> list[_Bucket]:
        # No direct threshold: a fused bucket's gradients live in its buffer, so fusing costs
        # no copy in the steady state (the communicator's allreduce_many must pack).
        groups = [[slots[i] for i in indices]
                  for indices in plan_buckets([s.param for s in slots], self.bucket_bytes)]
        for position, slot in enumerate(slots):
            slot.position = position
        # The last message carries the flags, two per parameter ("had a dense gradient", "had
        # a sparse one"): the last bucket when it is fused, else a bucket of flags alone.
        flags = 2 * len(slots)
        if groups and len(groups[-1]) > 1:
            *rest, last = groups
            return [_Bucket(i, g) for i, g in enumerate(rest)] + \
                [_Bucket(len(rest), last, flags=flags)]
        return [_Bucket(i, g) for i, g in enumerate(groups)] + \
            [_Bucket(len(groups), [], flags=flags, dtype=torch.float32, device=self.device)]

    def _own(self) -> None:
        for slot in self.slots.values():
            p = slot.param
            # One engine per parameter: a newer one (a new optimizer) takes it over.
            previous = owner(p)
            if previous is not None and previous is not self:
                previous.close(taken_over=True)
            key = id(p)
            _owners[key] = (weakref.ref(p, lambda _, key=key: _owners.pop(key, None)),
                            weakref.ref(self))

    def _install(self) -> None:
        for slot in self.slots.values():
            p = slot.param
            if p.grad is not None and slot.view is not None:
                self._reseat(p, slot.view, p.grad)
            self._hooks.append(p.register_post_accumulate_grad_hook(self._make_hook(slot)))

    def _replan(self) -> None:
        """Once: adopt rank 0's observed gradient order (a collective, at the end of a round
        on every rank) and move the gradients into the new buckets."""
        for bucket in self.buckets:      # the old buffers may be dropped below
            if bucket.previous is not None:
                bucket.previous.wait()
                bucket.previous = None
        observed = self._observed if self.comm.rank == 0 else None
        order = self.comm.broadcast_object(observed, root=0)
        if not order:
            self._observed = []         # rank 0 saw no gradient yet: try after the next round
            return
        self._observed = None
        seen = set(order)
        names = order + [name for name in self.slots if name not in seen]
        if names == [s.name for b in self.buckets for s in b.slots]:
            return
        old_views = {name: slot.view for name, slot in self.slots.items()}
        self.buckets = self._plan([self.slots[name] for name in names])
        for name, slot in self.slots.items():
            p, old = slot.param, old_views[name]
            if p.grad is not None and old is not None and p.grad is old:
                if slot.view is None:       # now direct: the gradient gets its own tensor
                    p.grad = old.clone()
                else:
                    self._reseat(p, slot.view, old)

    def close(self, taken_over: bool = False) -> None:
        """Remove the hooks; this engine averages nothing from now on."""
        for handle in self._hooks:
            handle.remove()
        self._hooks.clear()
        self.closed = "taken over" if taken_over else "closed"

    # --- during backward --------------------------------------------------------------------

    def _reseat(self, p: torch.Tensor, view: torch.Tensor, grad: torch.Tensor) -> None:
        if grad.is_sparse:
            self._densified[id(p)] = p
        view.copy_(grad.detach().to_dense() if grad.is_sparse else grad.detach())
        p.grad = view

    def _make_hook(self, slot: _Slot):
        def hook(p: torch.Tensor) -> None:
            view = self._keeps_sparse(slot)
            if view is not None and p.grad is not view:
                self._reseat(p, view, p.grad)
            if self.accumulate:
                return
            task = _graph_task_id()
            if task != self._task:
                self._task = task
                Variable._execution_engine.queue_callback(self._end_pass)
            if self._passes + 1 < self.k:
                return
            bucket = slot.bucket
            if not bucket.ready[slot.index]:
                bucket.ready[slot.index] = True
                bucket.remaining -= 1
                if self._observed is not None:
                    self._observed.append(slot.name)
                if bucket.remaining == 0 and bucket.index == self._next and self.overlap:
                    self._launch_ready()

        return hook

    def _keeps_sparse(self, slot: _Slot) -> torch.Tensor | None:
        """The slot's fused view, or None when there is none or when its gradient is sparse
        and stays so (then it is gathered at the end of the round, and the slot sends zeros)."""
        grad = slot.param.grad
        if grad is not None and grad.is_sparse and not self.sparse_as_dense:
            self._sparse[slot.position] = slot
            return None
        self._sparse.pop(slot.position, None)
        return slot.view

    def _launch_ready(self) -> None:
        buckets = self.buckets
        while self._next < len(buckets) and buckets[self._next].remaining == 0:
            self._launch(buckets[self._next])
            self._next += 1

    def _direct_buffer(self, bucket: _Bucket) -> torch.Tensor:
        """The tensor a one-parameter bucket sends: the parameter's own gradient when it can
        travel as it is, else a copy (seated as ``.grad``), else zeros."""
        slot = bucket.slots[0]
        p = slot.param
        grad = p.grad
        sparse = grad is not None and grad.is_sparse and not self.sparse_as_dense
        if grad is None or sparse:
            if slot.spare is None:
                slot.spare = torch.zeros_like(p, memory_format=torch.contiguous_format)
            else:
                slot.spare.zero_()
            if sparse:
                self._sparse[slot.position] = slot
            else:
                self._no_grad.append(slot)
            return slot.spare
        if grad.is_sparse or not grad.is_contiguous() or grad.dtype != p.dtype:
            own = torch.empty_like(p, memory_format=torch.contiguous_format)
            self._reseat(p, own, grad)
            return own
        return grad

    def _launch(self, bucket: _Bucket, now: bool = False) -> None:
        """Start all-reducing ``bucket`` (``now``: in this thread, returning when done; the
        communicator still runs it after everything submitted before)."""
        if self.recorder is not None:
            self.recorder.arrive()
            bucket.queued = time.time()
        if bucket.direct:
            buffer = self._direct_buffer(bucket)
        else:
            buffer = bucket.flat
            if bucket.remaining:
                # Parameters without a gradient in this round: their current .grad, else zeros.
                for i, slot in enumerate(bucket.slots):
                    if bucket.ready[i]:
                        continue
                    p, view = slot.param, slot.view
                    grad = p.grad
                    if grad is None:
                        view.zero_()
                        self._no_grad.append(slot)
                    elif self._keeps_sparse(slot) is None:
                        view.zero_()
                    elif grad is not view:
                        self._reseat(p, view, grad)
            if self._sparse:
                for slot in bucket.slots:
                    if slot.position in self._sparse:
                        slot.view.zero_()
            if bucket.flags is not None:
                n = len(self.slots)
                bucket.flags[:n].fill_(1)
                bucket.flags[n:].zero_()
                for slot in self._no_grad:
                    bucket.flags[slot.position] = 0
                for position in self._sparse:
                    bucket.flags[position] = 0
                    bucket.flags[n + position] = 1
        if self.predivide != 1.0:
            buffer.mul_(1.0 / self.predivide)
        wire, ctx = self.compression.compress(buffer)
        streams = self.streams
        if streams is None and wire.dtype in SIXTEEN_BIT:
            # float16/bfloat16 on the host (the gradients' own dtype or a compressor's): 16
            # bits travel, float32 adds them, so the result is rounded once and cannot
            # overflow mid-sum. Its second collective runs in _finish_round's waits, in bucket
            # order on every rank (not here: ranks launch different buckets during backward).
            if not wire.is_contiguous():
                wire = wire.contiguous()
            bucket.buffer, bucket.wire, bucket.ctx = buffer, wire, ctx
            bucket.handle = SixteenBitAllreduce(self.comm, wire.view(-1), self.op,
                                                async_op=not now)
            return
        if not _convert.reducible(wire):        # bfloat16: summed in float32
            wire = wire.float()
        array = bucket.array if wire is bucket.flat else _convert.as_array(wire)
        bucket.buffer, bucket.wire, bucket.ctx = buffer, wire, ctx
        if streams is None:
            # With a timeline every bucket goes through the communication thread, whose
            # handle marks when its all-reduce started and finished (a synchronous call has
            # no handle).
            timed = self.recorder is not None and self.recorder.timeline is not None
            bucket.handle = self.bucket_comm.allreduce(array, op=self.op,
                                                       algorithm=self.algorithm, out=array,
                                                       async_op=not now or timed)
            if now and not timed:
                bucket.handle = _FINISHED
            return
        if bucket.previous is not None:
            # The host's check of last round's collective (NCCL errors, timeouts): long done.
            bucket.previous.wait()
            bucket.previous = None
        # The side stream waits for the gradients (queued on the producer's stream so far),
        # the collective goes on the side stream, and the host returns to backward at once.
        side = streams.side(self.device)
        streams.wait(side, streams.record(streams.current(self.device)))
        streams.keep(wire, side)        # a temporary wire (fp16, bf16 as fp32) lives on there
        with streams.use(side):
            bucket.handle = self.bucket_comm.allreduce(array, op=self.op,
                                                       algorithm=self.algorithm, out=array,
                                                       async_op=True)

    def _end_pass(self) -> None:
        self._task = None
        self._passes += 1
        if self._passes >= self.k:
            self._finish_round()

    def _finish_round(self) -> None:
        """Launch what is left (in bucket order), wait for every bucket, publish the result."""
        started = time.perf_counter()
        buckets = self.buckets
        try:
            # What is left goes now, from this thread (saves the hand-off to the
            # communication thread: the round waits for it anyway).
            while self._next < len(buckets):
                self._launch(buckets[self._next], now=True)
                self._next += 1
            if self.streams is not None:
                self._wait_on_device(buckets)
            timeline = None if self.recorder is None else self.recorder.timeline
            for bucket in buckets:
                bucket.handle.wait()
                if timeline is not None and self.streams is None:   # on a GPU: enqueued only
                    handle = bucket.handle
                    timeline.bucket(f"bucket {bucket.index}", bucket.queued, handle.started,
                                    handle.finished or time.time(),
                                    {"bytes": bucket.wire.nbytes,
                                     "parameters": len(bucket.slots)})
                self._unpack(bucket)
            flags = buckets[-1].flags.tolist()
            for slot in self._no_grad:
                if flags[slot.position] > 0:    # another rank had a gradient: the average
                    slot.param.grad = slot.spare if slot.view is None else slot.view
            n = len(self.slots)
            for slot in sorted(self.slots.values(), key=lambda s: s.position):
                if flags[n + slot.position] > 0:     # some rank had a sparse gradient
                    self._gather_sparse(slot, dense=flags[slot.position] > 0)
            for p in self._densified.values():
                p.grad = p.grad.to_sparse()
        finally:
            for bucket in buckets:
                bucket.reset()
            self._no_grad = []
            self._sparse = {}
            self._densified = {}
            self._next = 0
            self._passes = 0
        self._rounds_since_step += 1
        self.user_synchronized = False      # new gradients (a skipped step never reset it)
        if self.recorder is not None:
            self.recorder.add("comm", time.perf_counter() - started)
        if self._observed is not None:
            self._replan()

    def _gather_sparse(self, slot: _Slot, dense: bool) -> None:
        """Horovod's sparse reduction of one parameter's gradient, on every rank in plan order:
        every rank's indices and values gathered (a rank without a sparse gradient sends none),
        values divided by the number of ranks for an average. The gradient stays sparse, unless
        some rank had a dense one (then the dense average plus the sparse one)."""
        p = slot.param
        mine = self._sparse.get(slot.position)
        if mine is not None:
            grad = p.grad
            indices = grad._indices().t().contiguous().cpu()
            values = grad._values().contiguous().cpu()
        else:       # an embedding-like layout: one sparse dimension, rows of the rest
            indices = torch.zeros((0, 1), dtype=torch.int64)
            values = torch.zeros((0, *p.shape[1:]), dtype=p.dtype)
        group = self.comm
        indices = _convert.from_array(group.allgather(_convert.as_array(indices)), torch.int64)
        values = _convert.from_array(group.allgather(_convert.as_array(values)), values.dtype)
        if self.op is ReduceOp.AVG:
            values = values / group.world_size
        sparse = torch.sparse_coo_tensor(indices.t(), values, p.shape,
                                         check_invariants=False).to(p.device)
        if not dense:
            p.grad = sparse
            return
        result = p.grad if p.grad is not None and not p.grad.is_sparse else             slot.spare if slot.view is None else slot.view
        p.grad = result.add_(sparse)

    def _wait_on_device(self, buckets: list[_Bucket]) -> None:
        """Order the compute stream after every bucket's collective without the host waiting:
        the side stream waits for each collective (NCCL's handles do that on the device;
        staged ones copy back there), then the compute stream waits for the side stream.
        The handles are checked by the host when their bucket next launches; ``before_step``
        makes the optimizer's stream wait for the same event."""
        streams = self.streams
        side = streams.side(self.device)
        with streams.use(side):
            for bucket in buckets:
                handle = bucket.handle
                on_device = getattr(handle, "wait_on_device", None)
                if on_device is None:
                    handle.wait()       # staged: the host waits for MPI, copies back on side
                else:
                    on_device()
                    bucket.previous = handle
                bucket.handle = _FINISHED
        self._done = streams.record(side)
        streams.wait(streams.current(self.device), self._done)

    def _unpack(self, bucket: _Bucket) -> None:
        buffer = bucket.buffer
        if bucket.wire is not buffer:
            buffer.copy_(self.compression.decompress(bucket.wire, bucket.ctx))
        if self.predivide != 1.0:
            buffer.mul_(self.predivide)

    # --- around optimizer.step() ------------------------------------------------------------

    def synchronize(self) -> None:
        """Finish the current round; run one if none ran since the last step (so a rank whose
        backward produced no gradient still joins the other ranks' all-reduces)."""
        if self.closed:
            raise RuntimeError(f"{self.what}: this optimizer no longer averages gradients: its "
                               f"parameters were {self.closed} (a newer DistributedOptimizer "
                               f"or an optimizer created in strategy.scope() owns them); step "
                               f"the newer optimizer instead")
        if not self.active:
            return
        if self._passes or not self._rounds_since_step:
            self._finish_round()

    def before_step(self) -> None:
        self._optimizer_start = time.perf_counter()
        if not self.skip:
            if self.user_synchronized:
                warnings.warn("optimizer.step() called without optimizer.skip_synchronize() "
                              "after optimizer.synchronize(): step() synchronizes again (a "
                              "no-op unless backward ran in between). Wrap step() in 'with "
                              "optimizer.skip_synchronize():' when you synchronize() yourself, "
                              "e.g. to clip gradients.", stacklevel=4)
            self.synchronize()
        if self._done is not None:
            # step() may run on another stream than the end of backward: its kernels wait for
            # the averaged gradients on the device, the host does not wait.
            self.streams.wait(self.streams.current(self.device), self._done)
            self._done = None
        if self.active:
            self.replicas.step(self._parameter_arrays)
        if not self.skip:
            self._optimizer_start = time.perf_counter()     # the update proper starts now

    def _parameter_arrays(self) -> list[tuple[str, Any]]:
        """Every parameter as a host array, in plan order (the replica guard's input)."""
        out = []
        for name, slot in self.slots.items():
            value = slot.param.detach().cpu()
            if value.dtype == torch.bfloat16:   # NumPy has no bfloat16; float32 holds it exactly
                value = value.float()
            out.append((name, value.numpy()))
        return out

    def after_step(self) -> None:
        # A step that averaged gradients ends a training step (not the local step that
        # broadcast_optimizer_state takes to create the optimizer's state).
        if self.recorder is not None and self._rounds_since_step:
            self.recorder.add("optimizer", time.perf_counter() - self._optimizer_start)
            self.recorder.step_done()
        self._rounds_since_step = 0
        self.user_synchronized = False

    def attach(self, optimizer: torch.optim.Optimizer) -> None:
        """Average gradients before every ``optimizer.step()``."""
        optimizer._ringtrain_engine = self

        # Hook dicts may be shared with a wrapped optimizer: act only for our own optimizer.
        def pre(opt, args, kwargs):
            if getattr(opt, "_ringtrain_engine", None) is self:
                self.before_step()

        def post(opt, args, kwargs):
            if getattr(opt, "_ringtrain_engine", None) is self:
                self.after_step()

        optimizer.register_step_pre_hook(pre)
        optimizer.register_step_post_hook(post)
