"""The torch half of ``ringtrain.distribute.MirroredStrategy``.

``strategy.scope()`` calls ``enter_scope``/``exit_scope`` when torch is imported. Inside a
scope (on the thread that entered it):

- modules are created on this worker's device, and the modules created are remembered so
  that parameters get their qualified names (``fc1.weight``);
- an optimizer created (``torch.optim.Optimizer.__init__`` is wrapped while any scope is
  open) first makes every rank's parameters, buffers and optimizer state equal to the chief's,
  then gets a GradientEngine: gradients are averaged over workers in fused buckets during
  backward, and before every ``step()``;
- with ``scope(mixed_precision="bf16"|"fp16")`` the models an optimizer trains run their
  forward under autocast, and with fp16 ``strategy.backward(loss)`` and ``step()`` do the
  loss scaling (``_precision.MixedPrecision``).

Everything is undone when the last scope exits; optimizers created inside keep averaging.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
import weakref
from collections.abc import Iterator
from typing import Any

import torch
from torch.nn.modules import module as _module

from ..comm.base import ReduceOp
from ..world import process_group
from . import _convert
from ._data import DistributedDataLoader
from ._engine import GradientEngine, check_same_everywhere, describe_parameters, owner
from ._optimizer import broadcast_tensors_, copy_optimizer_state
from ._precision import MixedPrecision, check_precision

_local = threading.local()
_patch_lock = threading.Lock()
_patch_depth = 0
_original_init: Any = None
_global_hooks: list[Any] = []
# strategy -> engines of the optimizers created in its scope (for no_sync)
_engines: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# strategy -> modules created in its scopes, in creation order (for parameter names)
_modules: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# strategy -> its mixed precision setting (absent: "no")
_precisions: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class _Scope:
    def __init__(self, strategy: Any):
        self.strategy = strategy
        self.created: list[weakref.ref] = []        # modules created in this scope
        self.device_context: Any = None


def _stack() -> list[_Scope]:
    stack = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    return stack


def _current() -> _Scope | None:
    stack = _stack()
    return stack[0] if stack else None


# --- module tracking and the optimizer wrapper (active while any scope is open) -------------------

def _track(module: torch.nn.Module, *_: Any) -> None:
    scope = _current()
    if scope is None:
        return
    known = _modules.setdefault(scope.strategy, {})
    if id(module) not in known or known[id(module)]() is not module:
        ref = weakref.ref(module)
        known[id(module)] = ref
        scope.created.append(ref)


def _optimizer_init(self: torch.optim.Optimizer, *args: Any, **kwargs: Any) -> None:
    _original_init(self, *args, **kwargs)
    scope = _current()
    if scope is not None and getattr(self, "_ringtrain_engine", None) is None:
        _attach(scope, self)


def _patch() -> None:
    global _patch_depth, _original_init
    with _patch_lock:
        _patch_depth += 1
        if _patch_depth > 1:
            return
        _original_init = torch.optim.Optimizer.__init__
        torch.optim.Optimizer.__init__ = _optimizer_init
        _global_hooks.append(_module.register_module_parameter_registration_hook(_track))
        _global_hooks.append(_module.register_module_module_registration_hook(_track))


def _unpatch() -> None:
    global _patch_depth
    with _patch_lock:
        _patch_depth -= 1
        if _patch_depth > 0:
            return
        torch.optim.Optimizer.__init__ = _original_init
        for handle in _global_hooks:
            handle.remove()
        _global_hooks.clear()


def enter_scope(strategy: Any) -> None:
    """Called by ``strategy.scope()`` on entry (when torch is imported)."""
    scope = _Scope(strategy)
    device = _convert.device()
    if device.type != "cpu":
        scope.device_context = torch.device(device)
        scope.device_context.__enter__()
    _patch()
    _stack().append(scope)


def exit_scope(strategy: Any) -> None:
    """Called by ``strategy.scope()`` on exit: undoes ``enter_scope``."""
    stack = _stack()
    for i in range(len(stack) - 1, -1, -1):
        if stack[i].strategy is strategy:
            scope = stack.pop(i)
            break
    else:
        return
    _unpatch()
    if scope.device_context is not None:
        scope.device_context.__exit__(None, None, None)
    _warn_without_optimizer(scope)


def _warn_without_optimizer(scope: _Scope) -> None:
    """Trainable parameters created in the scope that no optimizer of the scope averages are
    almost always an optimizer created after the ``with`` block: say so."""
    if getattr(scope.strategy.extended, "comm", None) is None:
        return
    for ref in scope.created:
        module = ref()
        if module is None:
            continue
        for name, p in module.named_parameters(recurse=False):
            if p.requires_grad and owner(p) is None:
                warnings.warn(
                    f"strategy.scope(): parameter '{name}' of a {type(module).__name__} created "
                    f"in the scope is not trained by an optimizer created in a scope, so its "
                    f"gradients will not be averaged across workers; create the optimizer "
                    f"inside `with strategy.scope():` too", stacklevel=4)
                return


# --- an optimizer created in the scope ------------------------------------------------------------

def _roots(scope: _Scope, wanted: set[int]) -> list[torch.nn.Module]:
    """Modules created in the strategy's scopes that are no other such module's child and hold
    parameters of the optimizer, in creation order."""
    modules = [m for m in (ref() for ref in _modules.get(scope.strategy, {}).values())
               if m is not None]
    children: set[int] = set()
    for m in modules:
        children.update(id(c) for c in m.modules() if c is not m)
    return [m for m in modules if id(m) not in children
            and any(id(p) in wanted for p in m.parameters())]


def _attach(scope: _Scope, optimizer: torch.optim.Optimizer) -> None:
    params = [p for g in optimizer.param_groups for p in g["params"]]
    wanted = {id(p) for p in params}
    roots = _roots(scope, wanted)
    precision = _precisions.get(scope.strategy)
    if precision is not None:
        for root in roots:
            precision.wrap_model(root)
    if getattr(scope.strategy.extended, "comm", None) is None:
        if precision is not None:       # the default, single-replica strategy: plain torch
            precision.attach(optimizer, None)
        return
    name_of: dict[int, str] = {}
    state: list[tuple[str, torch.Tensor]] = []       # what the chief's copy overwrites
    for i, root in enumerate(roots):
        prefix = f"model{i}." if len(roots) > 1 else ""
        for name, p in root.named_parameters():
            name_of.setdefault(id(p), prefix + name)
        state.extend((prefix + name, t) for name, t in root.state_dict(keep_vars=True).items()
                     if isinstance(t, torch.Tensor))
    named = []
    for gi, group in enumerate(optimizer.param_groups):
        for pi, p in enumerate(group["params"]):
            name = name_of.get(id(p))
            if name is None:
                name = f"param_group{gi}.{pi}"
                state.append((name, p))
            named.append((name, p))
    strategy = scope.strategy
    ops = getattr(strategy.extended, "cross_device_ops", None)
    what = "optimizer created in strategy.scope()"
    if process_group.size() > 1:
        seen: set[int] = set()
        unique = []
        for name, t in state:
            if id(t) not in seen:
                seen.add(id(t))
                unique.append((name, t))
        unique.sort(key=lambda pair: pair[0])
        check_same_everywhere(describe_parameters(unique), what)
        broadcast_tensors_([t for _, t in unique], 0)
        copy_optimizer_state(optimizer, 0, what)
    engine = GradientEngine(named, what=what, bucket_bytes=getattr(ops, "bucket_bytes", None),
                            algorithm=getattr(ops, "algorithm", None))
    engine.attach(optimizer)
    if precision is not None:
        precision.attach(optimizer, engine)
    _engines.setdefault(strategy, weakref.WeakSet()).add(engine)


# --- mixed precision -------------------------------------------------------------------------------

def set_precision(strategy: Any, setting: Any) -> None:
    """``scope(mixed_precision=setting)``: the strategy's setting from now on (one per
    strategy: a different one later is a ValueError, since models already run in the first)."""
    setting = check_precision(setting)
    current = _precisions.get(strategy)
    current_setting = "no" if current is None else current.setting
    if setting == current_setting:
        return
    if current is not None or _modules.get(strategy):
        raise ValueError(f"strategy.scope(mixed_precision={setting!r}): this strategy already "
                         f"uses mixed_precision={current_setting!r} for the models created in "
                         f"its scopes; use one setting per strategy (or a new strategy)")
    if setting != "no":
        _precisions[strategy] = MixedPrecision(setting)


def backward(strategy: Any, loss: torch.Tensor, **kwargs: Any) -> None:
    """``loss.backward()``; with ``mixed_precision="fp16"`` on the scaled loss."""
    if not isinstance(loss, torch.Tensor):
        raise TypeError(f"strategy.backward needs the loss tensor, got {type(loss).__name__}")
    precision = _precisions.get(strategy)
    if precision is None:
        loss.backward(**kwargs)
    else:
        precision.backward(loss, **kwargs)


def grad_scaler(strategy: Any) -> torch.amp.GradScaler | None:
    """The GradScaler of a ``mixed_precision="fp16"`` strategy (its ``state_dict()`` belongs
    in checkpoints), else None."""
    precision = _precisions.get(strategy)
    return None if precision is None else precision.scaler


# --- the rest of the strategy's torch methods ------------------------------------------------------

@contextlib.contextmanager
def no_sync(strategy: Any) -> Iterator[None]:
    """Backward passes inside accumulate gradients locally; the next backward pass outside
    averages everything accumulated (``optimizer.step()`` inside averages too)."""
    engines = list(_engines.get(strategy, ()))
    for engine in engines:
        engine.accumulate += 1
    try:
        yield
    finally:
        for engine in engines:
            engine.accumulate -= 1


def distribute_dataloader(strategy: Any, loader: Any, split_batches: bool = False
                          ) -> DistributedDataLoader:
    """This worker's shard of ``loader`` (see DistributedDataLoader)."""
    extended = strategy.extended
    return DistributedDataLoader(loader, extended.worker_index, extended.num_workers,
                                 split_batches=split_batches)


