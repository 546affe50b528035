"""Horovod's DistributedOptimizer, broadcast_parameters and broadcast_optimizer_state."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import torch

from ..comm.base import ReduceOp
from ..errors import CollectiveMismatch, ConfigError
from . import _convert
from ._engine import GradientEngine, check_same_everywhere, describe_parameters
from ._ops import (
    Adasum,
    Average,
    _check_adasum_size,
    _check_root,
    _number,
    comm,
    comm_for,
    grouped_allreduce,
    resolve_op,
)
from ._process_sets import excludes_me
from ._process_sets import resolve as resolve_process_set

# --- fused broadcast of many tensors -------------------------------------------------------------


def broadcast_tensors_(tensors: list[torch.Tensor], root_rank: int) -> None:
    """Overwrite every tensor with root's value: one broadcast per device and dtype (tensors
    packed into one flat buffer), in list order, so every rank must pass the same shapes and
    dtypes."""
    if comm().world_size == 1:
        return
    by_kind: dict[tuple[torch.device, torch.dtype], list[torch.Tensor]] = {}
    for t in tensors:
        by_kind.setdefault((t.device, t.dtype), []).append(t)
    for (device, dtype), same in by_kind.items():
        total = sum(t.numel() for t in same)
        flat = torch.empty(total, dtype=dtype, device=device)
        group = comm_for(flat)
        if group.rank == root_rank and total:
            torch.cat([t.detach().reshape(-1) for t in same], out=flat)
        array = _convert.as_array(flat)
        group.broadcast(array, root=root_rank, out=array)
        if group.rank != root_rank:
            offset = 0
            with torch.no_grad():
                for t in same:
                    n = t.numel()
                    t.copy_(flat[offset:offset + n].view(t.shape))
                    offset += n


def _named_tensors(params: Any, what: str) -> list[tuple[str, torch.Tensor]]:
    if isinstance(params, dict):
        items = sorted(params.items())
    elif isinstance(params, torch.Tensor):
        raise TypeError(f"{what}: pass model.state_dict(), model.named_parameters() or a list of "
                        f"tensors, not a single tensor (use hvd.broadcast_ for one tensor)")
    else:
        try:
            items = list(params)
        except TypeError:
            raise TypeError(f"{what}: params must be a dict (state_dict) or an iterable of "
                            f"(name, tensor) pairs or tensors, got {type(params).__name__}"
                            ) from None
        items = [item if isinstance(item, tuple) else (f"[{i}]", item)
                 for i, item in enumerate(items)]
        items.sort(key=lambda pair: pair[0])
    out = []
    for pair in items:
        if len(pair) != 2 or not isinstance(pair[1], torch.Tensor):
            raise TypeError(f"{what}: expected (name, tensor) pairs or tensors, got {pair!r}")
        name, tensor = str(pair[0]), pair[1]
        _convert.check_tensor(tensor, what, f"'{name}'")
        out.append((name, tensor))
    names = [name for name, _ in out]
    if len(set(names)) != len(names):
        dups = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"{what}: parameter names must be unique, found duplicates {dups}")
    return out


def broadcast_parameters(params: Any, root_rank: int) -> None:
    """Overwrite every worker's parameters/buffers with ``root_rank``'s, in place.

    ``params``: ``model.state_dict()``, ``model.named_parameters()`` or a list of tensors.
    Names, shapes and dtypes are checked against rank 0's first; a difference raises
    CollectiveMismatch on every rank saying what differed.
    """
    root = _check_root(root_rank, "broadcast_parameters")
    named = _named_tensors(params, "broadcast_parameters")
    if comm().world_size == 1:
        return
    check_same_everywhere(describe_parameters(named), "broadcast_parameters")
    broadcast_tensors_([t for _, t in named], root)


def broadcast_optimizer_state(optimizer: torch.optim.Optimizer, root_rank: int,
                              model: Any = None) -> None:
    """Make every worker's optimizer state (per-parameter state such as momentum buffers and
    step counts, and every param group's options such as ``lr``) equal to ``root_rank``'s.

    Root's ``state_dict()`` travels as a skeleton object plus one fused broadcast of its
    tensors. The other ranks update their own param group dicts and state in place (not
    ``load_state_dict``, which would replace the group dicts a learning-rate scheduler holds).
    The param groups must have the same sizes on every rank (checked; CollectiveMismatch on
    every rank otherwise). An optimizer that has not stepped yet first takes Horovod's
    initialising step (``_initialise_state``), so that it has state to send.
    """
    what = "broadcast_optimizer_state"
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"{what}: optimizer must be a torch.optim.Optimizer, got "
                        f"{type(optimizer).__name__}")
    root = _check_root(root_rank, what)
    if not optimizer.state_dict()["state"]:
        _initialise_state(optimizer)
    copy_optimizer_state(optimizer, root, what)


def copy_optimizer_state(optimizer: torch.optim.Optimizer, root: int, what: str) -> None:
    """Root's optimizer state and options to every worker, as it is (an optimizer that has
    not stepped stays without state: the strategy's scope relies on that)."""
    group = comm()
    if group.world_size == 1:
        return
    sizes = [len(g["params"]) for g in optimizer.param_groups]
    everyone = group.allgather_object(sizes)
    if any(theirs != everyone[root] for theirs in everyone):
        detail = ", ".join(f"rank {r}: {s}" for r, s in enumerate(everyone))
        raise CollectiveMismatch(f"{what}: every worker's optimizer must have the same param "
                                 f"groups (parameters per group); got {detail}")
    tensors: list[torch.Tensor] = []
    skeleton = None
    if group.rank == root:
        skeleton = _strip_tensors(optimizer.state_dict(), tensors)
    skeleton = group.broadcast_object(skeleton, root=root)
    if group.rank != root:
        tensors = [torch.empty(shape, dtype=dtype) for shape, dtype in _tensor_specs(skeleton)]
    broadcast_tensors_(tensors, root)
    if group.rank != root:
        _adopt_state(optimizer, _fill_tensors(skeleton, iter(tensors)))


