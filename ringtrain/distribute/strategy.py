"""tf.distribute for ringtrain: MirroredStrategy, one replica per worker process, in lock-step."""

from __future__ import annotations

import contextlib
import importlib
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from ..comm import stragglers
from ..comm.base import ReduceOp
from ..comm.replicas import ReplicaGuard
from ..core import distribution as _distribution
from ..world import process_group
from . import cross_device_ops as _cdo
from .input import (
    DistributedDataset,
    InputContext,
    PerWorkerDataset,
    fingerprint,
    shard_batch,
)


def _sum_or_mean(op: Any) -> ReduceOp:
    """A strategy's ``reduce_op``: ``tf.distribute.ReduceOp.SUM`` or ``.MEAN``, or its name."""
    if isinstance(op, str):
        op = ReduceOp.__members__.get(op.upper(), op)
    if op is ReduceOp.SUM or op is ReduceOp.MEAN:
        return op
    raise ValueError(f"reduce_op must be tf.distribute.ReduceOp.SUM or .MEAN, got {op!r}")


# --- which strategy is current -------------------------------------------------------------------

_state = threading.local()


def _scope_stack() -> list:
    stack = getattr(_state, "scopes", None)
    if stack is None:
        stack = _state.scopes = []
    return stack


def _replica_stack() -> list:
    stack = getattr(_state, "replicas", None)
    if stack is None:
        stack = _state.replicas = []
    return stack


def has_strategy() -> bool:
    """True inside a strategy's ``scope()`` (or ``run``)."""
    return bool(_scope_stack())


def get_strategy() -> Strategy:
    """The strategy whose scope is entered, else the default single-replica strategy."""
    stack = _scope_stack()
    return stack[-1] if stack else _default_strategy()


def in_cross_replica_context() -> bool:
    """True inside a strategy's scope but outside ``strategy.run``."""
    return has_strategy() and not _replica_stack()


def get_replica_context() -> ReplicaContext | None:
    """The replica context inside ``strategy.run`` (or outside any scope: the default one);
    None in a cross-replica context, as in TensorFlow."""
    replicas = _replica_stack()
    if replicas:
        return replicas[-1]
    if has_strategy():
        return None
    return ReplicaContext(_default_strategy())


def get_cross_replica_context() -> Strategy | None:
    """The current strategy in a cross-replica context, else None."""
    return get_strategy() if in_cross_replica_context() else None


# --- the seam to optional subsystems -------------------------------------------------------------

