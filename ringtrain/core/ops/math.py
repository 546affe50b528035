"""Math ops: elementwise arithmetic and functions, comparisons, matrix products, reductions,
and the Python operators of Tensor.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ...errors import InvalidArgumentError
from .. import dtypes as _dt
from ..graph import Tensor, TensorShape
from .array import (
    _pair,
    _tensor_like,
    cast,
    convert_to_tensor,
    reshape,
    squeeze,
    stop_gradient,
    transpose,
)
from .base import (
    KERNELS,
    _brange,
    _broadcast_shape,
    _graph_of,
    _make1,
    _norm_axes,
    _reduced_shape,
    kernel,
)

# --- elementwise ---------------------------------------------------------------------------------

def _binary(op_type: str, x: Any, y: Any, name: str | None, out_dtype: _dt.DType | None = None
            ) -> Tensor:
    if isinstance(x, Tensor) and isinstance(y, Tensor):
        if x.dtype != y.dtype:
            raise TypeError(f"{op_type}: x and y must have the same dtype, got {x.dtype.name} "
                            f"({x.name}) and {y.dtype.name} ({y.name}); use tf.cast")
        shape = _broadcast_shape(x.shape, y.shape)
        return _make1(op_type, (x, y), out_dtype or x.dtype, shape, name)
    g = _graph_of(x, y)
    with g.name_scope(name or op_type) as scope:
        xt = _tensor_like(x, y if isinstance(y, Tensor) else None, "x")
        yt = _tensor_like(y, xt, "y")
        if xt.dtype != yt.dtype:
            raise TypeError(f"{op_type}: x and y must have the same dtype, got {xt.dtype.name} "
                            f"and {yt.dtype.name}; use tf.cast")
        shape = _broadcast_shape(xt.shape, yt.shape)
        return _make1(op_type, (xt, yt), out_dtype or xt.dtype, shape, scope[:-1],
                      absolute=True)


def _unary(op_type: str, x: Any, name: str | None, dtype: _dt.DType | None = None) -> Tensor:
    x = convert_to_tensor(x)
    return _make1(op_type, (x,), dtype or x.dtype, x.shape, name)


def add(x: Any, y: Any, name: str | None = None) -> Tensor:
    return _binary("Add", x, y, name)


def subtract(x: Any, y: Any, name: str | None = None) -> Tensor:
    return _binary("Sub", x, y, name)


def multiply(x: Any, y: Any, name: str | None = None) -> Tensor:
    return _binary("Mul", x, y, name)


def truediv(x: Any, y: Any, name: str | None = None) -> Tensor:
    """x / y; integers are first cast to float (int8/16 -> float32, int32/64 -> float64)."""
    x, y = _pair(x, y)
    if x.dtype.is_integer:
        ft = _dt.float32 if x.dtype.size <= 2 else _dt.float64
        x, y = cast(x, ft), cast(y, ft)
    return _binary("RealDiv", x, y, name)


def divide(x: Any, y: Any, name: str | None = None) -> Tensor:
    return truediv(x, y, name)


def floordiv(x: Any, y: Any, name: str | None = None) -> Tensor:
    return _binary("FloorDiv", x, y, name)


def mod(x: Any, y: Any, name: str | None = None) -> Tensor:
    return _binary("FloorMod", x, y, name)


def floor_div(x: Any, y: Any, name: str | None = None) -> Tensor:
    """TF1's name for floordiv: floor(x / y), elementwise."""
    return floordiv(x, y, name)


def div(x: Any, y: Any, name: str | None = None) -> Tensor:
    """TF1's ``tf.div``: Python 2 division, i.e. floor division for integers and true division
    for floats."""
    x, y = _pair(x, y)
    if x.dtype.is_integer:
        return floordiv(x, y, name or "div")
    return _binary("RealDiv", x, y, name or "div")


def realdiv(x: Any, y: Any, name: str | None = None) -> Tensor:
    """x / y for floats (no cast of integers, unlike truediv)."""
    return _binary("RealDiv", x, y, name)


