"""Eager execution, GradientTape and tf.function, on the graph core's kernels and gradient rules.

There is one set of ops. ``enable_eager_execution()`` installs an ``EagerContext`` as the
default graph; its ``_create_op`` runs the op's kernel (kernels.py) at once and returns
outputs that hold their arrays (``EagerTensor``). A ``GradientTape`` records the ops that ran
on watched tensors and replays the rule table of gradients.py backwards, each rule again
running eagerly. ``tf.function`` traces the Python function once per input signature into a
``FuncGraph`` (a graph of the same core) and runs it with a Session on the eager context's
runtime, so the function reads and updates the eager variables in place.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ..errors import FailedPreconditionError, InvalidArgumentError, RingtrainError
from . import dtypes as _dt
from . import graph as _graph
from .gradients import GRADIENTS, gradients
from .graph import Graph, Operation, Tensor, TensorShape
from .ops.base import KERNELS
from .session import Session, _Runtime

# --- eager tensors and the eager context -------------------------------------------------------


class EagerTensor(Tensor):
    """A tensor with a value: the output of an op run eagerly (TensorFlow 2's EagerTensor)."""

    __slots__ = ("_value",)

    @property
    def device(self) -> str:
        return _CPU  # eager kernels run on NumPy arrays

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        # NumPy functions on eager tensors compute on their values (np.square(t) -> ndarray).
        arrays = [np.asarray(x) if isinstance(x, Tensor) else x for x in inputs]
        return getattr(ufunc, method)(*arrays, **kwargs)

    def __reduce__(self):
        return (_constant_from_array, (np.asarray(self._value),))

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self


_CPU = "/job:localhost/replica:0/task:0/device:CPU:0"


def _constant_from_array(value: np.ndarray) -> Tensor:
    from .ops import constant
    return constant(value)


def _shape_of(value: Any) -> TensorShape:
    shape = object.__new__(TensorShape)
    shape._dims = tuple(np.shape(value))
    return shape


def _new_eager(op: Operation, index: int, dtype: _dt.DType) -> EagerTensor:
    t = object.__new__(EagerTensor)
    t._op = op
    t._value_index = index
    t._dtype = dtype
    t._consumers = _NO_CONSUMERS
    t._value = None
    return t


class _NoConsumers(list):
    """Eager tensors keep no consumer lists (that would keep every op ever run alive)."""

    def append(self, op: Any) -> None:
        pass


_NO_CONSUMERS = _NoConsumers()


class _EagerRuntime(_Runtime):
    """The eager context's kernels' runtime: one generator per (seed, seed2), drawn from on
    every call (an op run twice gives new numbers; a seeded program repeats its sequence)."""

    def rng(self, seed: int | None, seed2: int | None) -> Any:
        key = (seed, seed2)
        gen = self._rngs.get(key)
        if gen is None:
            gen = np.random.default_rng(None if key == (None, None) else [seed or 0, seed2 or 0])
            self._rngs[key] = gen
        return gen


_STATEFUL_KERNELS = {"PyFunc", "Placeholder"}  # never share a bound kernel between runs


class EagerContext(Graph):
    """The default "graph" while eager execution is enabled: each op runs when created.

    Variables created here keep their values in this context's runtime (``_rt``), which the
    Sessions of tf.functions share.
    """

    _eager = True

    def __init__(self):
        super().__init__()
        self._rt = _EagerRuntime(np)
        self._shared_runtime = self._rt
        self._kernels: dict = {}
        # What an eager tensor's .op is: the op that made it is not kept (it would form a
        # cycle with its outputs, freed only by the garbage collector); tapes keep their ops.
        self._sentinel = Operation(self, "eager", "EagerOp", (), {}, (), "", -1)

    @property
    def _variable_home(self) -> Graph:
        return self

    def finalize(self) -> None:
        raise RuntimeError("eager execution has no graph to finalize")

    def name_scope(self, name: str | None):
        return _eager_name_scope(self, name)

    # -- values --
    def _numpy(self, t: Tensor) -> Any:
        value = self._array(t)
        if t._op._type == "VariableV2":
            return np.array(value, copy=True)  # never hand out the variable's storage
        return value if isinstance(value, np.generic) else np.asarray(value)

    def _array(self, t: Tensor) -> Any:
        if type(t) is EagerTensor:
            return t._value
        op = t._op
        if op._graph is not self:
            raise TypeError(f"the graph tensor {t.name!r} was passed to an op running eagerly: "
                            f"graph tensors only have values inside Session.run. Build and run "
                            f"the graph inside `with tf.Graph().as_default():`, or compute the "
                            f"value eagerly")
        if op._type == "VariableV2":
            value = self._rt.store[t._index]
            if value is None:
                raise FailedPreconditionError(None, op, f"variable {op._name!r} has no value")
            return value
        raise TypeError(f"{t!r} has no value")

    # -- running ops --
    def _create_op(self, op_type: str, inputs: Any, attrs: dict | None, name: str | None,
                   out_specs: Any, absolute_name: bool = False) -> Operation:
        if op_type == "VariableV2":  # a variable's handle: registered, named, not run
            op = Graph._create_op(self, op_type, (), attrs, name, out_specs, absolute_name)
            op._id = -1  # sorts before every op of a tf.function graph that reads it
            self._rt.reserve(attrs["index"] + 1)
            return op
        if op_type == "Placeholder":
            raise RuntimeError("tf.placeholder() is not compatible with eager execution: pass "
                               "values (NumPy arrays or tensors) to the ops directly, or wrap "
                               "the computation in a tf.function")
        inputs = tuple(inputs)
        arrays = []
        reads_variables = False
        for t in inputs:
            if type(t) is EagerTensor:
                arrays.append(t._value)
            else:
                arrays.append(self._array(t))
                reads_variables = True
        attrs = attrs if attrs is not None else {}
        op = Operation(self, name or op_type, op_type, (), attrs, (), "", -1)
        sentinel = self._sentinel
        if len(out_specs) == 1:
            outs = (_new_eager(sentinel, 0, out_specs[0][0]),)
        else:
            outs = tuple(_new_eager(sentinel, i, spec[0]) for i, spec in enumerate(out_specs))
        op._outputs = outs
        fn = self._kernel(op, attrs)
        try:
            result = fn(*arrays)
        except RingtrainError:
            raise
        except (ValueError, TypeError, IndexError, KeyError, ArithmeticError) as exc:
            if op_type == "PyFunc":
                raise
            raise InvalidArgumentError(None, op, f"{op_type}: {exc}") from exc
        if len(outs) == 1:
            _fill(outs[0], result)
        else:
            for t, value in zip(outs, result or ()):
                _fill(t, value)
        if reads_variables:  # an output aliasing a variable's storage is a snapshot of it
            for t in outs:
                if any(t._value is a for a in arrays):
                    t._value = t._value.copy()
        if _tapes and _record(op, inputs, outs):
            op._inputs = inputs
        return op

    def _kernel(self, op: Operation, attrs: dict) -> Callable:
        rt = self._rt
        if op._type in _STATEFUL_KERNELS:
            rt.op = op
            return KERNELS[op._type](rt, **attrs)
        try:
            key = (op._type, *attrs.items()) if attrs else op._type
            fn = self._kernels.get(key)
        except TypeError:  # unhashable attributes (constants' values): bind every time
            key, fn = None, None
        if fn is None:
            factory = KERNELS.get(op._type)
            if factory is None:
                raise NotImplementedError(f"no kernel for op type {op._type!r}")
            rt.op = op
            fn = factory(rt, **attrs)
            if key is not None:
                if len(self._kernels) > 4096:
                    self._kernels.clear()
                self._kernels[key] = fn
        return fn


def _fill(t: EagerTensor, value: Any) -> None:
    npd = t._dtype._np
    dtype = getattr(value, "dtype", None)
    if dtype is not npd and dtype != npd and npd.kind != "O":
        value = np.asarray(value, dtype=npd)
    t._value = value
    shape = object.__new__(TensorShape)
    shape._dims = value.shape if dtype is not None else np.shape(value)
    t._shape = shape


@contextlib.contextmanager
def _eager_name_scope(ctx: EagerContext, name: str | None) -> Iterator[str]:
    # Eagerly, names only label variables: scopes nest without being made unique (as TF2).
    old = ctx._name_stack
    if not name:
        new = ""
    elif name.endswith("/"):
        new = name[:-1]
    else:
        new = f"{old}/{name}" if old else name
    ctx._name_stack = new
    try:
        yield new + "/" if new else ""
    finally:
        ctx._name_stack = old


def enable_eager_execution(config: Any = None, device_policy: Any = None,
                           execution_mode: Any = None) -> None:
    """Run ops at once from now on (TensorFlow 2 behaviour); call once at program start."""
    if _graph._eager_context[0] is not None:
        return
    if _graph._graph_stack():
        raise ValueError("tf.enable_eager_execution must be called at program startup, not "
                         "inside a graph.as_default() block")
    if _graph._default_graph._ops:
        raise ValueError("tf.enable_eager_execution must be called at program startup: ops "
                         "were already added to the default graph")
    ctx = EagerContext()
    ctx.seed = _graph._default_graph.seed
    _graph._eager_context[0] = ctx


enable_v2_behavior = enable_eager_execution


def disable_eager_execution() -> None:
    """Back to graph mode (TF1's default); the eager context and its variables are dropped."""
    if _graph._graph_stack():
        raise ValueError("tf.disable_eager_execution cannot be called inside a "
                         "graph.as_default() block")
    _graph._eager_context[0] = None
    _tapes.clear()


disable_v2_behavior = disable_eager_execution


def eager_context() -> EagerContext:
    ctx = _graph._eager_context[0]
    if ctx is None:
        raise RuntimeError("eager execution is not enabled: call tf.enable_eager_execution() "
                           "at program start (or `import ringtrain.v2 as tf`)")
    return ctx


# --- GradientTape ------------------------------------------------------------------------------

_tapes: list[GradientTape] = []  # the tapes recording now, outermost first


def _record(op: Operation, inputs: tuple, outs: tuple) -> bool:
    recorded = False
    for tape in _tapes:
        if tape._record(op, inputs, outs):
            recorded = True
    return recorded


class UnconnectedGradients:
    NONE = "none"
    ZERO = "zero"


def _flatten(structure: Any) -> list:
    if isinstance(structure, dict):
        return [leaf for k in sorted(structure) for leaf in _flatten(structure[k])]
    if isinstance(structure, (list, tuple)):
        return [leaf for item in structure for leaf in _flatten(item)]
    return [structure]


def _pack(structure: Any, leaves: Iterator) -> Any:
    if isinstance(structure, dict):
        return type(structure)((k, _pack(structure[k], leaves)) for k in sorted(structure))
    if isinstance(structure, tuple) and hasattr(structure, "_fields"):
        return type(structure)(*(_pack(item, leaves) for item in structure))
    if isinstance(structure, (list, tuple)):
        return type(structure)(_pack(item, leaves) for item in structure)
    return next(leaves)


class GradientTape:
    """Records the operations run on watched tensors, to differentiate them afterwards.

    Trainable variables read inside the block are watched automatically
    (``watch_accessed_variables=True``); other tensors with ``tape.watch(t)``. ``gradient``
    replays the gradient rules backwards (eagerly); a tape is used once unless
    ``persistent=True``. Nested tapes give higher derivatives. Inside a tf.function the
    gradient is the symbolic one of the traced graph (tf.gradients).
    """

    def __init__(self, persistent: bool = False, watch_accessed_variables: bool = True):
        self._persistent = bool(persistent)
        self._watch_accessed = bool(watch_accessed_variables)
        self._tracked: dict[int, Tensor] = {}   # id -> tensor: watched, or made by a recorded op
        self._watched_variables: dict[int, Tensor] = {}
        self._ops: list[Operation] = []
        self._recording = False
        self._used = False

    def __enter__(self) -> GradientTape:  # noqa: PYI034
        if self._recording:
            raise ValueError("this GradientTape is already recording")
        self._recording = True
        _tapes.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self._recording = False
        if self in _tapes:
            _tapes.remove(self)

    def _record(self, op: Operation, inputs: tuple, outs: tuple) -> bool:
        tracked = self._tracked
        hit = False
        for t in inputs:
            if id(t) in tracked:
                hit = True
            elif self._watch_accessed and t._op._type == "VariableV2" and t.trainable:
                self._watch_one(t)
                hit = True
        if hit:
            self._ops.append(op)
            for t in outs:
                tracked[id(t)] = t
        return hit

    def _watch_one(self, t: Tensor) -> None:
        self._tracked[id(t)] = t
        if t._op._type == "VariableV2":
            self._watched_variables[id(t)] = t

    def watch(self, tensor: Any) -> None:
        """Record the operations on ``tensor`` (a tensor, variable or a structure of them)."""
        for t in _flatten(tensor):
            if not isinstance(t, Tensor):
                raise TypeError(f"GradientTape.watch needs tensors or variables, got {t!r}; "
                                 f"convert values with tf.convert_to_tensor first")
            if t._op._graph._eager:
                self._watch_one(t)

    def watched_variables(self) -> tuple:
        return tuple(self._watched_variables.values())

    @contextlib.contextmanager
    def stop_recording(self) -> Iterator[None]:
        """Operations inside this block are not recorded."""
        if self not in _tapes:
            raise ValueError("stop_recording() is only valid while the tape is recording")
        index = _tapes.index(self)
        _tapes.remove(self)
        try:
            yield
        finally:
            _tapes.insert(index, self)

    def reset(self) -> None:
        """Forget everything recorded so far (the tape keeps recording if it was)."""
        self._release()
        self._tracked.clear()
        self._watched_variables.clear()

    def gradient(self, target: Any, sources: Any, output_gradients: Any = None,
                 unconnected_gradients: str = UnconnectedGradients.NONE) -> Any:
        """d(sum of ``target``)/d(source) for each source, shaped like ``sources``."""
        if self._used and not self._persistent:
            raise RuntimeError("A non-persistent GradientTape can only be used to compute one "
                               "set of gradients; create it with persistent=True to call "
                               "gradient() several times")
        if unconnected_gradients not in (UnconnectedGradients.NONE, UnconnectedGradients.ZERO):
            raise ValueError(f"unconnected_gradients must be 'none' or 'zero', got "
                             f"{unconnected_gradients!r}")
        targets = _flatten(target)
        flat_sources = _flatten(sources)
        grads_out = None if output_gradients is None else _flatten(output_gradients)
        for s in flat_sources:
            if not isinstance(s, Tensor):
                raise TypeError(f"GradientTape.gradient: sources must be tensors or variables, "
                                f"got {s!r}")
        from . import ops as O

        if not all(isinstance(t, Tensor) and t._op._graph._eager for t in targets):
            # Inside a tf.function: the traced graph is differentiated symbolically.
            result = gradients(targets, flat_sources, grad_ys=grads_out,
                               unconnected_gradients=unconnected_gradients)
        else:
            index = _tapes.index(self) if self in _tapes else None
            if index is not None:
                _tapes.remove(self)  # the backward pass is recorded by outer tapes only
            try:
                result = self._backward(O, targets, flat_sources, grads_out,
                                        unconnected_gradients)
            finally:
                if index is not None:
                    _tapes.insert(index, self)
        self._used = True
        if not self._persistent:
            self._release()
        return _pack(sources, iter(result))

    def _backward(self, O, targets: list, sources: list, grads_out: list | None,
                  unconnected: str) -> list:
        pending: dict[int, list] = {}
        for i, y in enumerate(targets):
            y = O.convert_to_tensor(y)
            gy = O.ones_like(y) if grads_out is None else O.convert_to_tensor(grads_out[i],
                                                                               dtype=y.dtype)
            pending.setdefault(id(y), []).append(gy)

        def total(t: Tensor) -> Tensor | None:
            parts = pending.get(id(t))
            if not parts:
                return None
            if len(parts) > 1:
                parts[:] = [O.add_n(parts)]
            return parts[0]

        for op in reversed(self._ops):
            out_grads = [total(t) for t in op._outputs]
            if all(g is None for g in out_grads):
                continue
            rule = GRADIENTS.get(op._type)
            if rule is None:
                raise LookupError(f"No gradient defined for operation '{op._name}' (op type: "
                                  f"{op._type})")
            for t, g in zip(op._inputs, rule(op, *out_grads)):
                if g is not None and t._dtype.is_floating:
                    pending.setdefault(id(t), []).append(g)
        result = []
        for s in sources:
            g = total(s) if id(s) in self._tracked else None
            if g is None and unconnected == UnconnectedGradients.ZERO:
                g = O.zeros_like(s)
            result.append(g)
        return result

    def _release(self) -> None:
        self._ops = []

    def jacobian(self, *args: Any, **kwargs: Any):
        from .unsupported import missing
        raise missing("ringtrain", "GradientTape.jacobian")

    batch_jacobian = jacobian


def gradients_function(f: Callable, params: Any = None) -> Callable:
    """``tfe.gradients_function``: a function returning the gradients of ``f`` with respect to
    its arguments (those at the positions in ``params``, default all)."""

    def grads(*args: Any) -> list:
        return value_and_gradients_function(f, params)(*args)[1]

    return grads


def value_and_gradients_function(f: Callable, params: Any = None) -> Callable:
    """``tfe.value_and_gradients_function``: ``(f(*args), gradients)``."""
    from . import ops as O

    def value_and_grads(*args: Any) -> tuple:
        tensors = [a if isinstance(a, Tensor) else O.convert_to_tensor(
            a, preferred_dtype=_dt.float32) for a in args]
        chosen = range(len(tensors)) if params is None else params
        with GradientTape() as tape:
            for i in chosen:
                tape.watch(tensors[i])
            value = f(*tensors)
        return value, tape.gradient(value, [tensors[i] for i in chosen])

    return value_and_grads


# --- tf.function -------------------------------------------------------------------------------

class FuncGraph(Graph):
    """A graph being traced by tf.function: it reads (and updates) the eager context's
    variables directly and captures eager tensors as constants; variables created while
    tracing are created in the eager context."""

    def __init__(self, outer: EagerContext, name: str):
        super().__init__()
        self._outer = outer
        self._shared_runtime = outer._rt
        self.seed = outer.seed
        self.name = name

    @property
    def _variable_home(self) -> Graph:
        return self._outer

    def _foreign_input(self, t: Tensor, op_type: str) -> Tensor:
        if t._op._graph is self._outer and t._op._type == "VariableV2":
            return t  # read from the shared variable storage when the function runs
        return super()._foreign_input(t, op_type)


_SIDE_EFFECT_TYPES = None


def _side_effect_types() -> frozenset:
    global _SIDE_EFFECT_TYPES
    if _SIDE_EFFECT_TYPES is None:
        from .ops.control import _SIDE_EFFECTS
        _SIDE_EFFECT_TYPES = frozenset(_SIDE_EFFECTS) | {
            "ScalarSummary", "HistogramSummary", "MergeSummary"}
    return _SIDE_EFFECT_TYPES


class _Trace:
    """One traced signature: its graph, placeholders, output structure and Session."""

    def __init__(self, function: Function, args: tuple, kwargs: dict):
        from . import ops as O

        outer = eager_context()
        graph = FuncGraph(outer, function._name)
        self.graph = graph
        leaves = _flatten((args, kwargs))
        self.placeholders = []
        traced_leaves = []
        with graph.as_default():
            for i, leaf in enumerate(leaves):
                if _is_tensor_arg(leaf):
                    dtype, shape = _signature_of(leaf)
                    ph = O.placeholder(dtype, shape=shape, name=f"arg{i}")
                    self.placeholders.append(ph)
                    traced_leaves.append(ph)
                else:
                    traced_leaves.append(leaf)
            targs, tkwargs = _pack((args, kwargs), iter(traced_leaves))
            with _graph_mode_scope():
                out = function._python_function(*targs, **tkwargs)
            self.structure = out
            flat = _flatten(out)
            self.fetch_positions = []
            fetches = []
            for i, leaf in enumerate(flat):
                if isinstance(leaf, Tensor):
                    if leaf._op._graph is not graph:
                        leaf = O.identity(leaf)
                    self.fetch_positions.append(i)
                    fetches.append(leaf)
            self.constant_leaves = flat
        side = [op for op in graph._ops if op._type in _side_effect_types()]
        self.fetches = (tuple(fetches), tuple(side))
        self.session = Session(graph=graph)

    def run(self, leaves: list) -> Any:
        feed = {ph: np.asarray(leaf) if not isinstance(leaf, Tensor) else leaf.numpy()
                for ph, leaf in zip(self.placeholders, leaves)}
        values, _ = self.session.run(self.fetches, feed_dict=feed)
        ctx = eager_context()
        out = list(self.constant_leaves)
        for pos, t, value in zip(self.fetch_positions, self.fetches[0], values):
            out[pos] = _wrap(ctx, value, t._dtype)
        return _pack(self.structure, iter(out))


def _wrap(ctx: EagerContext, value: Any, dtype: _dt.DType) -> EagerTensor:
    t = _new_eager(ctx._sentinel, 0, dtype)
    value = np.asarray(value) if not isinstance(value, (np.ndarray, np.generic)) else value
    t._value = value
    t._shape = _shape_of(value)
    return t


@contextlib.contextmanager
def _graph_mode_scope() -> Iterator[None]:
    # Tapes opened outside do not see the traced (symbolic) ops.
    saved = list(_tapes)
    _tapes.clear()
    try:
        yield
    finally:
        _tapes[:] = saved


def _is_tensor_arg(value: Any) -> bool:
    """Arguments fed to a placeholder; variables are passed by reference (captured)."""
    return isinstance(value, (Tensor, np.ndarray)) and not _is_variable(value)


def _is_variable(value: Any) -> bool:
    return isinstance(value, Tensor) and value._op._type == "VariableV2"


def _signature_of(value: Any) -> tuple:
    if isinstance(value, Tensor):
        if not value._op._graph._eager:
            raise TypeError(f"tf.function got the graph tensor {value.name!r}; call it with "
                            f"eager tensors or NumPy arrays")
        return value._dtype, tuple(value.shape.as_list())
    return _dt.as_dtype(value.dtype), value.shape


def _signature_key(leaves: list) -> tuple:
    key = []
    for leaf in leaves:
        if _is_tensor_arg(leaf):
            dtype, shape = _signature_of(leaf)
            key.append(("T", dtype.name, tuple(shape)))
        elif _is_variable(leaf):
            key.append(("Var", id(leaf)))
        else:
            try:
                hash(leaf)
                key.append(("V", type(leaf), leaf))
            except TypeError:
                key.append(("O", id(leaf)))
    return tuple(key)


_EAGERLY = object()  # a signature whose function cannot be traced without AutoGraph


class Function:
    """``tf.function``: traces ``python_function`` into a graph once per input signature
    (tensor dtypes and shapes, Python values) and runs that graph on later calls.

    Python side effects (print, appending to lists) happen while tracing only, as in
    TensorFlow. A function whose Python ``if``/``while`` tests a tensor's value (which
    TensorFlow's AutoGraph would rewrite) runs eagerly for that signature. Called while a graph is being built (in graph mode, or inside another
    tf.function), the Python function is called directly and its ops join that graph.
    """

    def __init__(self, python_function: Callable, input_signature: Any = None,
                 autograph: bool = True, experimental_relax_shapes: bool = False,
                 name: str | None = None, **_ignored: Any):
        self._python_function = python_function
        self._name = name or getattr(python_function, "__name__", "function")
        self._traces: dict[tuple, _Trace] = {}
        self._instances: dict[int, Function] = {}
        functools.update_wrapper(self, python_function)

    @property
    def python_function(self) -> Callable:
        return self._python_function

    def __get__(self, instance: Any, owner: Any = None) -> Any:
        # A decorated method: one Function (one set of traces) per instance.
        if instance is None:
            return self
        bound = self._instances.get(id(instance))
        if bound is None:
            bound = Function(self._python_function.__get__(instance, owner), name=self._name)
            self._instances[id(instance)] = bound
        return bound

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not _graph.get_default_graph()._eager:
            return self._python_function(*args, **kwargs)
        leaves = _flatten((args, kwargs))
        key = _signature_key(leaves)
        trace = self._traces.get(key)
        if trace is None:
            try:
                trace = _Trace(self, args, kwargs)
            except _graph.GraphBoolError:
                # Python control flow on a tensor's value (what AutoGraph would convert):
                # this signature runs eagerly instead, with the same results.
                trace = _EAGERLY
            self._traces[key] = trace
        if trace is _EAGERLY:
            return self._python_function(*args, **kwargs)
        return trace.run([leaf for leaf in leaves if _is_tensor_arg(leaf)])

    def get_concrete_function(self, *args: Any, **kwargs: Any) -> Any:
        key = _signature_key(_flatten((args, kwargs)))
        if key not in self._traces:
            self._traces[key] = _Trace(self, args, kwargs)
        return self._traces[key]

    def experimental_get_tracing_count(self) -> int:
        return len(self._traces)


def function(func: Callable | None = None, input_signature: Any = None, autograph: bool = True,
             experimental_relax_shapes: bool = False, **kwargs: Any) -> Any:
    """``@tf.function`` / ``tf.function(f)``: see ``Function``."""
    if func is None:
        return lambda f: Function(f, input_signature, autograph, experimental_relax_shapes,
                                  **kwargs)
    if inspect.isclass(func):
        raise TypeError("tf.function decorates functions and methods, not classes")
    return Function(func, input_signature, autograph, experimental_relax_shapes, **kwargs)


defun = function


__all__ = [
    "EagerTensor",
    "Function",
    "GradientTape",
    "UnconnectedGradients",
    "defun",
    "disable_eager_execution",
    "disable_v2_behavior",
    "enable_eager_execution",
    "enable_v2_behavior",
    "function",
    "gradients_function",
    "value_and_gradients_function",
]
