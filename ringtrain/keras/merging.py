"""tf.keras merge layers: Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate, Dot,
and their functional forms (``add([a, b])``...). Each takes a list of tensors."""

from __future__ import annotations

import functools
from typing import Any

from .. import core
from .layers import Layer, _static_shape


class _Merge(Layer):
    """Element-wise merge of two or more inputs of one shape (broadcasting as core ops do)."""

    _min_inputs = 2
    _max_inputs: int | None = None

    def _check(self, inputs: Any) -> list:
        if not isinstance(inputs, (list, tuple)):
            raise TypeError(f"{type(self).__name__} layer {self.name!r} takes a list of "
                             f"inputs, got {type(inputs).__name__}")
        n = len(inputs)
        if n < self._min_inputs or (self._max_inputs is not None and n > self._max_inputs):
            wanted = self._min_inputs if self._max_inputs == self._min_inputs else \
                f"at least {self._min_inputs}"
            raise ValueError(f"{type(self).__name__} layer {self.name!r} takes {wanted} "
                             f"inputs, got {n}")
        return list(inputs)

    def call(self, inputs: Any) -> Any:
        return self._merge(self._check(inputs))

    def _merge(self, tensors: list) -> Any:
        raise NotImplementedError


class Add(_Merge):
    def _merge(self, tensors: list) -> Any:
        return core.add_n(tensors) if len(tensors) > 2 else tensors[0] + tensors[1]


class Subtract(_Merge):
    _max_inputs = 2

    def _merge(self, tensors: list) -> Any:
        return tensors[0] - tensors[1]


class Multiply(_Merge):
    def _merge(self, tensors: list) -> Any:
        return functools.reduce(lambda a, b: a * b, tensors)


class Average(_Merge):
    def _merge(self, tensors: list) -> Any:
        return functools.reduce(lambda a, b: a + b, tensors) * (1.0 / len(tensors))


class Maximum(_Merge):
    def _merge(self, tensors: list) -> Any:
        return functools.reduce(core.maximum, tensors)


class Minimum(_Merge):
    def _merge(self, tensors: list) -> Any:
        return functools.reduce(core.minimum, tensors)


class Concatenate(_Merge):
    """Join the inputs along ``axis`` (the others must match)."""

    _min_inputs = 1

    def __init__(self, axis: int = -1, **kwargs: Any):
        super().__init__(**kwargs)
        self.axis = int(axis)

    def _merge(self, tensors: list) -> Any:
        shapes = [_static_shape(t) for t in tensors]
        rank = len(shapes[0])
        axis = self.axis % rank if rank else 0
        for shape in shapes[1:]:
            if len(shape) != rank or any(a is not None and b is not None and a != b
                                         for i, (a, b) in enumerate(zip(shape, shapes[0]))
                                         if i != axis):
                raise ValueError(f"Concatenate layer {self.name!r} needs inputs that match "
                                 f"except along axis {self.axis}; got shapes {shapes}")
        return core.concat(tensors, axis=axis)

    def get_config(self) -> dict:
        return {**super().get_config(), "axis": self.axis}


class Dot(_Merge):
    """Batch-wise dot products of two inputs along ``axes`` (one per input, or one for both);
    with ``normalize`` the inputs are L2-normalized first (cosine similarity)."""

    _max_inputs = 2

    def __init__(self, axes: Any, normalize: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        self.axes = (int(axes), int(axes)) if isinstance(axes, int) else tuple(map(int, axes))
        if len(self.axes) != 2:
            raise ValueError(f"Dot axes must be an int or a pair, got {axes!r}")
        self.normalize = bool(normalize)

    def _merge(self, tensors: list) -> Any:
        a, b = tensors
        ra, rb = len(_static_shape(a)), len(_static_shape(b))
        ax_a, ax_b = self.axes[0] % ra, self.axes[1] % rb
        if 0 in (ax_a, ax_b):
            raise ValueError("Dot cannot contract the batch axis (0)")
        if self.normalize:
            a = core.nn.l2_normalize(a, axis=ax_a)
            b = core.nn.l2_normalize(b, axis=ax_b)
        if ra == rb == 2:
            return core.reduce_sum(a * b, axis=1, keepdims=True)
        # Move the contracted axes last/first and batch-matmul: a[.., k] @ b[k, ..] per sample.
        a = core.transpose(a, [0, *[i for i in range(1, ra) if i != ax_a], ax_a])
        b = core.transpose(b, [0, ax_b, *[i for i in range(1, rb) if i != ax_b]])
        if ra == 2:
            a = core.expand_dims(a, 1)
        if rb == 2:
            b = core.expand_dims(b, 2)
        out = core.matmul(a, b)
        if ra == 2:
            out = core.squeeze(out, [1])
        if rb == 2:
            out = core.squeeze(out, [-1])
        return out

    def get_config(self) -> dict:
        return {**super().get_config(), "axes": self.axes, "normalize": self.normalize}


def add(inputs: list, **kwargs: Any) -> Any:
    return Add(**kwargs)(inputs)


def subtract(inputs: list, **kwargs: Any) -> Any:
    return Subtract(**kwargs)(inputs)


def multiply(inputs: list, **kwargs: Any) -> Any:
    return Multiply(**kwargs)(inputs)


def average(inputs: list, **kwargs: Any) -> Any:
    return Average(**kwargs)(inputs)


def maximum(inputs: list, **kwargs: Any) -> Any:
    return Maximum(**kwargs)(inputs)


def minimum(inputs: list, **kwargs: Any) -> Any:
    return Minimum(**kwargs)(inputs)


def concatenate(inputs: list, axis: int = -1, **kwargs: Any) -> Any:
    return Concatenate(axis=axis, **kwargs)(inputs)


def dot(inputs: list, axes: Any, normalize: bool = False, **kwargs: Any) -> Any:
    return Dot(axes=axes, normalize=normalize, **kwargs)(inputs)