def _initialise_state(optimizer: torch.optim.Optimizer) -> None:
    """Horovod's rule for an optimizer that has not stepped yet (so has no state to send):
    every parameter that requires grad gets a zero gradient and the optimizer takes one step
    (without averaging), which creates its state (momentum buffers, step counts). The zero
    gradients stay, as in Horovod."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            if p.requires_grad:
                p.grad = torch.zeros_like(p)
    engine = getattr(optimizer, "_ringtrain_engine", None)
    if engine is None:
        optimizer.step()
        return
    engine.skip = True              # a local step: no averaging (every rank need not take it)
    try:
        optimizer.step()
    finally:
        engine.skip = False


def _adopt_state(optimizer: torch.optim.Optimizer, state_dict: dict) -> None:
    """Make ``optimizer`` hold ``state_dict``'s options and state, keeping its own objects."""
    param_of: dict[Any, torch.Tensor] = {}
    for mine, theirs in zip(optimizer.param_groups, state_dict["param_groups"]):
        for key, value in theirs.items():
            if key != "params":
                mine[key] = value
        param_of.update(zip(theirs["params"], mine["params"]))
    state: dict = {}
    for key, values in state_dict["state"].items():
        p = param_of[key]
        state[p] = {name: value.to(p.device) if isinstance(value, torch.Tensor) else value
                    for name, value in values.items()}
    optimizer.state.clear()
    optimizer.state.update(state)


class _TensorSlot:
    """Where a tensor was in a state dict: its shape and dtype travel, its data separately."""

    def __init__(self, shape: tuple, dtype: torch.dtype):
        self.shape, self.dtype = shape, dtype


def _strip_tensors(obj: Any, tensors: list) -> Any:
    if isinstance(obj, torch.Tensor):
        tensors.append(obj.detach().cpu())
        return _TensorSlot(tuple(obj.shape), obj.dtype)
    if isinstance(obj, dict):
        return {k: _strip_tensors(v, tensors) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_strip_tensors(v, tensors) for v in obj)
    return obj


