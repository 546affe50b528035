"""``tf.layers``: TensorFlow 1's layer functions and classes, thin over ringtrain's Keras layers.

The weights are TF1 variables made by ``tf.get_variable`` in the layer's variable scope, so they
are named as TensorFlow names them (``dense/kernel``, ``conv2d_1/bias``, ``model/fc/kernel``),
are global (and trainable) variables, take TF1 initializers, put ``kernel_regularizer``
penalties in ``tf.GraphKeys.REGULARIZATION_LOSSES``, and are shared through reuse:
``tf.layers.dense(x, 10, name="fc", reuse=True)`` (or any layer inside
``tf.variable_scope(..., reuse=tf.AUTO_REUSE)``) returns the existing weights. Batch
normalization puts its moving-average updates in ``tf.GraphKeys.UPDATE_OPS``, as in TF1;
``training`` may be a Python bool or a boolean tensor (a placeholder).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import core
from .errors import UnsupportedFeatureError
from .keras import initializers as _keras_initializers
from .keras import layers as _keras

__all__ = [
    "AveragePooling2D", "BatchNormalization", "Conv2D", "Dense", "Dropout", "Flatten", "Layer",
    "MaxPooling2D", "average_pooling2d", "batch_normalization", "conv2d", "dense", "dropout",
    "flatten", "max_pooling2d",
]

Layer = _keras.Layer


def _core_initializer(initializer: Any) -> Any:
    """An initializer get_variable takes: None (its default: glorot_uniform for floats), a TF1
    initializer as it is, a Keras one (a name, or an object drawing NumPy values) wrapped."""
    if initializer is None or isinstance(initializer, core.variables.Initializer) or (
            isinstance(initializer, type) and issubclass(initializer, core.variables.Initializer)):
        return initializer
    keras_init = _keras_initializers.get(initializer)

    def draw(shape: Any, dtype: Any = None, partition_info: Any = None) -> Any:
        dt = core.as_dtype(dtype or core.float32)
        return core.constant(np.asarray(keras_init(tuple(shape), dt.name)), dt)
    return draw


class _TF1Weights:
    """Mixin for a Keras layer: weights from tf.get_variable in the layer's variable scope
    (opened once, at the first call; ``reuse`` as TF1's layers take it)."""

    def __init__(self, *args: Any, reuse: Any = None, **kwargs: Any):
        self._tf1_regularizers = {key[:-len("_regularizer")]: kwargs.pop(key)
                                  for key in [k for k in kwargs
                                              if k in ("kernel_regularizer", "bias_regularizer",
                                                       "beta_regularizer", "gamma_regularizer")]}
        self._tf1_name = kwargs.get("name")
        super().__init__(*args, **kwargs)
        self._tf1_reuse = reuse
        self._tf1_scope: Any = None

    def _graph_call(self, inputs: Any, graph: Any, args: tuple, kwargs: dict) -> Any:
        with graph.as_default():
            if self._tf1_scope is None:
                scope_ctx = core.variable_scope(self._tf1_name, default_name=self._base_name(),
                                                reuse=self._tf1_reuse,
                                                auxiliary_name_scope=False)
            else:
                scope_ctx = core.variable_scope(self._tf1_scope, auxiliary_name_scope=False)
            with scope_ctx as scope:
                if self._tf1_scope is None:
                    self._tf1_scope = scope
                    self.name = scope.name.rsplit("/", 1)[-1]
                return super()._graph_call(inputs, graph, args, kwargs)

    def add_weight(self, name: str, shape: Any, dtype: Any = None, initializer: Any = None,
                   trainable: bool = True, regularizer: Any = None, **kwargs: Any) -> Any:
        dtype = core.as_dtype(dtype or self.dtype)
        var = core.get_variable(name, [int(d) for d in shape], dtype,
                                initializer=_core_initializer(initializer),
                                regularizer=regularizer or self._tf1_regularizers.get(name),
                                trainable=bool(trainable and self.trainable))
        self._own_weights.append((var, bool(trainable)))
        return var


class Dense(_TF1Weights, _keras.Dense):
    def __init__(self, units: int, activation: Any = None, use_bias: bool = True,
                 kernel_initializer: Any = None, bias_initializer: Any = None, **kwargs: Any):
        super().__init__(units, activation=activation, use_bias=use_bias,
                         kernel_initializer=kernel_initializer,
                         bias_initializer=bias_initializer or core.zeros_initializer(), **kwargs)


class Conv2D(_TF1Weights, _keras.Conv2D):
    def __init__(self, filters: int, kernel_size: Any, strides: Any = (1, 1),
                 padding: str = "valid", data_format: str = "channels_last",
                 dilation_rate: Any = (1, 1), activation: Any = None, use_bias: bool = True,
                 kernel_initializer: Any = None, bias_initializer: Any = None, **kwargs: Any):
        super().__init__(filters, kernel_size, strides=strides, padding=padding,
                         data_format=data_format, dilation_rate=dilation_rate,
                         activation=activation, use_bias=use_bias,
                         kernel_initializer=kernel_initializer,
                         bias_initializer=bias_initializer or core.zeros_initializer(), **kwargs)


class MaxPooling2D(_keras.MaxPooling2D):
    def __init__(self, pool_size: Any, strides: Any, padding: str = "valid",
                 data_format: str = "channels_last", name: str | None = None, **kwargs: Any):
        super().__init__(pool_size, strides, padding, data_format, name=name, **kwargs)


class AveragePooling2D(_keras.AveragePooling2D):
    def __init__(self, pool_size: Any, strides: Any, padding: str = "valid",
                 data_format: str = "channels_last", name: str | None = None, **kwargs: Any):
        super().__init__(pool_size, strides, padding, data_format, name=name, **kwargs)


class Flatten(_keras.Flatten):
    def __init__(self, data_format: str = "channels_last", **kwargs: Any):
        if data_format != "channels_last":
            raise ValueError("tf.layers.Flatten supports data_format='channels_last' only")
        super().__init__(**kwargs)


def _select(training: Any, when_true: Any, when_false: Any) -> Any:
    """TF1's smart_cond for side-effect-free branches: a Python bool picks one, a boolean
    tensor selects elementwise."""
    if isinstance(training, core.Tensor):
        return core.cond(training, when_true, when_false)
    return when_true() if training else when_false()


class Dropout(_keras.Dropout):
    """Dropout whose ``training`` may also be a boolean tensor."""

    def call(self, inputs: Any, training: Any = None) -> Any:
        if self.rate == 0:
            return inputs
        return _select(training, lambda: core.nn.dropout(inputs, rate=self.rate, seed=self.seed),
                       lambda: core.identity(inputs))


class BatchNormalization(_TF1Weights, _keras.BatchNormalization):
    """Keras's BatchNormalization with TF1 weights; with a boolean tensor ``training`` the
    batch or the moving statistics are selected by it, and the moving averages move only
    where it is true."""

    def call(self, inputs: Any, training: Any = None) -> Any:
        if not isinstance(training, core.Tensor):
            return super().call(inputs, training=bool(training))
        axes = list(range(len(inputs.shape.as_list()) - 1))
        batch_mean = core.reduce_mean(inputs, axis=axes)
        batch_var = core.reduce_mean(core.square(inputs - batch_mean), axis=axes)
        mean = core.where(training, batch_mean, self.moving_mean.value())
        var = core.where(training, batch_var, self.moving_variance.value())
        # momentum 1 (no change) when not training, as TF1 does
        m = core.where(training, core.constant(self.momentum, inputs.dtype),
                       core.constant(1.0, inputs.dtype))
        for moving, batch in ((self.moving_mean, batch_mean), (self.moving_variance, batch_var)):
            core.add_to_collection(core.GraphKeys.UPDATE_OPS,
                                   core.assign(moving, moving * m + batch * (1.0 - m)))
        y = (inputs - mean) / core.sqrt(var + self.epsilon)
        if self.gamma is not None:
            y = y * self.gamma
        return y + self.beta if self.beta is not None else y


# --- the functions: build the layer, apply it once ---------------------------------------------

def dense(inputs: Any, units: int, activation: Any = None, use_bias: bool = True,
          kernel_initializer: Any = None, bias_initializer: Any = None,
          kernel_regularizer: Any = None, bias_regularizer: Any = None,
          activity_regularizer: Any = None, kernel_constraint: Any = None,
          bias_constraint: Any = None, trainable: bool = True, name: str | None = None,
          reuse: Any = None) -> Any:
    """``activation(inputs @ kernel + bias)``; variables ``<name>/kernel`` and ``<name>/bias``."""
    return Dense(units, activation, use_bias, kernel_initializer, bias_initializer,
                 kernel_regularizer=kernel_regularizer, bias_regularizer=bias_regularizer,
                 activity_regularizer=activity_regularizer, kernel_constraint=kernel_constraint,
                 bias_constraint=bias_constraint, trainable=trainable, name=name,
                 reuse=reuse)(inputs)


def conv2d(inputs: Any, filters: int, kernel_size: Any, strides: Any = (1, 1),
           padding: str = "valid", data_format: str = "channels_last",
           dilation_rate: Any = (1, 1), activation: Any = None, use_bias: bool = True,
           kernel_initializer: Any = None, bias_initializer: Any = None,
           kernel_regularizer: Any = None, bias_regularizer: Any = None,
           activity_regularizer: Any = None, kernel_constraint: Any = None,
           bias_constraint: Any = None, trainable: bool = True, name: str | None = None,
           reuse: Any = None) -> Any:
    """NHWC convolution; variables ``<name>/kernel`` [kh, kw, in, filters] and
    ``<name>/bias``."""
    return Conv2D(filters, kernel_size, strides, padding, data_format, dilation_rate,
                  activation, use_bias, kernel_initializer, bias_initializer,
                  kernel_regularizer=kernel_regularizer, bias_regularizer=bias_regularizer,
                  activity_regularizer=activity_regularizer,
                  kernel_constraint=kernel_constraint, bias_constraint=bias_constraint,
                  trainable=trainable, name=name, reuse=reuse)(inputs)


def max_pooling2d(inputs: Any, pool_size: Any, strides: Any, padding: str = "valid",
                  data_format: str = "channels_last", name: str | None = None) -> Any:
    return MaxPooling2D(pool_size, strides, padding, data_format, name=name)(inputs)


def average_pooling2d(inputs: Any, pool_size: Any, strides: Any, padding: str = "valid",
                      data_format: str = "channels_last", name: str | None = None) -> Any:
    return AveragePooling2D(pool_size, strides, padding, data_format, name=name)(inputs)


def flatten(inputs: Any, name: str | None = None, data_format: str = "channels_last") -> Any:
    return Flatten(data_format, name=name)(inputs)


def dropout(inputs: Any, rate: float = 0.5, noise_shape: Any = None, seed: int | None = None,
            training: Any = False, name: str | None = None) -> Any:
    """Drop a fraction ``rate`` of the inputs (scaling the rest by 1/(1-rate)) when
    ``training`` (False by default, as in TF1); the inputs unchanged otherwise."""
    return Dropout(rate, noise_shape, seed, name=name)(inputs, training=training)


def batch_normalization(inputs: Any, axis: int = -1, momentum: float = 0.99,
                        epsilon: float = 1e-3, center: bool = True, scale: bool = True,
                        beta_initializer: Any = None, gamma_initializer: Any = None,
                        moving_mean_initializer: Any = None,
                        moving_variance_initializer: Any = None, beta_regularizer: Any = None,
                        gamma_regularizer: Any = None, beta_constraint: Any = None,
                        gamma_constraint: Any = None, training: Any = False,
                        trainable: bool = True, name: str | None = None, reuse: Any = None,
                        renorm: bool = False, renorm_clipping: Any = None,
                        renorm_momentum: float = 0.99, fused: Any = None,
                        virtual_batch_size: Any = None, adjustment: Any = None) -> Any:
    """Normalize with the batch statistics when ``training`` (False by default, as in TF1),
    with the moving ones otherwise; the moving-average updates go to UPDATE_OPS, so run them
    with the train op (``tf.control_dependencies(tf.get_collection(tf.GraphKeys.UPDATE_OPS))``)."""
    if renorm or virtual_batch_size is not None or adjustment is not None:
        raise UnsupportedFeatureError(
            "tf.layers.batch_normalization(renorm / virtual_batch_size / adjustment) is not "
            "supported by ringtrain; use the plain batch normalization (renorm=False)")
    for what, value in (("beta_constraint", beta_constraint),
                        ("gamma_constraint", gamma_constraint)):
        if value is not None:
            raise UnsupportedFeatureError(
                f"tf.layers.batch_normalization({what}=...) is not supported by ringtrain; "
                f"apply the constraint with tf.assign after the train op")
    layer = BatchNormalization(
        axis=axis, momentum=momentum, epsilon=epsilon, center=center, scale=scale,
        beta_initializer=beta_initializer or core.zeros_initializer(),
        gamma_initializer=gamma_initializer or core.ones_initializer(),
        moving_mean_initializer=moving_mean_initializer or core.zeros_initializer(),
        moving_variance_initializer=moving_variance_initializer or core.ones_initializer(),
        beta_regularizer=beta_regularizer, gamma_regularizer=gamma_regularizer,
        trainable=trainable, name=name, reuse=reuse)
    return layer(inputs, training=training)


def __getattr__(name: str):
    from .core.unsupported import missing
    raise missing(__name__, name)
