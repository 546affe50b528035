"""Neural-network ops (``tf.nn``): activations, losses, convolution and pooling (NHWC),
dropout, embeddings, normalization.
"""

from __future__ import annotations

import numbers
from typing import Any

from ...errors import InvalidArgumentError
from .. import distribution
from .. import dtypes as _dt
from ..graph import Tensor, TensorShape, get_default_graph
from .array import (
    _reshape_like,
    cast,
    constant,
    convert_to_tensor,
    gather,
    identity,
    reshape,
    shape,
    squeeze,
    stop_gradient,
)
from .base import _make, _make1, kernel
from .math import (
    div_no_nan,
    exp,
    log1p,
    matmul,
    maximum,
    minimum,
    multiply,
    reduce_mean,
    reduce_sum,
    rsqrt,
    sigmoid,
    square,
    tanh,
)
from .random import _seeds

__all__ = [
    "avg_pool",
    "avg_pool2d",
    "batch_normalization",
    "bias_add",
    "compute_average_loss",
    "conv2d",
    "dropout",
    "elu",
    "embedding_lookup",
    "l2_loss",
    "l2_normalize",
    "leaky_relu",
    "log_softmax",
    "max_pool",
    "max_pool2d",
    "moments",
    "relu",
    "relu6",
    "scale_regularization_loss",
    "sigmoid",
    "sigmoid_cross_entropy_with_logits",
    "softmax",
    "softmax_cross_entropy_with_logits",
    "softmax_cross_entropy_with_logits_v2",
    "softplus",
    "sparse_softmax_cross_entropy_with_logits",
    "tanh",
    "xw_plus_b",
]


def _float(x: Any, what: str) -> Tensor:
    x = convert_to_tensor(x, preferred_dtype=_dt.float32)
    if not x.dtype.is_floating:
        raise TypeError(f"{what} needs a floating-point tensor, got {x.dtype.name} ({x.name})")
    return x


def relu(features: Any, name: str | None = None) -> Tensor:
    x = convert_to_tensor(features)
    return _make1("Relu", (x,), x.dtype, x.shape, name)


def relu6(features: Any, name: str | None = None) -> Tensor:
    return minimum(relu(features), 6.0, name=name or "Relu6")


def leaky_relu(features: Any, alpha: float = 0.2, name: str | None = None) -> Tensor:
    x = _float(features, "leaky_relu")
    return _make1("LeakyRelu", (x,), x.dtype, x.shape, name, {"alpha": float(alpha)})


def elu(features: Any, name: str | None = None) -> Tensor:
    x = _float(features, "elu")
    return _make1("Elu", (x,), x.dtype, x.shape, name)


def softplus(features: Any, name: str | None = None) -> Tensor:
    x = _float(features, "softplus")
    return _make1("Softplus", (x,), x.dtype, x.shape, name)


def _axis(x: Tensor, axis: Any, dim: Any, last_only: bool = False) -> int:
    axis = dim if axis is None else axis
    axis = -1 if axis is None else int(axis)
    n = x.shape.ndims
    if n is not None:
        if not -n <= axis < n:
            raise ValueError(f"axis {axis} is out of range for {x.name} of rank {n}")
        axis = axis - n if axis >= 0 else axis  # negative: valid for any batch rank
    if last_only and axis != -1:
        raise ValueError(f"only the last axis is supported for cross entropy on {x.name}, got "
                         f"axis={axis}; transpose first")
    return axis


def softmax(logits: Any, axis: int | None = None, name: str | None = None,
            dim: int | None = None) -> Tensor:
    x = _float(logits, "softmax")
    return _make1("Softmax", (x,), x.dtype, x.shape, name, {"axis": _axis(x, axis, dim)})


def log_softmax(logits: Any, axis: int | None = None, name: str | None = None,
                dim: int | None = None) -> Tensor:
    x = _float(logits, "log_softmax")
    return _make1("LogSoftmax", (x,), x.dtype, x.shape, name, {"axis": _axis(x, axis, dim)})


