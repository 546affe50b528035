"""``tf.losses``: TensorFlow 1's loss functions, each reduced by ``compute_weighted_loss`` and
added to the LOSSES collection (``tf.losses.get_total_loss`` sums them with the regularization
losses)."""

from __future__ import annotations

from typing import Any

from . import dtypes as _dt
from . import ops as _ops
from .graph import GraphKeys, Tensor, get_default_graph
from .ops import nn as _nn

__all__ = ["Reduction", "absolute_difference", "add_loss", "compute_weighted_loss",
           "cosine_distance", "get_losses", "get_regularization_loss",
           "get_regularization_losses", "get_total_loss", "hinge_loss", "huber_loss", "log_loss",
           "mean_squared_error", "sigmoid_cross_entropy", "softmax_cross_entropy",
           "sparse_softmax_cross_entropy"]


class Reduction:
    """How compute_weighted_loss reduces the weighted losses."""

    NONE = "none"
    SUM = "weighted_sum"
    SUM_OVER_BATCH_SIZE = "weighted_sum_over_batch_size"
    MEAN = "weighted_mean"
    SUM_BY_NONZERO_WEIGHTS = "weighted_sum_by_nonzero_weights"
    SUM_OVER_NONZERO_WEIGHTS = SUM_BY_NONZERO_WEIGHTS

    @classmethod
    def all(cls) -> tuple:
        return (cls.NONE, cls.SUM, cls.MEAN, cls.SUM_OVER_BATCH_SIZE, cls.SUM_BY_NONZERO_WEIGHTS)

    @classmethod
    def validate(cls, key: str) -> None:
        if key not in cls.all():
            raise ValueError(f"Invalid Reduction Key {key!r}; use one of {cls.all()}")


def _float(x: Any, like: Tensor | None = None) -> Tensor:
    x = _ops.convert_to_tensor(x) if isinstance(x, Tensor) or like is None else \
        _ops.constant(x, like.dtype)
    return x if x.dtype.is_floating else _ops.cast(x, _dt.float32)


def compute_weighted_loss(losses: Any, weights: Any = 1.0, scope: Any = None,
                          loss_collection: Any = GraphKeys.LOSSES,
                          reduction: str = Reduction.SUM_BY_NONZERO_WEIGHTS) -> Tensor:
    """``losses * weights`` (weights broadcast to the losses), reduced: NONE keeps them, SUM
    adds them, MEAN divides by the sum of the weights, SUM_OVER_BATCH_SIZE by the number of
    losses, SUM_BY_NONZERO_WEIGHTS (the default) by the number of non-zero weights; a zero
    denominator gives 0."""
    Reduction.validate(reduction)
    with get_default_graph().name_scope(scope or "weighted_loss"):
        losses = _float(losses)
        weights = _float(weights, losses)
        if weights.dtype != losses.dtype:
            weights = _ops.cast(weights, losses.dtype)
        weights = weights * _ops.ones_like(losses)  # broadcast to the losses' shape
        weighted = losses * weights
        if reduction == Reduction.NONE:
            loss = weighted
        else:
            total = _ops.reduce_sum(weighted)
            if reduction == Reduction.SUM:
                loss = total
            elif reduction == Reduction.MEAN:
                loss = _ops.div_no_nan(total, _ops.reduce_sum(weights))
            elif reduction == Reduction.SUM_OVER_BATCH_SIZE:
                loss = _ops.div_no_nan(total, _ops.cast(_ops.size(losses), losses.dtype))
            else:
                nonzero = _ops.reduce_sum(_ops.cast(_ops.not_equal(weights, 0.0), losses.dtype))
                loss = _ops.div_no_nan(total, nonzero)
        if loss_collection:
            get_default_graph().add_to_collection(loss_collection, loss)
        return loss


def _labels_like(labels: Any, predictions: Tensor) -> Tensor:
    labels = _ops.convert_to_tensor(labels)
    return labels if labels.dtype == predictions.dtype else _ops.cast(labels, predictions.dtype)


def _reduce(losses: Tensor, weights: Any, scope: Any, default: str, loss_collection: Any,
            reduction: str) -> Tensor:
    return compute_weighted_loss(losses, weights, scope or default, loss_collection, reduction)


def mean_squared_error(labels: Any, predictions: Any, weights: Any = 1.0, scope: Any = None,
                       loss_collection: Any = GraphKeys.LOSSES,
                       reduction: str = Reduction.SUM_BY_NONZERO_WEIGHTS) -> Tensor:
    predictions = _float(predictions)
    diff = _ops.squared_difference(predictions, _labels_like(labels, predictions))
    return _reduce(diff, weights, scope, "mean_squared_error", loss_collection, reduction)


def absolute_difference(labels: Any, predictions: Any, weights: Any = 1.0, scope: Any = None,
                        loss_collection: Any = GraphKeys.LOSSES,
                        reduction: str = Reduction.SUM_BY_NONZERO_WEIGHTS) -> Tensor:
    predictions = _float(predictions)
    diff = _ops.abs(predictions - _labels_like(labels, predictions))
    return _reduce(diff, weights, scope, "absolute_difference", loss_collection, reduction)


def log_loss(labels: Any, predictions: Any, weights: Any = 1.0, epsilon: float = 1e-7,
             scope: Any = None, loss_collection: Any = GraphKeys.LOSSES,
             reduction: str = Reduction.SUM_BY_NONZERO_WEIGHTS) -> Tensor:
    """-labels * log(p + eps) - (1 - labels) * log(1 - p + eps)."""
    p = _float(predictions)
    y = _labels_like(labels, p)
    losses = -y * _ops.log(p + epsilon) - (1.0 - y) * _ops.log(1.0 - p + epsilon)
    return _reduce(losses, weights, scope, "log_loss", loss_collection, reduction)


