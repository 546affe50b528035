"""tf.keras.layers: Layer and the built-in layers, each a small builder of core graph ops."""

from __future__ import annotations

import inspect
import math
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import core
from ..data.structure import flatten, is_nested, map_structure, pack_as
from . import activations, backend, initializers, registry, regularizers

# --- call context: the training flag and the update ops of the call in progress ------------------

_context = threading.local()


class CallContext:
    """Set by a model while it builds a forward pass: ``training`` reaches every layer whose
    ``call`` takes it (unless passed explicitly), and layers register update ops (BatchNorm's
    moving statistics) in ``updates``."""

    def __init__(self, training: bool):
        self.training = training
        self.updates: list = []

    def __enter__(self) -> CallContext:  # noqa: PYI034 -- typing.Self needs Python 3.11
        stack = getattr(_context, "stack", None)
        if stack is None:
            stack = _context.stack = []
        stack.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _context.stack.pop()


def current_context() -> CallContext | None:
    stack = getattr(_context, "stack", None)
    return stack[-1] if stack else None


def _static_shape(x: Any) -> tuple:
    shape = x.shape
    if hasattr(shape, "as_list"):
        if getattr(shape, "ndims", 0) is None:
            raise ValueError(f"layers need inputs of known rank; {x} has an unknown shape")
        return tuple(shape.as_list())
    return tuple(shape)


def _is_tensor(x: Any) -> bool:
    return isinstance(x, core.Tensor)


def _normalize_tuple(value: Any, n: int, name: str) -> tuple:
    if isinstance(value, (int, np.integer)):
        return (int(value),) * n
    value = tuple(int(v) for v in value)
    if len(value) != n:
        raise ValueError(f"{name} must be an int or a tuple of {n} ints, got {value}")
    return value


def _normalize_padding(padding: str) -> str:
    p = str(padding).lower()
    if p not in ("valid", "same"):
        raise ValueError(f"padding must be 'valid' or 'same', got {padding!r}")
    return p