def _xent(labels: Any, logits: Any, axis: Any, name: str | None, stop_labels: bool) -> Tensor:
    if labels is None or logits is None:
        raise ValueError("softmax_cross_entropy_with_logits needs labels=... and logits=... "
                         "(keyword arguments)")
    logits = _float(logits, "softmax_cross_entropy_with_logits")
    labels = convert_to_tensor(labels, dtype=logits.dtype) if not isinstance(labels, Tensor) \
        else cast(labels, logits.dtype)
    _axis(logits, axis, None, last_only=True)
    if stop_labels:
        labels = stop_gradient(labels)
    if logits.shape.ndims is not None and labels.shape.ndims is not None and \
            not logits.shape.is_compatible_with(labels.shape):
        raise ValueError(f"logits and labels must have the same shape, got {logits.shape} "
                         f"and {labels.shape}")
    shape = logits.shape[:-1] if logits.shape.ndims is not None else TensorShape(None)
    op = _make("SoftmaxCrossEntropyWithLogits", (logits, labels),
               [(logits.dtype, shape), (logits.dtype, logits.shape)], name)
    return op.outputs[0]


def softmax_cross_entropy_with_logits(_sentinel: Any = None, labels: Any = None,
                                      logits: Any = None, dim: int = -1, name: str | None = None,
                                      axis: int | None = None) -> Tensor:
    """Per-row cross entropy of softmax(logits) against ``labels`` (no gradient into labels)."""
    if _sentinel is not None:
        raise ValueError("call softmax_cross_entropy_with_logits with keyword arguments only")
    return _xent(labels, logits, axis if axis is not None else dim, name, stop_labels=True)


def softmax_cross_entropy_with_logits_v2(_sentinel: Any = None, labels: Any = None,
                                         logits: Any = None, dim: int = -1,
                                         name: str | None = None, axis: int | None = None
                                         ) -> Tensor:
    """Like softmax_cross_entropy_with_logits, with gradients into labels too."""
    if _sentinel is not None:
        raise ValueError("call softmax_cross_entropy_with_logits_v2 with keyword arguments only")
    return _xent(labels, logits, axis if axis is not None else dim, name, stop_labels=False)


def sparse_softmax_cross_entropy_with_logits(_sentinel: Any = None, labels: Any = None,
                                             logits: Any = None, name: str | None = None
                                             ) -> Tensor:
    """Cross entropy against integer class ids ``labels`` (shape = logits' shape minus last)."""
    if _sentinel is not None or labels is None or logits is None:
        raise ValueError("sparse_softmax_cross_entropy_with_logits needs labels=... and "
                         "logits=... (keyword arguments)")
    logits = _float(logits, "sparse_softmax_cross_entropy_with_logits")
    labels = convert_to_tensor(labels)
    if not labels.dtype.is_integer:
        raise TypeError(f"labels must be int32 or int64 class ids, got {labels.dtype.name}; "
                        f"for one-hot labels use softmax_cross_entropy_with_logits")
    lr, gr = labels.shape.ndims, logits.shape.ndims
    if lr is not None and gr is not None and lr != gr - 1:
        raise ValueError(f"rank of labels ({lr}) must equal rank of logits ({gr}) minus one")
    if gr == 2:
        op = _make("SparseSoftmaxCrossEntropyWithLogits", (logits, labels),
                   [(logits.dtype, logits.shape[:1]), (logits.dtype, logits.shape)], name)
        return op.outputs[0]
    classes = logits.shape[-1] if gr is not None else None
    if classes is None:
        raise ValueError("sparse_softmax_cross_entropy_with_logits needs the number of classes "
                         "(last dimension of logits) to be known")
    flat = reshape(logits, [-1, classes])
    op = _make("SparseSoftmaxCrossEntropyWithLogits", (flat, reshape(labels, [-1])),
               [(logits.dtype, [None]), (logits.dtype, flat.shape)], None)
    return _reshape_like(op.outputs[0], labels) if name is None else \
        identity(_reshape_like(op.outputs[0], labels), name=name)


def sigmoid_cross_entropy_with_logits(_sentinel: Any = None, labels: Any = None,
                                      logits: Any = None, name: str | None = None) -> Tensor:
    """max(x, 0) - x * z + log(1 + exp(-|x|)): the numerically stable logistic loss."""
    if _sentinel is not None or labels is None or logits is None:
        raise ValueError("sigmoid_cross_entropy_with_logits needs labels=... and logits=... "
                         "(keyword arguments)")
    x = _float(logits, "sigmoid_cross_entropy_with_logits")
    z = cast(convert_to_tensor(labels), x.dtype) if isinstance(labels, Tensor) else \
        convert_to_tensor(labels, dtype=x.dtype)
    if not x.shape.is_compatible_with(z.shape):
        raise ValueError(f"logits and labels must have the same shape, got {x.shape} and "
                         f"{z.shape}")
    g = get_default_graph()
    with g.name_scope(name or "logistic_loss"):
        return relu(x) - x * z + log1p(exp(-abs(x)))