def div_no_nan(x: Any, y: Any, name: str | None = None) -> Tensor:
    """x / y, and 0 where y is 0 (even for x = 0 or inf)."""
    x, y = _pair(x, y)
    if not x.dtype.is_floating:
        raise TypeError(f"div_no_nan needs floating-point tensors, got {x.dtype.name}")
    return _binary("DivNoNan", x, y, name)


def truncatediv(x: Any, y: Any, name: str | None = None) -> Tensor:
    """Integer x / y rounded toward zero, as C does (-7 / 5 = -1); TensorFlow's CPU kernel
    takes integers only."""
    x, y = _pair(x, y)
    if not x.dtype.is_integer:
        raise TypeError(f"truncatediv takes integer tensors (TensorFlow's CPU kernel has no "
                        f"{x.dtype.name} version); use tf.truediv or tf.floordiv")
    return _binary("TruncateDiv", x, y, name)


def truncatemod(x: Any, y: Any, name: str | None = None) -> Tensor:
    """The remainder of truncated division (C's fmod): it has the sign of x."""
    return _binary("TruncateMod", x, y, name)


def pow(x: Any, y: Any, name: str | None = None) -> Tensor:
    return _binary("Pow", x, y, name)


def maximum(x: Any, y: Any, name: str | None = None) -> Tensor:
    return _binary("Maximum", x, y, name)


def minimum(x: Any, y: Any, name: str | None = None) -> Tensor:
    return _binary("Minimum", x, y, name)


def squared_difference(x: Any, y: Any, name: str | None = None) -> Tensor:
    d = subtract(x, y)
    return square(d, name=name or "SquaredDifference")


def equal(x: Any, y: Any, name: str | None = None) -> Tensor:
    return _binary("Equal", x, y, name, _dt.bool_)


def not_equal(x: Any, y: Any, name: str | None = None) -> Tensor:
    return _binary("NotEqual", x, y, name, _dt.bool_)


def greater(x: Any, y: Any, name: str | None = None) -> Tensor:
    return _binary("Greater", x, y, name, _dt.bool_)


def greater_equal(x: Any, y: Any, name: str | None = None) -> Tensor:
    return _binary("GreaterEqual", x, y, name, _dt.bool_)


def less(x: Any, y: Any, name: str | None = None) -> Tensor:
    return _binary("Less", x, y, name, _dt.bool_)


def less_equal(x: Any, y: Any, name: str | None = None) -> Tensor:
    return _binary("LessEqual", x, y, name, _dt.bool_)


def logical_and(x: Any, y: Any, name: str | None = None) -> Tensor:
    return _binary("LogicalAnd", x, y, name)


def logical_or(x: Any, y: Any, name: str | None = None) -> Tensor:
    return _binary("LogicalOr", x, y, name)


def logical_not(x: Any, name: str | None = None) -> Tensor:
    return _unary("LogicalNot", x, name)


def negative(x: Any, name: str | None = None) -> Tensor:
    return _unary("Neg", x, name)


def square(x: Any, name: str | None = None) -> Tensor:
    return _unary("Square", x, name)


def sqrt(x: Any, name: str | None = None) -> Tensor:
    return _unary("Sqrt", x, name)


def rsqrt(x: Any, name: str | None = None) -> Tensor:
    return _unary("Rsqrt", x, name)


def exp(x: Any, name: str | None = None) -> Tensor:
    return _unary("Exp", x, name)


def log(x: Any, name: str | None = None) -> Tensor:
    return _unary("Log", x, name)


def log1p(x: Any, name: str | None = None) -> Tensor:
    return _unary("Log1p", x, name)


def abs(x: Any, name: str | None = None) -> Tensor:
    return _unary("Abs", x, name)


def sign(x: Any, name: str | None = None) -> Tensor:
    return _unary("Sign", x, name)


def reciprocal(x: Any, name: str | None = None) -> Tensor:
    return _unary("Reciprocal", x, name)


def floor(x: Any, name: str | None = None) -> Tensor:
    return _unary("Floor", x, name)


def ceil(x: Any, name: str | None = None) -> Tensor:
    return _unary("Ceil", x, name)


def round(x: Any, name: str | None = None) -> Tensor:
    return _unary("Round", x, name)


def sin(x: Any, name: str | None = None) -> Tensor:
    return _unary("Sin", x, name)


