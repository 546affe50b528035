"""tf.keras.backend: float type, layer names, a Session per graph, variable init and assignment."""

from __future__ import annotations

import builtins  # this module defines Keras's all/any/sum/max/min/abs/round/pow
import re
import threading
from typing import Any

import numpy as np

_FLOATX = ["float32"]
_EPSILON = [1e-7]
_name_counts: dict[str, int] = {}
_name_lock = threading.Lock()
_state_lock = threading.Lock()


_SEED: list = [None]


def random_seed() -> int | None:
    """The seed set by ``tf.keras.utils.set_random_seed`` (None when unset)."""
    return _SEED[0]


def set_random_seed(seed: int | None) -> None:
    _SEED[0] = None if seed is None else int(seed)


def floatx() -> str:
    """The default float type of new layers' weights and inputs ('float32')."""
    return _FLOATX[0]


def set_floatx(value: str) -> None:
    """Set the default float type ('float16', 'float32' or 'float64')."""
    if value not in ("float16", "float32", "float64"):
        raise ValueError(f"floatx must be 'float16', 'float32' or 'float64', got {value!r}")
    _FLOATX[0] = value


def epsilon() -> float:
    """The fuzz factor used by losses and normalisation (1e-7)."""
    return _EPSILON[0]


def set_epsilon(value: float) -> None:
    _EPSILON[0] = float(value)


def unique_object_name(base: str) -> str:
    """Keras's automatic names: ``dense``, ``dense_1``, ``dense_2`` ... (reset by clear_session)."""
    with _name_lock:
        n = _name_counts.get(base, 0)
        _name_counts[base] = n + 1
    return base if n == 0 else f"{base}_{n}"


def snake_case(name: str) -> str:
    """``Conv2D`` -> ``conv2d``, ``BatchNormalization`` -> ``batch_normalization``."""
    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", s).lower()


def clear_session() -> None:
    """Reset layer-name counters (``dense``, ``dense_1``...); models keep graph and session."""
    with _name_lock:
        _name_counts.clear()


class _GraphState:
    """Keras's per-graph state, stored on the graph so it lives and dies with it."""

    def __init__(self, graph: Any):
        from .. import core

        self.session = core.Session(graph=graph)
        self.initialized: set[int] = set()   # ids of variables initialized in self.session
        self.assign_ops: dict[int, tuple] = {}


def _state(graph: Any) -> _GraphState:
    with _state_lock:
        st = getattr(graph, "_keras_state", None)
        if st is None:
            st = _GraphState(graph)
            graph._keras_state = st
            graph._variables_session = st.session   # where checkpoints find its variables
    return st


def get_session(graph: Any = None) -> Any:
    """The Session that holds the Keras variables of ``graph`` (default graph when None)."""
    from .. import core

    return _state(graph if graph is not None else core.get_default_graph()).session


def initialize_variables(variables: list, graph: Any) -> None:
    """Run the initializers of those ``variables`` not yet initialized in the graph's session."""
    from .. import core

    st = _state(graph)
    fresh = [v for v in variables if id(v) not in st.initialized]
    if not fresh:
        return
    with graph.as_default():
        init = core.variables_initializer(fresh)
    st.session.run(init)
    st.initialized.update(id(v) for v in fresh)


def graph_variables(graph: Any) -> list:
    """Every global variable of ``graph`` in creation order."""
    from .. import core

    with graph.as_default():
        return list(core.global_variables())


def batch_set_value(variables: list, values: list) -> None:
    """Assign NumPy ``values`` to Keras variables in their graph's session.

    The ``assign(var, placeholder)`` ops are cached per variable, so setting weights
    repeatedly does not grow the graph.
    """
    from .. import core

    if len(variables) != len(values):
        raise ValueError(f"got {len(values)} values for {len(variables)} weights")
    by_graph: dict[Any, list] = {}
    for var, value in zip(variables, values):
        by_graph.setdefault(var.graph, []).append((var, value))
    for graph, pairs in by_graph.items():
        if graph._eager:  # eager variables hold their values: assign them directly
            for var, value in pairs:
                value = np.asarray(value)
                if value.shape != tuple(var.shape.as_list()):
                    raise ValueError(f"cannot assign a value of shape {value.shape} to weight "
                                     f"{var.name!r} of shape {tuple(var.shape.as_list())}")
                var.assign(value.astype(var.dtype.as_numpy_dtype, copy=False))
            continue
        st = _state(graph)
        ops, feed = [], {}
        for var, value in pairs:
            entry = st.assign_ops.get(id(var))
            if entry is None:
                with graph.as_default(), core.name_scope("keras_assign"):
                    ph = core.placeholder(var.dtype, shape=var.shape)
                    entry = (var, ph, core.assign(var, ph))
                st.assign_ops[id(var)] = entry
            _, ph, op = entry
            value = np.asarray(value)
            expected = tuple(var.shape.as_list())
            if value.shape != expected:
                raise ValueError(f"cannot assign a value of shape {value.shape} to weight "
                                 f"{var.name!r} of shape {expected}")
            feed[ph] = value
            ops.append(op)
        st.session.run(ops, feed_dict=feed)
        st.initialized.update(id(v) for v, _ in pairs)