def hinge_loss(labels: Any, logits: Any, weights: Any = 1.0, scope: Any = None,
               loss_collection: Any = GraphKeys.LOSSES,
               reduction: str = Reduction.SUM_BY_NONZERO_WEIGHTS) -> Tensor:
    """relu(1 - (2 * labels - 1) * logits), labels in {0, 1}."""
    logits = _float(logits)
    signs = 2.0 * _labels_like(labels, logits) - 1.0
    losses = _nn.relu(1.0 - signs * logits)
    return _reduce(losses, weights, scope, "hinge_loss", loss_collection, reduction)


def huber_loss(labels: Any, predictions: Any, weights: Any = 1.0, delta: float = 1.0,
               scope: Any = None, loss_collection: Any = GraphKeys.LOSSES,
               reduction: str = Reduction.SUM_BY_NONZERO_WEIGHTS) -> Tensor:
    """0.5 * e^2 where |e| <= delta, else delta * (|e| - 0.5 * delta)."""
    predictions = _float(predictions)
    error = _ops.abs(predictions - _labels_like(labels, predictions))
    quadratic = _ops.minimum(error, delta)
    losses = 0.5 * quadratic * quadratic + delta * (error - quadratic)
    return _reduce(losses, weights, scope, "huber_loss", loss_collection, reduction)


def cosine_distance(labels: Any, predictions: Any, axis: int | None = None, weights: Any = 1.0,
                    scope: Any = None, loss_collection: Any = GraphKeys.LOSSES,
                    reduction: str = Reduction.SUM_BY_NONZERO_WEIGHTS, dim: Any = None
                    ) -> Tensor:
    """1 - sum(labels * predictions, axis) for unit-normalized labels and predictions."""
    axis = axis if axis is not None else dim
    if axis is None:
        raise ValueError("cosine_distance needs axis")
    predictions = _float(predictions)
    losses = 1.0 - _ops.reduce_sum(_labels_like(labels, predictions) * predictions, axis=axis,
                                   keepdims=True)
    return _reduce(losses, weights, scope, "cosine_distance_loss", loss_collection, reduction)


def sigmoid_cross_entropy(multi_class_labels: Any, logits: Any, weights: Any = 1.0,
                          label_smoothing: float = 0, scope: Any = None,
                          loss_collection: Any = GraphKeys.LOSSES,
                          reduction: str = Reduction.SUM_BY_NONZERO_WEIGHTS) -> Tensor:
    """Sigmoid cross entropy; label_smoothing moves labels to y * (1 - s) + s / 2."""
    logits = _float(logits)
    y = _labels_like(multi_class_labels, logits)
    if label_smoothing:
        y = y * (1.0 - label_smoothing) + 0.5 * label_smoothing
    losses = _nn.sigmoid_cross_entropy_with_logits(labels=y, logits=logits)
    return _reduce(losses, weights, scope, "sigmoid_cross_entropy_loss", loss_collection,
                   reduction)


def softmax_cross_entropy(onehot_labels: Any, logits: Any, weights: Any = 1.0,
                          label_smoothing: float = 0, scope: Any = None,
                          loss_collection: Any = GraphKeys.LOSSES,
                          reduction: str = Reduction.SUM_BY_NONZERO_WEIGHTS) -> Tensor:
    """Softmax cross entropy per example; label_smoothing moves the one-hot labels to
    y * (1 - s) + s / num_classes."""
    logits = _float(logits)
    y = _labels_like(onehot_labels, logits)
    if label_smoothing:
        num_classes = logits.shape.as_list()[-1]
        y = y * (1.0 - label_smoothing) + label_smoothing / num_classes
    losses = _nn.softmax_cross_entropy_with_logits_v2(labels=y, logits=logits)
    return _reduce(losses, weights, scope, "softmax_cross_entropy_loss", loss_collection,
                   reduction)


def sparse_softmax_cross_entropy(labels: Any, logits: Any, weights: Any = 1.0,
                                 scope: Any = None, loss_collection: Any = GraphKeys.LOSSES,
                                 reduction: str = Reduction.SUM_BY_NONZERO_WEIGHTS) -> Tensor:
    losses = _nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=_float(logits))
    return _reduce(losses, weights, scope, "sparse_softmax_cross_entropy_loss", loss_collection,
                   reduction)


def add_loss(loss: Any, loss_collection: Any = GraphKeys.LOSSES) -> None:
    if loss_collection:
        get_default_graph().add_to_collection(loss_collection, loss)


def get_losses(scope: Any = None, loss_collection: Any = GraphKeys.LOSSES) -> list:
    return get_default_graph().get_collection(loss_collection, scope)


def get_regularization_losses(scope: Any = None) -> list:
    return get_default_graph().get_collection(GraphKeys.REGULARIZATION_LOSSES, scope)


def get_regularization_loss(scope: Any = None, name: str = "total_regularization_loss"
                            ) -> Tensor:
    losses = get_regularization_losses(scope)
    return _ops.add_n(losses, name=name) if losses else _ops.constant(0.0, name=name)


def get_total_loss(add_regularization_losses: bool = True, name: str = "total_loss",
                   scope: Any = None) -> Tensor:
    losses = get_losses(scope) + (get_regularization_losses(scope)
                                  if add_regularization_losses else [])
    if not losses:
        raise ValueError("No losses found: tf.losses.* functions (or add_loss) add to the "
                         "LOSSES collection")
    return _ops.add_n(losses, name=name)


def __getattr__(name: str):
    from .unsupported import missing
    raise missing(__name__, name)