def cos(x: Any, name: str | None = None) -> Tensor:
    return _unary("Cos", x, name)


def tanh(x: Any, name: str | None = None) -> Tensor:
    return _unary("Tanh", x, name)


def sigmoid(x: Any, name: str | None = None) -> Tensor:
    return _unary("Sigmoid", x, name)


def add_n(inputs: Sequence[Any], name: str | None = None) -> Tensor:
    inputs = [convert_to_tensor(x) for x in inputs]
    if not inputs:
        raise ValueError("add_n needs at least one input")
    if len(inputs) == 1:
        return inputs[0]
    shape = inputs[0].shape
    for t in inputs[1:]:
        shape = _broadcast_shape(shape, t.shape)
    return _make1("AddN", inputs, inputs[0].dtype, shape, name)


def clip_by_value(t: Any, clip_value_min: Any, clip_value_max: Any, name: str | None = None
                  ) -> Tensor:
    t = convert_to_tensor(t)
    lo = _tensor_like(clip_value_min, t, "clip_value_min")
    hi = _tensor_like(clip_value_max, t, "clip_value_max")
    return _make1("ClipByValue", (t, lo, hi), t.dtype, t.shape, name)


def where(condition: Any, x: Any = None, y: Any = None, name: str | None = None) -> Tensor:
    """TF1's where: with x and y, elementwise select; alone, the indices of true elements."""
    condition = convert_to_tensor(condition)
    if x is None and y is None:
        n = condition.shape.ndims
        return _make1("Where", (condition,), _dt.int64, [None, n], name)
    if x is None or y is None:
        raise ValueError("tf.where needs both x and y, or neither")
    x, y = _pair(x, y)
    shape = _broadcast_shape(_broadcast_shape(condition.shape, x.shape), y.shape)
    return _make1("Select", (condition, x, y), x.dtype, shape, name)


# --- matrices ------------------------------------------------------------------------------------

def matmul(a: Any, b: Any, transpose_a: bool = False, transpose_b: bool = False,
           name: str | None = None, **unsupported: Any) -> Tensor:
    """a @ b (batched over leading dims); transposes are folded into the kernel, not copied."""
    if unsupported:
        raise TypeError(f"matmul: unsupported arguments {sorted(unsupported)}")
    a, b = _pair(a, b)
    if a.dtype != b.dtype:
        raise TypeError(f"matmul: a and b must have the same dtype, got {a.dtype.name} "
                        f"({a.name}) and {b.dtype.name} ({b.name}); use tf.cast")
    sa, sb = a.shape, b.shape
    shape = TensorShape(None)
    if sa.ndims is not None and sb.ndims is not None:
        if sa.ndims < 2 or sb.ndims < 2:
            raise ValueError(f"matmul needs tensors of rank >= 2, got shapes {sa} and {sb}")
        m, ka = (sa[-1], sa[-2]) if transpose_a else (sa[-2], sa[-1])
        kb, n = (sb[-1], sb[-2]) if transpose_b else (sb[-2], sb[-1])
        if ka is not None and kb is not None and ka != kb:
            raise ValueError(f"Dimensions must be equal, but are {ka} and {kb} for MatMul of "
                             f"{a.name} {sa} and {b.name} {sb}")
        batch = _broadcast_shape(sa[:-2], sb[:-2])
        shape = batch.concatenate([m, n])
    return _make1("MatMul", (a, b), a.dtype, shape, name,
                  {"transpose_a": bool(transpose_a), "transpose_b": bool(transpose_b)})


def tensordot(a: Any, b: Any, axes: Any, name: str | None = None) -> Tensor:
    """Tensor contraction built from reshape/transpose/matmul (static shapes needed)."""
    a, b = _pair(a, b)
    ra, rb = a.shape.ndims, b.shape.ndims
    if isinstance(axes, int):
        ax_a, ax_b = list(_brange(ra - axes, ra)), list(_brange(axes))
    else:
        ax_a, ax_b = [list(_norm_axes(x, r)) for x, r in zip(axes, (ra, rb))]
    free_a = [i for i in _brange(ra) if i not in ax_a]
    free_b = [i for i in _brange(rb) if i not in ax_b]
    sa, sb = a.shape.as_list(), b.shape.as_list()
    k = int(np.prod([sa[i] for i in ax_a]))
    a2 = reshape(transpose(a, free_a + ax_a), [-1, k])
    b2 = reshape(transpose(b, ax_b + free_b), [k, -1])
    out = [sa[i] for i in free_a] + [sb[i] for i in free_b]
    return reshape(matmul(a2, b2), [-1 if d is None else d for d in out], name=name)