def _four(v: Any, what: str) -> tuple:
    if isinstance(v, numbers.Integral):
        return (1, int(v), int(v), 1)
    v = [int(a) for a in v]
    if len(v) == 1:
        return (1, v[0], v[0], 1)
    if len(v) == 2:
        return (1, v[0], v[1], 1)
    if len(v) == 4:
        if v[0] != 1 or v[3] != 1:
            raise ValueError(f"{what} must be 1 in the batch and channel dimensions (NHWC), "
                             f"got {v}")
        return tuple(v)
    raise ValueError(f"{what} must be an int or a list of 1, 2 or 4 ints, got {v}")


def _padding(padding: Any) -> str:
    p = str(padding).upper()
    if p not in ("SAME", "VALID"):
        raise ValueError(f"padding must be 'SAME' or 'VALID', got {padding!r}")
    return p


def _out_dim(size: int | None, k: int | None, stride: int, padding: str) -> int | None:
    if size is None:
        return None
    if padding == "SAME":
        return -(-size // stride)
    if k is None:
        return None
    return max((size - k) // stride + 1, 0)


def conv2d(input: Any = None, filter: Any = None, strides: Any = None,
           padding: str | None = None, use_cudnn_on_gpu: bool = True,
           data_format: str = "NHWC", dilations: Any = None, name: str | None = None,
           filters: Any = None) -> Tensor:
    """2-D convolution of NHWC ``input`` with an HWIO ``filter`` (im2col + one matrix product)."""
    if data_format != "NHWC":
        raise ValueError(f"conv2d supports data_format='NHWC' only, got {data_format!r}")
    if dilations is not None and any(int(d) != 1 for d in
                                     ([dilations] if isinstance(dilations, int) else dilations)):
        raise ValueError("conv2d: dilations other than 1 are not supported")
    w = filter if filter is not None else filters
    if input is None or w is None or strides is None or padding is None:
        raise ValueError("conv2d needs input, filter, strides and padding")
    x = _float(input, "conv2d")
    w = convert_to_tensor(w, dtype=x.dtype) if not isinstance(w, Tensor) else w
    if w.dtype != x.dtype:
        raise TypeError(f"conv2d: filter dtype {w.dtype.name} differs from input dtype "
                        f"{x.dtype.name}")
    strides = _four(strides, "strides")
    padding = _padding(padding)
    xs, ws = x.shape.with_rank(4), w.shape.with_rank(4)
    if xs[3] is not None and ws[2] is not None and xs[3] != ws[2]:
        raise ValueError(f"conv2d: input has {xs[3]} channels but the filter expects {ws[2]} "
                         f"(filter shape {ws} is [height, width, in, out])")
    oh = _out_dim(xs[1], ws[0], strides[1], padding)
    ow = _out_dim(xs[2], ws[1], strides[2], padding)
    out = [xs[0], oh, ow, ws[3]]
    cols = [None, None if ws[0] is None or ws[1] is None or ws[2] is None
            else ws[0] * ws[1] * ws[2]]
    op = _make("Conv2D", (x, w), [(x.dtype, out), (x.dtype, cols)], name,
               {"strides": strides, "padding": padding})
    return op.outputs[0]


def _pool(op_type: str, value: Any, ksize: Any, strides: Any, padding: Any, data_format: str,
          name: str | None) -> Tensor:
    if data_format not in ("NHWC", None):
        raise ValueError(f"{op_type} supports data_format='NHWC' only, got {data_format!r}")
    x = _float(value, op_type)
    ksize, strides, padding = _four(ksize, "ksize"), _four(strides, "strides"), _padding(padding)
    xs = x.shape.with_rank(4)
    out = [xs[0], _out_dim(xs[1], ksize[1], strides[1], padding),
           _out_dim(xs[2], ksize[2], strides[2], padding), xs[3]]
    return _make1(op_type, (x,), x.dtype, out, name,
                  {"ksize": ksize, "strides": strides, "padding": padding})


def max_pool(value: Any = None, ksize: Any = None, strides: Any = None, padding: Any = None,
             data_format: str = "NHWC", name: str | None = None, input: Any = None
             ) -> Tensor:
    return _pool("MaxPool", value if value is not None else input, ksize, strides, padding,
                 data_format, name)


def avg_pool(value: Any = None, ksize: Any = None, strides: Any = None, padding: Any = None,
             data_format: str = "NHWC", name: str | None = None, input: Any = None
             ) -> Tensor:
    return _pool("AvgPool", value if value is not None else input, ksize, strides, padding,
                 data_format, name)

max_pool2d = max_pool

avg_pool2d = avg_pool


def bias_add(value: Any, bias: Any, data_format: str | None = None, name: str | None = None
             ) -> Tensor:
    """value + bias over the last dimension; the bias gradient is one column sum."""
    if data_format not in (None, "NHWC", "N...C"):
        raise ValueError(f"bias_add supports channels-last data only, got {data_format!r}")
    x = convert_to_tensor(value)
    b = convert_to_tensor(bias, dtype=x.dtype) if not isinstance(bias, Tensor) else bias
    if b.shape.ndims not in (None, 1):
        raise ValueError(f"bias must be 1-D, got shape {b.shape} ({b.name})")
    if x.shape.ndims is not None and x.shape[-1] is not None and b.shape.ndims == 1 and \
            b.shape[0] is not None and x.shape[-1] != b.shape[0]:
        raise ValueError(f"bias_add: bias has {b.shape[0]} entries, the last dimension of "
                         f"{x.name} is {x.shape[-1]}")
    if b.dtype != x.dtype:
        raise TypeError(f"bias_add: bias dtype {b.dtype.name} differs from {x.dtype.name}")
    return _make1("BiasAdd", (x, b), x.dtype, x.shape, name)


def xw_plus_b(x: Any, weights: Any, biases: Any, name: str | None = None) -> Tensor:
    return bias_add(matmul(x, weights), biases, name=name)


def dropout(x: Any, keep_prob: Any = None, noise_shape: Any = None, seed: int | None = None,
            name: str | None = None, rate: Any = None) -> Tensor:
    """Zero elements with probability ``rate`` (= 1 - keep_prob) and scale the rest by 1/keep.

    ``rate``/``keep_prob`` may be tensors (e.g. a placeholder fed 1.0 at evaluation time).
    """
    if (keep_prob is None) == (rate is None):
        raise ValueError("dropout needs exactly one of keep_prob and rate")
    x = _float(x, "dropout")
    if rate is None:
        if isinstance(keep_prob, Tensor):
            rate = 1.0 - cast(keep_prob, x.dtype)
        else:
            if not 0.0 < float(keep_prob) <= 1.0:
                raise ValueError(f"keep_prob must be in (0, 1], got {keep_prob}")
            rate = 1.0 - float(keep_prob)
    if not isinstance(rate, Tensor):
        if not 0.0 <= float(rate) < 1.0:
            raise ValueError(f"rate must be in [0, 1), got {rate}")
        rate = constant(float(rate), x.dtype, name="rate")
    else:
        rate = cast(rate, x.dtype)
    ns = None if noise_shape is None else tuple(None if d is None else int(d)
                                                for d in noise_shape)
    s1, s2 = _seeds(x.graph, seed)
    op = _make("Dropout", (x, rate), [(x.dtype, x.shape), (x.dtype, TensorShape(None))], name,
               {"seed": s1, "seed2": s2, "noise_shape": ns})
    return op.outputs[0]


def embedding_lookup(params: Any, ids: Any, partition_strategy: str = "mod",
                     name: str | None = None, validate_indices: bool = True,
                     max_norm: Any = None) -> Tensor:
    if max_norm is not None:
        raise NotImplementedError("embedding_lookup: max_norm is not supported")
    if isinstance(params, (list, tuple)):
        if len(params) != 1:
            raise NotImplementedError("embedding_lookup: sharded params are not supported; pass "
                                      "one tensor")
        params = params[0]
    return gather(params, ids, name=name or "embedding_lookup")


def l2_loss(t: Any, name: str | None = None) -> Tensor:
    """sum(t ** 2) / 2."""
    x = _float(t, "l2_loss")
    return _make1("L2Loss", (x,), x.dtype, [], name)


def moments(x: Any, axes: Any, shift: Any = None, name: str | None = None,
            keep_dims: Any = None, keepdims: Any = None) -> tuple[Tensor, Tensor]:
    """(mean, variance) of ``x`` over ``axes``."""
    keep = bool(keepdims if keepdims is not None else keep_dims)
    x = _float(x, "moments")
    g = get_default_graph()
    with g.name_scope(name or "moments"):
        mean = reduce_mean(x, axes, keepdims=True)
        var = reduce_mean(square(x - stop_gradient(mean)), axes, keepdims=True)
        if not keep:
            mean = squeeze(mean, axes)
            var = squeeze(var, axes)
        return mean, var


def batch_normalization(x: Any, mean: Any, variance: Any, offset: Any, scale: Any,
                        variance_epsilon: float, name: str | None = None) -> Tensor:
    """(x - mean) * scale / sqrt(variance + eps) + offset (offset/scale may be None)."""
    x = _float(x, "batch_normalization")
    g = get_default_graph()
    with g.name_scope(name or "batchnorm"):
        inv = rsqrt(variance + constant(variance_epsilon, x.dtype))
        if scale is not None:
            inv = inv * scale
        shift = -mean * inv
        if offset is not None:
            shift = shift + offset
        return x * inv + shift


def l2_normalize(x: Any, axis: Any = None, epsilon: float = 1e-12, name: str | None = None,
                 dim: Any = None) -> Tensor:
    x = _float(x, "l2_normalize")
    axis = dim if axis is None else axis
    ss = reduce_sum(square(x), axis, keepdims=True)
    return multiply(x, rsqrt(maximum(ss, epsilon)), name=name)


# --- losses across replicas -------------------------------------------------------------------

def _replicas_in_sync() -> int:
    ctx = distribution.current()
    return int(getattr(ctx, "num_replicas_in_sync", 1)) if ctx is not None else 1


def _gradients_summed() -> bool:
    """Whether apply_gradients will sum the replicas' gradients (inside ``strategy.run``, as
    TensorFlow does) rather than average them (ringtrain's graph and Keras paths)."""
    ctx = distribution.current()
    return bool(getattr(ctx, "sums_gradients", False)) if ctx is not None else False


def compute_average_loss(per_example_loss: Any, sample_weight: Any = None,
                         global_batch_size: Any = None) -> Tensor:
    """The loss of one replica's share of a global batch, so that training under
    MirroredStrategy updates the variables as TensorFlow does.

    TensorFlow returns sum(per_example_loss * sample_weight) / global_batch_size (the global
    batch defaults to this replica's batch times num_replicas_in_sync) and *sums* the replicas'
    gradients. Inside ``strategy.run`` ringtrain does exactly that. Elsewhere (a TF1 graph
    step, where ringtrain *averages* gradients across replicas) the same update needs the loss
    num_replicas_in_sync times larger: this then returns TensorFlow's value times
    num_replicas_in_sync (identical outside a strategy, where that is 1).
    """
    loss = convert_to_tensor(per_example_loss)
    if not loss.dtype.is_floating:
        raise TypeError(f"compute_average_loss needs a floating-point per_example_loss, got "
                        f"{loss.dtype.name}")
    with get_default_graph().name_scope("compute_average_loss"):
        if sample_weight is not None:
            loss = loss * _ops_cast_like(sample_weight, loss)
        replicas = _replicas_in_sync()
        summed = _gradients_summed()
        if global_batch_size is None:
            local_batch = (shape(loss)[0] if loss.shape.ndims else
                           constant(1, _dt.int32))
            if summed:
                local_batch = local_batch * constant(replicas, _dt.int32)
            return div_no_nan(reduce_sum(loss), cast(local_batch, loss.dtype))
        batch = _ops_cast_like(global_batch_size, loss)
        scale = 1 if summed else replicas
        return div_no_nan(reduce_sum(loss) * constant(scale, loss.dtype), batch)


def scale_regularization_loss(regularization_loss: Any) -> Tensor:
    """The regularization loss to add to each replica's loss. TensorFlow divides it by
    num_replicas_in_sync because it sums the replicas' gradients, and so does ringtrain inside
    ``strategy.run``; elsewhere ringtrain averages them, so the sum is returned as it is (the
    same update as TensorFlow's)."""
    total = reduce_sum(convert_to_tensor(regularization_loss))
    if _gradients_summed():
        return total / constant(_replicas_in_sync(), total.dtype)
    return total


def _ops_cast_like(value: Any, like: Tensor) -> Tensor:
    value = convert_to_tensor(value) if isinstance(value, Tensor) else \
        constant(value, like.dtype)
    return value if value.dtype == like.dtype else cast(value, like.dtype)


# --- kernels: activations ------------------------------------------------------------------------

@kernel("Relu")
def _relu(rt):
    xp = rt.xp
    return lambda x: xp.maximum(x, 0)


@kernel("ReluGrad")
def _relu_grad(rt):
    # g * mask is ~15x faster than where(mask, g, 0) in NumPy (bool * float keeps the float)
    return lambda g, y: g * (y > 0)


@kernel("LeakyRelu")
def _leaky_relu(rt, alpha):
    xp = rt.xp
    return lambda x: xp.where(x > 0, x, x * alpha).astype(x.dtype, copy=False)


@kernel("LeakyReluGrad")
def _leaky_relu_grad(rt, alpha):
    xp = rt.xp
    return lambda g, x: xp.where(x > 0, g, g * alpha).astype(g.dtype, copy=False)


@kernel("Elu")
def _elu(rt):
    xp = rt.xp
    return lambda x: xp.where(x > 0, x, xp.expm1(xp.minimum(x, 0))).astype(x.dtype, copy=False)


@kernel("EluGrad")
def _elu_grad(rt):
    xp = rt.xp
    return lambda g, y: xp.where(y > 0, g, g * (y + 1)).astype(g.dtype, copy=False)


@kernel("Softplus")
def _softplus(rt):
    xp = rt.xp
    return lambda x: xp.logaddexp(x, 0).astype(x.dtype, copy=False)


# --- kernels: bias, losses, softmax, dropout -----------------------------------------------------

@kernel("BiasAdd")
def _bias_add(rt):
    return lambda x, b: x + b


@kernel("BiasAddGrad")
def _bias_add_grad(rt):
    def run(g):
        return g.reshape(-1, g.shape[-1]).sum(axis=0)
    return run


@kernel("L2Loss")
def _l2_loss(rt):
    xp = rt.xp

    def run(x):
        flat = x.reshape(-1)
        return (xp.dot(flat, flat) * 0.5).astype(x.dtype)
    return run


@kernel("Softmax")
def _softmax(rt, axis=-1):
    xp = rt.xp

    def run(x):
        e = x - xp.max(x, axis=axis, keepdims=True)
        xp.exp(e, out=e)
        e /= xp.sum(e, axis=axis, keepdims=True)
        return e
    return run


@kernel("LogSoftmax")
def _log_softmax(rt, axis=-1):
    xp = rt.xp

    def run(x):
        s = x - xp.max(x, axis=axis, keepdims=True)
        s -= xp.log(xp.sum(xp.exp(s), axis=axis, keepdims=True))
        return s
    return run


@kernel("SoftmaxCrossEntropyWithLogits")
def _softmax_xent(rt):
    """Outputs (loss per row, d loss / d logits): the backward pass reuses the softmax."""
    xp = rt.xp

    def run(logits, labels):
        s = logits - xp.max(logits, axis=-1, keepdims=True)
        e = xp.exp(s)
        total = xp.sum(e, axis=-1, keepdims=True)
        s -= xp.log(total)
        loss = -xp.sum(labels * s, axis=-1)
        # d loss / d logits = softmax * sum(labels) - labels (labels need not sum to one)
        e *= xp.sum(labels, axis=-1, keepdims=True) / total
        e -= labels
        return loss, e
    return run


@kernel("SparseSoftmaxCrossEntropyWithLogits")
def _sparse_softmax_xent(rt):
    xp = rt.xp
    op = rt.op

    def run(logits, labels):
        n, k = logits.shape
        if labels.size and (labels.min() < 0 or labels.max() >= k):
            bad = labels[(labels < 0) | (labels >= k)][0]
            raise InvalidArgumentError(None, op, f"{op.name}: received a label value of {bad} "
                                                 f"which is outside the valid range [0, {k})")
        s = logits - xp.max(logits, axis=-1, keepdims=True)
        e = xp.exp(s)
        total = xp.sum(e, axis=-1, keepdims=True)
        rows = xp.arange(n)
        loss = (xp.log(total[:, 0]) - s[rows, labels]).astype(logits.dtype, copy=False)
        e /= total
        e[rows, labels] -= 1
        return loss, e
    return run


@kernel("XentGrad")
def _xent_grad(rt):
    return lambda g, backprop: g[..., None] * backprop


@kernel("Dropout")
def _dropout(rt, seed=None, seed2=None, noise_shape=None):
    """Outputs (y, scaled mask); the gradient is g * mask."""
    gen = rt.rng(seed, seed2)
    xp = rt.xp
    op = rt.op

    def run(x, rate):
        rate = float(rate)
        if rate == 0.0:
            return x, xp.ones((), dtype=x.dtype)
        if not 0.0 <= rate < 1.0:
            raise InvalidArgumentError(None, op, f"dropout rate must be in [0, 1), got {rate}")
        shape = x.shape if noise_shape is None else tuple(
            x.shape[i] if d is None else d for i, d in enumerate(noise_shape))
        native = x.dtype if x.dtype.name in ("float32", "float64") else xp.dtype("float32")
        u = gen.random(shape, dtype=native)
        mask = (u >= rate).astype(x.dtype)
        mask *= x.dtype.type(1.0 / (1.0 - rate))
        return x * mask, mask
    return run


# --- kernels: conv2d and pooling (NHWC, im2col through a strided window view and one matrix product) 

def _out_and_pad(size: int, k: int, stride: int, padding: str) -> tuple[int, int, int]:
    if padding == "VALID":
        return (size - k) // stride + 1, 0, 0
    out = -(-size // stride)
    total = max((out - 1) * stride + k - size, 0)
    return out, total // 2, total - total // 2


def _windows(xp, x, kh, kw, sh, sw, oh, ow):
    """(N, OH, OW, C, KH, KW) strided view of the windows of an already padded NHWC array."""
    win = xp.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(1, 2))
    return win[:, :(oh - 1) * sh + 1:sh, :(ow - 1) * sw + 1:sw]


@kernel("Conv2D")
def _conv2d(rt, strides, padding):
    """Outputs (y, cols): cols is the im2col matrix, reused by the filter gradient."""
    xp = rt.xp
    sh, sw = strides[1], strides[2]

    def run(x, w):
        n, h, wd, c = x.shape
        kh, kw, _, o = w.shape
        oh, pt, pb = _out_and_pad(h, kh, sh, padding)
        ow, pl, pr = _out_and_pad(wd, kw, sw, padding)
        if pt or pb or pl or pr:
            x = xp.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
        if kh == 1 and kw == 1:
            cols = x[:, ::sh, ::sw].reshape(n * oh * ow, c)
        else:
            win = _windows(xp, x, kh, kw, sh, sw, oh, ow)
            # (KH, KW, C) order keeps C innermost: the copy moves contiguous runs of channels.
            cols = xp.ascontiguousarray(win.transpose(0, 1, 2, 4, 5, 3)).reshape(
                n * oh * ow, kh * kw * c)
        y = xp.matmul(cols, w.reshape(kh * kw * c, o))
        return y.reshape(n, oh, ow, o), cols
    return run


@kernel("Conv2DBackpropFilter")
def _conv2d_grad_filter(rt):
    xp = rt.xp

    def run(g, cols, w):
        o = g.shape[-1]
        return xp.matmul(cols.T, g.reshape(-1, o)).reshape(w.shape)
    return run


@kernel("Conv2DBackpropInput")
def _conv2d_grad_input(rt, strides, padding):
    xp = rt.xp
    sh, sw = strides[1], strides[2]

    def run(g, x, w):
        n, h, wd, c = x.shape
        kh, kw, _, o = w.shape
        oh, pt, pb = _out_and_pad(h, kh, sh, padding)
        ow, pl, pr = _out_and_pad(wd, kw, sw, padding)
        dcols = xp.matmul(g.reshape(-1, o), w.reshape(kh * kw * c, o).T)
        dcols = dcols.reshape(n, oh, ow, kh, kw, c)
        dx = xp.zeros((n, h + pt + pb, wd + pl + pr, c), dtype=g.dtype)
        for i in range(kh):  # col2im: add each kernel tap's contribution back into place
            for j in range(kw):
                rows = slice(i, i + (oh - 1) * sh + 1, sh)
                cols = slice(j, j + (ow - 1) * sw + 1, sw)
                dx[:, rows, cols] += dcols[:, :, :, i, j]
        return dx[:, pt:pt + h, pl:pl + wd]
    return run


def _pool_geometry(x, ksize, strides, padding):
    _, h, w, _ = x.shape
    kh, kw, sh, sw = ksize[1], ksize[2], strides[1], strides[2]
    oh, pt, pb = _out_and_pad(h, kh, sh, padding)
    ow, pl, pr = _out_and_pad(w, kw, sw, padding)
    return kh, kw, sh, sw, oh, ow, pt, pb, pl, pr


@kernel("MaxPool")
def _max_pool(rt, ksize, strides, padding):
    xp = rt.xp

    def run(x):
        kh, kw, sh, sw, oh, ow, pt, pb, pl, pr = _pool_geometry(x, ksize, strides, padding)
        n, _, _, c = x.shape
        if (kh, kw) == (sh, sw) and not (pt or pb or pl or pr):
            # non-overlapping windows: a reshape, no window view
            blocks = x[:, :oh * kh, :ow * kw].reshape(n, oh, kh, ow, kw, c)
            return blocks.max(axis=(2, 4))
        if pt or pb or pl or pr:
            x = xp.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=-xp.inf)
        return _windows(xp, x, kh, kw, sh, sw, oh, ow).max(axis=(4, 5))
    return run


@kernel("MaxPoolGrad")
def _max_pool_grad(rt, ksize, strides, padding):
    """Route each output gradient to the first maximal input of its window (as TensorFlow)."""
    xp = rt.xp

    def run(g, x, y):
        kh, kw, sh, sw, oh, ow, pt, pb, pl, pr = _pool_geometry(x, ksize, strides, padding)
        h, w = x.shape[1:3]
        xpad = x
        if pt or pb or pl or pr:
            xpad = xp.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=-xp.inf)
        dx = xp.zeros(xpad.shape, dtype=g.dtype)
        taken = xp.zeros(y.shape, dtype=bool)
        for i in range(kh):
            for j in range(kw):
                sl = (slice(None), slice(i, i + (oh - 1) * sh + 1, sh),
                      slice(j, j + (ow - 1) * sw + 1, sw))
                hit = (xpad[sl] == y) & ~taken
                taken |= hit
                dx[sl] += xp.where(hit, g, 0)
        return dx[:, pt:pt + h, pl:pl + w]
    return run


