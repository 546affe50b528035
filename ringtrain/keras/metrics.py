"""tf.keras.metrics: per-sample metric functions on core tensors (fit averages them per epoch),
and the stateful metric classes (update_state / result / reset_states)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import core
from . import backend, losses
from .registry import resolve


def sparse_categorical_accuracy(y_true: Any, y_pred: Any) -> Any:
    labels = core.reshape(y_true, [-1])
    predicted = core.argmax(y_pred, axis=-1)
    return core.cast(core.equal(core.cast(labels, core.int64), core.cast(predicted, core.int64)),
                     y_pred.dtype)


def categorical_accuracy(y_true: Any, y_pred: Any) -> Any:
    return core.cast(core.equal(core.argmax(y_true, axis=-1), core.argmax(y_pred, axis=-1)),
                     y_pred.dtype)


def accuracy(y_true: Any, y_pred: Any) -> Any:
    y_true = losses._align_labels(y_true, y_pred)
    return core.cast(core.equal(y_true, y_pred), backend.floatx())


def binary_accuracy(y_true: Any, y_pred: Any, threshold: float = 0.5) -> Any:
    y_true = losses._align_labels(y_true, y_pred)
    predicted = core.cast(core.greater(y_pred, threshold), y_pred.dtype)
    return core.reduce_mean(core.cast(core.equal(y_true, predicted), y_pred.dtype), axis=-1)


class MetricResult(float):
    """A metric's ``result()``: a float that also answers ``.numpy()`` as Keras's does."""

    def numpy(self) -> np.float32:
        return np.float32(self)


def _runs_in_traced_graphs(update: Callable) -> Callable:
    """``update_state`` called on the tensors of a tf.function being traced becomes a py_func
    op of its graph: the update then runs on the values every time the function runs (the
    metric's state stays in Python)."""

    @functools.wraps(update)
    def wrapper(self, *args: Any, **kwargs: Any) -> Any:
        names = list(kwargs)
        values = [*args, *(kwargs[k] for k in names)]
        traced = [isinstance(v, core.Tensor) and v.graph._variable_home is not v.graph
                  for v in values]
        if not any(traced):
            return update(self, *args, **kwargs)

        def run(*arrays: Any) -> np.int32:
            given = iter(arrays)
            filled = [next(given) if t else v for v, t in zip(values, traced)]
            update(self, *filled[:len(args)], **dict(zip(names, filled[len(args):])))
            return np.int32(0)

        return core.py_func(run, [v for v, t in zip(values, traced) if t], core.int32,
                            name=f"{self.name}_update_state")

    return wrapper


class Metric:
    """A Keras metric, used two ways.

    In ``compile(metrics=[...])``: ``call(y_true, y_pred)`` gives per-sample values as core
    ops, and fit/evaluate report their mean over the epoch.

    Standalone (custom training loops), as a stateful metric: ``update_state(...)`` (or calling
    the metric) accumulates NumPy values (or values a Session returned, or eager tensors; inside
    a tf.function, each run of the function), ``result()`` gives the value so far and
    ``reset_states()`` starts over. Metrics of a function ``fn(y_true,
    y_pred)`` average its per-sample values, weighted by ``sample_weight``.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "update_state" in cls.__dict__:
            cls.update_state = _runs_in_traced_graphs(cls.__dict__["update_state"])

    def __init__(self, fn: Callable | None = None, name: str | None = None, dtype: Any = None,
                 **kwargs: Any):
        self.fn = fn
        self.name = name or getattr(fn, "__name__", None) or \
            backend.snake_case(type(self).__name__)
        self.dtype = dtype or backend.floatx()
        self._kwargs = kwargs
        self._graphs: dict = {}
        self.reset_states()

    def call(self, y_true: Any, y_pred: Any) -> Any:
        if self.fn is None:
            raise NotImplementedError(f"metric {self.name!r} has no per-sample function; use "
                                      f"it with update_state/result")
        return self.fn(y_true, y_pred, **self._kwargs)

    # -- the stateful API --
    def reset_states(self) -> None:
        self.total = 0.0
        self.count = 0.0

    reset_state = reset_states

    @_runs_in_traced_graphs
    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        values = self._per_sample(_numpy(y_true), _numpy(y_pred))
        self._accumulate(values, sample_weight)

    def _accumulate(self, values: Any, sample_weight: Any) -> None:
        values = np.asarray(values, dtype=np.float64)
        weights = np.ones(()) if sample_weight is None else \
            np.asarray(_numpy(sample_weight), dtype=np.float64)
        while weights.ndim < values.ndim:  # per-sample weights over per-element values
            weights = weights[..., None]
        weights = np.broadcast_to(weights, values.shape)
        self.total += float(np.sum(values * weights))
        self.count += float(np.sum(weights))

    def result(self) -> MetricResult:
        return MetricResult(self.total / self.count if self.count else 0.0)

    def __call__(self, *args: Any, **kwargs: Any) -> MetricResult:
        self.update_state(*args, **kwargs)
        return self.result()

    def _per_sample(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        """``call`` on NumPy arrays, through a small graph cached per shapes and dtypes."""
        key = (y_true.shape[1:], y_true.dtype.str, y_pred.shape[1:], y_pred.dtype.str)
        entry = self._graphs.get(key)
        if entry is None:
            graph = core.Graph()
            with graph.as_default():
                true_ph = core.placeholder(y_true.dtype, shape=(None, *y_true.shape[1:]))
                pred_ph = core.placeholder(y_pred.dtype, shape=(None, *y_pred.shape[1:]))
                out = self.call(true_ph, pred_ph)
            entry = self._graphs[key] = (true_ph, pred_ph, out)
        true_ph, pred_ph, out = entry
        return backend.get_session(out.graph).run(out, {true_ph: y_true, pred_ph: y_pred})

    def get_config(self) -> dict:
        return {"name": self.name, "dtype": self.dtype}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name}>"


def _numpy(value: Any) -> np.ndarray:
    if hasattr(value, "numpy") and callable(value.numpy):
        value = value.numpy()
    if isinstance(value, core.Tensor):
        raise TypeError("a stateful metric takes values (NumPy, or what Session.run returned), "
                        "not graph tensors: run the tensors first, then update_state(...)")
    return np.asarray(value)


MeanMetricWrapper = Metric


class Mean(Metric):
    """The (weighted) mean of every value given to ``update_state``."""

    def __init__(self, name: str = "mean", dtype: Any = None):
        super().__init__(None, name, dtype)

    def update_state(self, values: Any, sample_weight: Any = None) -> None:
        self._accumulate(_numpy(values), sample_weight)


class Sum(Mean):
    def __init__(self, name: str = "sum", dtype: Any = None):
        super().__init__(name, dtype)

    def result(self) -> MetricResult:
        return MetricResult(self.total)


class Accuracy(Metric):
    """How often predictions equal labels (exactly)."""

    def __init__(self, name: str = "accuracy", dtype: Any = None):
        super().__init__(accuracy, name, dtype)


class SparseCategoricalAccuracy(Metric):
    def __init__(self, name: str = "sparse_categorical_accuracy", dtype: Any = None):
        super().__init__(sparse_categorical_accuracy, name, dtype)


class CategoricalAccuracy(Metric):
    def __init__(self, name: str = "categorical_accuracy", dtype: Any = None):
        super().__init__(categorical_accuracy, name, dtype)


class BinaryAccuracy(Metric):
    def __init__(self, name: str = "binary_accuracy", dtype: Any = None,
                 threshold: float = 0.5):
        super().__init__(binary_accuracy, name, dtype, threshold=threshold)


class MeanSquaredError(Metric):
    def __init__(self, name: str = "mean_squared_error", dtype: Any = None):
        super().__init__(losses.mean_squared_error, name, dtype)


class MeanAbsoluteError(Metric):
    def __init__(self, name: str = "mean_absolute_error", dtype: Any = None):
        super().__init__(losses.mean_absolute_error, name, dtype)


class RootMeanSquaredError(Metric):
    def __init__(self, name: str = "root_mean_squared_error", dtype: Any = None):
        super().__init__(losses.mean_squared_error, name, dtype)

    def result(self) -> MetricResult:
        return MetricResult(np.sqrt(super().result()))


class SparseCategoricalCrossentropy(Metric):
    def __init__(self, name: str = "sparse_categorical_crossentropy", dtype: Any = None,
                 from_logits: bool = False):
        super().__init__(losses.sparse_categorical_crossentropy, name, dtype,
                         from_logits=from_logits)


class CategoricalCrossentropy(Metric):
    def __init__(self, name: str = "categorical_crossentropy", dtype: Any = None,
                 from_logits: bool = False):
        super().__init__(losses.categorical_crossentropy, name, dtype, from_logits=from_logits)


class BinaryCrossentropy(Metric):
    def __init__(self, name: str = "binary_crossentropy", dtype: Any = None,
                 from_logits: bool = False):
        super().__init__(losses.binary_crossentropy, name, dtype, from_logits=from_logits)


class _Confusion(Metric):
    """Counts of true/false positives of ``y_pred > threshold`` against 0/1 labels."""

    def __init__(self, name: str, thresholds: float | None = None, dtype: Any = None):
        self.threshold = 0.5 if thresholds is None else float(thresholds)
        super().__init__(None, name, dtype)

    def reset_states(self) -> None:
        self.true_positives = self.false_positives = self.false_negatives = 0.0

    reset_state = reset_states

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        truth = _numpy(y_true).astype(bool).reshape(-1)
        predicted = (_numpy(y_pred) > self.threshold).reshape(-1)
        weight = np.ones(truth.shape) if sample_weight is None else \
            np.broadcast_to(np.asarray(_numpy(sample_weight), np.float64).reshape(-1),
                            truth.shape)
        self.true_positives += float(np.sum(weight * (truth & predicted)))
        self.false_positives += float(np.sum(weight * (~truth & predicted)))
        self.false_negatives += float(np.sum(weight * (truth & ~predicted)))


class Precision(_Confusion):
    def __init__(self, thresholds: float | None = None, name: str = "precision",
                 dtype: Any = None, **kwargs: Any):
        super().__init__(name, thresholds, dtype)

    def result(self) -> MetricResult:
        seen = self.true_positives + self.false_positives
        return MetricResult(self.true_positives / seen if seen else 0.0)


class Recall(_Confusion):
    def __init__(self, thresholds: float | None = None, name: str = "recall",
                 dtype: Any = None, **kwargs: Any):
        super().__init__(name, thresholds, dtype)

    def result(self) -> MetricResult:
        actual = self.true_positives + self.false_negatives
        return MetricResult(self.true_positives / actual if actual else 0.0)


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
