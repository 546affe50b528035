"""tf.keras.losses: per-sample loss functions on core tensors; Loss classes that average them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import core
from . import activations, backend
from .registry import resolve


def _rank(x: Any) -> int | None:
    return x.shape.ndims


def _align_labels(y_true: Any, y_pred: Any) -> Any:
    """Labels of shape (batch,) against predictions of shape (batch, 1) get the missing axis,
    as Keras does; labels are cast to the predictions' dtype."""
    if y_true.dtype != y_pred.dtype:
        y_true = core.cast(y_true, y_pred.dtype)
    rt, rp = _rank(y_true), _rank(y_pred)
    if rt is not None and rp is not None:
        if rt == rp - 1:
            y_true = core.expand_dims(y_true, -1)
        elif rt == rp + 1 and y_true.shape[-1] == 1:
            y_true = core.squeeze(y_true, [-1])
    return y_true


def _clip(p: Any) -> Any:
    eps = backend.epsilon()
    return core.clip_by_value(p, eps, 1.0 - eps)


def sparse_categorical_crossentropy(y_true: Any, y_pred: Any, from_logits: bool = False
                                    ) -> Any:
    """Cross-entropy of integer class labels against class probabilities (or logits)."""
    labels = y_true
    if not labels.dtype.is_integer:
        labels = core.cast(labels, core.int64)
    if _rank(labels) is None or _rank(labels) != 1:
        labels = core.reshape(labels, [-1])
    logits = y_pred if from_logits else activations.logits_of(y_pred, "softmax")
    if logits is not None:
        return core.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    depth = y_pred.shape[-1]
    if depth is None:
        raise ValueError("sparse_categorical_crossentropy needs the number of classes (the "
                         "last dimension of the predictions) to be known")
    probs = y_pred / core.reduce_sum(y_pred, axis=-1, keepdims=True)
    onehot = core.one_hot(labels, depth, dtype=y_pred.dtype)
    return -core.reduce_sum(onehot * core.log(_clip(probs)), axis=-1)


def categorical_crossentropy(y_true: Any, y_pred: Any, from_logits: bool = False) -> Any:
    """Cross-entropy of one-hot (or soft) labels against class probabilities (or logits)."""
    y_true = _align_labels(y_true, y_pred)
    logits = y_pred if from_logits else activations.logits_of(y_pred, "softmax")
    if logits is not None:
        return core.nn.softmax_cross_entropy_with_logits(labels=y_true, logits=logits)
    probs = y_pred / core.reduce_sum(y_pred, axis=-1, keepdims=True)
    return -core.reduce_sum(y_true * core.log(_clip(probs)), axis=-1)


def binary_crossentropy(y_true: Any, y_pred: Any, from_logits: bool = False) -> Any:
    """Mean over the last axis of the binary cross-entropy of 0/1 labels and probabilities."""
    y_true = _align_labels(y_true, y_pred)
    logits = y_pred if from_logits else activations.logits_of(y_pred, "sigmoid")
    if logits is not None:
        per = core.nn.sigmoid_cross_entropy_with_logits(labels=y_true, logits=logits)
    else:
        p = _clip(y_pred)
        per = -(y_true * core.log(p) + (1.0 - y_true) * core.log(1.0 - p))
    return core.reduce_mean(per, axis=-1)


def mean_squared_error(y_true: Any, y_pred: Any) -> Any:
    y_true = _align_labels(y_true, y_pred)
    return core.reduce_mean(core.square(y_pred - y_true), axis=-1)


def mean_absolute_error(y_true: Any, y_pred: Any) -> Any:
    y_true = _align_labels(y_true, y_pred)
    return core.reduce_mean(core.abs(y_pred - y_true), axis=-1)


mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error


class Loss:
    """A loss object: ``call(y_true, y_pred)`` gives per-sample values, ``__call__`` their mean."""

    def __init__(self, fn: Callable, name: str, **kwargs: Any):
        self.fn = fn
        self.name = name
        self._kwargs = kwargs

    def call(self, y_true: Any, y_pred: Any) -> Any:
        return self.fn(y_true, y_pred, **self._kwargs)

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        per = self.call(y_true, y_pred)
        if sample_weight is not None:
            per = per * sample_weight
        return core.reduce_mean(per)

    def get_config(self) -> dict:
        return {"name": self.name, **self._kwargs}


class SparseCategoricalCrossentropy(Loss):
    def __init__(self, from_logits: bool = False, name: str = "sparse_categorical_crossentropy",
                 **kwargs: Any):
        super().__init__(sparse_categorical_crossentropy, name, from_logits=from_logits)


class CategoricalCrossentropy(Loss):
    def __init__(self, from_logits: bool = False, name: str = "categorical_crossentropy",
                 **kwargs: Any):
        super().__init__(categorical_crossentropy, name, from_logits=from_logits)


class BinaryCrossentropy(Loss):
    def __init__(self, from_logits: bool = False, name: str = "binary_crossentropy",
                 **kwargs: Any):
        super().__init__(binary_crossentropy, name, from_logits=from_logits)


class MeanSquaredError(Loss):
    def __init__(self, name: str = "mean_squared_error", **kwargs: Any):
        super().__init__(mean_squared_error, name)


class MeanAbsoluteError(Loss):
    def __init__(self, name: str = "mean_absolute_error", **kwargs: Any):
        super().__init__(mean_absolute_error, name)


_BY_NAME: dict[str, Callable[[], Loss]] = {
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "binary_crossentropy": BinaryCrossentropy,
    "mse": MeanSquaredError, "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError, "mean_absolute_error": MeanAbsoluteError,
}


def get(identifier: Any) -> Loss:
    """A Loss from a name, a Loss object, or a function ``f(y_true, y_pred) -> per-sample``."""
    return resolve(identifier, "loss", _BY_NAME, base=Loss,
                   adapt=lambda f: Loss(f, getattr(f, "__name__", "loss")) if callable(f)
                   else None)
