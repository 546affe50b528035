"""Graph, Operation, Tensor, TensorShape: the TF1 data-flow graph, its names, scopes, devices."""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from . import dtypes as _dt

# --- shapes ------------------------------------------------------------------------------------

def _dim(d: Any) -> int | None:
    if d is None:
        return None
    d = getattr(d, "value", d)  # TF1 Dimension objects
    if d is None:
        return None
    try:
        d = int(d)
    except (TypeError, ValueError):
        raise TypeError(f"a shape dimension must be an int or None, got {d!r}") from None
    if d < 0:
        if d == -1:
            return None
        raise ValueError(f"a shape dimension must be >= 0 (or None for unknown), got {d}")
    return d


class TensorShape:
    """A static, possibly partial shape: dims are ints or None (unknown); rank may be unknown."""

    __slots__ = ("_dims",)

    def __init__(self, dims: Any):
        if isinstance(dims, TensorShape):
            self._dims = dims._dims
        elif dims is None:
            self._dims = None
        elif isinstance(dims, (int,)) or hasattr(dims, "value"):
            self._dims = (_dim(dims),)
        else:
            self._dims = tuple(_dim(d) for d in dims)

    @property
    def dims(self) -> list | None:
        return None if self._dims is None else list(self._dims)

    @property
    def ndims(self) -> int | None:
        return None if self._dims is None else len(self._dims)

    rank = ndims

    def as_list(self) -> list:
        if self._dims is None:
            raise ValueError("as_list() is not defined on an unknown TensorShape")
        return list(self._dims)

    def as_tuple(self) -> tuple | None:
        return self._dims

    def is_fully_defined(self) -> bool:
        return self._dims is not None and None not in self._dims

    def num_elements(self) -> int | None:
        if not self.is_fully_defined():
            return None
        n = 1
        for d in self._dims:
            n *= d
        return n

    def is_compatible_with(self, other: Any) -> bool:
        other = as_shape(other)
        if self._dims is None or other._dims is None:
            return True
        if len(self._dims) != len(other._dims):
            return False
        return all(a is None or b is None or a == b for a, b in zip(self._dims, other._dims))

    def merge_with(self, other: Any) -> TensorShape:
        other = as_shape(other)
        if self._dims is None:
            return other
        if other._dims is None:
            return self
        if not self.is_compatible_with(other):
            raise ValueError(f"shapes {self} and {other} are not compatible")
        return TensorShape([a if a is not None else b for a, b in zip(self._dims, other._dims)])

    def concatenate(self, other: Any) -> TensorShape:
        other = as_shape(other)
        if self._dims is None or other._dims is None:
            return TensorShape(None)
        return TensorShape(self._dims + other._dims)

    def with_rank(self, rank: int) -> TensorShape:
        if self._dims is None:
            return TensorShape([None] * rank)
        if len(self._dims) != rank:
            raise ValueError(f"shape {self} must have rank {rank}")
        return self

    def __len__(self) -> int:
        if self._dims is None:
            raise ValueError("cannot take the length of a shape with unknown rank")
        return len(self._dims)

    def __iter__(self) -> Iterator:
        if self._dims is None:
            raise ValueError("cannot iterate over a shape with unknown rank")
        return iter(self._dims)

    def __getitem__(self, key: Any) -> Any:
        if self._dims is None:
            return TensorShape(None) if isinstance(key, slice) else None
        if isinstance(key, slice):
            return TensorShape(self._dims[key])
        return self._dims[key]

    def __eq__(self, other: object) -> bool:
        try:
            other = as_shape(other)
        except (TypeError, ValueError):
            return NotImplemented
        return self._dims == other._dims

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __hash__(self) -> int:
        return hash(self._dims)

    def __str__(self) -> str:
        if self._dims is None:
            return "<unknown>"
        parts = ["?" if d is None else str(d) for d in self._dims]
        if len(parts) == 1:
            return f"({parts[0]},)"
        return "(" + ", ".join(parts) + ")"

    def __repr__(self) -> str:
        return "TensorShape(None)" if self._dims is None else f"TensorShape({list(self._dims)})"


def as_shape(shape: Any) -> TensorShape:
    return shape if isinstance(shape, TensorShape) else TensorShape(shape)


