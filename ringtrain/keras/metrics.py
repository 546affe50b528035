"""tf.keras.metrics: per-sample metric functions on core tensors; fit averages them per epoch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import core
from . import losses
from .registry import resolve


def sparse_categorical_accuracy(y_true: Any, y_pred: Any) -> Any:
    labels = core.reshape(y_true, [-1])
    predicted = core.argmax(y_pred, axis=-1)
    return core.cast(core.equal(core.cast(labels, core.int64), core.cast(predicted, core.int64)),
                     y_pred.dtype)


def categorical_accuracy(y_true: Any, y_pred: Any) -> Any:
    return core.cast(core.equal(core.argmax(y_true, axis=-1), core.argmax(y_pred, axis=-1)),
                     y_pred.dtype)


def binary_accuracy(y_true: Any, y_pred: Any, threshold: float = 0.5) -> Any:
    y_true = losses._align_labels(y_true, y_pred)
    predicted = core.cast(core.greater(y_pred, threshold), y_pred.dtype)
    return core.reduce_mean(core.cast(core.equal(y_true, predicted), y_pred.dtype), axis=-1)


class Metric:
    """A named per-sample metric ``fn(y_true, y_pred)``; fit and evaluate report its mean."""

    def __init__(self, fn: Callable | None = None, name: str | None = None, **kwargs: Any):
        self.fn = fn
        self.name = name or getattr(fn, "__name__", "metric")
        self._kwargs = kwargs

    def call(self, y_true: Any, y_pred: Any) -> Any:
        if self.fn is None:
            raise NotImplementedError(f"metric {self.name!r} has no function")
        return self.fn(y_true, y_pred, **self._kwargs)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name}>"


class SparseCategoricalAccuracy(Metric):
    def __init__(self, name: str = "sparse_categorical_accuracy", **kwargs: Any):
        super().__init__(sparse_categorical_accuracy, name)


class CategoricalAccuracy(Metric):
    def __init__(self, name: str = "categorical_accuracy", **kwargs: Any):
        super().__init__(categorical_accuracy, name)


class BinaryAccuracy(Metric):
    def __init__(self, name: str = "binary_accuracy", threshold: float = 0.5, **kwargs: Any):
        super().__init__(binary_accuracy, name, threshold=threshold)


class MeanSquaredError(Metric):
    def __init__(self, name: str = "mean_squared_error", **kwargs: Any):
        super().__init__(losses.mean_squared_error, name)


class MeanAbsoluteError(Metric):
    def __init__(self, name: str = "mean_absolute_error", **kwargs: Any):
        super().__init__(losses.mean_absolute_error, name)


_BY_NAME: dict[str, Callable[..., Metric]] = {
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "categorical_accuracy": CategoricalAccuracy,
    "binary_accuracy": BinaryAccuracy,
    "mse": MeanSquaredError, "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError, "mean_absolute_error": MeanAbsoluteError,
    "sparse_categorical_crossentropy": lambda name: Metric(
        losses.sparse_categorical_crossentropy, name),
    "categorical_crossentropy": lambda name: Metric(losses.categorical_crossentropy, name),
    "binary_crossentropy": lambda name: Metric(losses.binary_crossentropy, name),
}


def get(identifier: Any, loss: Any = None, output_shape: tuple | None = None) -> Metric:
    """A Metric from a name, a Metric, or a function.

    'accuracy'/'acc' picks the accuracy that fits the loss, as Keras does: sparse categorical
    for sparse_categorical_crossentropy, categorical for categorical_crossentropy, binary for
    binary_crossentropy or a one-unit output.
    """
    if isinstance(identifier, str) and identifier.lower() in ("accuracy", "acc"):
        return Metric(_accuracy_for(loss, output_shape), identifier)
    return resolve(identifier, "metric", _BY_NAME, base=Metric,
                   make=lambda make_metric, name: make_metric(name=name),
                   adapt=lambda f: Metric(f, getattr(f, "__name__", "metric")) if callable(f)
                   else None)


def _accuracy_for(loss: Any, output_shape: tuple | None) -> Callable:
    fn = losses.get(loss).fn if loss is not None else None
    if fn is losses.sparse_categorical_crossentropy:
        return sparse_categorical_accuracy
    if fn is losses.binary_crossentropy or (fn is not losses.categorical_crossentropy
                                            and output_shape and output_shape[-1] == 1):
        return binary_accuracy
    return categorical_accuracy