def _optional_module(name: str):
    """``name`` imported, or None when that module is not part of this installation."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and name.startswith(exc.name):
            return None
        raise


def _torch_strategy():
    """The torch half of the strategy, only when the program itself imported torch."""
    if "torch" not in sys.modules:
        return None
    return _optional_module("ringtrain.torch._strategy")


def _is_torch_tensor(value: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def _any_leaf(value: Any, predicate: Callable[[Any], bool]) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        elif predicate(item):
            return True
    return False


def _is_graph_tensor(value: Any) -> bool:
    core = sys.modules.get("ringtrain.core")
    tensor_type = getattr(core, "Tensor", None) if core is not None else None
    return tensor_type is not None and isinstance(value, tensor_type)


# --- the extended object: what the core, Keras and checkpoints talk to ---------------------------

class StrategyExtended:
    """Worker index, chief-ness and the hooks the core and Keras call under a strategy.

    The core calls ``initial_value`` for each variable created in the scope and
    ``aggregate_gradients`` in ``apply_gradients``; Keras calls ``shard_batch`` and
    ``mean_across_replicas``. This base class is the single-replica behaviour.
    """

    def __init__(self, strategy: Strategy):
        self._container_strategy = strategy
        self.cross_device_ops = _cdo.CrossDeviceOps()
        # Rows this worker holds / rows in the global batch, set by shard_batch; None means
        # every worker's batch counts equally (plain average of gradients).
        self._batch_weight: float | None = None
        self._checked_first_batch = False
        # Time spent in gradient all-reduces (waiting for slower workers included), for
        # benchmarks and profiling.
        self.allreduce_seconds = 0.0
        self.allreduce_calls = 0

    # identity of this worker
    @property
    def worker_index(self) -> int:
        return 0

    @property
    def num_workers(self) -> int:
        return 1

    @property
    def num_replicas_in_sync(self) -> int:
        return self.num_workers

    @property
    def sums_gradients(self) -> bool:
        """Whether apply_gradients sums the replicas' gradients: inside ``strategy.run``
        (TensorFlow 2's custom loop, whose loss is divided by the global batch size, e.g. by
        ``tf.nn.compute_average_loss``); elsewhere they are averaged."""
        return bool(_replica_stack())

    @property
    def is_chief(self) -> bool:
        return True

    @property
    def should_checkpoint(self) -> bool:
        return self.is_chief

    @property
    def should_save_summary(self) -> bool:
        return self.is_chief

    @property
    def task_type(self) -> str:
        return "chief" if self.is_chief else "worker"

    @property
    def task_id(self) -> int:
        return self.worker_index

    def _in_multi_worker_mode(self) -> bool:
        return self.num_workers > 1

    # collectives on NumPy values; single-replica: identity
    def allreduce(self, array: np.ndarray, op: ReduceOp) -> np.ndarray:
        return np.array(array, copy=True)

    def batch_allreduce(self, arrays: list, op: ReduceOp) -> list:
        return [self.allreduce(a, op) for a in arrays]

    def broadcast(self, array: np.ndarray, root: int = 0) -> np.ndarray:
        return np.array(array, copy=True)

    def broadcast_object(self, obj: Any, root: int = 0) -> Any:
        return obj

    def allgather_object(self, obj: Any) -> list:
        return [obj]

    def barrier(self) -> None:
        pass

    # hooks (see the class docstring)
    def initial_value(self, variable_name: str, initial_value: Any) -> Any:
        return initial_value

    def aggregate_gradients(self, grads_and_vars):
        return list(grads_and_vars)

    def replica_mean_tensors(self, tensors: list) -> list:
        return list(tensors)

    def shard_batch(self, batch: Any) -> Any:
        """This worker's slice of a global batch (nested tuples/dicts of arrays); uneven
        batches are split as ``np.array_split`` does and the gradients weighted to match."""
        if not self._checked_first_batch:
            self._checked_first_batch = True
            self.check_same_batch(batch)
        local, rows, total = shard_batch(batch, self.num_workers, self.worker_index)
        self._batch_weight = rows / total
        return local

    def check_same_batch(self, batch: Any) -> None:
        """Raise on every worker if the workers hold different global batches (e.g. an
        unseeded shuffle): sharding is only correct when all iterate the same order."""
        if self.num_workers == 1:
            return
        digests = self.allgather_object(fingerprint(batch))
        differ = [rank for rank, d in enumerate(digests) if d != digests[0]]
        if differ:
            raise ValueError(
                f"workers {differ} hold a different global batch than worker 0: every worker "
                "must iterate the same dataset in the same order (build the dataset the same "
                "way everywhere; a shuffle() seed given explicitly must be the same on every "
                "worker, e.g. ds.shuffle(1000, seed=42))")

    def clear_batch_weight(self) -> None:
        self._batch_weight = None

    @property
    def batch_weight(self) -> float | None:
        """This worker's share of the current global batch (None: equal shares)."""
        return self._batch_weight

    def mean_across_replicas(self, values: dict, weight: float) -> dict:
        """Each value averaged over workers, weighted by ``weight`` (e.g. the sample count)."""
        keys = sorted(values)
        weight = float(weight)
        if weight < 0:
            raise ValueError(f"weight must be >= 0 (a sample count), got {weight}")
        # A worker with weight 0 (an empty slice) may hold NaN; it must not poison the sum.
        vector = np.array([float(values[k]) * weight if weight else 0.0 for k in keys]
                          + [weight], dtype=np.float64)
        total = self.allreduce(vector, ReduceOp.SUM)
        if total[-1] == 0:
            return {k: float("nan") for k in keys}
        return {k: float(total[i] / total[-1]) for i, k in enumerate(keys)}

    def reduce_gradient_arrays(self, arrays: list, summed: bool = False) -> list:
        """Gradients (same order on every rank) averaged so the result equals the gradient of
        the global batch's mean loss, with uneven slices weighted by their row counts; or
        just ``summed`` (the loss was already scaled by the global batch size)."""
        if not arrays:
            return []
        start = time.perf_counter()
        weight = self._batch_weight
        # GPU arrays (a Session on CuPy) stay on the device: array methods only, no NumPy
        on_device = any(_on_device(a) for a in arrays)
        if summed:
            reduced = self.batch_allreduce(list(arrays), ReduceOp.SUM)
        elif weight is None:
            reduced = self.batch_allreduce(list(arrays), ReduceOp.AVG)
        elif on_device:
            reduced = self.batch_allreduce([_scaled(a, weight) for a in arrays], ReduceOp.SUM)
        else:
            scaled = [np.zeros_like(a) if weight == 0 else np.multiply(a, weight, dtype=a.dtype)
                      for a in (np.asarray(a) for a in arrays)]
            reduced = self.batch_allreduce(scaled, ReduceOp.SUM)
        if on_device:
            out = [r.astype(a.dtype, copy=False).reshape(a.shape)
                   for r, a in zip(reduced, arrays)]
        else:
            out = [np.asarray(r, dtype=np.asarray(a).dtype).reshape(np.shape(a))
                   for r, a in zip(reduced, arrays)]
        self.allreduce_seconds += time.perf_counter() - start
        self.allreduce_calls += 1
        return out


