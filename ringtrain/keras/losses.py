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


class Reduction:
    """How a Loss object turns per-sample losses into its result (``tf.keras.losses.Reduction``).

    AUTO and SUM_OVER_BATCH_SIZE: the mean over the batch; SUM: the sum; NONE: per-sample.
    """

    AUTO = "auto"
    NONE = "none"
    SUM = "sum"
    SUM_OVER_BATCH_SIZE = "sum_over_batch_size"

    @classmethod
    def all(cls) -> tuple[str, ...]:
        return (cls.AUTO, cls.NONE, cls.SUM, cls.SUM_OVER_BATCH_SIZE)

    @classmethod
    def validate(cls, key: str) -> None:
        if key not in cls.all():
            raise ValueError(f'Invalid Reduction Key: {key}. Expected keys are "{cls.all()}"')


class Loss:
    """A loss object: ``call(y_true, y_pred)`` gives per-sample values, ``__call__`` reduces
    them as ``reduction`` says. Subclass it and define ``call``, or wrap a function."""

    def __init__(self, fn: Callable | None = None, name: str | None = None,
                 reduction: str = Reduction.AUTO, **kwargs: Any):
        if isinstance(fn, str) and fn in Reduction.all():  # Keras's Loss(reduction, name)
            fn, reduction = None, fn
        Reduction.validate(reduction)
        self.fn = fn
        self.name = name or (getattr(fn, "__name__", None) if fn else None) or \
            backend.snake_case(type(self).__name__)
        self.reduction = reduction
        self._kwargs = kwargs

    def call(self, y_true: Any, y_pred: Any) -> Any:
        if self.fn is None:
            raise NotImplementedError(f"{type(self).__name__} must define call(y_true, y_pred)")
        return self.fn(y_true, y_pred, **self._kwargs)

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        y_pred = core.convert_to_tensor(y_pred)  # NumPy data too (TensorFlow 2 allows it)
        y_true = core.convert_to_tensor(y_true)
        per = self.call(y_true, y_pred)
        if sample_weight is not None:
            per = per * sample_weight
        return self.reduce(per)

    def reduce(self, per_sample: Any) -> Any:
        """The per-sample losses reduced as ``reduction`` says (a scalar passes through)."""
        if self.reduction == Reduction.NONE or per_sample.shape.ndims == 0:
            return per_sample
        if self.reduction == Reduction.SUM:
            return core.reduce_sum(per_sample)
        return core.reduce_mean(per_sample)

    def get_config(self) -> dict:
        return {"name": self.name, "reduction": self.reduction, **self._kwargs}


class SparseCategoricalCrossentropy(Loss):
    def __init__(self, from_logits: bool = False, reduction: str = Reduction.AUTO,
                 name: str = "sparse_categorical_crossentropy", **kwargs: Any):
        super().__init__(sparse_categorical_crossentropy, name, reduction,
                         from_logits=from_logits)


class CategoricalCrossentropy(Loss):
    def __init__(self, from_logits: bool = False, reduction: str = Reduction.AUTO,
                 name: str = "categorical_crossentropy", **kwargs: Any):
        super().__init__(categorical_crossentropy, name, reduction, from_logits=from_logits)


class BinaryCrossentropy(Loss):
    def __init__(self, from_logits: bool = False, reduction: str = Reduction.AUTO,
                 name: str = "binary_crossentropy", **kwargs: Any):
        super().__init__(binary_crossentropy, name, reduction, from_logits=from_logits)


class MeanSquaredError(Loss):
    def __init__(self, reduction: str = Reduction.AUTO, name: str = "mean_squared_error",
                 **kwargs: Any):
        super().__init__(mean_squared_error, name, reduction)


class MeanAbsoluteError(Loss):
    def __init__(self, reduction: str = Reduction.AUTO, name: str = "mean_absolute_error",
                 **kwargs: Any):
        super().__init__(mean_absolute_error, name, reduction)


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