# --- reductions ----------------------------------------------------------------------------------

def _reduce(op_type: str, x: Any, axis: Any, keepdims: Any, name: str | None,
            reduction_indices: Any, keep_dims: Any) -> Tensor:
    if axis is None:
        axis = reduction_indices
    if keep_dims is not None:
        keepdims = keep_dims
    x = convert_to_tensor(x)
    axes = _norm_axes(axis, x.shape.ndims)
    keepdims = bool(keepdims)
    shape = _reduced_shape(x.shape, axes, keepdims)
    return _make1(op_type, (x,), x.dtype, shape, name, {"axis": axes, "keepdims": keepdims})


def reduce_sum(input_tensor: Any, axis: Any = None, keepdims: Any = None,
               name: str | None = None, reduction_indices: Any = None,
               keep_dims: Any = None) -> Tensor:
    return _reduce("Sum", input_tensor, axis, keepdims, name, reduction_indices, keep_dims)


def reduce_mean(input_tensor: Any, axis: Any = None, keepdims: Any = None,
                name: str | None = None, reduction_indices: Any = None,
                keep_dims: Any = None) -> Tensor:
    return _reduce("Mean", input_tensor, axis, keepdims, name, reduction_indices, keep_dims)


def reduce_max(input_tensor: Any, axis: Any = None, keepdims: Any = None,
               name: str | None = None, reduction_indices: Any = None,
               keep_dims: Any = None) -> Tensor:
    return _reduce("Max", input_tensor, axis, keepdims, name, reduction_indices, keep_dims)


def reduce_min(input_tensor: Any, axis: Any = None, keepdims: Any = None,
               name: str | None = None, reduction_indices: Any = None,
               keep_dims: Any = None) -> Tensor:
    return _reduce("Min", input_tensor, axis, keepdims, name, reduction_indices, keep_dims)


def reduce_prod(input_tensor: Any, axis: Any = None, keepdims: Any = None,
                name: str | None = None, reduction_indices: Any = None,
                keep_dims: Any = None) -> Tensor:
    return _reduce("Prod", input_tensor, axis, keepdims, name, reduction_indices, keep_dims)


def reduce_any(input_tensor: Any, axis: Any = None, keepdims: Any = None,
               name: str | None = None, reduction_indices: Any = None,
               keep_dims: Any = None) -> Tensor:
    return _reduce("Any", input_tensor, axis, keepdims, name, reduction_indices, keep_dims)


def reduce_all(input_tensor: Any, axis: Any = None, keepdims: Any = None,
               name: str | None = None, reduction_indices: Any = None,
               keep_dims: Any = None) -> Tensor:
    return _reduce("All", input_tensor, axis, keepdims, name, reduction_indices, keep_dims)


def reduce_logsumexp(input_tensor: Any, axis: Any = None, keepdims: bool = False,
                     name: str | None = None, reduction_indices: Any = None,
                     keep_dims: Any = None) -> Tensor:
    if axis is None:
        axis = reduction_indices
    if keep_dims is not None:
        keepdims = keep_dims
    x = convert_to_tensor(input_tensor)
    m = stop_gradient(reduce_max(x, axis, keepdims=True))
    s = log(reduce_sum(exp(x - m), axis, keepdims=True)) + m
    return s if keepdims else squeeze(s, _norm_axes(axis, x.shape.ndims), name=name)


def _arg(op_type, input, axis, name, dimension, output_type):
    if axis is None:
        axis = dimension if dimension is not None else 0
    x = convert_to_tensor(input)
    ax = _norm_axes(axis, x.shape.ndims)[0]
    output_type = _dt.as_dtype(output_type)
    return _make1(op_type, (x,), output_type, _reduced_shape(x.shape, (ax,), False), name,
                  {"axis": ax, "output_type": output_type})