def _tensor_specs(obj: Any) -> Iterator[tuple[tuple, torch.dtype]]:
    if isinstance(obj, _TensorSlot):
        yield obj.shape, obj.dtype
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _tensor_specs(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _tensor_specs(v)


def _fill_tensors(obj: Any, tensors: Iterator[torch.Tensor]) -> Any:
    if isinstance(obj, _TensorSlot):
        return next(tensors)
    if isinstance(obj, dict):
        return {k: _fill_tensors(v, tensors) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_fill_tensors(v, tensors) for v in obj)
    return obj


# --- DistributedOptimizer ------------------------------------------------------------------------

class _DistributedOptimizer:
    """Mixed into the wrapped optimizer's class: Horovod's extra methods."""

    _ringtrain_engine: GradientEngine | None   # None: this worker is outside the process set

    def synchronize(self) -> None:
        """Wait until the gradients are averaged (they already are when backward() returned,
        unless fewer than ``backward_passes_per_step`` passes ran); then ``.grad`` may be
        inspected or clipped before ``step()``, which then belongs inside
        ``skip_synchronize()`` (else it warns, as Horovod does)."""
        engine = self._ringtrain_engine
        if engine is None:
            return
        engine.synchronize()
        engine.user_synchronized = True

    @contextlib.contextmanager
    def skip_synchronize(self) -> Iterator[None]:
        """``step()`` inside this context does not average gradients (use after an explicit
        ``synchronize()``)."""
        engine = self._ringtrain_engine
        if engine is None:
            yield
            return
        engine.skip = True
        try:
            yield
        finally:
            engine.skip = False


class _AdasumStep:
    """``step()`` of ``DistributedOptimizer(op=hvd.Adasum)``, as Horovod's: each worker takes
    the wrapped optimizer's step with its own gradients, and the parameters' changes are then
    combined with Adasum, tensor by tensor, and applied to the parameters as they were before
    the step (so with SGD a parameter moves by -lr * Adasum of the workers' gradients).
    Optimizer state such as momentum stays each worker's own, as in Horovod; a worker outside
    the optimizer's process set keeps its own step."""

    def step(self, closure: Any = None) -> Any:
        params = [p for group in self.param_groups for p in group["params"] if p.requires_grad]
        before = [p.detach().clone() for p in params]
        loss = super().step(closure)
        if params and not excludes_me(self._adasum_process_set):
            with torch.no_grad():
                changes = grouped_allreduce([p.detach() - b for p, b in zip(params, before)],
                                            op=Adasum, process_set=self._adasum_process_set)
                for p, b, change in zip(params, before, changes):
                    p.copy_(b + change)
        return loss


def _named_for_optimizer(optimizer: torch.optim.Optimizer, named_parameters: Any,
                         what: str) -> list[tuple[str, torch.Tensor]]:
    in_optimizer = [p for g in optimizer.param_groups for p in g["params"]]
    if named_parameters is None:
        return [(f"allreduce.noname.{i}", p) for i, p in enumerate(in_optimizer)]
    if isinstance(named_parameters, dict):
        named_parameters = named_parameters.items()
    try:
        named = [(str(n), p) for n, p in named_parameters]
    except (TypeError, ValueError):
        raise TypeError(f"{what}: named_parameters must be model.named_parameters() (an "
                        f"iterable of (name, parameter) pairs)") from None
    names = [n for n, _ in named]
    if len(set(names)) != len(names):
        dups = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"{what}: parameter names in named_parameters must be unique; found "
                         f"duplicates {dups}")
    ids = {id(p) for p in in_optimizer}
    named = [(n, p) for n, p in named if id(p) in ids]
    if len(named) < len(ids):
        named_ids = {id(p) for _, p in named}
        missing = [i for i, p in enumerate(in_optimizer) if id(p) not in named_ids]
        raise ValueError(f"{what}: named_parameters was given, but {len(missing)} parameter(s) "
                         f"of the optimizer have no name (positions {missing[:10]} in "
                         f"param_groups); pass model.named_parameters() of the model the "
                         f"optimizer trains")
    return named


def _wrap(optimizer: torch.optim.Optimizer, named: list[tuple[str, torch.Tensor]],
          mixins: tuple) -> Any:
    """An instance of a subclass of ``optimizer``'s class with ``mixins`` first, sharing the
    original's state, param groups and hooks (a learning-rate scheduler built on it keeps
    working; a step wrapper a scheduler put on the instance stays behind)."""
    base = type(optimizer)
    cls = type(base.__name__, (*mixins, base), {"__module__": base.__module__})
    wrapped = cls.__new__(cls)
    wrapped.__dict__.update({k: v for k, v in optimizer.__dict__.items()
                             if k not in ("step", "zero_grad")})
    # Horovod's attribute: each parameter's name (the allreduce name in Horovod).
    wrapped._parameter_names = {p: name for name, p in named}
    return wrapped


def _adasum_optimizer(optimizer: torch.optim.Optimizer, named_parameters: Any,
                      process_set: Any, what: str) -> Any:
    if process_set is None:
        _check_adasum_size(comm().world_size, what)
    named = _named_for_optimizer(optimizer, named_parameters, what)
    wrapped = _wrap(optimizer, named, (_AdasumStep, _DistributedOptimizer))
    wrapped._ringtrain_engine = None        # no gradient averaging: see _AdasumStep
    wrapped._adasum_process_set = process_set
    return wrapped