def unknown_shape() -> TensorShape:
    return TensorShape(None)


# --- tensors and operations --------------------------------------------------------------------

class GraphBoolError(TypeError):
    """A graph tensor used as a Python bool (tf.function then runs the function eagerly)."""


class Tensor:
    """A symbolic output of an Operation; its value exists only inside ``Session.run``."""

    __slots__ = ("__weakref__", "_consumers", "_dtype", "_op", "_shape", "_value_index")

    # NumPy must defer to our operators (``ndarray + Tensor`` -> Tensor.__radd__) and never
    # turn a Tensor into an object array.
    __array_priority__ = 100
    __array_ufunc__ = None

    def __init__(self, op: Operation, value_index: int, dtype: _dt.DType, shape: Any):
        self._op = op
        self._value_index = value_index
        self._dtype = dtype
        self._shape = as_shape(shape)
        self._consumers: list[Operation] = []

    @property
    def op(self) -> Operation:
        return self._op

    @property
    def graph(self) -> Graph:
        return self._op._graph

    @property
    def name(self) -> str:
        return f"{self._op._name}:{self._value_index}"

    @property
    def value_index(self) -> int:
        return self._value_index

    @property
    def dtype(self) -> _dt.DType:
        return self._dtype

    @property
    def shape(self) -> TensorShape:
        return self._shape

    @property
    def device(self) -> str:
        return self._op._device

    def get_shape(self) -> TensorShape:
        return self._shape

    def set_shape(self, shape: Any) -> None:
        """Refine the static shape (like TF1): the new shape must be compatible with the old."""
        self._shape = self._shape.merge_with(shape)

    def consumers(self) -> list[Operation]:
        return list(self._consumers)

    def eval(self, feed_dict: dict | None = None, session: Any = None) -> Any:
        """This tensor's value in ``session`` (default: the default session)."""
        from .session import _session_for
        return _session_for(session, self.graph).run(self, feed_dict)

    # A tensor of the eager context (an EagerTensor, or a Variable created eagerly) has a
    # value; the methods below then behave as TensorFlow 2's EagerTensor (see eager.py).
    @property
    def numpy(self) -> Any:
        """``t.numpy()``: the value as a NumPy array (eager tensors). A graph tensor has no such
        attribute (``hasattr(t, "numpy")`` is False); the error names the alternative."""
        if self._op._graph._eager:
            return self._value_as_numpy
        from .unsupported import missing
        raise missing("ringtrain", "Tensor.numpy")

    def _value_as_numpy(self) -> Any:
        return self._op._graph._numpy(self)

    def __array__(self, dtype: Any = None, copy: Any = None):
        if self._op._graph._eager:
            value = np.asarray(self._value_as_numpy())
            return value if dtype is None else value.astype(dtype, copy=False)
        raise TypeError(f"cannot convert the symbolic Tensor {self.name!r} to a NumPy array: its "
                        f"value only exists in Session.run; run it (sess.run(t) or t.eval()) "
                        f"first")

    def __bool__(self) -> bool:
        if self._op._graph._eager:
            return bool(self.numpy())
        raise GraphBoolError("using a Tensor as a Python bool is not allowed: its value only "
                             "exists in Session.run; use tf.cond/tf.where, or run it and test "
                             "the result")

    def __float__(self) -> float:
        return float(self.numpy())

    def __int__(self) -> int:
        return int(self.numpy())

    def __index__(self) -> int:
        if self._op._graph._eager and self._dtype.is_integer:
            return int(self.numpy())
        raise TypeError(f"only integer eager tensors can be used as an index, not {self!r}")

    def __format__(self, spec: str) -> str:
        if self._op._graph._eager and spec:
            return format(self.numpy(), spec)
        return str(self)

    def __iter__(self) -> Iterator:
        shape = self._shape
        if shape.ndims is None or shape.ndims == 0 or shape[0] is None:
            raise TypeError(f"Tensor {self.name!r} of shape {shape} is not iterable: its first "
                            f"dimension must be statically known")
        from .ops import unstack
        return iter(unstack(self, num=shape[0]))

    def __len__(self) -> int:
        if self._shape.ndims and self._shape[0] is not None:
            return self._shape[0]
        raise TypeError(f"len of Tensor {self.name!r} with shape {self._shape} is unknown")

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        if self._op._graph._eager:
            value = self.numpy()
            shown = repr(value.item()) if np.ndim(value) == 0 else repr(np.asarray(value))
            return f"<tf.Tensor: shape={self._shape}, dtype={self._dtype.name}, numpy={shown}>"
        dev = f", device={self._op._device}" if self._op._device else ""
        return f'<tf.Tensor "{self.name}" shape={self._shape} dtype={self._dtype.name}{dev}>'

    def __str__(self) -> str:
        if self._op._graph._eager:
            return (f"tf.Tensor(\n{self.numpy()}, shape={self._shape}, "
                    f"dtype={self._dtype.name})")
        dev = f", device={self._op._device}" if self._op._device else ""
        return f'Tensor("{self.name}", shape={self._shape}, dtype={self._dtype.name}{dev})'