def argmax(input: Any, axis: int | None = None, name: str | None = None,
           dimension: int | None = None, output_type: Any = _dt.int64) -> Tensor:
    return _arg("ArgMax", input, axis, name, dimension, output_type)


def argmin(input: Any, axis: int | None = None, name: str | None = None,
           dimension: int | None = None, output_type: Any = _dt.int64) -> Tensor:
    return _arg("ArgMin", input, axis, name, dimension, output_type)


def arg_max(input: Any, dimension: int | None = None, name: str | None = None,
            output_type: Any = _dt.int64) -> Tensor:
    """TF1's older name for argmax, with the axis called ``dimension``."""
    return _arg("ArgMax", input, None, name, dimension, output_type)


def arg_min(input: Any, dimension: int | None = None, name: str | None = None,
            output_type: Any = _dt.int64) -> Tensor:
    """TF1's older name for argmin, with the axis called ``dimension``."""
    return _arg("ArgMin", input, None, name, dimension, output_type)


def confusion_matrix(labels: Any, predictions: Any, num_classes: int | None = None,
                     dtype: Any = _dt.int32, name: str | None = None, weights: Any = None
                     ) -> Tensor:
    """[num_classes, num_classes] counts (or summed ``weights``) of (label, prediction) pairs:
    rows are labels, columns predictions; without ``num_classes`` the size is one more than the
    largest label or prediction."""
    labels = convert_to_tensor(labels)
    predictions = convert_to_tensor(predictions)
    dtype = _dt.as_dtype(dtype)
    inputs = [labels, predictions]
    if weights is not None:
        inputs.append(cast(convert_to_tensor(weights), dtype) if isinstance(weights, Tensor)
                      else convert_to_tensor(weights, dtype))
    n = int(num_classes) if num_classes is not None else None
    return _make1("ConfusionMatrix", inputs, dtype, [n, n], name or "confusion_matrix",
                  {"num_classes": n, "dtype": dtype})


# --- Tensor operators ----------------------------------------------------------------------------

def _rev(fn, default_name):
    return lambda self, other: fn(other, self, name=default_name)


def _op_name(fn, default_name):
    return lambda self, other: fn(self, other, name=default_name)

Tensor.__add__ = _op_name(add, "add")

Tensor.__radd__ = _rev(add, "add")

Tensor.__sub__ = _op_name(subtract, "sub")

Tensor.__rsub__ = _rev(subtract, "sub")

Tensor.__mul__ = _op_name(multiply, "mul")

Tensor.__rmul__ = _rev(multiply, "mul")

Tensor.__truediv__ = _op_name(truediv, "truediv")

Tensor.__rtruediv__ = _rev(truediv, "truediv")

Tensor.__floordiv__ = _op_name(floordiv, "floordiv")

Tensor.__rfloordiv__ = _rev(floordiv, "floordiv")

Tensor.__mod__ = _op_name(mod, "mod")

Tensor.__rmod__ = _rev(mod, "mod")

Tensor.__pow__ = _op_name(pow, "pow")

Tensor.__rpow__ = _rev(pow, "pow")

Tensor.__matmul__ = lambda self, other: matmul(self, other)

Tensor.__rmatmul__ = lambda self, other: matmul(other, self)

Tensor.__lt__ = _op_name(less, "Less")

Tensor.__le__ = _op_name(less_equal, "LessEqual")

Tensor.__gt__ = _op_name(greater, "Greater")

Tensor.__ge__ = _op_name(greater_equal, "GreaterEqual")

Tensor.__and__ = _op_name(logical_and, "LogicalAnd")

Tensor.__rand__ = _rev(logical_and, "LogicalAnd")

Tensor.__or__ = _op_name(logical_or, "LogicalOr")

Tensor.__ror__ = _rev(logical_or, "LogicalOr")

Tensor.__neg__ = lambda self: negative(self, name="Neg")

Tensor.__abs__ = lambda self: abs(self, name="Abs")

Tensor.__invert__ = lambda self: logical_not(self, name="LogicalNot")


# --- kernels: elementwise ------------------------------------------------------------------------

