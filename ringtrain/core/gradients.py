"""Symbolic differentiation: ``gradients()`` adds gradient ops to the graph, using the rule table.

Each rule maps (op, gradient of each output) to the gradient of each input, written with ops;
None means "no gradient". Broadcasting ops reduce their gradients back to the input's shape.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from . import ops as O
from .graph import Operation, Tensor
from .ops.array import _reshape_like
from .ops.base import _make, _make1

# --- helpers used by the rules -----------------------------------------------------------------

def _sum_to(g: Tensor | None, x: Tensor) -> Tensor | None:
    """``g`` summed over the axes along which ``x`` was broadcast (a no-op when shapes match)."""
    if g is None:
        return None
    if g.shape.is_fully_defined() and g.shape == x.shape:
        return g
    return _make1("SumToLike", (g, x), g.dtype, x.shape)


def _reduce_grad(g: Tensor, op: Operation, mean: bool = False) -> Tensor:
    x = op.inputs[0]
    return _make1("ReduceGrad", (g, x), g.dtype, x.shape, None,
                  {"axis": op.get_attr("axis"), "keepdims": op.get_attr("keepdims"),
                   "mean": mean})


def _zeros_if_none(grads: Sequence, outputs: Sequence[Tensor]) -> list:
    return [g if g is not None else O.zeros_like(t) for g, t in zip(grads, outputs)]


def _none(op: Operation, *grads: Any) -> list:
    return [None] * len(op.inputs)


def _matmul(op: Operation, g: Tensor) -> list:
    a, b = op.inputs
    ta, tb = op.get_attr("transpose_a"), op.get_attr("transpose_b")
    if not ta and not tb:
        ga, gb = O.matmul(g, b, transpose_b=True), O.matmul(a, g, transpose_a=True)
    elif ta and not tb:
        ga, gb = O.matmul(b, g, transpose_b=True), O.matmul(a, g)
    elif not ta and tb:
        ga, gb = O.matmul(g, b), O.matmul(g, a, transpose_a=True)
    else:
        ga = O.matmul(b, g, transpose_a=True, transpose_b=True)
        gb = O.matmul(g, a, transpose_a=True, transpose_b=True)
    if a.shape.ndims == 2 and b.shape.ndims == 2:
        return [ga, gb]
    return [_sum_to(ga, a), _sum_to(gb, b)]  # batch dimensions may have been broadcast


def _minmax(op: Operation, g: Tensor, take_x: Callable) -> list:
    x, y = op.inputs
    mask = take_x(x, y)
    zeros = O.zeros_like(g)
    return [_sum_to(O.where(mask, g, zeros), x), _sum_to(O.where(mask, zeros, g), y)]


def _reduce_extreme(op: Operation, g: Tensor) -> list:
    """Max/Min: the gradient is shared equally among the inputs that attain the extreme."""
    x, y = op.inputs[0], op.outputs[0]
    hit = O.cast(O.equal(x, _reduce_grad(y, op)), g.dtype)
    count = _make1("Sum", (hit,), g.dtype, y.shape, None,
                   {"axis": op.get_attr("axis"), "keepdims": op.get_attr("keepdims")})
    return [_reduce_grad(g / count, op) * hit]


def _cast(op: Operation, g: Tensor) -> list:
    src = op.inputs[0].dtype
    if src.is_floating and op.outputs[0].dtype.is_floating:
        return [O.cast(g, src)]
    return [None]


def _pow(op: Operation, g: Tensor) -> list:
    x, y = op.inputs
    z = op.outputs[0]
    gx = g * y * O.pow(x, y - O.ones_like(y))
    safe_log = O.log(O.where(x > O.zeros_like(x), x, O.ones_like(x)))
    return [_sum_to(gx, x), _sum_to(g * z * safe_log, y)]


def _concat(op: Operation, g: Tensor) -> list:
    xs = op.inputs
    parts = _make("ConcatGrad", (g, *xs), [(t.dtype, t.shape) for t in xs], None,
                  {"axis": op.get_attr("axis")})
    return list(parts.outputs)


def _split(op: Operation, *grads: Any) -> list:
    return [O.concat(_zeros_if_none(grads, op.outputs), op.get_attr("axis"))]


def _unpack(op: Operation, *grads: Any) -> list:
    return [O.stack(_zeros_if_none(grads, op.outputs), op.get_attr("axis"))]


def _strided_slice(op: Operation, g: Tensor) -> list:
    x = op.inputs[0]
    return [_make1("StridedSliceGrad", (g, x), g.dtype, x.shape, None,
                   {"key": op.get_attr("key")})]


def _pad(op: Operation, g: Tensor) -> list:
    key = tuple(slice(a, -b if b else None) for a, b in op.get_attr("paddings"))
    return [_make1("StridedSlice", (g,), g.dtype, op.inputs[0].shape, None, {"key": key})]


def _tile(op: Operation, g: Tensor) -> list:
    x = op.inputs[0]
    if op.get_attr("multiples") is None:
        raise LookupError(f"no gradient for Tile {op.name!r} with tensor multiples; pass "
                          f"Python ints")
    return [_make1("TileGrad", (g, x), g.dtype, x.shape, None,
                   {"multiples": op.get_attr("multiples")})]


def _gather(op: Operation, g: Tensor) -> list:
    params, indices = op.inputs
    return [_make1("GatherGrad", (g, indices, params), g.dtype, params.shape, None,
                   {"axis": op.get_attr("axis")}), None]


def _softmax(op: Operation, g: Tensor) -> list:
    y = op.outputs[0]
    ax = op.get_attr("axis")
    return [(g - O.reduce_sum(g * y, axis=ax, keepdims=True)) * y]


def _log_softmax(op: Operation, g: Tensor) -> list:
    y = op.outputs[0]
    ax = op.get_attr("axis")
    return [g - O.exp(y) * O.reduce_sum(g, axis=ax, keepdims=True)]


def _xent_grad(g: Tensor | None, backprop: Tensor) -> Tensor | None:
    if g is None:
        return None
    return _make1("XentGrad", (g, backprop), backprop.dtype, backprop.shape)


def _softmax_xent(op: Operation, g: Tensor, g_backprop: Any = None) -> list:
    logits = op.inputs[0]
    log_p = _make1("LogSoftmax", (logits,), logits.dtype, logits.shape, None, {"axis": -1})
    g_labels = None if g is None else O.expand_dims(g, -1) * O.negative(log_p)
    return [_xent_grad(g, op.outputs[1]), g_labels]


def _conv2d(op: Operation, g: Tensor, g_cols: Any = None) -> list:
    x, w = op.inputs
    attrs = {"strides": op.get_attr("strides"), "padding": op.get_attr("padding")}
    gx = _make1("Conv2DBackpropInput", (g, x, w), g.dtype, x.shape, None, attrs)
    gw = _make1("Conv2DBackpropFilter", (g, op.outputs[1], w), g.dtype, w.shape, None)
    return [gx, gw]


def _pool_attrs(op: Operation) -> dict:
    return {k: op.get_attr(k) for k in ("ksize", "strides", "padding")}


def _fill(op: Operation, g: Tensor) -> list:
    total = O.reduce_sum(g)
    return [total] if len(op.inputs) == 1 else [None, total]


# --- the table: op type -> rule(op, *output_grads) -> input grads ------------------------------

GRADIENTS: dict[str, Callable | None] = {
    # math (ops/math.py): arithmetic; broadcasting gradients are summed back to each input's shape
    "Add": lambda op, g: [_sum_to(g, op.inputs[0]), _sum_to(g, op.inputs[1])],
    "Sub": lambda op, g: [_sum_to(g, op.inputs[0]), _sum_to(-g, op.inputs[1])],
    "Mul": lambda op, g: [_sum_to(g * op.inputs[1], op.inputs[0]),
                          _sum_to(g * op.inputs[0], op.inputs[1])],
    "RealDiv": lambda op, g: [_sum_to(g / op.inputs[1], op.inputs[0]),
                              _sum_to(-g * op.outputs[0] / op.inputs[1], op.inputs[1])],
    "Pow": _pow,
    "DivNoNan": lambda op, g: [_sum_to(O.div_no_nan(g, op.inputs[1]), op.inputs[0]),
                               _sum_to(O.div_no_nan(-g * op.outputs[0], op.inputs[1]),
                                       op.inputs[1])],
    "Maximum": lambda op, g: _minmax(op, g, O.greater_equal),
    "Minimum": lambda op, g: _minmax(op, g, O.less_equal),
    "AddN": lambda op, g: [_sum_to(g, x) for x in op.inputs],
    "MatMul": _matmul,
    # math: elementwise functions
    "Neg": lambda op, g: [-g],
    "Square": lambda op, g: [g * (O.constant(2, g.dtype) * op.inputs[0])],
    "Sqrt": lambda op, g: [g / (O.constant(2, g.dtype) * op.outputs[0])],
    "Rsqrt": lambda op, g: [g * O.constant(-0.5, g.dtype) * op.outputs[0] * op.outputs[0]
                            * op.outputs[0]],
    "Reciprocal": lambda op, g: [-g * op.outputs[0] * op.outputs[0]],
    "Exp": lambda op, g: [g * op.outputs[0]],
    "Log": lambda op, g: [g / op.inputs[0]],
    "Log1p": lambda op, g: [g / (O.constant(1, g.dtype) + op.inputs[0])],
    "Abs": lambda op, g: [g * O.sign(op.inputs[0])],
    "Sin": lambda op, g: [g * O.cos(op.inputs[0])],
    "Cos": lambda op, g: [-g * O.sin(op.inputs[0])],
    "Tanh": lambda op, g: [_make1("TanhGrad", (op.outputs[0], g), g.dtype, g.shape)],
    "Sigmoid": lambda op, g: [_make1("SigmoidGrad", (op.outputs[0], g), g.dtype, g.shape)],
    "Sign": _none, "Floor": _none, "Ceil": _none, "Round": _none,
    "ClipByValue": lambda op, g: [O.where(O.logical_and(op.inputs[0] >= op.inputs[1],
                                                        op.inputs[0] <= op.inputs[2]),
                                          g, O.zeros_like(g)), None, None],
    "Select": lambda op, g: [None, _sum_to(O.where(op.inputs[0], g, O.zeros_like(g)),
                                           op.inputs[1]),
                             _sum_to(O.where(op.inputs[0], O.zeros_like(g), g), op.inputs[2])],
    # math: reductions
    "Sum": lambda op, g: [_reduce_grad(g, op)],
    "Mean": lambda op, g: [_reduce_grad(g, op, mean=True)],
    "Max": _reduce_extreme,
    "Min": _reduce_extreme,
    "Prod": lambda op, g: [_reduce_grad(g * op.outputs[0], op) / op.inputs[0]],
    # array (ops/array.py): casts, copies, layout
    "Cast": _cast,
    "Identity": lambda op, g: [g],
    "Snapshot": lambda op, g: [g],
    "StopGradient": _none,
    "Reshape": lambda op, g: [_reshape_like(g, op.inputs[0])] + [None] * (len(op.inputs) - 1),
    "ReshapeLike": lambda op, g: [_reshape_like(g, op.inputs[0]), None],
    "ExpandDims": lambda op, g: [_reshape_like(g, op.inputs[0])],
    "Squeeze": lambda op, g: [_reshape_like(g, op.inputs[0])],
    "Transpose": lambda op, g: [O.transpose(g, [op.get_attr("perm").index(i) for i in
                                                range(len(op.get_attr("perm")))])],
    "ConcatV2": _concat,
    "Split": _split,
    "Pack": lambda op, g: O.unstack(g, len(op.inputs), op.get_attr("axis")),
    "Unpack": _unpack,
    "StridedSlice": _strided_slice,
    "Pad": _pad,
    "Tile": _tile,
    "GatherV2": _gather,
    "ReverseSequence": lambda op, g: [O.reverse_sequence(g, op.inputs[1], op.get_attr("seq_axis"),
                                                         op.get_attr("batch_axis")), None],
    "Fill": _fill,
    # control (ops/control.py)
    "PlaceholderWithDefault": lambda op, g: [g],
    # nn (ops/nn.py)
    "BiasAdd": lambda op, g: [g, _make1("BiasAddGrad", (g,), g.dtype, op.inputs[1].shape)],
    "L2Loss": lambda op, g: [op.inputs[0] * g],
    "Relu": lambda op, g: [_make1("ReluGrad", (g, op.outputs[0]), g.dtype, g.shape)],
    "LeakyRelu": lambda op, g: [_make1("LeakyReluGrad", (g, op.inputs[0]), g.dtype, g.shape,
                                      None, {"alpha": op.get_attr("alpha")})],
    "Elu": lambda op, g: [_make1("EluGrad", (g, op.outputs[0]), g.dtype, g.shape)],
    "Softplus": lambda op, g: [g * O.sigmoid(op.inputs[0])],
    "Softmax": _softmax,
    "LogSoftmax": _log_softmax,
    "SoftmaxCrossEntropyWithLogits": _softmax_xent,
    "SparseSoftmaxCrossEntropyWithLogits": lambda op, g, g_bp=None: [
        _xent_grad(g, op.outputs[1]), None],
    "Conv2D": _conv2d,
    "MaxPool": lambda op, g: [_make1("MaxPoolGrad", (g, op.inputs[0], op.outputs[0]),
                                    g.dtype, op.inputs[0].shape, None, _pool_attrs(op))],
    "AvgPool": lambda op, g: [_make1("AvgPoolGrad", (g, op.inputs[0]), g.dtype,
                                    op.inputs[0].shape, None, _pool_attrs(op))],
    "Dropout": lambda op, g, g_mask=None: [None if g is None else g * op.outputs[1], None],
    # no gradient: comparisons, indices, shapes, random numbers, state, Python functions
    **{t: _none for t in (
        "Equal", "NotEqual", "Greater", "GreaterEqual", "Less", "LessEqual", "LogicalAnd",
        "LogicalOr", "LogicalNot", "ArgMax", "ArgMin", "Shape", "Size", "Rank", "OneHot",
        "ZerosLike", "OnesLike", "Range", "Where", "FloorDiv", "FloorMod", "TruncateDiv",
        "TruncateMod", "Any", "All", "Multinomial", "CandidateSampler",
        "ConfusionMatrix",
        "RandomStandardNormal", "RandomUniform", "RandomUniformInt", "TruncatedNormal",
        "RandomShuffle", "Assign", "AssignAdd", "AssignSub", "PyFunc", "ScalarSummary",
        "HistogramSummary", "MergeSummary", "NoOp")},
}


# --- tf.gradients ------------------------------------------------------------------------------

def gradients(ys: Any, xs: Any, grad_ys: Any = None, name: str = "gradients",
              colocate_gradients_with_ops: bool = False, gate_gradients: bool = False,
              aggregation_method: Any = None, stop_gradients: Any = None,
              unconnected_gradients: str = "none") -> list:
    """Symbolic d(sum of ys)/d(x) for each x in xs, added to the graph as ops (TF1).

    Returns one tensor per x, or None where x does not affect ys (``unconnected_gradients=
    "zero"`` gives zeros instead).
    """
    ys, xs, grad_ys = _checked_arguments(ys, xs, grad_ys)
    stops = set(_as_list(stop_gradients)) if stop_gradients is not None else set()
    between = _ops_between(ys, xs, stops)
    with ys[0].graph.name_scope(name):
        pending = _seed_gradients(ys, grad_ys)
        _backpropagate(between, pending, set(xs))
        result = [_total(pending, x) for x in xs]
        if unconnected_gradients == "zero":
            result = [O.zeros_like(x) if gx is None else gx for x, gx in zip(xs, result)]
    return result


def _as_list(value: Any) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _checked_arguments(ys: Any, xs: Any, grad_ys: Any) -> tuple[list, list, list]:
    ys = [O.convert_to_tensor(y) for y in _as_list(ys)]
    xs = _as_list(xs)
    for x in xs:
        if not isinstance(x, Tensor):
            raise TypeError(f"gradients: xs must be Tensors or Variables, got {x!r}")
    grad_ys = [None] * len(ys) if grad_ys is None else _as_list(grad_ys)
    if len(grad_ys) != len(ys):
        raise ValueError(f"gradients: {len(grad_ys)} grad_ys given for {len(ys)} ys")
    return ys, xs, grad_ys


def _reachable(start: Iterable[Operation],
               neighbours: Callable[[Operation], Iterable[Operation]]) -> set[Operation]:
    """Every op reachable from ``start`` (included) through ``neighbours``; iterative, since
    graphs may be very deep."""
    seen: set[Operation] = set()
    stack = list(start)
    while stack:
        op = stack.pop()
        if op not in seen:
            seen.add(op)
            stack.extend(n for n in neighbours(op) if n not in seen)
    return seen


def _ops_between(ys: list, xs: list, stops: set) -> set[Operation]:
    """The ops that need gradient rules: those the ys depend on through data edges (not
    through a stop), and that depend on an x."""
    back = _reachable((y.op for y in ys),
                      lambda op: (t.op for t in op.inputs if t not in stops))
    return _reachable((c for x in xs for c in x._consumers if c in back),
                      lambda op: (c for t in op.outputs if t not in stops
                                  for c in t._consumers if c in back))


def _seed_gradients(ys: list, grad_ys: list) -> dict[Tensor, list[Tensor]]:
    """The gradient flowing into each y: ``grad_ys``, or ones shaped like y."""
    pending: dict[Tensor, list[Tensor]] = {}
    for y, gy in zip(ys, grad_ys):
        if gy is None:
            gy = O.ones_like(y, name=None) if not y.shape.is_fully_defined() else \
                O.constant(1, y.dtype, shape=y.shape.as_list(), name=f"grad_ys_{len(pending)}")
        else:
            gy = O.convert_to_tensor(gy, dtype=y.dtype)
        pending.setdefault(y, []).append(gy)
    return pending


def _total(pending: dict[Tensor, list[Tensor]], t: Tensor) -> Tensor | None:
    """The sum of the gradients that reached ``t`` (None if none did), summed once."""
    parts = pending.get(t)
    if not parts:
        return None
    if len(parts) > 1:
        parts[:] = [O.add_n(parts)]
    return parts[0]


def _backpropagate(between: set[Operation], pending: dict[Tensor, list[Tensor]],
                   xs: set[Tensor]) -> None:
    """Apply each op's rule in reverse creation order (a reverse topological order), adding the
    input gradients to ``pending``."""
    for op in sorted(between, key=lambda o: o._id, reverse=True):
        out_grads = [_total(pending, t) for t in op.outputs]
        if all(gr is None for gr in out_grads):
            continue
        if op.type not in GRADIENTS:
            raise LookupError(f"No gradient defined for operation '{op.name}' (op type: "
                              f"{op.type})")
        with op.graph.name_scope(op.name + "_grad"):
            in_grads = GRADIENTS[op.type](op, *out_grads)
        for t, gi in zip(op.inputs, in_grads):
            if gi is not None and t.dtype.is_floating and (t in xs or t.op in between):
                pending.setdefault(t, []).append(gi)