class Operation:
    """A node of the graph: a type (kernel), input tensors, attributes, output tensors."""

    __slots__ = (
        "__weakref__",
        "_attrs",
        "_control_inputs",
        "_device",
        "_graph",
        "_id",
        "_inputs",
        "_name",
        "_outputs",
        "_type",
    )

    def __init__(self, graph: Graph, name: str, op_type: str, inputs: tuple, attrs: dict,
                 control_inputs: tuple, device: str, op_id: int):
        self._graph = graph
        self._name = name
        self._type = op_type
        self._inputs = inputs
        self._attrs = attrs
        self._control_inputs = control_inputs
        self._device = device
        self._id = op_id
        self._outputs: tuple = ()

    @property
    def name(self) -> str:
        return self._name

    @property
    def type(self) -> str:
        return self._type

    @property
    def graph(self) -> Graph:
        return self._graph

    @property
    def inputs(self) -> tuple:
        return self._inputs

    @property
    def outputs(self) -> tuple:
        return self._outputs

    @property
    def control_inputs(self) -> tuple:
        return self._control_inputs

    @property
    def device(self) -> str:
        return self._device

    @property
    def attrs(self) -> dict:
        return dict(self._attrs)

    def get_attr(self, name: str) -> Any:
        try:
            return self._attrs[name]
        except KeyError:
            raise ValueError(f"operation {self._name!r} ({self._type}) has no attribute "
                             f"{name!r}; it has {sorted(self._attrs)}") from None

    def values(self) -> tuple:
        return self._outputs

    def run(self, feed_dict: dict | None = None, session: Any = None) -> None:
        """Run this operation in ``session`` (default: the default session)."""
        from .session import _session_for
        _session_for(session, self._graph).run(self, feed_dict)

    def _add_control_input(self, op: Operation) -> None:
        self._control_inputs = self._control_inputs + (op,)

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        return f"<tf.Operation '{self._name}' type={self._type}>"

    def __str__(self) -> str:
        lines = [f'name: "{self._name}"', f'op: "{self._type}"']
        lines += [f'input: "{t._op._name}' + (f':{t._value_index}"' if t._value_index else '"')
                  for t in self._inputs]
        lines += [f'input: "^{c._name}"' for c in self._control_inputs]
        if self._device:
            lines.append(f'device: "{self._device}"')
        return "\n".join(lines)


# --- devices -----------------------------------------------------------------------------------

_DEVICE_RE = re.compile(r"^(?:/job:(?P<job>[^/]+))?(?:/replica:(?P<replica>\d+))?"
                        r"(?:/task:(?P<task>\d+))?"
                        r"(?:/(?:device:)?(?P<type>[A-Za-z]+)(?::(?P<index>\d+|\*))?)?$")