class MirroredExtended(StrategyExtended):
    """``MirroredStrategy.extended``: one replica per worker, gradients all-reduced."""

    def __init__(self, strategy: MirroredStrategy, cross_device_ops: _cdo.CrossDeviceOps,
                 device: str | None):
        super().__init__(strategy)
        self.cross_device_ops = cross_device_ops
        self.comm = process_group.comm()
        self.worker_devices = (device,) if device is not None else ()

    @property
    def worker_index(self) -> int:
        return self.comm.rank

    @property
    def num_workers(self) -> int:
        return self.comm.world_size

    @property
    def is_chief(self) -> bool:
        return process_group.is_chief()

    def allreduce(self, array, op: ReduceOp) -> np.ndarray:
        array = _contiguous(array)
        if self.num_workers == 1:
            return np.array(array, copy=True)
        return self.comm.allreduce(array, op=op, algorithm=self.cross_device_ops.algorithm)

    def batch_allreduce(self, arrays: list, op: ReduceOp) -> list:
        """``arrays`` (the same list on every worker) all-reduced in buckets."""
        if self.num_workers == 1:
            return [np.array(a, copy=True) for a in arrays]
        ops = self.cross_device_ops
        return self.comm.allreduce_many(list(arrays), op=op, algorithm=ops.algorithm,
                                        bucket_bytes=ops.bucket_bytes)

    def broadcast(self, array, root: int = 0) -> np.ndarray:
        array = _contiguous(array)
        if self.num_workers == 1:
            return np.array(array, copy=True)
        return self.comm.broadcast(array, root=root)

    def broadcast_object(self, obj: Any, root: int = 0) -> Any:
        if self.num_workers == 1:
            return obj
        return self.comm.broadcast_object(obj, root=root)

    def allgather_object(self, obj: Any) -> list:
        if self.num_workers == 1:
            return [obj]
        return self.comm.allgather_object(obj)

    def barrier(self) -> None:
        if self.num_workers > 1:
            self.comm.barrier()

    # graph hooks (called by the core while this strategy's scope is entered)
    def initial_value(self, variable_name: str, initial_value: Any) -> Any:
        """A tensor yielding the chief's initial value: running the initializer broadcasts.

        Initializers run in the order the variables were created (the core orders a run by
        creation), so every worker issues the same broadcasts in the same order.
        """
        if self.num_workers == 1:
            return initial_value

        def broadcast(value):
            return self.broadcast(np.asarray(value), root=0)

        return _graph_py_op(broadcast, [initial_value], [initial_value],
                            "BroadcastFromChief")[0]

    def replica_mean_tensors(self, tensors: list) -> list:
        """Graph tensors averaged over the workers, weighted by their share of the global batch
        (like the gradients), by one op; for statistics that must stay identical on every
        replica, e.g. BatchNormalization's moving mean and variance. No gradient flows
        through it."""
        tensors = list(tensors)
        if self.num_workers == 1 or not tensors:
            return tensors
        return _graph_py_op(lambda *arrays: self.reduce_gradient_arrays(list(arrays)),
                            tensors, tensors, "ReplicaMean", device_arrays=True)

    # The straggler report (comm/stragglers.py) for graph and Keras loops: a step ends at its
    # gradient all-reduce; the optimizer's updates, run after it in the same session call,
    # count as the next step's forward+backward.
    def _reduce_step(self, arrays: list, summed: bool) -> list:
        if not hasattr(self, "_recorder"):
            self._recorder = stragglers.recorder_for(self.comm)   # the first step, everywhere
        recorder = self._recorder
        if recorder is None:
            return self.reduce_gradient_arrays(arrays, summed)
        recorder.arrive()
        started, wall = time.perf_counter(), time.time()
        out = self.reduce_gradient_arrays(arrays, summed)
        seconds = time.perf_counter() - started
        recorder.add("comm", seconds)
        if recorder.timeline is not None:     # synchronous: queued when it starts
            recorder.timeline.bucket("AllReduceGradients", wall, wall, wall + seconds,
                                     {"bytes": sum(_nbytes(a) for a in arrays),
                                      "tensors": len(arrays)})
        recorder.step_done()
        return out

    def record_phase(self, phase: str, seconds: float) -> None:
        """Add a training loop's time in ``phase`` (e.g. "data") to the straggler report."""
        recorder = getattr(self, "_recorder", None)
        if recorder is not None:
            recorder.add(phase, seconds)

    def steps_recorded(self) -> int:
        recorder = getattr(self, "_recorder", None)
        return -1 if recorder is None else recorder.steps

    def training_ended(self, since: int | None = None) -> None:
        """A training loop (Keras fit, a pass over a distributed dataset) ended on every
        worker: report the steps left. ``since``: only if steps ran after that count (a pass
        without training steps, e.g. an evaluation on the chief only, runs no collective)."""
        recorder = getattr(self, "_recorder", None)
        if recorder is not None and (since is None or recorder.steps > since):
            recorder.finish()

    def aggregate_gradients(self, grads_and_vars):
        """Gradients averaged across workers by one op that all-reduces them in fusion
        buckets, ordered by variable name (the same on every worker, whatever the order of
        ``grads_and_vars`` or of readiness).

        Inside ``strategy.run`` (TensorFlow 2's custom training loop) they are summed
        instead, as TensorFlow does there: the loss is already divided by the global batch
        size (``tf.nn.compute_average_loss``)."""
        pairs = list(grads_and_vars)
        live = [(i, g, v) for i, (g, v) in enumerate(pairs) if g is not None]
        if not live or self.num_workers == 1:
            return pairs
        names = [_variable_name(v) for _, _, v in live]
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"apply_gradients got several gradients for variable(s) {dup}; "
                             "sum them first (one gradient per variable)")
        live = [item for _, item in sorted(zip(names, live), key=lambda t: t[0])]
        grads = [_dense(g) for _, g, _ in live]
        summed = self.sums_gradients
        names = sorted(names)
        guard = ReplicaGuard(self.comm, "MirroredStrategy")

        def reduce(*arrays):
            # The variables' values (before this step's update) follow the gradients.
            guard.step(lambda: list(zip(names, map(_on_host, arrays[len(grads):]))))
            return self._reduce_step(list(arrays[:len(grads)]), summed)

        reduced = _graph_py_op(reduce, grads + [v for _, _, v in live], grads,
                               "AllReduceGradients", device_arrays=True)
        out = list(pairs)
        for (i, _, v), g in zip(live, reduced):
            out[i] = (g, v)
        return out