def _conv_out(size: int | None, k: int, s: int, padding: str) -> int | None:
    if size is None:
        return None
    if padding == "same":
        return -(-size // s)
    return (size - k) // s + 1 if size >= k else 0


# --- symbolic tensors of the functional API ------------------------------------------------------

class KerasTensor:
    """A symbolic input/output of the functional API (``tf.keras.Input``, ``layer(kt)``).

    It records which layer produced it from which inputs; a functional ``Model`` replays those
    calls on real graph tensors in its own graph.
    """

    def __init__(self, shape: tuple, dtype: str, layer: Layer, args: tuple = (),
                 kwargs: dict | None = None, name: str | None = None):
        self.shape = tuple(shape)
        self.dtype = dtype
        self.name = name or layer.name
        self._keras_history = (layer, args, kwargs or {})

    def __repr__(self) -> str:
        return (f"<KerasTensor shape={self.shape} dtype={self.dtype} "
                f"(created by layer '{self._keras_history[0].name}')>")

    # Arithmetic on symbolic tensors becomes a node of the functional graph, as in Keras.
    def __add__(self, other: Any) -> KerasTensor:
        return op_node(_TENSOR_OPS["add"], (self, other), name="tensor.add")

    def __radd__(self, other: Any) -> KerasTensor:
        return op_node(_TENSOR_OPS["radd"], (self, other), name="tensor.radd")

    def __sub__(self, other: Any) -> KerasTensor:
        return op_node(_TENSOR_OPS["sub"], (self, other), name="tensor.sub")

    def __rsub__(self, other: Any) -> KerasTensor:
        return op_node(_TENSOR_OPS["rsub"], (self, other), name="tensor.rsub")

    def __mul__(self, other: Any) -> KerasTensor:
        return op_node(_TENSOR_OPS["mul"], (self, other), name="tensor.mul")

    def __rmul__(self, other: Any) -> KerasTensor:
        return op_node(_TENSOR_OPS["rmul"], (self, other), name="tensor.rmul")

    def __truediv__(self, other: Any) -> KerasTensor:
        return op_node(_TENSOR_OPS["truediv"], (self, other), name="tensor.truediv")

    def __rtruediv__(self, other: Any) -> KerasTensor:
        return op_node(_TENSOR_OPS["rtruediv"], (self, other), name="tensor.rtruediv")

    def __pow__(self, other: Any) -> KerasTensor:
        return op_node(_TENSOR_OPS["pow"], (self, other), name="tensor.pow")

    def __neg__(self) -> KerasTensor:
        return op_node(_TENSOR_OPS["neg"], (self,), name="tensor.neg")

    def __matmul__(self, other: Any) -> KerasTensor:
        return op_node(_TENSOR_OPS["matmul"], (self, other), name="tensor.matmul")

    def __getitem__(self, key: Any) -> KerasTensor:
        return op_node(_TENSOR_OPS["getitem"], (self, key), name="tensor.getitem")


# The operators of symbolic tensors, by the name a model file records.
_TENSOR_OPS: dict[str, Callable] = {
    "add": lambda a, b: a + b, "radd": lambda a, b: b + a,
    "sub": lambda a, b: a - b, "rsub": lambda a, b: b - a,
    "mul": lambda a, b: a * b, "rmul": lambda a, b: b * a,
    "truediv": lambda a, b: a / b, "rtruediv": lambda a, b: b / a,
    "pow": lambda a, b: core.pow(a, b), "neg": lambda a: -a,
    "matmul": lambda a, b: core.matmul(a, b), "getitem": lambda a, key: a[key],
}


def symbolic_op(name: str) -> Callable:
    """The function a TFOpLambda named ``name`` ('tensor.add', 'backend.mean') applies."""
    family, _, op = name.partition(".")
    if family == "tensor" and op in _TENSOR_OPS:
        return _TENSOR_OPS[op]
    if family == "backend" and callable(getattr(backend, op, None)):
        return getattr(backend, op).__wrapped__
    raise ValueError(f"unknown symbolic op {name!r}")


def op_node(fn: Callable, args: tuple, kwargs: dict | None = None, name: str = "op") -> Any:
    """``fn(*args, **kwargs)``; when KerasTensors are among the arguments, a functional-API
    node (a TFOpLambda layer) that applies ``fn`` once the model has real tensors."""
    kwargs = kwargs or {}
    if not any(isinstance(x, KerasTensor) for x in _flat_inputs([args, kwargs])):
        return fn(*args, **kwargs)
    short = name.rpartition(".")[2]
    return TFOpLambda(fn, args, kwargs, op_name=name,
                      name=backend.unique_object_name(f"tf.{short}"))()


# --- the base class ------------------------------------------------------------------------------

class Layer:
    """A callable unit with weights. Subclasses define ``build(input_shape)`` (create weights
    with ``add_weight``) and ``call(inputs, training=None)`` (graph ops on core tensors).

    Calling a layer on a graph tensor adds its ops to that tensor's graph, creating its weights
    there the first time; on a ``KerasTensor`` it records a functional-API node; on NumPy data it
    runs the layer and returns NumPy.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Layer:  # noqa: PYI034 -- as above
        # Set up the base state here so a subclass that forgets super().__init__() still works.
        obj = super().__new__(cls)
        registry.remember_arguments(obj, args, kwargs)  # for model files (saving.py)
        obj._init_state()
        return obj

    _is_model = False

    @classmethod
    def _base_name(cls) -> str:
        return backend.snake_case(cls.__name__)

    def _init_state(self) -> None:
        object.__setattr__(self, "_sublayers", [])
        object.__setattr__(self, "_own_weights", [])
        self.name = backend.unique_object_name(self._base_name())
        self.trainable = True
        self.built = False
        self._dtype = None
        self._batch_input_shape: tuple | None = None
        self._output_shape: Any = None
        self._graph = None
        self._numpy_cache: dict = {}
        self._initial_weights = None
        self._regularizer_for: dict[str, Any] = {}   # weight name -> regularizer
        self._penalties: list[tuple[Any, Any]] = []  # (variable, regularizer)
        self._added_losses: list = []
        self._penalty_cache: dict[int, Any] = {}

    def __init__(self, trainable: bool = True, name: str | None = None, dtype: Any = None,
                 input_shape: Any = None, batch_input_shape: Any = None,
                 batch_size: int | None = None, input_dim: int | None = None, **kwargs: Any):
        for key in [k for k in kwargs if k.endswith(("_regularizer", "_constraint"))]:
            value = kwargs.pop(key)
            if value is None:
                continue
            if key == "activity_regularizer" or key.endswith("_constraint"):
                from ..errors import UnsupportedFeatureError
                raise UnsupportedFeatureError(
                    None, None, f"{type(self).__name__}({key}=...) is not supported by "
                    f"ringtrain's Keras; use a weight regularizer (kernel_regularizer=...) "
                    f"or add the penalty to the loss")
            self._regularizer_for[key[:-len("_regularizer")]] = regularizers.get(value)
        unknown = set(kwargs) - {"dynamic", "autocast", "input_length", "weights"}
        if unknown:
            raise TypeError(f"{type(self).__name__} got unexpected keyword arguments "
                            f"{sorted(unknown)}")
        if name is not None:
            self.name = str(name)
        self.trainable = bool(trainable)
        if dtype is not None:
            self._dtype = core.as_dtype(dtype).name
        if input_dim is not None and input_shape is None:
            input_shape = (input_dim,)
        if input_shape is not None:
            self._batch_input_shape = (batch_size, *_as_shape_tuple(input_shape))
        elif batch_input_shape is not None:
            self._batch_input_shape = _as_shape_tuple(batch_input_shape)
        if kwargs.get("weights") is not None:
            self._initial_weights = kwargs["weights"]

    # -- attributes --
    @property
    def dtype(self) -> str:
        return self._dtype or backend.floatx()

    def __setattr__(self, key: str, value: Any) -> None:
        # Layers assigned as attributes (or in lists/tuples) are tracked as sublayers, so a
        # subclassed layer or model knows its weights.
        if not key.startswith("_"):
            candidates = value if isinstance(value, (list, tuple)) else (value,)
            for v in candidates:
                if isinstance(v, Layer) and v is not self and \
                        all(v is not s for s in self._sublayers):
                    self._sublayers.append(v)
        object.__setattr__(self, key, value)

    @property
    def layers(self) -> list[Layer]:
        return list(self._sublayers)

    def _all_layers(self) -> list[Layer]:
        """This layer and every nested sublayer, depth first, each once."""
        out: list[Layer] = []
        stack = [self]
        seen: set[int] = set()
        while stack:
            layer = stack.pop()
            if id(layer) in seen:
                continue
            seen.add(id(layer))
            out.append(layer)
            stack.extend(reversed(layer._sublayers))
        return out

    @property
    def trainable_weights(self) -> list:
        if not self.trainable:
            return []
        return [v for layer in self._all_layers() if layer.trainable
                for v, trainable in layer._own_weights if trainable]

    @property
    def non_trainable_weights(self) -> list:
        out = []
        for layer in self._all_layers():
            for v, trainable in layer._own_weights:
                if not trainable or not layer.trainable or not self.trainable:
                    out.append(v)
        return out

    @property
    def weights(self) -> list:
        """Trainable weights first, then non-trainable ones (Keras's order)."""
        return self.trainable_weights + self.non_trainable_weights

    trainable_variables = trainable_weights
    variables = weights

    def count_params(self) -> int:
        if not self.built and not self._own_weights:
            raise ValueError(f"You tried to call count_params on layer {self.name}, but the "
                             f"layer isn't built. Build it first (call it on data or give "
                             f"input_shape).")
        return int(sum(math.prod(v.shape.as_list()) for v in self.weights))

    def get_weights(self) -> list[np.ndarray]:
        return backend.batch_get_value(self.weights)

    def set_weights(self, weights: list) -> None:
        mine = self.weights
        if len(weights) != len(mine):
            raise ValueError(f"layer {self.name!r} expects {len(mine)} weight arrays, got "
                             f"{len(weights)}")
        backend.batch_set_value(mine, list(weights))

    # -- building --
    def add_weight(self, name: str, shape: Any, dtype: Any = None, initializer: Any = None,
                   trainable: bool = True, regularizer: Any = None, **kwargs: Any) -> Any:
        """Create a variable ``<layer>/<name>`` in the graph being built, with a NumPy initial
        value from ``initializer`` (glorot_uniform for floats by default); its ``regularizer``
        (or the layer's ``<name>_regularizer``) adds a penalty to ``losses``."""
        dtype = core.as_dtype(dtype or self.dtype)
        if initializer is None:
            initializer = "glorot_uniform" if dtype.is_floating else "zeros"
        shape = tuple(int(d) for d in shape)
        value = np.asarray(initializers.get(initializer)(shape, dtype.name), dtype=dtype.name)
        with core.name_scope(None):
            var = core.Variable(value, name=f"{self.name}/{name}", trainable=trainable,
                                dtype=dtype)
        self._own_weights.append((var, bool(trainable)))
        regularizer = regularizers.get(regularizer) or self._regularizer_for.get(name)
        if regularizer is not None:
            self._penalties.append((var, regularizer))
        return var

    def add_loss(self, loss: Any) -> None:
        """Add a scalar tensor (e.g. a penalty computed in ``call``) to ``losses``."""
        self._added_losses.append(loss)

    @property
    def losses(self) -> list:
        """The regularization penalties of this layer's and its sublayers' weights, and the
        tensors given to ``add_loss``, as scalar tensors of the weights' graph."""
        out = []
        for layer in self._all_layers():
            for var, regularizer in layer._penalties:
                penalty = layer._penalty_cache.get(id(var))
                if penalty is None:
                    with var.graph.as_default(), core.name_scope(f"{layer.name}/regularizer"):
                        penalty = regularizer(var)
                    layer._penalty_cache[id(var)] = penalty
                out.append(penalty)
            out.extend(layer._added_losses)
        return out

    def build(self, input_shape: Any) -> None:
        self.built = True

    def call(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        return inputs

    def compute_output_shape(self, input_shape: Any) -> Any:
        """The output shape for ``input_shape``: by default found by running ``call`` on
        placeholders in a scratch graph (layers with fixed rules override this)."""
        if self._sublayers:
            raise NotImplementedError(f"layer {self.name!r} has sublayers: define "
                                      f"compute_output_shape to use it in the functional API")
        graph = core.Graph()
        with graph.as_default():
            def ph(shape: tuple) -> Any:
                return core.placeholder(self.dtype, shape=shape)
            if isinstance(input_shape, list):  # several inputs (merge layers)
                inputs = [ph(tuple(s)) for s in input_shape]
            elif _is_shape_struct(input_shape):
                inputs = map_structure(ph, input_shape)
            else:
                inputs = ph(tuple(input_shape))
            out = _ShapeProbe(self)(inputs)
        return map_structure(_static_shape, out)

    def _call_takes(self, name: str) -> bool:
        cache = type(self).__dict__.get("_call_params_cache")
        if cache is None:
            params = inspect.signature(type(self).call).parameters
            cache = (set(params), any(p.kind == p.VAR_KEYWORD for p in params.values()))
            type.__setattr__(type(self), "_call_params_cache", cache)
        names, var_kw = cache
        return name in names or var_kw

    # -- calling --
    def __call__(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        flat = _flat_inputs(inputs)
        if flat and all(isinstance(x, KerasTensor) for x in flat):
            return self._symbolic_call(inputs, args, kwargs)
        if flat and all(_is_tensor(x) for x in flat):
            return self._graph_call(inputs, flat[0].graph, args, kwargs)
        if any(_is_tensor(x) or isinstance(x, KerasTensor) for x in flat):
            raise TypeError(f"layer {self.name!r} got a mix of graph tensors, Keras tensors and "
                            f"NumPy data; pass one kind")
        if core.executing_eagerly():  # TF2: NumPy data becomes eager tensors, the result too
            tensors = map_structure(self._as_eager_tensor, inputs)
            return self._graph_call(tensors, core.get_default_graph(), args, kwargs)
        return self._numpy_call(inputs, args, kwargs)

    def _as_eager_tensor(self, value: Any) -> Any:
        array = np.asarray(value)
        dtype = _feed_dtype(array, self._dtype or backend.floatx())
        return core.convert_to_tensor(array.astype(dtype, copy=False))

    def _graph_call(self, inputs: Any, graph: Any, args: tuple, kwargs: dict) -> Any:
        if getattr(inputs, "_op", None) is not None and inputs.graph._eager:
            graph = core.get_default_graph()  # eager tensors in a tf.function: traced there
        home = graph._variable_home  # a tf.function's graph uses the eager context's weights
        if self._graph is not None and self._graph is not home and self.built:
            raise ValueError(f"layer {self.name!r} was built in another graph; a layer's "
                             f"weights live in one graph, so create a new layer for this one")
        ctx = current_context()
        kwargs = dict(kwargs)
        if not self._call_takes("training"):
            kwargs.pop("training", None)  # as Keras: only layers that take it receive it
        elif kwargs.get("training") is None:
            kwargs["training"] = ctx.training if ctx is not None else False
        with graph.as_default():
            if not self.built:
                self._graph = home
                input_shape = map_structure(_static_shape, inputs) if is_nested(inputs) else (
                    [_static_shape(x) for x in inputs] if isinstance(inputs, list)
                    else _static_shape(inputs))
                if not self._is_model:  # a model's build() builds its graph; sublayers do it
                    with core.name_scope(None):
                        self.build(input_shape)
                self.built = True
                if self._initial_weights is not None:
                    backend.batch_set_value(self.weights, list(self._initial_weights))
                    self._initial_weights = None
            with core.name_scope(self.name):
                out = self.call(inputs, *args, **kwargs)
        self._output_shape = map_structure(_static_shape, out) if is_nested(out) else (
            _static_shape(out) if _is_tensor(out) else None)
        return out

    def _symbolic_call(self, inputs: Any, args: tuple, kwargs: dict) -> Any:
        if isinstance(inputs, KerasTensor):
            in_shape = inputs.shape
        elif isinstance(inputs, list):
            in_shape = [x.shape for x in inputs]
        else:
            in_shape = map_structure(lambda k: k.shape, inputs)
        out_shape = self.compute_output_shape(in_shape)
        dtype = flatten(inputs)[0].dtype if not isinstance(inputs, list) else inputs[0].dtype
        if not self.built:
            self._batch_input_shape = self._batch_input_shape or (
                in_shape if isinstance(in_shape, tuple) else None)
        self._output_shape = out_shape
        out = KerasTensor(out_shape, self._dtype or dtype, self, (inputs, *args), kwargs)
        self._inbound = (inputs, out)  # the latest functional-API call: layer.input / output
        return out

    def _numpy_call(self, inputs: Any, args: tuple, kwargs: dict) -> Any:
        """Run the layer on NumPy data through a cached placeholder graph."""
        several = isinstance(inputs, list)  # a list is several inputs (merge layers)
        arrays = [np.asarray(a) for a in inputs] if several else \
            map_structure(np.asarray, inputs)
        flat = arrays if several else flatten(arrays)
        training = bool(kwargs.get("training") or False)
        key = (tuple((a.shape[1:], a.dtype.str) for a in flat), training)
        entry = self._numpy_cache.get(key)
        if entry is None:
            graph = self._graph if self._graph is not None else core.Graph()
            with graph.as_default():
                phs = [core.placeholder(_feed_dtype(a, self.dtype), shape=(None, *a.shape[1:]))
                       for a in flat]
                ph_struct = phs if several else pack_as(arrays, phs)
                with CallContext(training):
                    out = self(ph_struct, *args, **dict(kwargs, training=training))
            entry = (graph, phs, out)
            self._numpy_cache[key] = entry
        graph, phs, out = entry
        backend.initialize_variables(self.weights, graph)
        feed = {ph: a for ph, a in zip(phs, flat)}
        return backend.get_session(graph).run(out, feed_dict=feed)

    # -- config --
    def get_config(self) -> dict:
        return {"name": self.name, "trainable": self.trainable, "dtype": self.dtype}

    @property
    def input(self) -> Any:
        """The symbolic input of the layer's latest functional-API call."""
        return self._latest_call()[0]

    @property
    def output(self) -> Any:
        """The symbolic output (KerasTensor) of the layer's latest functional-API call."""
        return self._latest_call()[1]

    def _latest_call(self) -> tuple[Any, Any]:
        inbound = self.__dict__.get("_inbound")
        if inbound is None:
            raise AttributeError(f"Layer {self.name} is not connected, no input to return "
                                 f"(call it on a tf.keras.Input, or use it in a Sequential "
                                 f"model that has an input shape)")
        return inbound

    @property
    def output_shape(self) -> Any:
        if self._output_shape is None:
            raise AttributeError(f"layer {self.name!r} has not been called yet, so it has no "
                                 f"output shape")
        return self._output_shape

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name}>"


class _ShapeProbe:
    """Calls a layer's ``call`` on scratch placeholders without touching the layer's weights."""

    def __init__(self, layer: Layer):
        self.layer = layer

    def __call__(self, inputs: Any) -> Any:
        clone = object.__new__(type(self.layer))
        clone.__dict__.update(self.layer.__dict__)
        object.__setattr__(clone, "_own_weights", [])
        object.__setattr__(clone, "_sublayers", list(self.layer._sublayers))
        clone.built = False
        clone._graph = None
        clone._initial_weights = None
        clone._numpy_cache = {}
        return clone._graph_call(inputs, _flat_inputs(inputs)[0].graph, (),
                                 {"training": False} if clone._call_takes("training") else {})


def _flat_inputs(inputs: Any) -> list:
    """Every component of a layer's inputs (tuples, dicts and lists of inputs all expand)."""
    out, stack = [], [inputs]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item[k] for k in sorted(item, reverse=True))
        elif isinstance(item, (tuple, list)):
            stack.extend(reversed(item))
        else:
            out.append(item)
    return out


def _is_shape_struct(shape: Any) -> bool:
    return isinstance(shape, dict) or (isinstance(shape, (list, tuple)) and bool(shape) and
                                       all(isinstance(s, (list, tuple)) for s in shape))


def _as_shape_tuple(shape: Any) -> tuple:
    if isinstance(shape, (int, np.integer)):
        return (int(shape),)
    return tuple(None if d is None else int(d) for d in shape)


def _feed_dtype(array: np.ndarray, float_dtype: str) -> str:
    if array.dtype.kind == "f":
        return float_dtype
    if array.dtype.kind in "iu":
        return "int64" if array.dtype.itemsize > 4 else "int32"
    if array.dtype.kind == "b":
        return "bool"
    return float_dtype


# --- input ---------------------------------------------------------------------------------------

class InputLayer(Layer):
    """The entry of a model: gives the input shape (batch dimension excluded) and dtype."""

    def __init__(self, input_shape: Any = None, batch_size: int | None = None, dtype: Any = None,
                 name: str | None = None, batch_input_shape: Any = None, **kwargs: Any):
        super().__init__(name=name, dtype=dtype, input_shape=input_shape,
                         batch_input_shape=batch_input_shape, batch_size=batch_size, **kwargs)
        if self._batch_input_shape is None:
            raise ValueError("InputLayer needs input_shape (or batch_input_shape)")
        self.built = True

    def compute_output_shape(self, input_shape: Any) -> Any:
        return tuple(input_shape)


def Input(shape: Any = None, batch_size: int | None = None, name: str | None = None,
          dtype: Any = None, batch_shape: Any = None, **kwargs: Any) -> KerasTensor:
    """A symbolic model input of ``shape`` (batch dimension excluded), for the functional API
    and as the first entry of a ``Sequential``."""
    if shape is None and batch_shape is None:
        raise ValueError("Input needs a shape, e.g. tf.keras.Input(shape=(28, 28, 1))")
    layer = InputLayer(input_shape=shape, batch_size=batch_size, dtype=dtype, name=name,
                       batch_input_shape=batch_shape)
    return KerasTensor(layer._batch_input_shape, layer.dtype, layer, name=layer.name)


# --- core layers ---------------------------------------------------------------------------------

class Dense(Layer):
    """``activation(inputs @ kernel + bias)`` on the last axis."""

    def __init__(self, units: int, activation: Any = None, use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 **kwargs: Any):
        super().__init__(**kwargs)
        if int(units) <= 0:
            raise ValueError(f"Dense units must be a positive int, got {units!r}")
        self.units = int(units)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer

    def build(self, input_shape: tuple) -> None:
        last = input_shape[-1]
        if last is None:
            raise ValueError(f"Dense layer {self.name!r} needs the last input dimension to be "
                             f"known, got input shape {input_shape}")
        self.kernel = self.add_weight("kernel", (last, self.units),
                                      initializer=self.kernel_initializer)
        self.bias = self.add_weight("bias", (self.units,), initializer=self.bias_initializer) \
            if self.use_bias else None
        self.built = True

    def call(self, inputs: Any) -> Any:
        shape = _static_shape(inputs)
        x = inputs
        if len(shape) > 2:
            if any(d is None for d in shape[1:-1]):
                raise ValueError(f"Dense on rank-{len(shape)} input needs its middle "
                                 f"dimensions known, got {shape}")
            x = core.reshape(x, [-1, shape[-1]])
        y = core.matmul(x, self.kernel)
        if self.use_bias:
            y = core.nn.bias_add(y, self.bias)
        if len(shape) > 2:
            y = core.reshape(y, [-1, *shape[1:-1], self.units])
        return self.activation(y)

    def compute_output_shape(self, input_shape: Any) -> tuple:
        return (*tuple(input_shape)[:-1], self.units)

    def get_config(self) -> dict:
        return {**super().get_config(), "units": self.units,
                "activation": activations.serialize(self.activation), "use_bias": self.use_bias}


class Activation(Layer):
    def __init__(self, activation: Any, **kwargs: Any):
        super().__init__(**kwargs)
        self.activation = activations.get(activation)

    def call(self, inputs: Any) -> Any:
        return self.activation(inputs)

    def compute_output_shape(self, input_shape: Any) -> tuple:
        return tuple(input_shape)


class Lambda(Layer):
    """Wrap ``function(inputs)`` (core ops) as a layer."""

    def __init__(self, function: Callable, output_shape: Any = None, arguments: dict | None = None,
                 **kwargs: Any):
        super().__init__(**kwargs)
        if not callable(function):
            raise TypeError(f"Lambda needs a function, got {type(function).__name__}")
        self.function = function
        self.arguments = dict(arguments or {})
        self._declared_output_shape = output_shape

    def call(self, inputs: Any) -> Any:
        return self.function(inputs, **self.arguments)

    def compute_output_shape(self, input_shape: Any) -> Any:
        declared = self._declared_output_shape
        if declared is None:
            return super().compute_output_shape(input_shape)
        if callable(declared):
            return tuple(declared(input_shape))
        return (input_shape[0] if isinstance(input_shape, tuple) else None, *tuple(declared))


class TFOpLambda(Layer):
    """A core op applied to KerasTensors in the functional API (``x + y``, ``K.mean(x)``): the
    arguments are kept with their KerasTensors, and replaced by real tensors when called."""

    def __init__(self, function: Callable, args: tuple, kwargs: dict, op_name: str = "",
                 **layer_kwargs: Any):
        super().__init__(**layer_kwargs)
        self.function = function
        self.op_name = op_name
        self._template = (args, kwargs)

    def __call__(self, inputs: Any = None, *args: Any, **kwargs: Any) -> Any:
        if inputs is None:  # the node is made: its inputs are the template's KerasTensors
            tensors = [x for x in _flat_inputs(list(self._template)) if isinstance(x,
                                                                                    KerasTensor)]
            return super().__call__(tensors)
        return super().__call__(inputs, *args, **kwargs)

    def call(self, inputs: Any) -> Any:
        real = iter(inputs if isinstance(inputs, list) else [inputs])

        def fill(value: Any) -> Any:
            if isinstance(value, KerasTensor):
                return next(real)
            if isinstance(value, dict):
                return {k: fill(v) for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return type(value)(fill(v) for v in value)
            return value
        args, kwargs = fill(self._template)
        return self.function(*args, **kwargs)


class Softmax(Layer):
    def __init__(self, axis: int = -1, **kwargs: Any):
        super().__init__(**kwargs)
        self.axis = int(axis)

    def call(self, inputs: Any) -> Any:
        return activations.softmax(inputs, axis=self.axis)

    def compute_output_shape(self, input_shape: Any) -> tuple:
        return tuple(input_shape)


class ReLU(Layer):
    """``min(max(x, threshold) ..., max_value)``: Keras's ReLU with its three options."""

    def __init__(self, max_value: float | None = None, negative_slope: float = 0.0,
                 threshold: float = 0.0, **kwargs: Any):
        super().__init__(**kwargs)
        self.max_value = None if max_value is None else float(max_value)
        self.negative_slope = float(negative_slope)
        self.threshold = float(threshold)

    def call(self, inputs: Any) -> Any:
        return activations.relu(inputs, alpha=self.negative_slope, max_value=self.max_value,
                                threshold=self.threshold)

    def compute_output_shape(self, input_shape: Any) -> tuple:
        return tuple(input_shape)


class LeakyReLU(Layer):
    def __init__(self, alpha: float = 0.3, **kwargs: Any):
        super().__init__(**kwargs)
        self.alpha = float(alpha)

    def call(self, inputs: Any) -> Any:
        return activations.relu(inputs, alpha=self.alpha)

    def compute_output_shape(self, input_shape: Any) -> tuple:
        return tuple(input_shape)


class Flatten(Layer):
    def call(self, inputs: Any) -> Any:
        shape = _static_shape(inputs)
        if any(d is None for d in shape[1:]):
            raise ValueError(f"Flatten needs every dimension but the batch one known, got "
                             f"{shape}")
        return core.reshape(inputs, [-1, math.prod(shape[1:])])

    def compute_output_shape(self, input_shape: Any) -> tuple:
        rest = tuple(input_shape)[1:]
        return (input_shape[0], None if any(d is None for d in rest) else math.prod(rest))


class Reshape(Layer):
    def __init__(self, target_shape: Any, **kwargs: Any):
        super().__init__(**kwargs)
        self.target_shape = tuple(int(d) for d in target_shape)

    def call(self, inputs: Any) -> Any:
        return core.reshape(inputs, [-1, *self.target_shape])

    def compute_output_shape(self, input_shape: Any) -> tuple:
        target = list(self.target_shape)
        if -1 in target:
            known = math.prod(d for d in target if d != -1)
            rest = tuple(input_shape)[1:]
            total = None if any(d is None for d in rest) else math.prod(rest)
            target[target.index(-1)] = None if total is None else total // known
        return (input_shape[0], *target)


class Dropout(Layer):
    """Zero a fraction ``rate`` of the inputs (scaling the rest by 1/(1-rate)) in training only."""

    def __init__(self, rate: float, noise_shape: Any = None, seed: int | None = None,
                 **kwargs: Any):
        super().__init__(**kwargs)
        if not 0 <= float(rate) < 1:
            raise ValueError(f"Dropout rate must be in [0, 1), got {rate}")
        self.rate = float(rate)
        self.seed = seed

    def call(self, inputs: Any, training: Any = None) -> Any:
        if not training or self.rate == 0:
            return inputs
        return core.nn.dropout(inputs, rate=self.rate, seed=self.seed)

    def compute_output_shape(self, input_shape: Any) -> tuple:
        return tuple(input_shape)


class Embedding(Layer):
    """A trainable lookup table: integer ids -> rows of an (input_dim, output_dim) matrix."""

    def __init__(self, input_dim: int, output_dim: int, embeddings_initializer: Any = "uniform",
                 input_length: int | None = None, mask_zero: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        self.input_dim = int(input_dim)
        self.output_dim = int(output_dim)
        if self.input_dim <= 0 or self.output_dim <= 0:
            raise ValueError(f"Embedding needs positive input_dim and output_dim, got "
                             f"{input_dim}, {output_dim}")
        self.embeddings_initializer = embeddings_initializer
        self.input_length = input_length
        if self._batch_input_shape is None:
            # As in Keras: ids of any sequence length, so a Sequential can be built and
            # summarized right away.
            self._batch_input_shape = (None, input_length)

    def build(self, input_shape: tuple) -> None:
        self.embeddings = self.add_weight("embeddings", (self.input_dim, self.output_dim),
                                          initializer=self.embeddings_initializer)
        self.built = True

    def call(self, inputs: Any) -> Any:
        ids = inputs
        if not ids.dtype.is_integer:
            ids = core.cast(ids, core.int32)
        return core.nn.embedding_lookup(self.embeddings, ids)

    def compute_output_shape(self, input_shape: Any) -> tuple:
        return (*tuple(input_shape), self.output_dim)


# --- convolution and pooling ---------------------------------------------------------------------

class Conv2D(Layer):
    """2-D convolution over NHWC inputs with a (kh, kw, in, filters) kernel."""

    def __init__(self, filters: int, kernel_size: Any, strides: Any = (1, 1),
                 padding: str = "valid", data_format: str | None = None, dilation_rate: Any = 1,
                 activation: Any = None, use_bias: bool = True,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 **kwargs: Any):
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last"):
            raise ValueError("Conv2D supports data_format='channels_last' (NHWC) only")
        if _normalize_tuple(dilation_rate, 2, "dilation_rate") != (1, 1):
            raise ValueError("Conv2D supports dilation_rate=1 only")
        self.filters = int(filters)
        self.kernel_size = _normalize_tuple(kernel_size, 2, "kernel_size")
        self.strides = _normalize_tuple(strides, 2, "strides")
        self.padding = _normalize_padding(padding)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer

    def build(self, input_shape: tuple) -> None:
        if len(input_shape) != 4 or input_shape[-1] is None:
            raise ValueError(f"Conv2D {self.name!r} needs NHWC inputs with known channels, got "
                             f"input shape {input_shape}")
        self.kernel = self.add_weight("kernel", (*self.kernel_size, input_shape[-1],
                                                 self.filters),
                                      initializer=self.kernel_initializer)
        self.bias = self.add_weight("bias", (self.filters,), initializer=self.bias_initializer) \
            if self.use_bias else None
        self.built = True

    def call(self, inputs: Any) -> Any:
        y = core.nn.conv2d(inputs, self.kernel, strides=[1, *self.strides, 1],
                           padding=self.padding.upper())
        if self.use_bias:
            y = core.nn.bias_add(y, self.bias)
        return self.activation(y)

    def compute_output_shape(self, input_shape: Any) -> tuple:
        n, h, w, _ = tuple(input_shape)
        return (n, _conv_out(h, self.kernel_size[0], self.strides[0], self.padding),
                _conv_out(w, self.kernel_size[1], self.strides[1], self.padding), self.filters)


class _Pooling2D(Layer):
    _op_name = ""

    def __init__(self, pool_size: Any = (2, 2), strides: Any = None, padding: str = "valid",
                 data_format: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last"):
            raise ValueError(f"{type(self).__name__} supports data_format='channels_last' only")
        self.pool_size = _normalize_tuple(pool_size, 2, "pool_size")
        self.strides = _normalize_tuple(strides, 2, "strides") if strides is not None \
            else self.pool_size
        self.padding = _normalize_padding(padding)

    def call(self, inputs: Any) -> Any:
        op = getattr(core.nn, self._op_name)
        return op(inputs, ksize=[1, *self.pool_size, 1], strides=[1, *self.strides, 1],
                  padding=self.padding.upper())

    def compute_output_shape(self, input_shape: Any) -> tuple:
        n, h, w, c = tuple(input_shape)
        return (n, _conv_out(h, self.pool_size[0], self.strides[0], self.padding),
                _conv_out(w, self.pool_size[1], self.strides[1], self.padding), c)


class MaxPooling2D(_Pooling2D):
    _op_name = "max_pool"


class AveragePooling2D(_Pooling2D):
    _op_name = "avg_pool"


MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D


class GlobalAveragePooling2D(Layer):
    def call(self, inputs: Any) -> Any:
        return core.reduce_mean(inputs, axis=[1, 2])

    def compute_output_shape(self, input_shape: Any) -> tuple:
        return (input_shape[0], input_shape[-1])


class GlobalAveragePooling1D(Layer):
    def call(self, inputs: Any) -> Any:
        return core.reduce_mean(inputs, axis=1)

    def compute_output_shape(self, input_shape: Any) -> tuple:
        return (input_shape[0], input_shape[-1])


class GlobalMaxPooling2D(Layer):
    def call(self, inputs: Any) -> Any:
        return core.reduce_max(inputs, axis=[1, 2])

    def compute_output_shape(self, input_shape: Any) -> tuple:
        return (input_shape[0], input_shape[-1])


# --- normalization -------------------------------------------------------------------------------

class BatchNormalization(Layer):
    """Normalize over the batch (and spatial) axes, per feature of the last axis.

    In training it uses the batch mean and (biased) variance and updates the moving statistics,
    ``moving = moving * momentum + batch * (1 - momentum)``; at inference it uses the moving
    statistics.
    """

    def __init__(self, axis: int = -1, momentum: float = 0.99, epsilon: float = 1e-3,
                 center: bool = True, scale: bool = True, beta_initializer: Any = "zeros",
                 gamma_initializer: Any = "ones", moving_mean_initializer: Any = "zeros",
                 moving_variance_initializer: Any = "ones", **kwargs: Any):
        super().__init__(**kwargs)
        if axis not in (-1,) and not isinstance(axis, int):
            raise ValueError("BatchNormalization axis must be an int")
        self.axis = int(axis)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.center, self.scale = bool(center), bool(scale)
        self.beta_initializer, self.gamma_initializer = beta_initializer, gamma_initializer
        self.moving_mean_initializer = moving_mean_initializer
        self.moving_variance_initializer = moving_variance_initializer

    def build(self, input_shape: tuple) -> None:
        rank = len(input_shape)
        axis = self.axis % rank
        if axis != rank - 1:
            raise ValueError("BatchNormalization supports the last axis (channels_last) only")
        c = input_shape[-1]
        if c is None:
            raise ValueError(f"BatchNormalization needs the last dimension known, got "
                             f"{input_shape}")
        self.gamma = self.add_weight("gamma", (c,), initializer=self.gamma_initializer) \
            if self.scale else None
        self.beta = self.add_weight("beta", (c,), initializer=self.beta_initializer) \
            if self.center else None
        self.moving_mean = self.add_weight("moving_mean", (c,), trainable=False,
                                           initializer=self.moving_mean_initializer)
        self.moving_variance = self.add_weight("moving_variance", (c,), trainable=False,
                                               initializer=self.moving_variance_initializer)
        self.built = True

    def call(self, inputs: Any, training: Any = None) -> Any:
        rank = len(_static_shape(inputs))
        axes = list(range(rank - 1))
        if training:
            mean = core.reduce_mean(inputs, axis=axes)
            centered = inputs - mean
            var = core.reduce_mean(core.square(centered), axis=axes)
            m = self.momentum
            # Under a strategy the statistics are averaged over the replicas, so the moving
            # statistics stay identical on every worker.
            dist = core.distribution.current()
            stats = dist.replica_mean_tensors([mean, var]) if hasattr(
                dist, "replica_mean_tensors") else [mean, var]
            updates = [
                core.assign(self.moving_mean, self.moving_mean * m + stats[0] * (1.0 - m)),
                core.assign(self.moving_variance, self.moving_variance * m + stats[1] * (1.0 - m)),
            ]
            ctx = current_context()
            if ctx is not None:
                ctx.updates.extend(updates)
            for u in updates:
                core.add_to_collection(core.GraphKeys.UPDATE_OPS, u)
        else:
            mean, var = self.moving_mean, self.moving_variance
            centered = inputs - mean
        inv = 1.0 / core.sqrt(var + self.epsilon)
        if self.gamma is not None:
            inv = inv * self.gamma
        y = centered * inv
        if self.beta is not None:
            y = y + self.beta
        return y

    def compute_output_shape(self, input_shape: Any) -> tuple:
        return tuple(input_shape)


# Layer families in their own modules build on the base classes above; they are served from
# here on first access (a module-level import would be a cycle).
_FAMILIES = {
    "merging": ("Add", "Average", "Concatenate", "Dot", "Maximum", "Minimum", "Multiply",
                "Subtract", "add", "average", "concatenate", "dot", "maximum", "minimum",
                "multiply", "subtract"),
    "recurrent": ("RNN", "SimpleRNN", "SimpleRNNCell", "GRU", "GRUCell", "LSTM", "LSTMCell"),
}


def __dir__() -> list[str]:
    return sorted([*globals(), *(n for names in _FAMILIES.values() for n in names)])


def __getattr__(name: str):
    import importlib

    for module, names in _FAMILIES.items():
        if name in names:
            return getattr(importlib.import_module(f"{__package__}.{module}"), name)
    # TensorFlow layers ringtrain leaves out get an error naming the alternative.
    from ..core.unsupported import missing
    raise missing(__name__, name)