class DeviceSpec:
    """A parsed device name: job, replica, task, device_type (CPU/GPU), device_index."""

    def __init__(self, job: str | None = None, replica: int | None = None,
                 task: int | None = None, device_type: str | None = None,
                 device_index: int | None = None):
        self.job = job
        self.replica = replica
        self.task = task
        self.device_type = device_type.upper() if device_type else None
        self.device_index = device_index

    @classmethod
    def from_string(cls, spec: str) -> DeviceSpec:
        spec = spec.strip()
        if spec and not spec.startswith("/"):
            spec = "/" + spec  # TensorFlow also accepts "CPU:0", "GPU:1", "device:GPU:0"
        m = _DEVICE_RE.match(spec)
        if not m:
            raise ValueError(f"malformed device specification {spec!r}; expected e.g. '/cpu:0', "
                             f"'/gpu:1', '/device:GPU:0' or '/job:worker/task:0'")
        index = m.group("index")
        return cls(m.group("job"), int(m.group("replica")) if m.group("replica") else None,
                   int(m.group("task")) if m.group("task") else None, m.group("type"),
                   int(index) if index and index != "*" else None)

    def to_string(self) -> str:
        parts = []
        if self.job is not None:
            parts.append(f"/job:{self.job}")
        if self.replica is not None:
            parts.append(f"/replica:{self.replica}")
        if self.task is not None:
            parts.append(f"/task:{self.task}")
        if self.device_type is not None:
            idx = "*" if self.device_index is None else self.device_index
            parts.append(f"/device:{self.device_type}:{idx}")
        return "".join(parts)

    def merge_from(self, other: DeviceSpec) -> None:
        for f in ("job", "replica", "task", "device_type", "device_index"):
            if getattr(other, f) is not None:
                setattr(self, f, getattr(other, f))

    def __str__(self) -> str:
        return self.to_string()

    def __repr__(self) -> str:
        return f"DeviceSpec({self.to_string()!r})"


def canonical_device(spec: Any) -> str:
    if spec is None or spec == "":
        return ""
    if isinstance(spec, DeviceSpec):
        return spec.to_string()
    if not isinstance(spec, str):
        raise TypeError(f"device must be a string like '/cpu:0' or a DeviceSpec, got {spec!r}")
    return DeviceSpec.from_string(spec).to_string()


# --- graph -------------------------------------------------------------------------------------

class GraphKeys:
    """Standard collection names (TF1's tf.GraphKeys)."""

    GLOBAL_VARIABLES = "variables"
    VARIABLES = "variables"
    TRAINABLE_VARIABLES = "trainable_variables"
    LOCAL_VARIABLES = "local_variables"
    MODEL_VARIABLES = "model_variables"
    SUMMARIES = "summaries"
    UPDATE_OPS = "update_ops"
    LOSSES = "losses"
    REGULARIZATION_LOSSES = "regularization_losses"
    GLOBAL_STEP = "global_step"
    TRAIN_OP = "train_op"
    METRIC_VARIABLES = "metric_variables"
    MOVING_AVERAGE_VARIABLES = "moving_average_variables"
    WEIGHTS = "weights"
    BIASES = "biases"
    ACTIVATIONS = "activations"
    SAVERS = "savers"
    INIT_OP = "init_op"
    LOCAL_INIT_OP = "local_init_op"
    SUMMARY_OP = "summary_op"
    EVAL_STEP = "eval_step"
    QUEUE_RUNNERS = "queue_runners"
    TABLE_INITIALIZERS = "table_initializer"


_VALID_NAME = re.compile(r"^[A-Za-z0-9.][A-Za-z0-9_.\-/>]*$")