def _on_device(array: Any) -> bool:
    """True for a GPU array (CuPy's, or the tests' stand-in): anything but NumPy's arrays and
    scalars and Python numbers."""
    return type(array) is not np.ndarray and not isinstance(array, (np.generic, int, float))


def _on_host(array: Any) -> np.ndarray:
    """A NumPy copy of a GPU array (CuPy's ``get``); NumPy values as they are."""
    if not _on_device(array):
        return array
    get = getattr(array, "get", None)
    return get() if callable(get) else np.asarray(array)


def _scaled(array: Any, weight: float) -> Any:
    """``array * weight`` in the array's dtype, on its device (zeros for weight 0, even where
    the array holds NaN: the rows it stands for are not this worker's)."""
    if weight == 0:
        zeros = array.copy()
        zeros.fill(0)
        return zeros
    return (array * weight).astype(array.dtype, copy=False)


def _nbytes(array: Any) -> int:
    return array.nbytes if _on_device(array) else np.asarray(array).nbytes


def _contiguous(array: Any) -> np.ndarray:
    """A C-contiguous array of the same shape (``np.ascontiguousarray`` turns 0-d into 1-d)."""
    return np.asarray(array, order="C")


def _variable_name(var: Any) -> str:
    op = getattr(var, "op", None)
    name = getattr(op, "name", None) or getattr(var, "name", None)
    if not isinstance(name, str):
        raise TypeError(f"cannot order the gradient of {var!r}: it has no name")
    return name


