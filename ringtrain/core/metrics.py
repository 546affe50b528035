"""``tf.metrics``: streaming metrics as TensorFlow 1 builds them.

Each metric returns ``(value, update_op)``: running ``update_op`` adds a batch into local
variables (collections LOCAL_VARIABLES and METRIC_VARIABLES, reset by
``tf.local_variables_initializer()``) and returns the metric so far; ``value`` reads it without
updating. Formulas follow TensorFlow 1.15's documentation (weights broadcast to the values, 0
where a denominator is 0, AUC by the trapezoidal rule over ``num_thresholds`` thresholds).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import dtypes as _dt
from . import ops as _ops
from .graph import GraphKeys, Tensor, get_default_graph
from .variables import Variable, variable_scope

__all__ = [
    "accuracy", "auc", "false_negatives", "false_negatives_at_thresholds", "false_positives",
    "false_positives_at_thresholds", "mean", "mean_absolute_error", "mean_cosine_distance", "mean_iou",
    "mean_per_class_accuracy",
    "mean_relative_error", "mean_squared_error", "mean_tensor", "percentage_below", "precision",
    "precision_at_thresholds", "recall", "recall_at_thresholds", "root_mean_squared_error",
    "true_negatives", "true_negatives_at_thresholds", "true_positives",
    "true_positives_at_thresholds",
]

_EPSILON = 1.0e-6  # added to AUC's numerators and denominators, as TensorFlow does
_THRESHOLD_EPSILON = 1e-7  # AUC's end thresholds: just below 0 and just above 1


# --- building blocks ---------------------------------------------------------------------------

def _local_variable(shape: list, name: str, dtype: Any = _dt.float32) -> Variable:
    return Variable(_ops.zeros(shape, dtype), trainable=False, name=name,
                    collections=[GraphKeys.LOCAL_VARIABLES, GraphKeys.METRIC_VARIABLES])


def _float(x: Any) -> Tensor:
    x = _ops.convert_to_tensor(x)
    return x if x.dtype == _dt.float32 else _ops.cast(x, _dt.float32)


def _broadcast_weights(weights: Any, values: Tensor) -> Tensor:
    """``weights`` (None: 1) as float32, broadcast to the shape of ``values``."""
    if weights is None:
        return _ops.ones_like(values)
    return _float(weights) * _ops.ones_like(values)


def _collect(value: Tensor, update: Tensor, metrics_collections: Any,
             updates_collections: Any) -> tuple[Tensor, Tensor]:
    g = get_default_graph()
    for key in metrics_collections or ():
        g.add_to_collection(key, value)
    for key in updates_collections or ():
        g.add_to_collection(key, update)
    return value, update


def _mean_of(values: Tensor, weights: Any) -> tuple[Tensor, Tensor]:
    """(value, update) of the running weighted mean of ``values`` over ``total``/``count``."""
    values = _float(values)
    total = _local_variable([], "total")
    count = _local_variable([], "count")
    w = _broadcast_weights(weights, values)
    update_total = total.assign_add(_ops.reduce_sum(values * w))
    update_count = count.assign_add(_ops.reduce_sum(w))
    value = _ops.div_no_nan(total.value(), count.value(), name="value")
    update = _ops.div_no_nan(update_total, update_count, name="update_op")
    return value, update


def _labels_and_predictions(labels: Any, predictions: Any) -> tuple[Tensor, Tensor]:
    predictions = _ops.convert_to_tensor(predictions)
    labels = _ops.convert_to_tensor(labels)
    if labels.dtype != predictions.dtype:
        labels = _ops.cast(labels, predictions.dtype)
    return labels, predictions


# --- means -------------------------------------------------------------------------------------

def mean(values: Any, weights: Any = None, metrics_collections: Any = None,
         updates_collections: Any = None, name: str | None = None) -> tuple[Tensor, Tensor]:
    """The running (weighted) mean of ``values``."""
    with variable_scope(name, default_name="mean"):
        return _collect(*_mean_of(values, weights), metrics_collections, updates_collections)


def mean_tensor(values: Any, weights: Any = None, metrics_collections: Any = None,
                updates_collections: Any = None, name: str | None = None
                ) -> tuple[Tensor, Tensor]:
    """The running elementwise (weighted) mean of ``values`` (a tensor of their shape)."""
    values = _float(values)
    if not values.shape.is_fully_defined():
        raise ValueError(f"mean_tensor needs values of a fully known shape, got {values.shape}")
    shape = values.shape.as_list()
    with variable_scope(name, default_name="mean"):
        total = _local_variable(shape, "total_tensor")
        count = _local_variable(shape, "count_tensor")
        w = _broadcast_weights(weights, values)
        update_total = total.assign_add(values * w)
        update_count = count.assign_add(w)
        value = _ops.div_no_nan(total.value(), count.value(), name="value")
        update = _ops.div_no_nan(update_total, update_count, name="update_op")
        return _collect(value, update, metrics_collections, updates_collections)


def accuracy(labels: Any, predictions: Any, weights: Any = None, metrics_collections: Any = None,
             updates_collections: Any = None, name: str | None = None) -> tuple[Tensor, Tensor]:
    """How often ``predictions`` equals ``labels``."""
    labels, predictions = _labels_and_predictions(labels, predictions)
    with variable_scope(name, default_name="accuracy"):
        correct = _ops.cast(_ops.equal(predictions, labels), _dt.float32)
        return _collect(*_mean_of(correct, weights), metrics_collections, updates_collections)


def mean_absolute_error(labels: Any, predictions: Any, weights: Any = None,
                        metrics_collections: Any = None, updates_collections: Any = None,
                        name: str | None = None) -> tuple[Tensor, Tensor]:
    labels, predictions = _labels_and_predictions(labels, predictions)
    with variable_scope(name, default_name="mean_absolute_error"):
        return _collect(*_mean_of(_ops.abs(predictions - labels), weights),
                        metrics_collections, updates_collections)


def mean_squared_error(labels: Any, predictions: Any, weights: Any = None,
                       metrics_collections: Any = None, updates_collections: Any = None,
                       name: str | None = None) -> tuple[Tensor, Tensor]:
    labels, predictions = _labels_and_predictions(labels, predictions)
    with variable_scope(name, default_name="mean_squared_error"):
        return _collect(*_mean_of(_ops.squared_difference(predictions, labels), weights),
                        metrics_collections, updates_collections)


def root_mean_squared_error(labels: Any, predictions: Any, weights: Any = None,
                            metrics_collections: Any = None, updates_collections: Any = None,
                            name: str | None = None) -> tuple[Tensor, Tensor]:
    labels, predictions = _labels_and_predictions(labels, predictions)
    with variable_scope(name, default_name="root_mean_squared_error"):
        value, update = _mean_of(_ops.squared_difference(predictions, labels), weights)
        return _collect(_ops.sqrt(value), _ops.sqrt(update), metrics_collections,
                        updates_collections)


def mean_relative_error(labels: Any, predictions: Any, normalizer: Any, weights: Any = None,
                        metrics_collections: Any = None, updates_collections: Any = None,
                        name: str | None = None) -> tuple[Tensor, Tensor]:
    """The mean of |predictions - labels| / normalizer (0 where the normalizer is 0)."""
    labels, predictions = _labels_and_predictions(labels, predictions)
    with variable_scope(name, default_name="mean_relative_error"):
        normalizer = _ops.cast(_ops.convert_to_tensor(normalizer), predictions.dtype)
        relative = _ops.div_no_nan(_ops.abs(predictions - labels), normalizer)
        return _collect(*_mean_of(relative, weights), metrics_collections, updates_collections)


def mean_cosine_distance(labels: Any, predictions: Any, dim: int, weights: Any = None,
                         metrics_collections: Any = None, updates_collections: Any = None,
                         name: str | None = None) -> tuple[Tensor, Tensor]:
    """The mean of 1 - sum(labels * predictions, dim) (both already unit-normalized)."""
    labels, predictions = _labels_and_predictions(labels, predictions)
    with variable_scope(name, default_name="mean_cosine_distance"):
        distance = 1.0 - _ops.reduce_sum(_float(labels * predictions), axis=dim, keepdims=True)
        return _collect(*_mean_of(distance, weights), metrics_collections, updates_collections)


def percentage_below(values: Any, threshold: float, weights: Any = None,
                     metrics_collections: Any = None, updates_collections: Any = None,
                     name: str | None = None) -> tuple[Tensor, Tensor]:
    """The (weighted) fraction of ``values`` strictly below ``threshold``."""
    values = _float(values)
    with variable_scope(name, default_name="percentage_below_threshold"):
        below = _ops.cast(_ops.less(values, threshold), _dt.float32)
        return _collect(*_mean_of(below, weights), metrics_collections, updates_collections)


# --- confusion counts --------------------------------------------------------------------------

def _count(condition: Tensor, weights: Any, name: str) -> tuple[Tensor, Tensor]:
    """(value, update) of a running weighted count of the true elements of ``condition``."""
    hits = _ops.cast(condition, _dt.float32)
    count = _local_variable([], name)
    update = count.assign_add(_ops.reduce_sum(hits * _broadcast_weights(weights, hits)))
    return _ops.identity(count.value(), name="value"), update


def _bool_pair(labels: Any, predictions: Any) -> tuple[Tensor, Tensor]:
    labels = _ops.convert_to_tensor(labels)
    predictions = _ops.convert_to_tensor(predictions)
    as_bool = (lambda t: t if t.dtype == _dt.bool_ else _ops.cast(t, _dt.bool_))
    return as_bool(labels), as_bool(predictions)


def _confusion_metric(kind: str):
    def metric(labels: Any, predictions: Any, weights: Any = None,
               metrics_collections: Any = None, updates_collections: Any = None,
               name: str | None = None) -> tuple[Tensor, Tensor]:
        labels, predictions = _bool_pair(labels, predictions)
        with variable_scope(name, default_name=kind):
            condition = _CONDITIONS[kind](labels, predictions)
            return _collect(*_count(condition, weights, "count"), metrics_collections,
                            updates_collections)
    metric.__name__ = kind
    metric.__doc__ = f"The running (weighted) number of {kind.replace('_', ' ')}."
    return metric


_CONDITIONS = {
    "true_positives": lambda lab, pred: _ops.logical_and(lab, pred),
    "false_positives": lambda lab, pred: _ops.logical_and(_ops.logical_not(lab), pred),
    "true_negatives": lambda lab, pred: _ops.logical_and(_ops.logical_not(lab),
                                                         _ops.logical_not(pred)),
    "false_negatives": lambda lab, pred: _ops.logical_and(lab, _ops.logical_not(pred)),
}
true_positives = _confusion_metric("true_positives")
false_positives = _confusion_metric("false_positives")
true_negatives = _confusion_metric("true_negatives")
false_negatives = _confusion_metric("false_negatives")


def _ratio(labels: Any, predictions: Any, weights: Any, other: str, default_name: str,
           metrics_collections: Any, updates_collections: Any, name: str | None
           ) -> tuple[Tensor, Tensor]:
    """tp / (tp + other) with other = false positives (precision) or negatives (recall)."""
    labels, predictions = _bool_pair(labels, predictions)
    with variable_scope(name, default_name=default_name):
        with variable_scope("true_positives"):
            tp, tp_update = _count(_CONDITIONS["true_positives"](labels, predictions), weights,
                                   "count")
        with variable_scope(other):
            o, o_update = _count(_CONDITIONS[other](labels, predictions), weights, "count")
        value = _ops.div_no_nan(tp, tp + o, name="value")
        update = _ops.div_no_nan(tp_update, tp_update + o_update, name="update_op")
        return _collect(value, update, metrics_collections, updates_collections)


def precision(labels: Any, predictions: Any, weights: Any = None, metrics_collections: Any = None,
              updates_collections: Any = None, name: str | None = None
              ) -> tuple[Tensor, Tensor]:
    """true_positives / (true_positives + false_positives); 0 while nothing is predicted."""
    return _ratio(labels, predictions, weights, "false_positives", "precision",
                  metrics_collections, updates_collections, name)


def recall(labels: Any, predictions: Any, weights: Any = None, metrics_collections: Any = None,
           updates_collections: Any = None, name: str | None = None) -> tuple[Tensor, Tensor]:
    """true_positives / (true_positives + false_negatives); 0 while there are no positives."""
    return _ratio(labels, predictions, weights, "false_negatives", "recall",
                  metrics_collections, updates_collections, name)


# --- per class ---------------------------------------------------------------------------------

def _flat_pair(labels: Any, predictions: Any) -> tuple[Tensor, Tensor]:
    labels, predictions = _ops.convert_to_tensor(labels), _ops.convert_to_tensor(predictions)
    return (_ops.cast(_ops.reshape(labels, [-1]), _dt.int64),
            _ops.cast(_ops.reshape(predictions, [-1]), _dt.int64))


def _flat_weights(weights: Any, labels: Tensor) -> Any:
    if weights is None:
        return None
    return _ops.reshape(_broadcast_weights(weights, _ops.cast(labels, _dt.float32)), [-1])


def mean_iou(labels: Any, predictions: Any, num_classes: int, weights: Any = None,
             metrics_collections: Any = None, updates_collections: Any = None,
             name: str | None = None) -> tuple[Tensor, Tensor]:
    """The mean over classes of intersection / union (tp / (tp + fp + fn)), classes that never
    occur left out; ``update_op`` returns the running confusion matrix, as in TensorFlow."""
    lab, pred = _flat_pair(labels, predictions)
    with variable_scope(name, default_name="mean_iou"):
        total = _local_variable([num_classes, num_classes], "total_confusion_matrix",
                                _dt.float64)
        batch = _ops.confusion_matrix(lab, pred, num_classes, _dt.float64,
                                      weights=_flat_weights(weights, labels))
        update = total.assign_add(batch)
        cm = total.value()
        rows, cols = _ops.reduce_sum(cm, 0), _ops.reduce_sum(cm, 1)
        diag = _ops.reduce_sum(cm * _ops.constant(np.eye(num_classes), _dt.float64), 1)
        union = rows + cols - diag
        valid = _ops.reduce_sum(_ops.cast(_ops.not_equal(union, 0.0), _dt.float64))
        iou = _ops.div_no_nan(diag, union)
        value = _ops.cast(_ops.div_no_nan(_ops.reduce_sum(iou), valid), _dt.float32,
                          name="mean_iou")
        return _collect(value, update, metrics_collections, updates_collections)


def mean_per_class_accuracy(labels: Any, predictions: Any, num_classes: int, weights: Any = None,
                            metrics_collections: Any = None, updates_collections: Any = None,
                            name: str | None = None) -> tuple[Tensor, Tensor]:
    """The mean over classes of each class's accuracy (its correct predictions over its
    examples); ``update_op`` returns the per-class accuracies."""
    lab, pred = _flat_pair(labels, predictions)
    with variable_scope(name, default_name="mean_accuracy"):
        total = _local_variable([num_classes], "total")
        count = _local_variable([num_classes], "count")
        w = _flat_weights(weights, labels)
        w = _ops.ones_like(_ops.cast(lab, _dt.float32)) if w is None else w
        one_hot = _ops.one_hot(lab, num_classes, dtype=_dt.float32) * _ops.reshape(w, [-1, 1])
        correct = _ops.cast(_ops.equal(lab, pred), _dt.float32)
        update_total = total.assign_add(_ops.reduce_sum(one_hot * _ops.reshape(correct, [-1, 1]),
                                                        0))
        update_count = count.assign_add(_ops.reduce_sum(one_hot, 0))
        value = _ops.reduce_mean(_ops.div_no_nan(total.value(), count.value()),
                                 name="mean_accuracy")
        update = _ops.div_no_nan(update_total, update_count, name="update_op")
        return _collect(value, update, metrics_collections, updates_collections)


# --- at thresholds -----------------------------------------------------------------------------

def _confusion_at_thresholds(labels: Any, predictions: Any, thresholds: list, weights: Any,
                             kinds: tuple) -> dict:
    """{kind: (value, update)} of per-threshold weighted counts; a prediction is positive at a
    threshold when it is strictly greater."""
    predictions = _float(predictions)
    labels = _ops.reshape(_ops.cast(_ops.convert_to_tensor(labels), _dt.bool_), [1, -1])
    flat = _ops.reshape(predictions, [1, -1])
    t = _ops.constant([[float(x)] for x in thresholds], _dt.float32)
    positive = _ops.greater(flat, t)  # [thresholds, n]
    w = _ops.reshape(_broadcast_weights(weights, predictions), [1, -1])
    out = {}
    for kind in kinds:
        condition = _CONDITIONS[kind](labels, positive)
        count = _local_variable([len(thresholds)], kind)
        update = count.assign_add(_ops.reduce_sum(_ops.cast(condition, _dt.float32) * w, axis=1))
        out[kind] = (count.value(), update)
    return out


def _at_thresholds_metric(kind: str):
    def metric(labels: Any, predictions: Any, thresholds: Any, weights: Any = None,
               metrics_collections: Any = None, updates_collections: Any = None,
               name: str | None = None) -> tuple[Tensor, Tensor]:
        with variable_scope(name, default_name=kind):
            value, update = _confusion_at_thresholds(labels, predictions, list(thresholds),
                                                     weights, (kind,))[kind]
            return _collect(value, update, metrics_collections, updates_collections)
    metric.__name__ = f"{kind}_at_thresholds"
    metric.__doc__ = f"The running (weighted) {kind.replace('_', ' ')} at each threshold."
    return metric


true_positives_at_thresholds = _at_thresholds_metric("true_positives")
false_positives_at_thresholds = _at_thresholds_metric("false_positives")
true_negatives_at_thresholds = _at_thresholds_metric("true_negatives")
false_negatives_at_thresholds = _at_thresholds_metric("false_negatives")


def _ratio_at_thresholds(labels, predictions, thresholds, weights, other, default_name,
                         metrics_collections, updates_collections, name):
    with variable_scope(name, default_name=default_name):
        c = _confusion_at_thresholds(labels, predictions, list(thresholds), weights,
                                     ("true_positives", other))
        (tp, tp_up), (o, o_up) = c["true_positives"], c[other]
        eps = _ops.constant(1e-7, _dt.float32)  # TensorFlow's epsilon for these ratios
        value = _ops.truediv(tp, eps + tp + o, name="value")
        update = _ops.truediv(tp_up, eps + tp_up + o_up, name="update_op")
        return _collect(value, update, metrics_collections, updates_collections)


def precision_at_thresholds(labels: Any, predictions: Any, thresholds: Any, weights: Any = None,
                            metrics_collections: Any = None, updates_collections: Any = None,
                            name: str | None = None) -> tuple[Tensor, Tensor]:
    """tp / (tp + fp + 1e-7) at each threshold."""
    return _ratio_at_thresholds(labels, predictions, thresholds, weights, "false_positives",
                                "precision_at_thresholds", metrics_collections,
                                updates_collections, name)


def recall_at_thresholds(labels: Any, predictions: Any, thresholds: Any, weights: Any = None,
                         metrics_collections: Any = None, updates_collections: Any = None,
                         name: str | None = None) -> tuple[Tensor, Tensor]:
    """tp / (tp + fn + 1e-7) at each threshold."""
    return _ratio_at_thresholds(labels, predictions, thresholds, weights, "false_negatives",
                                "recall_at_thresholds", metrics_collections,
                                updates_collections, name)


def auc(labels: Any, predictions: Any, weights: Any = None, num_thresholds: int = 200,
        metrics_collections: Any = None, updates_collections: Any = None, curve: str = "ROC",
        name: str | None = None, summation_method: str = "trapezoidal",
        thresholds: Any = None) -> tuple[Tensor, Tensor]:
    """The area under the ROC (or PR) curve, by a Riemann sum over thresholds.

    Predictions must lie in [0, 1]. The thresholds are ``num_thresholds`` evenly spaced values
    (the first just below 0, the last just above 1) unless given; recall is
    (tp + 1e-6) / (tp + fn + 1e-6), the false-positive rate fp / (fp + tn + 1e-6), precision
    (tp + 1e-6) / (tp + fp + 1e-6). 'trapezoidal' (and 'careful_interpolation' for ROC) uses
    the mean of neighbouring heights, 'minoring' the smaller, 'majoring' the larger.
    """
    if curve not in ("ROC", "PR"):
        raise ValueError(f"auc: curve must be 'ROC' or 'PR', got {curve!r}")
    methods = ("trapezoidal", "careful_interpolation", "minoring", "majoring")
    if summation_method not in methods:
        raise ValueError(f"auc: summation_method must be one of {methods}, got "
                         f"{summation_method!r}")
    if curve == "PR" and summation_method == "careful_interpolation":
        raise NotImplementedError("auc(curve='PR', summation_method='careful_interpolation') "
                                  "is not implemented by ringtrain; use summation_method="
                                  "'trapezoidal', or curve='ROC'")
    if thresholds is not None:
        points = [0.0 - _THRESHOLD_EPSILON] + sorted(float(x) for x in thresholds) + \
            [1.0 + _THRESHOLD_EPSILON]
    else:
        if num_thresholds < 2:
            raise ValueError(f"auc: num_thresholds must be > 1, got {num_thresholds}")
        points = [0.0 - _THRESHOLD_EPSILON] + \
            [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)] + \
            [1.0 + _THRESHOLD_EPSILON]
    n = len(points)
    with variable_scope(name, default_name="auc"):
        c = _confusion_at_thresholds(labels, predictions, points, weights,
                                     ("true_positives", "false_negatives", "true_negatives",
                                      "false_positives"))

        def area(tp, fn, tn, fp, op_name):
            eps = _ops.constant(_EPSILON, _dt.float32)
            rec = (tp + eps) / (tp + fn + eps)
            if curve == "ROC":
                x, y = fp / (fp + tn + eps), rec
            else:
                x, y = rec, (tp + eps) / (tp + fp + eps)
            width = x[:n - 1] - x[1:]
            if summation_method == "minoring":
                height = _ops.minimum(y[:n - 1], y[1:])
            elif summation_method == "majoring":
                height = _ops.maximum(y[:n - 1], y[1:])
            else:
                height = (y[:n - 1] + y[1:]) / 2.0
            return _ops.reduce_sum(width * height, name=op_name)

        kinds = ("true_positives", "false_negatives", "true_negatives", "false_positives")
        value = area(*(c[k][0] for k in kinds), "value")
        update = area(*(c[k][1] for k in kinds), "update_op")
        return _collect(value, update, metrics_collections, updates_collections)


def __getattr__(name: str):
    from .unsupported import missing
    raise missing(__name__, name)