class Graph:
    """A TF1 data-flow graph: operations in creation order (a valid topological order)."""

    # Subclasses in eager.py: the eager context (runs each op at once) and FuncGraph (a traced
    # tf.function, which reads the eager context's variables).
    _eager = False

    @property
    def _variable_home(self) -> Graph:
        """The graph whose variables ops of this graph read (a tf.function's: the eager one)."""
        return self

    def __init__(self):
        self._ops: list[Operation] = []
        self._ops_by_name: dict[str, Operation] = {}
        self._names_in_use: dict[str, int] = {}
        self._name_stack = ""
        self._device_stack: list[str] = []
        self._control_stack: list[list[Operation]] = []
        self._collections: dict[str, list] = {}
        self._finalized = False
        self.seed: int | None = None
        self._variables: list = []            # every Variable, in creation order
        self._var_store: dict[str, Any] = {}  # get_variable's name -> Variable
        self._var_scope_stack: list = []      # VariableScope objects (see variables.py)
        self._var_scope_counts: dict[str, int] = {}
        self._root_var_scope: Any = None
        self._creator_stack: list = []        # variable_creator_scope creators, outermost first
        self._lock = threading.RLock()
        self._captured_constants: dict[int, tuple] = {}  # id(eager tensor) -> (it, Const)

    # -- ops --
    def _create_op(self, op_type: str, inputs: Iterable[Tensor], attrs: dict | None,
                   name: str | None, out_specs: Iterable[tuple], absolute_name: bool = False
                   ) -> Operation:
        """Add an operation; ``out_specs`` is a sequence of (dtype, shape) for its outputs."""
        if self._finalized:
            raise RuntimeError("Graph is finalized and cannot be modified")
        inputs = tuple(inputs)
        for t in inputs:
            if not isinstance(t, Tensor):
                raise TypeError(f"input to {op_type} must be a Tensor, got {t!r}")
        if any(t._op._graph is not self for t in inputs):
            inputs = tuple(t if t._op._graph is self else self._foreign_input(t, op_type)
                           for t in inputs)
        with self._lock:
            if absolute_name:
                full = self._unique_absolute(name)
            else:
                full = self.unique_name(name or op_type)
            control = []
            for deps in self._control_stack:
                for c in deps:
                    if c not in control:
                        control.append(c)
            device = self._device_stack[-1] if self._device_stack else ""
            op = Operation(self, full, op_type, inputs, dict(attrs or {}), tuple(control), device,
                           len(self._ops))
            op._outputs = tuple(Tensor(op, i, dt, shape) for i, (dt, shape) in enumerate(out_specs))
            for t in inputs:
                t._consumers.append(op)
            self._ops.append(op)
            self._ops_by_name[full] = op
        return op

    def _foreign_input(self, t: Tensor, op_type: str) -> Tensor:
        """The tensor standing for ``t``, which belongs to another graph, in this one: an
        eager tensor becomes a constant (its value is fixed); anything else is an error."""
        if t._op._graph._eager and hasattr(t, "_value"):
            captured = self._captured_constants.get(id(t))
            if captured is None:
                value = np.asarray(t._value)
                with self.control_dependencies(None):
                    const = self._create_op("Const", (), {"value": value}, "captured",
                                            [(t._dtype, value.shape)])._outputs[0]
                captured = self._captured_constants[id(t)] = (t, const)  # keeps id(t) unique
            return captured[1]
        if t._op._graph._eager:
            raise ValueError(f"the eagerly created variable {t.name!r} cannot be used in a "
                             f"tf.Graph (its value lives in the eager context); create it "
                             f"inside the graph, or use a tf.function to build graphs that "
                             f"use it")
        raise ValueError(f"Tensor {t.name!r} must be from the same graph as the {op_type} op "
                         f"being created; build everything in one graph")

    def _unique_absolute(self, name: str) -> str:
        """An exact name (a scope's own name, reserved by name_scope); uniquified on clashes."""
        key = name.lower()
        if name in self._ops_by_name:
            saved, self._name_stack = self._name_stack, ""
            try:
                return self.unique_name(name)
            finally:
                self._name_stack = saved
        self._names_in_use.setdefault(key, 1)
        return name

    def unique_name(self, name: str, mark_as_used: bool = True) -> str:
        """``name`` under the current name scope, made unique with _1, _2, ... (like TF)."""
        if self._name_stack:
            name = self._name_stack + "/" + name
        key = name.lower()
        i = self._names_in_use.get(key, 0)
        if mark_as_used:
            self._names_in_use[key] = i + 1
        if i > 0:
            base = key
            while key in self._names_in_use:
                key = f"{base}_{i}"
                i += 1
            if mark_as_used:
                self._names_in_use[key] = 1
            name = f"{name}_{i - 1}"
        return name

    def get_operations(self) -> list[Operation]:
        return list(self._ops)

    def get_operation_by_name(self, name: str) -> Operation:
        try:
            return self._ops_by_name[name]
        except KeyError:
            raise KeyError(f"the graph has no operation named {name!r}") from None

    def get_tensor_by_name(self, name: str) -> Tensor:
        op_name, sep, idx = name.rpartition(":")
        if not sep or not idx.isdigit():
            raise ValueError(f"tensor names look like 'op_name:0', got {name!r}")
        op = self.get_operation_by_name(op_name)
        if int(idx) >= len(op._outputs):
            raise KeyError(f"operation {op_name!r} has {len(op._outputs)} outputs; "
                           f"{name!r} does not exist")
        return op._outputs[int(idx)]

    def as_graph_element(self, obj: Any, allow_tensor: bool = True,
                         allow_operation: bool = True) -> Tensor | Operation:
        if isinstance(obj, str):
            if ":" in obj and allow_tensor:
                return self.get_tensor_by_name(obj)
            if allow_operation:
                return self.get_operation_by_name(obj)
        elif isinstance(obj, (Tensor, Operation)):
            if obj.graph is not self:
                raise ValueError(f"{obj!r} is not an element of this graph")
            return obj
        raise TypeError(f"cannot interpret {obj!r} as a Tensor or Operation of this graph")

    @property
    def version(self) -> int:
        return len(self._ops)

    @property
    def finalized(self) -> bool:
        return self._finalized

    def finalize(self) -> None:
        self._finalized = True

    # -- default graph --
    @contextlib.contextmanager
    def as_default(self) -> Iterator[Graph]:
        _graph_stack().append(self)
        try:
            yield self
        finally:
            _graph_stack().pop()

    # -- scopes --
    @contextlib.contextmanager
    def name_scope(self, name: str | None) -> Iterator[str]:
        """TF1's name scope: unique prefix for op names; 'a/' re-enters exactly, None resets."""
        old = self._name_stack
        if not name:
            new = ""
        elif name.endswith("/"):
            new = name[:-1]
        else:
            if not _VALID_NAME.match(name):
                raise ValueError(f"{name!r} is not a valid scope name")
            new = self.unique_name(name)
        self._name_stack = new
        try:
            yield new + "/" if new else ""
        finally:
            self._name_stack = old

    def get_name_scope(self) -> str:
        return self._name_stack

    @contextlib.contextmanager
    def device(self, spec: Any) -> Iterator[None]:
        if callable(spec) and not isinstance(spec, (str, DeviceSpec)):
            raise TypeError("device functions are not supported; pass a string like '/cpu:0'")
        current = self._device_stack[-1] if self._device_stack else ""
        new = canonical_device(spec)
        if new and current:
            merged = DeviceSpec.from_string(current)
            merged.merge_from(DeviceSpec.from_string(new))
            new = merged.to_string()
        elif spec is None:
            new = ""
        else:
            new = new or current
        self._device_stack.append(new)
        try:
            yield
        finally:
            self._device_stack.pop()

    @contextlib.contextmanager
    def control_dependencies(self, control_inputs: Iterable | None) -> Iterator[None]:
        if control_inputs is None:
            saved, self._control_stack = self._control_stack, []
            try:
                yield
            finally:
                self._control_stack = saved
            return
        ops = []
        for c in control_inputs:
            if isinstance(c, Tensor):
                c = c._op
            elif hasattr(c, "_as_op"):
                c = c._as_op()
            if not isinstance(c, Operation):
                raise TypeError(f"control_dependencies needs Tensors or Operations, got {c!r}")
            ops.append(c)
        self._control_stack.append(ops)
        try:
            yield
        finally:
            self._control_stack.pop()

    # -- collections --
    def add_to_collection(self, name: str, value: Any) -> None:
        self._collections.setdefault(name, []).append(value)

    def add_to_collections(self, names: Iterable[str], value: Any) -> None:
        for n in ([names] if isinstance(names, str) else names):
            self.add_to_collection(n, value)

    def get_collection(self, name: str, scope: str | None = None) -> list:
        items = self._collections.get(name, [])
        if scope is None:
            return list(items)
        pat = re.compile(scope)
        return [x for x in items if pat.match(getattr(x, "name", ""))]

    def get_collection_ref(self, name: str) -> list:
        return self._collections.setdefault(name, [])

    def clear_collection(self, name: str) -> None:
        self._collections.pop(name, None)

    def get_all_collection_keys(self) -> list[str]:
        return sorted(self._collections)

    # -- export (TensorBoard's graph view) --
    def as_graph_def(self, add_shapes: bool = False) -> Any:
        """This graph as a TensorBoard ``GraphDef`` protobuf (imports tensorboard lazily)."""
        from tensorboard.compat.proto import graph_pb2
        gd = graph_pb2.GraphDef()
        for op in self._ops:
            node = gd.node.add()
            node.name = op._name
            node.op = op._type
            node.device = op._device
            for t in op._inputs:
                node.input.append(t._op._name + (f":{t._value_index}" if t._value_index else ""))
            for c in op._control_inputs:
                node.input.append("^" + c._name)
            if op._outputs:
                node.attr["T"].type = _proto_dtype(op._outputs[0]._dtype)
            for k, v in op._attrs.items():
                if isinstance(v, bool):
                    node.attr[k].b = v
                elif isinstance(v, int):
                    node.attr[k].i = v
                elif isinstance(v, float):
                    node.attr[k].f = v
                elif isinstance(v, str):
                    node.attr[k].s = v.encode()
            if add_shapes and op._outputs:
                for t in op._outputs:
                    shp = node.attr["_output_shapes"].list.shape.add()
                    if t._shape.ndims is None:
                        shp.unknown_rank = True
                    else:
                        for d in t._shape:
                            shp.dim.add().size = -1 if d is None else d
        return gd


