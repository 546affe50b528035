"""tf.keras.activations on core ops; softmax/sigmoid outputs remember their logits for losses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import core
from .registry import resolve

# Cross-entropy losses on a softmax/sigmoid output use the logits directly (one fused,
# numerically stable op), as Keras does in graph mode. The map lives on the graph (output tensor
# id -> (output, logits, kind)) so it is freed with it.


def logits_of(tensor: Any, kind: str) -> Any:
    """The logits behind ``tensor`` if it is the output of ``kind`` ('softmax'/'sigmoid')."""
    table = getattr(getattr(tensor, "graph", None), "_keras_logits", None) or {}
    entry = table.get(id(tensor))
    if entry is not None and entry[0] is tensor and entry[2] == kind:
        return entry[1]
    return None


def _remember(out: Any, logits: Any, kind: str) -> Any:
    graph = out.graph
    table = getattr(graph, "_keras_logits", None)
    if table is None:
        table = graph._keras_logits = {}
    table[id(out)] = (out, logits, kind)
    return out


def linear(x: Any) -> Any:
    return x


def relu(x: Any, alpha: float = 0.0, max_value: float | None = None,
         threshold: float = 0.0) -> Any:
    """Keras's relu: ``x`` above ``threshold`` (capped at ``max_value``), ``alpha * (x -
    threshold)`` below it."""
    if alpha == 0 and max_value is None and threshold == 0:
        return core.nn.relu(x)
    y = core.where(core.greater_equal(x, threshold), x, alpha * (x - threshold))
    return y if max_value is None else core.minimum(y, float(max_value))


def sigmoid(x: Any) -> Any:
    return _remember(core.nn.sigmoid(x), x, "sigmoid")


def tanh(x: Any) -> Any:
    return core.nn.tanh(x)


def softmax(x: Any, axis: int = -1) -> Any:
    rank = x.shape.ndims
    if axis == -1 or (rank is not None and axis == rank - 1):
        return _remember(core.nn.softmax(x), x, "softmax")
    shifted = core.exp(x - core.reduce_max(x, axis=axis, keepdims=True))
    return shifted / core.reduce_sum(shifted, axis=axis, keepdims=True)


def elu(x: Any, alpha: float = 1.0) -> Any:
    return core.where(core.greater(x, 0.0), x, alpha * (core.exp(core.minimum(x, 0.0)) - 1.0))


def softplus(x: Any) -> Any:
    # log(1 + e^x) = max(x, 0) + log(1 + e^-|x|), stable for large |x|.
    return core.maximum(x, 0.0) + core.log(1.0 + core.exp(-core.abs(x)))


_BY_NAME: dict[str, Callable] = {
    "linear": linear, "relu": relu, "sigmoid": sigmoid, "tanh": tanh, "softmax": softmax,
    "elu": elu, "softplus": softplus,
}


def get(identifier: Any) -> Callable:
    """An activation function from a name ('relu'), a callable, or None (linear)."""
    if identifier is None:
        return linear
    return resolve(identifier, "activation", _BY_NAME, make=lambda fn, name: fn)


def serialize(fn: Callable) -> str:
    return getattr(fn, "__name__", repr(fn))