@kernel("AddN")
def _add_n(rt):
    xp = rt.xp

    def run(*xs):
        acc = xp.add(xs[0], xs[1]) if len(xs) > 1 else xs[0]
        for x in xs[2:]:
            if acc.shape == xp.broadcast_shapes(acc.shape, x.shape):
                acc += x  # acc is our own fresh array
            else:
                acc = acc + x
        return acc
    return run

_BINARY = {"Add": "add", "Sub": "subtract", "Mul": "multiply", "RealDiv": "divide",
           "FloorDiv": "floor_divide", "FloorMod": "mod", "Pow": "power", "Maximum": "maximum",
           "Minimum": "minimum", "Equal": "equal", "NotEqual": "not_equal", "Greater": "greater",
           "GreaterEqual": "greater_equal", "Less": "less", "LessEqual": "less_equal",
           "LogicalAnd": "logical_and", "LogicalOr": "logical_or"}

_UNARY = {"Neg": "negative", "Square": "square", "Sqrt": "sqrt", "Exp": "exp", "Log": "log",
          "Log1p": "log1p", "Abs": "abs", "Sign": "sign", "Reciprocal": "reciprocal",
          "Tanh": "tanh", "LogicalNot": "logical_not", "Floor": "floor", "Ceil": "ceil",
          "Round": "rint", "Sin": "sin", "Cos": "cos"}


def _ufunc(name: str):
    return lambda rt: getattr(rt.xp, name)

for _op, _fn in {**_BINARY, **_UNARY}.items():
    KERNELS[_op] = _ufunc(_fn)


@kernel("TruncateDiv")
def _truncate_div(rt):
    xp = rt.xp
    op = rt.op

    def run(x, y):
        if not xp.all(y):
            raise InvalidArgumentError(None, op, f"{op.name}: integer division by zero")
        q = xp.floor_divide(x, y)
        # floor and truncation differ by one where the signs differ and the division is inexact
        return q + ((xp.remainder(x, y) != 0) & ((x < 0) != (y < 0))).astype(q.dtype)
    return run


@kernel("TruncateMod")
def _truncate_mod(rt):
    return lambda x, y: rt.xp.fmod(x, y)


@kernel("DivNoNan")
def _div_no_nan(rt):
    xp = rt.xp

    def run(x, y):
        zero = y == 0
        return xp.where(zero, xp.zeros((), x.dtype), x / xp.where(zero, xp.ones((), y.dtype), y))
    return run


@kernel("ConfusionMatrix")
def _confusion_matrix(rt, num_classes, dtype):
    xp = rt.xp
    op = rt.op

    def run(labels, predictions, weights=None):
        labels = xp.asarray(labels).reshape(-1).astype("int64")
        predictions = xp.asarray(predictions).reshape(-1).astype("int64")
        if labels.shape != predictions.shape:
            raise InvalidArgumentError(None, op, f"confusion_matrix: {labels.size} labels and "
                                                 f"{predictions.size} predictions")
        if labels.size and min(labels.min(), predictions.min()) < 0:
            raise InvalidArgumentError(None, op, "confusion_matrix: labels and predictions "
                                                 "must be non-negative")
        n = num_classes if num_classes is not None else int(
            max(labels.max(initial=-1), predictions.max(initial=-1)) + 1)
        if labels.size and max(labels.max(), predictions.max()) >= n:
            raise InvalidArgumentError(None, op, f"confusion_matrix: labels and predictions "
                                                 f"must be < num_classes ({n})")
        out = xp.zeros((n, n), dtype=dtype.np_dtype)
        w = 1 if weights is None else xp.broadcast_to(weights, labels.shape)
        xp.add.at(out, (labels, predictions), w)
        return out
    return run


@kernel("Rsqrt")
def _rsqrt(rt):
    xp = rt.xp

    def run(x):
        r = xp.sqrt(x)
        return xp.reciprocal(r, out=r) if getattr(r, "ndim", 0) else xp.reciprocal(r)
    return run


@kernel("Sigmoid")
def _sigmoid(rt):
    xp = rt.xp

    def run(x):
        # 1/(1+exp(-x)) without overflow warnings: exp of a non-positive number only.
        e = xp.exp(-xp.abs(x))
        pos = 1 / (1 + e)
        return xp.where(x >= 0, pos, e * pos).astype(x.dtype, copy=False)
    return run