def _dense(grad: Any) -> Any:
    """Sparse gradients (IndexedSlices-like, from gathers) as dense tensors."""
    from ..core import ops

    if hasattr(grad, "indices") and hasattr(grad, "values") and hasattr(grad, "dense_shape"):
        return ops.convert_to_tensor(grad)
    return grad


def _graph_py_op(fn: Callable, inputs: list, like: list, name: str,
                 device_arrays: bool = False) -> list:
    """One graph op running ``fn`` on the inputs' arrays; outputs shaped and typed as
    ``like`` (tensors, or ``(dtype, shape)`` pairs). It counts as stateful (never pruned as
    dead, never folded). ``device_arrays``: on a GPU Session ``fn`` gets the GPU arrays
    themselves (the communicator moves them over NCCL), not NumPy copies."""
    from ..core.ops.base import _make

    specs = [item if isinstance(item, tuple) else (item.dtype, item.shape) for item in like]
    op = _make("PyFunc", inputs, specs, name,
               {"func": fn, "Tout": [dtype for dtype, _ in specs], "single": False,
                "device_arrays": device_arrays})
    return list(op.outputs)


# --- contexts ---------------------------------------------------------------------------------

class ReplicaContext:
    """``tf.distribute.ReplicaContext``: the replica running inside ``strategy.run``."""

    def __init__(self, strategy: Strategy):
        self.strategy = strategy

    @property
    def replica_id_in_sync_group(self) -> int:
        return self.strategy.extended.worker_index

    @property
    def num_replicas_in_sync(self) -> int:
        return self.strategy.num_replicas_in_sync

    def all_reduce(self, reduce_op: Any, value: Any) -> Any:
        """``value`` (a NumPy array or nested list/tuple/dict of them) summed or averaged
        across replicas; every replica must call this with the same structure and shapes."""
        op = _sum_or_mean(reduce_op)
        leaves: list = []

        def collect(node):
            if isinstance(node, dict):
                return {k: collect(v) for k, v in node.items()}
            if isinstance(node, (list, tuple)):
                return type(node)(collect(v) for v in node)
            leaves.append(np.asarray(node))
            return len(leaves) - 1

        skeleton = collect(value)
        reduced = self.strategy.extended.batch_allreduce(leaves, op)

        def fill(node):
            if isinstance(node, dict):
                return {k: fill(v) for k, v in node.items()}
            if isinstance(node, (list, tuple)):
                return type(node)(fill(v) for v in node)
            return reduced[node]

        return fill(skeleton)


# --- strategies ---------------------------------------------------------------------------------