def _horovod_fusion_threshold() -> int | None:
    """Horovod's name for the bucket size, honoured at Horovod's API edge when ringtrain's own
    ``RINGTRAIN_BUCKET_BYTES`` is not set (None: ringtrain's default)."""
    if "RINGTRAIN_BUCKET_BYTES" in os.environ:
        return None
    value = os.environ.get("HOROVOD_FUSION_THRESHOLD")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"HOROVOD_FUSION_THRESHOLD={value!r}: use a number of bytes (or set "
                          f"RINGTRAIN_BUCKET_BYTES)") from None


def DistributedOptimizer(optimizer: torch.optim.Optimizer, named_parameters: Any = None,
                         compression: Any = None, backward_passes_per_step: int = 1,
                         op: Any = Average, gradient_predivide_factor: float = 1.0,
                         num_groups: int = 0, groups: Any = None, sparse_as_dense: bool = False,
                         process_set: Any = None, bucket_bytes: int | None = None
                         ) -> torch.optim.Optimizer:
    """Wrap ``optimizer`` so that ``step()`` applies gradients averaged over all workers.

    Returns an instance of a subclass of ``optimizer``'s class sharing its state and param
    groups, with ``synchronize()`` and ``skip_synchronize()``. Gradients are all-reduced in
    fused buckets while backward runs; ``.grad`` holds the average when backward returns.
    ``backward_passes_per_step``: backward passes accumulated locally per step.
    ``op``: ``hvd.Average`` (default), ``hvd.Sum``, or ``hvd.Adasum`` (each worker steps with
    its own gradients and the parameters' changes are combined with Adasum: ``_AdasumStep``;
    a power of 2 of workers).
    ``gradient_predivide_factor``: with Average, gradients are divided by it before the sum
    and multiplied by it after (guards low-precision sums). ``sparse_as_dense=False``
    (Horovod's default): sparse gradients (``nn.Embedding(sparse=True)``) stay sparse, every
    rank's indices and values gathered, so ``torch.optim.SparseAdam`` works; True densifies
    them into the buckets. ``num_groups``/``groups`` are accepted for compatibility (buckets
    are sized by ``bucket_bytes``, default ``RINGTRAIN_BUCKET_BYTES``, else Horovod's
    ``HOROVOD_FUSION_THRESHOLD``).
    Parameters are not broadcast here: call ``broadcast_parameters`` and
    ``broadcast_optimizer_state`` as in Horovod. ``process_set``: gradients are averaged over
    its members; a worker outside it steps with its own gradients (as in Horovod).
    """
    what = "DistributedOptimizer"
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"{what}: optimizer must be a torch.optim.Optimizer, got "
                        f"{type(optimizer).__name__}")
    if isinstance(optimizer, _DistributedOptimizer):
        raise TypeError(f"{what}: this optimizer is already a DistributedOptimizer; wrap the "
                         f"original optimizer once")
    rop = resolve_op(op, None, what)
    if rop is Adasum:
        return _adasum_optimizer(optimizer, named_parameters, process_set, what)
    if rop not in (ReduceOp.AVG, ReduceOp.SUM):
        raise ValueError(f"{what}: op must be hvd.Average or hvd.Sum, got {op!r}")
    factor = _number(gradient_predivide_factor, what, "gradient_predivide_factor")
    if factor != 1.0 and rop is not ReduceOp.AVG:
        raise ValueError(f"{what}: gradient_predivide_factor needs op=hvd.Average (got "
                         f"{op!r}); drop the factor or average")
    if factor <= 0:
        raise ValueError(f"{what}: gradient_predivide_factor must be > 0, got {factor}")
    named = _named_for_optimizer(optimizer, named_parameters, what)
    engine = None       # a worker outside the process set steps with its own gradients
    if not excludes_me(process_set):
        chosen = resolve_process_set(process_set, what)
        if bucket_bytes is None:
            bucket_bytes = _horovod_fusion_threshold()
        engine = GradientEngine(named, op=rop, compression=compression,
                                backward_passes_per_step=backward_passes_per_step,
                                predivide=factor, bucket_bytes=bucket_bytes, what=what,
                                group=None if chosen is None else chosen.comm,
                                sparse_as_dense=bool(sparse_as_dense))
    wrapped = _wrap(optimizer, named, (_DistributedOptimizer,))
    if engine is None:
        wrapped._ringtrain_engine = None
    else:
        engine.attach(wrapped)
    return wrapped