@kernel("AvgPool")
def _avg_pool(rt, ksize, strides, padding):
    xp = rt.xp

    def run(x):
        kh, kw, sh, sw, oh, ow, pt, pb, pl, pr = _pool_geometry(x, ksize, strides, padding)
        n, h, w, c = x.shape
        if (kh, kw) == (sh, sw) and not (pt or pb or pl or pr):
            return x[:, :oh * kh, :ow * kw].reshape(n, oh, kh, ow, kw, c).mean(axis=(2, 4))
        xpad = xp.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
        total = _windows(xp, xpad, kh, kw, sh, sw, oh, ow).sum(axis=(4, 5))
        return (total / _pool_counts(xp, h, w, kh, kw, sh, sw, oh, ow, pt, pb, pl, pr)
                ).astype(x.dtype, copy=False)
    return run


def _pool_counts(xp, h, w, kh, kw, sh, sw, oh, ow, pt, pb, pl, pr):
    """How many real (unpadded) inputs each SAME window covers: TensorFlow divides by that."""
    ones = xp.pad(xp.ones((1, h, w, 1)), ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    return _windows(xp, ones, kh, kw, sh, sw, oh, ow).sum(axis=(4, 5))


@kernel("AvgPoolGrad")
def _avg_pool_grad(rt, ksize, strides, padding):
    xp = rt.xp

    def run(g, x):
        kh, kw, sh, sw, oh, ow, pt, pb, pl, pr = _pool_geometry(x, ksize, strides, padding)
        n, h, w, c = x.shape
        g = g / _pool_counts(xp, h, w, kh, kw, sh, sw, oh, ow, pt, pb, pl, pr).astype(g.dtype)
        dx = xp.zeros((n, h + pt + pb, w + pl + pr, c), dtype=g.dtype)
        for i in range(kh):
            for j in range(kw):
                dx[:, i:i + (oh - 1) * sh + 1:sh, j:j + (ow - 1) * sw + 1:sw] += g
        return dx[:, pt:pt + h, pl:pl + w]
    return run