def batch_get_value(variables: list) -> list:
    """The NumPy values of Keras variables (initializing them first when needed)."""
    out: list = [None] * len(variables)
    by_graph: dict[Any, list[int]] = {}
    for i, var in enumerate(variables):
        by_graph.setdefault(var.graph, []).append(i)
    for graph, idx in by_graph.items():
        if graph._eager:
            for i in idx:
                out[i] = variables[i].numpy()
            continue
        chosen = [variables[i] for i in idx]
        initialize_variables(chosen, graph)
        values = get_session(graph).run(chosen)
        for i, v in zip(idx, values):
            out[i] = np.array(v, copy=True)
    return out


def get_value(x: Any) -> Any:
    """The value of a variable (or of an optimizer's learning rate) as NumPy."""
    if hasattr(x, "numpy") and not hasattr(x, "graph"):
        return x.numpy()
    return batch_get_value([x])[0]


def set_value(x: Any, value: Any) -> None:
    """Set a variable (or an optimizer's learning rate) to a NumPy value."""
    if hasattr(x, "assign") and not hasattr(x, "graph"):
        x.assign(value)
        return
    batch_set_value([x], [value])


# --- ops: tf.keras.backend's functions on core tensors ----------------------------------------
# Each works on graph tensors and, in the functional API, on KerasTensors (it becomes a node of
# the model, as Keras's TFOpLambda). Axis arguments follow Keras (axis=None: all axes).

def _keras_op(fn: Any) -> Any:
    import functools

    @functools.wraps(fn)
    def op(*args: Any, **kwargs: Any) -> Any:
        from .layers import op_node
        return op_node(fn, args, kwargs, name=f"backend.{fn.__name__}")
    return op


def _core() -> Any:
    from .. import core
    return core


def _as_float(x: Any) -> Any:
    core = _core()
    x = core.convert_to_tensor(x)
    return x if x.dtype.is_floating else core.cast(x, floatx())