@kernel("SigmoidGrad")
def _sigmoid_grad(rt):
    return lambda y, g: g * y * (1 - y)


@kernel("TanhGrad")
def _tanh_grad(rt):
    return lambda y, g: g * (1 - y * y)


@kernel("ClipByValue")
def _clip(rt):
    xp = rt.xp
    return lambda x, lo, hi: xp.minimum(xp.maximum(x, lo), hi)


@kernel("Select")
def _select(rt):
    xp = rt.xp
    return lambda c, x, y: xp.where(c, x, y)


@kernel("Where")
def _where_indices(rt):
    xp = rt.xp
    return lambda c: xp.argwhere(c).astype("int64")


# --- kernels: matrices ---------------------------------------------------------------------------

@kernel("MatMul")
def _matmul(rt, transpose_a=False, transpose_b=False):
    xp = rt.xp
    # Transposes are views: BLAS reads them with its transpose flag, no copy is made.
    if not transpose_a and not transpose_b:
        return xp.matmul
    if transpose_a and not transpose_b:
        return lambda a, b: xp.matmul(xp.swapaxes(a, -1, -2), b)
    if transpose_b and not transpose_a:
        return lambda a, b: xp.matmul(a, xp.swapaxes(b, -1, -2))
    return lambda a, b: xp.matmul(xp.swapaxes(a, -1, -2), xp.swapaxes(b, -1, -2))


# --- kernels: reductions -------------------------------------------------------------------------

def _reducer(name: str):
    def factory(rt, axis=None, keepdims=False):
        fn = getattr(rt.xp, name)
        return lambda x: fn(x, axis=axis, keepdims=keepdims)
    return factory

for _op, _fn in {"Max": "max", "Min": "min", "Any": "any", "All": "all"}.items():
    KERNELS[_op] = _reducer(_fn)


@kernel("Sum", "Prod")
def _sum(rt, axis=None, keepdims=False):
    fn = rt.xp.sum if rt.op.type == "Sum" else rt.xp.prod
    # NumPy widens int32 sums to int64; TensorFlow keeps the input's dtype.
    return lambda x: fn(x, axis=axis, keepdims=keepdims, dtype=x.dtype)


@kernel("Mean")
def _mean(rt, axis=None, keepdims=False):
    xp = rt.xp

    def run(x):
        if x.dtype.kind in "iu":  # TensorFlow's integer mean truncates
            s = xp.sum(x, axis=axis, keepdims=keepdims)
            n = x.size // max(s.size, 1) if x.size else 1
            return (s // n).astype(x.dtype)
        return xp.mean(x, axis=axis, keepdims=keepdims)
    return run


@kernel("ArgMax", "ArgMin")
def _argmax(rt, axis, output_type):
    fn = rt.xp.argmax if rt.op.type == "ArgMax" else rt.xp.argmin
    npd = output_type.np_dtype
    return lambda x: fn(x, axis=axis).astype(npd)


@kernel("ReduceGrad")
def _reduce_grad(rt, axis=None, keepdims=False, mean=False):
    """Broadcast the gradient of a reduction back over the reduced axes (divided by n for mean)."""
    xp = rt.xp

    def run(g, x):
        shape = x.shape
        if mean:
            n = (x.size // g.size) if g.size else 1
            g = g / g.dtype.type(n) if hasattr(g, "dtype") else g / n
        if axis is None:
            g = xp.reshape(g, (1,) * len(shape))
        elif not keepdims:
            g = xp.expand_dims(g, tuple(a % len(shape) for a in axis))
        return xp.broadcast_to(g, shape)
    return run


@kernel("SumToLike")
def _sum_to_like(rt):
    """Sum a broadcast gradient back to the shape of the input it was broadcast from."""
    xp = rt.xp

    def run(g, x):
        gs, xs = g.shape, xp.shape(x)
        if gs == xs:
            return g
        lead = len(gs) - len(xs)
        axes = tuple(range(lead)) + tuple(lead + i for i, d in enumerate(xs)
                                          if d == 1 and gs[lead + i] != 1)
        r = xp.sum(g, axis=axes, keepdims=True) if axes else g
        return xp.reshape(r, xs)
    return run