def _reduce_op(op: Any) -> str:
    name = getattr(op, "name", op)
    name = str(name).upper()
    if name in ("SUM",):
        return "SUM"
    if name in ("MEAN", "AVG", "AVERAGE"):
        return "MEAN"
    raise ValueError(f"strategy.reduce: reduce_op must be ReduceOp.SUM or ReduceOp.MEAN, "
                     f"got {op!r}")


def reduce(strategy: Any, op: Any, value: torch.Tensor, axis: int | None = None
           ) -> torch.Tensor:
    """``value`` summed or averaged over workers (and along ``axis`` first, if given; MEAN over
    an axis weights each worker by its number of rows)."""
    kind = _reduce_op(op)
    _convert.check_tensor(value, "strategy.reduce", "value")
    extended = strategy.extended
    group = getattr(extended, "comm", None) if extended.num_workers > 1 else None
    source = value.detach()
    floating = source.dtype if source.is_floating_point() else torch.float64

    def allreduce_sum(t: torch.Tensor) -> torch.Tensor:
        work = t.contiguous().clone()
        if group is not None:
            array = _convert.as_array(work)
            carrier = _convert.communicator(group) if work.is_cuda else group
            carrier.allreduce(array, op=ReduceOp.SUM, out=array)
        return work

    if axis is None:
        if kind == "SUM":
            return allreduce_sum(source)
        return allreduce_sum(source.to(floating)) / extended.num_workers
    if source.dim() == 0:
        raise ValueError("strategy.reduce: axis was given but the value is a scalar")
    if not -source.dim() <= axis < source.dim():
        raise ValueError(f"strategy.reduce: axis {axis} is out of range for a value of shape "
                         f"{tuple(source.shape)}")
    local = source.sum(dim=axis)
    if kind == "SUM":
        return allreduce_sum(local)
    packed = torch.cat([local.reshape(-1).to(torch.float64),
                        torch.tensor([float(source.shape[axis])], dtype=torch.float64)])
    total = allreduce_sum(packed)
    if total[-1] == 0:
        raise ValueError("strategy.reduce: MEAN over an axis that is empty on every worker")
    return (total[:-1] / total[-1]).reshape(local.shape).to(floating)


def run(strategy: Any, fn: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
    """``fn(*args, **kwargs)`` as this worker's replica (one replica per worker process)."""
    kwargs = {} if kwargs is None else kwargs
    try:
        from ..distribute import strategy as _tf_strategy

        replicas = _tf_strategy._replica_stack()
        context = _tf_strategy.ReplicaContext(strategy)
    except (ImportError, AttributeError):
        return fn(*args, **kwargs)
    replicas.append(context)
    try:
        return fn(*args, **kwargs)
    finally:
        replicas.pop()