@_keras_op
def mean(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    return _core().reduce_mean(_as_float(x), axis=axis, keepdims=keepdims)


@_keras_op
def sum(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    return _core().reduce_sum(x, axis=axis, keepdims=keepdims)


@_keras_op
def prod(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    return _core().reduce_prod(x, axis=axis, keepdims=keepdims)


@_keras_op
def max(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    return _core().reduce_max(x, axis=axis, keepdims=keepdims)


@_keras_op
def min(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    return _core().reduce_min(x, axis=axis, keepdims=keepdims)


@_keras_op
def var(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """The population variance (divided by N), as Keras computes it."""
    core = _core()
    x = _as_float(x)
    centered = x - core.reduce_mean(x, axis=axis, keepdims=True)
    return core.reduce_mean(core.square(centered), axis=axis, keepdims=keepdims)


@_keras_op
def std(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    return _core().sqrt(var.__wrapped__(x, axis=axis, keepdims=keepdims))


@_keras_op
def all(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    core = _core()
    return core.reduce_all(core.cast(x, core.bool), axis=axis, keepdims=keepdims)


@_keras_op
def any(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    core = _core()
    return core.reduce_any(core.cast(x, core.bool), axis=axis, keepdims=keepdims)


@_keras_op
def argmax(x: Any, axis: int = -1) -> Any:
    return _core().argmax(x, axis=axis)


@_keras_op
def argmin(x: Any, axis: int = -1) -> Any:
    return _core().argmin(x, axis=axis)


def _unary(core_name: str, doc: str) -> Any:
    def op(x: Any) -> Any:
        return getattr(_core(), core_name)(x)
    op.__name__ = op.__qualname__ = core_name
    op.__doc__ = doc
    return _keras_op(op)


abs = _unary("abs", "|x|")
exp = _unary("exp", "e^x")
log = _unary("log", "natural logarithm")
sqrt = _unary("sqrt", "square root")
square = _unary("square", "x^2")
sign = _unary("sign", "-1, 0 or 1")
round = _unary("round", "round half to even")
cos = _unary("cos", "cosine")
sin = _unary("sin", "sine")
sigmoid = _unary("sigmoid", "1 / (1 + e^-x)")
tanh = _unary("tanh", "hyperbolic tangent")


@_keras_op
def pow(x: Any, a: Any) -> Any:
    return _core().pow(x, a)


@_keras_op
def clip(x: Any, min_value: Any, max_value: Any) -> Any:
    if max_value is not None and min_value is not None and max_value < min_value:
        max_value = min_value
    return _core().clip_by_value(x, min_value, max_value)


def _binary(core_name: str) -> Any:
    def op(x: Any, y: Any) -> Any:
        return getattr(_core(), core_name)(x, y)
    op.__name__ = op.__qualname__ = core_name
    return _keras_op(op)


maximum = _binary("maximum")
minimum = _binary("minimum")
equal = _binary("equal")
not_equal = _binary("not_equal")
greater = _binary("greater")
greater_equal = _binary("greater_equal")
less = _binary("less")
less_equal = _binary("less_equal")


@_keras_op
def relu(x: Any, alpha: float = 0.0, max_value: float | None = None,
         threshold: float = 0.0) -> Any:
    from . import activations
    return activations.relu(x, alpha=alpha, max_value=max_value, threshold=threshold)


@_keras_op
def elu(x: Any, alpha: float = 1.0) -> Any:
    from . import activations
    return activations.elu(x, alpha)


@_keras_op
def softmax(x: Any, axis: int = -1) -> Any:
    from . import activations
    return activations.softmax(x, axis=axis)


@_keras_op
def softplus(x: Any) -> Any:
    from . import activations
    return activations.softplus(x)


@_keras_op
def l2_normalize(x: Any, axis: Any = None) -> Any:
    return _core().nn.l2_normalize(x, axis=axis)


@_keras_op
def dot(x: Any, y: Any) -> Any:
    """Matrix product; for rank > 2, Keras's rule: contract x's last axis with y's
    second-to-last."""
    core = _core()
    rx, ry = x.shape.ndims, y.shape.ndims
    if rx == 2 and ry == 2:
        return core.matmul(x, y)
    return core.tensordot(x, y, axes=[[rx - 1], [ry - 2 if ry >= 2 else 0]])


@_keras_op
def batch_dot(x: Any, y: Any, axes: Any = None) -> Any:
    """Per-sample dot products (see ``tf.keras.layers.Dot``)."""
    from .merging import Dot
    rx, ry = x.shape.ndims, y.shape.ndims
    if axes is None:
        axes = (rx - 1, ry - 2 if ry > 2 else ry - 1)
    return Dot(axes)._merge([x, y])


@_keras_op
def concatenate(tensors: list, axis: int = -1) -> Any:
    core = _core()
    rank = tensors[0].shape.ndims
    return core.concat(list(tensors), axis=axis % rank if axis < 0 and rank else axis)


@_keras_op
def stack(x: list, axis: int = 0) -> Any:
    return _core().stack(list(x), axis=axis)


@_keras_op
def expand_dims(x: Any, axis: int = -1) -> Any:
    return _core().expand_dims(x, axis)


@_keras_op
def squeeze(x: Any, axis: int) -> Any:
    return _core().squeeze(x, [axis])


@_keras_op
def reshape(x: Any, shape: Any) -> Any:
    return _core().reshape(x, shape)


@_keras_op
def flatten(x: Any) -> Any:
    return _core().reshape(x, [-1])


@_keras_op
def batch_flatten(x: Any) -> Any:
    import math
    dims = x.shape.as_list()[1:]
    return _core().reshape(x, [-1, math.prod(dims)] if None not in dims else [_core().shape(x)[0],
                                                                             -1])


@_keras_op
def permute_dimensions(x: Any, pattern: Any) -> Any:
    return _core().transpose(x, list(pattern))


@_keras_op
def transpose(x: Any) -> Any:
    return _core().transpose(x)


@_keras_op
def tile(x: Any, n: Any) -> Any:
    return _core().tile(x, [n] if isinstance(n, int) else list(n))


@_keras_op
def repeat_elements(x: Any, rep: int, axis: int) -> Any:
    """Each slice of ``x`` along ``axis`` repeated ``rep`` times (np.repeat)."""
    core = _core()
    rank = x.shape.ndims
    axis = axis % rank
    expanded = core.expand_dims(x, axis + 1)
    tiled = core.tile(expanded, [1] * (axis + 1) + [rep] + [1] * (rank - axis - 1))
    dims = x.shape.as_list()
    return core.reshape(tiled, [-1 if i == 0 else (d * rep if i == axis else d)
                                for i, d in enumerate(dims)])


@_keras_op
def gather(reference: Any, indices: Any) -> Any:
    return _core().gather(reference, indices)


@_keras_op
def one_hot(indices: Any, num_classes: int) -> Any:
    return _core().one_hot(indices, num_classes)


@_keras_op
def cast(x: Any, dtype: Any) -> Any:
    return _core().cast(x, dtype)


@_keras_op
def switch(condition: Any, then_expression: Any, else_expression: Any) -> Any:
    core = _core()
    return core.where(core.cast(condition, core.bool), then_expression, else_expression)


@_keras_op
def stop_gradient(variables: Any) -> Any:
    return _core().stop_gradient(variables)


@_keras_op
def zeros_like(x: Any, dtype: Any = None) -> Any:
    return _core().zeros_like(x, dtype=dtype)


@_keras_op
def ones_like(x: Any, dtype: Any = None) -> Any:
    return _core().ones_like(x, dtype=dtype)


@_keras_op
def categorical_crossentropy(target: Any, output: Any, from_logits: bool = False,
                             axis: int = -1) -> Any:
    from . import losses
    return losses.categorical_crossentropy(target, output, from_logits=from_logits)


@_keras_op
def sparse_categorical_crossentropy(target: Any, output: Any, from_logits: bool = False,
                                    axis: int = -1) -> Any:
    from . import losses
    return losses.sparse_categorical_crossentropy(target, output, from_logits=from_logits)


@_keras_op
def binary_crossentropy(target: Any, output: Any, from_logits: bool = False) -> Any:
    from . import losses
    return losses.binary_crossentropy(target, output, from_logits=from_logits)


def constant(value: Any, dtype: Any = None, shape: Any = None, name: str | None = None) -> Any:
    return _core().constant(value, dtype=dtype or floatx(), shape=shape,
                            name=name or "Const")


def zeros(shape: Any, dtype: Any = None, name: str | None = None) -> Any:
    return _core().zeros(shape, dtype=dtype or floatx(), name=name)


def ones(shape: Any, dtype: Any = None, name: str | None = None) -> Any:
    return _core().ones(shape, dtype=dtype or floatx(), name=name)


def arange(start: Any, stop: Any = None, step: int = 1, dtype: str = "int32") -> Any:
    return _core().range(start, stop, step, dtype=dtype)


def random_normal(shape: Any, mean: float = 0.0, stddev: float = 1.0, dtype: Any = None,
                  seed: int | None = None) -> Any:
    return _core().random_normal(shape, mean, stddev, dtype=dtype or floatx(), seed=seed)


def random_uniform(shape: Any, minval: float = 0.0, maxval: float = 1.0, dtype: Any = None,
                   seed: int | None = None) -> Any:
    return _core().random_uniform(shape, minval, maxval, dtype=dtype or floatx(), seed=seed)


def variable(value: Any, dtype: Any = None, name: str | None = None, constraint: Any = None
             ) -> Any:
    """A variable in the default graph; ``get_value`` initializes it in the Keras session."""
    if constraint is not None:
        raise ValueError("variable(constraint=...) is not supported")
    return _core().Variable(np.asarray(value, dtype=dtype or floatx()), name=name)


def placeholder(shape: Any = None, ndim: int | None = None, dtype: Any = None,
                name: str | None = None) -> Any:
    if shape is None and ndim is not None:
        shape = (None,) * int(ndim)
    return _core().placeholder(dtype or floatx(), shape=shape, name=name)


def eval(x: Any) -> np.ndarray:
    """The value of a variable or of a tensor that needs no feed."""
    core = _core()
    if isinstance(x, core.Variable):
        return get_value(x)
    graph = x.graph
    initialize_variables(graph_variables(graph), graph)
    return get_session(graph).run(x)


def shape(x: Any) -> Any:
    return _core().shape(x)


def int_shape(x: Any) -> tuple | None:
    """The static shape as a tuple (None for unknown dimensions)."""
    if hasattr(x, "_keras_history"):
        return tuple(x.shape)
    shp = getattr(x, "shape", None)
    if hasattr(shp, "as_list"):
        dims = shp.as_list() if shp.ndims is not None else None
        return None if dims is None else tuple(dims)
    return tuple(np.shape(x))


def ndim(x: Any) -> int | None:
    dims = int_shape(x)
    return None if dims is None else len(dims)


def dtype(x: Any) -> str:
    dt = x.dtype
    return dt if isinstance(dt, str) else getattr(dt, "name", str(dt))


def count_params(x: Any) -> int:
    import math
    return int(math.prod(int_shape(x)))


def is_keras_tensor(x: Any) -> bool:
    return hasattr(x, "_keras_history")


def gradients(loss: Any, variables: list) -> list:
    return _core().gradients(loss, variables)


def update(x: Any, new_x: Any) -> Any:
    return _core().assign(x, new_x)


def update_add(x: Any, increment: Any) -> Any:
    return _core().assign_add(x, increment)


def update_sub(x: Any, decrement: Any) -> Any:
    return _core().assign_sub(x, decrement)


def moving_average_update(x: Any, value: Any, momentum: float) -> Any:
    """``x = x * momentum + value * (1 - momentum)`` as an assign op."""
    return _core().assign(x, x * momentum + value * (1.0 - momentum))


_IMAGE_DATA_FORMAT = ["channels_last"]


def image_data_format() -> str:
    """'channels_last' (NHWC), the only layout ringtrain's convolutions use."""
    return _IMAGE_DATA_FORMAT[0]


def set_image_data_format(data_format: str) -> None:
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(f"data_format must be 'channels_last' or 'channels_first', got "
                         f"{data_format!r}")
    if data_format == "channels_first":
        from ..errors import UnsupportedFeatureError
        raise UnsupportedFeatureError(
            None, None, "channels_first is not supported by ringtrain's Keras (convolutions "
            "are NHWC); keep 'channels_last' and transpose NCHW data with np.transpose(x, "
            "(0, 2, 3, 1))")
    _IMAGE_DATA_FORMAT[0] = data_format


def learning_phase() -> int:
    """0 (inference) outside fit; layers get ``training`` from fit and evaluate directly."""
    from .layers import current_context
    ctx = current_context()
    return int(bool(ctx.training)) if ctx is not None else 0


def set_learning_phase(value: int) -> None:
    if value not in (0, 1):
        raise ValueError(f"learning phase must be 0 or 1, got {value!r}")
    if value == 1:
        from ..errors import UnsupportedFeatureError
        raise UnsupportedFeatureError(
            None, None, "set_learning_phase(1) is not supported: ringtrain's Keras passes "
            "training=True to the layers inside fit; call layers with training=True yourself")


def name_scope(name: str) -> Any:
    return _core().name_scope(name)


def print_tensor(x: Any, message: str = "") -> Any:
    """``x``, printing ``message`` and its value each time it is computed."""
    core = _core()

    def show(value: np.ndarray) -> np.ndarray:
        print(message, value)
        return value
    out = core.py_func(show, [x], x.dtype)
    out.set_shape(x.shape)
    return out


def function(inputs: Any, outputs: Any, updates: Any = None, name: str | None = None,
             **kwargs: Any) -> Any:
    """``K.function(inputs, outputs)``: a callable from input arrays to output arrays.

    ``inputs``/``outputs`` are a model's symbolic tensors (``model.input``,
    ``model.get_layer('x').output``) or graph tensors of one graph (placeholders in, any
    tensors out)."""
    if updates:
        raise ValueError("K.function(updates=...) is not supported; run the update ops in a "
                         "tf.Session")
    single_in = not isinstance(inputs, (list, tuple))
    single_out = not isinstance(outputs, (list, tuple))
    ins = [inputs] if single_in else list(inputs)
    outs = [outputs] if single_out else list(outputs)
    if builtins.all(hasattr(t, "_keras_history") for t in ins + outs):
        from .models import Model
        model = Model(ins if len(ins) > 1 else ins[0], outs if len(outs) > 1 else outs[0])

        def run_model(values: Any) -> list:
            values = [values] if single_in else list(values)
            got = model.predict_on_batch(values if len(values) > 1 else values[0])
            return got if isinstance(got, list) else [got]
        return run_model
    graph = outs[0].graph

    def run(values: Any) -> list:
        values = [values] if single_in else list(values)
        if len(values) != len(ins):
            raise ValueError(f"this function takes {len(ins)} inputs, got {len(values)}")
        initialize_variables(graph_variables(graph), graph)
        return list(get_session(graph).run(outs, feed_dict=dict(zip(ins, values))))
    return run