class Strategy:
    """``tf.distribute.Strategy``: the common API; this base class is one replica, no
    communication (what ``get_strategy()`` returns outside any scope)."""

    def __init__(self, extended: StrategyExtended | None = None):
        self.extended = extended if extended is not None else StrategyExtended(self)
        self._scope_depth = 0

    @property
    def num_replicas_in_sync(self) -> int:
        return self.extended.num_replicas_in_sync

    @property
    def cluster_resolver(self):
        """None: ringtrain has no ClusterResolver classes (the cluster comes from the launcher,
        ``RINGTRAIN_CONFIG`` or ``TF_CONFIG``), and TensorFlow's MirroredStrategy has none."""
        return None

    # scope
    @contextlib.contextmanager
    def scope(self, mixed_precision: str | None = None) -> Iterator[Strategy]:
        """Variables, models and optimizers created inside belong to this strategy.

        ``mixed_precision`` (PyTorch programs; Accelerate's values): ``"no"``, ``"bf16"``
        (models trained by an optimizer created here run forward under bfloat16 autocast) or
        ``"fp16"`` (float16 autocast and loss scaling: ``strategy.backward(loss)``). None
        keeps the strategy's setting ("no" at first).
        """
        if mixed_precision is not None:
            self._torch("scope(mixed_precision=...)").set_precision(self, mixed_precision)
        stack = _scope_stack()
        if stack and stack[-1] is not self:
            raise ValueError("mixing different tf.distribute strategies: another strategy's "
                             "scope is already entered; exit it first")
        stack.append(self)
        with contextlib.ExitStack() as exits:
            try:
                self._enter_scope(exits)
                yield self
            finally:
                stack.pop()

    def _enter_scope(self, exits: contextlib.ExitStack) -> None:
        exits.enter_context(_distribution.use(self.extended))
        torch_side = _torch_strategy()
        if torch_side is not None:
            torch_side.enter_scope(self)
            exits.callback(torch_side.exit_scope, self)

    # running steps
    def run(self, fn: Callable, args: tuple = (), kwargs: dict | None = None) -> Any:
        """``fn(*args, **kwargs)`` on this worker's replica (one replica per worker)."""
        if not callable(fn):
            raise TypeError(f"strategy.run needs a callable, got {type(fn).__name__}")
        kwargs = {} if kwargs is None else kwargs
        torch_side = _torch_strategy()
        if torch_side is not None and _any_leaf((args, kwargs), _is_torch_tensor):
            return torch_side.run(self, fn, args, kwargs)
        replicas = _replica_stack()
        with contextlib.ExitStack() as exits:
            if not _scope_stack() or _scope_stack()[-1] is not self:
                exits.enter_context(self.scope())
            replicas.append(ReplicaContext(self))
            try:
                return fn(*args, **kwargs)
            finally:
                replicas.pop()

    def reduce(self, reduce_op: Any, value: Any, axis: int | None = None) -> Any:
        """``value`` combined across replicas (and along ``axis`` within each, if given).

        With ``MEAN`` and an axis, the result is the mean over every element of every
        replica along that axis, so replicas holding different numbers of rows are weighted
        by their row counts.
        """
        op = _sum_or_mean(reduce_op)
        torch_side = _torch_strategy()
        if torch_side is not None and _is_torch_tensor(value):
            return torch_side.reduce(self, op, value, axis)
        if _is_graph_tensor(value):
            return self._reduce_graph(op, value, axis)
        array = np.asarray(value)
        if array.dtype == object:
            raise TypeError(f"strategy.reduce cannot reduce a {type(value).__name__}; pass a "
                            "number or a NumPy array")
        if axis is None:
            if op is ReduceOp.MEAN and not np.issubdtype(array.dtype, np.inexact):
                array = array.astype(np.float64)
            return self.extended.allreduce(array, op)
        if array.ndim == 0:
            raise ValueError("axis was given but the value is a scalar")
        axis = int(axis)
        if not -array.ndim <= axis < array.ndim:
            raise ValueError(f"axis {axis} is out of range for a value of shape {array.shape}")
        local = array.sum(axis=axis)
        if op is ReduceOp.SUM:
            return self.extended.allreduce(local, ReduceOp.SUM)
        # One message carries the partial sums and the row count.
        packed = np.concatenate([np.ravel(local).astype(np.float64),
                                 [float(array.shape[axis])]])
        total = self.extended.allreduce(packed, ReduceOp.SUM)
        if total[-1] == 0:
            raise ValueError("MEAN over an axis that is empty on every replica")
        mean = (total[:-1] / total[-1]).reshape(np.shape(local))
        return mean.astype(np.result_type(array.dtype, np.float32)) \
            if np.issubdtype(array.dtype, np.inexact) else mean

    def _reduce_graph(self, op: ReduceOp, tensor: Any, axis: int | None) -> Any:
        """A graph tensor whose value, when run, is ``reduce`` of ``tensor``'s value (every
        worker must run it in the same step: it is a collective)."""
        from ..core import dtypes

        shape = tensor.shape.as_list() if tensor.shape.ndims is not None else None
        if axis is not None:
            if shape is None:
                raise ValueError("strategy.reduce over an axis needs a tensor of known rank")
            if not -len(shape) <= axis < len(shape):
                raise ValueError(f"axis {axis} is out of range for a tensor of shape {shape}")
            axis %= len(shape)
            shape = shape[:axis] + shape[axis + 1:]
        dtype = tensor.dtype
        if op is ReduceOp.MEAN and not dtype.is_floating:
            dtype = dtypes.float64
        return _graph_py_op(lambda array: self.reduce(op, array, axis),
                            [tensor], [(dtype, shape)], "ReduceAcrossReplicas")[0]

    def experimental_local_results(self, value: Any) -> tuple:
        """The values of this worker's replicas (one per worker)."""
        return (value,)

    def gather(self, value: Any, axis: int = 0) -> np.ndarray:
        """Every replica's ``value`` concatenated along ``axis`` in replica order."""
        array = np.asarray(value)
        moved = np.moveaxis(array, axis, 0) if array.ndim else array.reshape(1)
        if self.num_replicas_in_sync == 1:
            gathered = np.array(moved, copy=True)
        else:
            gathered = self.extended.comm.allgather(_contiguous(moved))
        return np.moveaxis(gathered, 0, axis) if array.ndim else gathered

    # input
    def experimental_distribute_dataset(self, dataset: Iterable, options: Any = None
                                        ) -> DistributedDataset:
        """Each worker iterates this worker's slice of every global batch of ``dataset``."""
        return DistributedDataset(dataset, self.extended)

    def make_dataset_iterator(self, dataset: Iterable) -> Any:
        """TF 1.15's graph-mode input: an iterator of this worker's slice of every global batch
        (run ``iterator.initialize()`` on every worker, then ``get_next()``)."""
        return self.experimental_distribute_dataset(dataset).make_initializable_iterator()

    def distribute_datasets_from_function(self, dataset_fn: Callable, options: Any = None
                                          ) -> PerWorkerDataset:
        """``dataset_fn(InputContext)`` builds this worker's own (already local) dataset."""
        if not callable(dataset_fn):
            raise TypeError("distribute_datasets_from_function needs a function that takes an "
                            "InputContext and returns a dataset")
        context = InputContext(self.extended.num_workers, self.extended.worker_index,
                               self.num_replicas_in_sync)
        return PerWorkerDataset(dataset_fn(context), self.extended)

    experimental_distribute_datasets_from_function = distribute_datasets_from_function

    def experimental_run_v2(self, fn: Callable, args: tuple = (), kwargs: dict | None = None
                            ) -> Any:
        """TensorFlow 2.0's name for ``run``."""
        return self.run(fn, args, kwargs)

    # torch (delegated to ringtrain.torch)
    def _torch(self, what: str):
        torch_side = _torch_strategy()
        if torch_side is None:
            raise TypeError(f"strategy.{what} is for PyTorch programs: import torch (and "
                            "create the model inside strategy.scope()) first")
        return torch_side

    def distribute_dataloader(self, loader: Any, split_batches: bool = False) -> Any:
        """This worker's shard of a ``torch.utils.data.DataLoader`` (reshuffled per epoch);
        ``split_batches=True``: the loader's batch size is the global batch, split across
        workers (a checkpointed position then resumes on any number of workers)."""
        return self._torch("distribute_dataloader").distribute_dataloader(
            self, loader, split_batches=split_batches)

    def no_sync(self):
        """Accumulate gradients locally (no all-reduce) for the backward passes inside."""
        return self._torch("no_sync").no_sync(self)

    def backward(self, loss: Any, **kwargs: Any) -> None:
        """``loss.backward()`` (torch), on the scaled loss under ``mixed_precision="fp16"``."""
        self._torch("backward").backward(self, loss, **kwargs)

    @property
    def grad_scaler(self) -> Any:
        """The ``torch.amp.GradScaler`` of ``mixed_precision="fp16"`` (None otherwise): put
        its ``state_dict()`` in checkpoints."""
        return self._torch("grad_scaler").grad_scaler(self)