_PROTO_DTYPES = {"float32": 1, "float64": 2, "int32": 3, "uint8": 4, "int16": 5, "int8": 6,
                 "string": 7, "int64": 9, "bool": 10, "uint16": 17, "float16": 19}


def _proto_dtype(dt: _dt.DType) -> int:
    return _PROTO_DTYPES.get(dt.name, 0)


# --- the default graph -------------------------------------------------------------------------

_default_graph = Graph()
_local = threading.local()


def _graph_stack() -> list[Graph]:
    stack = getattr(_local, "graphs", None)
    if stack is None:
        stack = _local.graphs = []
    return stack


# The eager context (eager.py's EagerContext) once tf.enable_eager_execution() was called: it
# then replaces the global default graph, so ops outside every as_default() block run at once.
_eager_context: list = [None]


def get_default_graph() -> Graph:
    """The graph new operations go into: the innermost ``as_default()`` one, else the global one
    (the eager context when eager execution is enabled)."""
    stack = _graph_stack()
    if stack:
        return stack[-1]
    eager = _eager_context[0]
    return eager if eager is not None else _default_graph


def executing_eagerly() -> bool:
    """True where ops run at once: eager execution enabled, outside every ``Graph.as_default()``
    block and every ``tf.function`` being traced."""
    return get_default_graph()._eager