class MirroredStrategy(Strategy):
    """Synchronous data parallelism: every worker process holds one replica of the model.

    ``ringrun -np N train.py`` gives ``num_replicas_in_sync == N``. Variables created in
    ``scope()`` start from the chief's values; optimizers created there all-reduce (average)
    gradients in fused buckets, ordered by variable name, before applying them.

    ``cross_device_ops`` picks the all-reduce: ``tf.distribute.RingAllReduce(bucket_bytes=...)``,
    ``tf.distribute.NativeAllReduce()``, ``"ring"``/``"native"`` or None (automatic);
    ``communication_options`` (``tf.distribute.experimental.CommunicationOptions``) is the
    other way to say the same. ``devices`` names this worker's device (one replica per
    worker: list one device, or one per local worker).
    """

    def __init__(self, devices: Iterable[str] | str | None = None, cross_device_ops: Any = None,
                 communication_options: _cdo.CommunicationOptions | None = None):
        ops = _cdo.resolve(cross_device_ops, communication_options)
        if not process_group.is_initialized():
            process_group.init()
        device = self._pick_device(devices)
        super().__init__(MirroredExtended(self, ops, device))

    @staticmethod
    def _pick_device(devices) -> str | None:
        if devices is None:
            return None
        if isinstance(devices, str):
            devices = [devices]
        devices = list(devices)
        if not all(isinstance(d, str) for d in devices):
            raise TypeError("devices must be device names such as '/gpu:0'")
        local_size = process_group.local_size()
        if len(devices) == 1:
            return devices[0]
        if len(devices) == local_size:
            return devices[process_group.local_rank()]
        raise ValueError(f"MirroredStrategy got {len(devices)} devices but this machine runs "
                         f"{local_size} worker(s); ringtrain runs one replica per worker "
                         "process: start one worker per device with `ringrun -np N` and list "
                         "one device (or one per local worker)")

    def __repr__(self) -> str:
        return (f"MirroredStrategy(num_replicas_in_sync={self.num_replicas_in_sync}, "
                f"cross_device_ops={self.extended.cross_device_ops!r})")


class MultiWorkerMirroredStrategy(MirroredStrategy):
    """TensorFlow's multi-machine name; in ringtrain MirroredStrategy already spans every
    worker of the job (on one machine or many), so this is the same strategy."""

    def __init__(self, cluster_resolver: Any = None,
                 communication_options: _cdo.CommunicationOptions | None = None):
        if cluster_resolver is not None:
            raise ValueError("ringtrain reads the cluster from RINGTRAIN_CONFIG / TF_CONFIG "
                             "(or the launcher); pass cluster_resolver=None")
        super().__init__(communication_options=communication_options)


class _DefaultStrategy(Strategy):
    """One replica and no hooks: its scope changes nothing, as TensorFlow's default strategy."""

    def _enter_scope(self, exits: contextlib.ExitStack) -> None:
        pass


_DEFAULT: list[Strategy] = []


def _default_strategy() -> Strategy:
    if not _DEFAULT:
        _DEFAULT.append(_DefaultStrategy())
    return _DEFAULT[0]