def reset_default_graph() -> None:
    """Replace the global default graph by a new empty one (not allowed inside as_default())."""
    global _default_graph
    if _graph_stack():
        raise AssertionError("do not call reset_default_graph() inside a graph.as_default() "
                             "block")  # TF raises AssertionError here too
    _default_graph = Graph()
    from .session import _clear_default_sessions
    _clear_default_sessions()


def name_scope(name: str | None, default_name: str | None = None, values: Any = None
               ) -> contextlib.AbstractContextManager:
    """TF1's ``tf.name_scope(name, default_name=None, values=None)`` on the default graph."""
    g = get_default_graph()
    if values is not None:
        for v in values:
            if isinstance(v, Tensor):
                g = v.graph
                break
    return g.name_scope(name if name is not None else default_name)


def device(spec: Any) -> contextlib.AbstractContextManager:
    """Place operations created in this block on ``spec`` ('/cpu:0', '/gpu:0', ...)."""
    return get_default_graph().device(spec)


def control_dependencies(control_inputs: Iterable | None) -> contextlib.AbstractContextManager:
    """Operations created in this block run after ``control_inputs``."""
    return get_default_graph().control_dependencies(control_inputs)


def get_collection(key: str, scope: str | None = None) -> list:
    return get_default_graph().get_collection(key, scope)


def get_collection_ref(key: str) -> list:
    return get_default_graph().get_collection_ref(key)


def add_to_collection(name: str, value: Any) -> None:
    get_default_graph().add_to_collection(name, value)


def add_to_collections(names: Iterable[str], value: Any) -> None:
    get_default_graph().add_to_collections(names, value)


def set_random_seed(seed: int) -> None:
    """The graph-level seed: with it, every random op gets a deterministic per-op seed."""
    get_default_graph().seed = None if seed is None else int(seed)
