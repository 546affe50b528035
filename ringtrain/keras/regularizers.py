"""tf.keras.regularizers: weight penalties added to the training loss.

A layer given ``kernel_regularizer=l2(0.01)`` (or ``bias_``/``embeddings_regularizer``) adds
``0.01 * sum(kernel ** 2)`` to ``layer.losses``; fit and evaluate add a model's ``losses`` to the
loss they report and minimize, as Keras does.
"""

from __future__ import annotations

from typing import Any

from .. import core
from .registry import Configurable, resolve


class Regularizer(Configurable):
    """Base class: ``regularizer(weight)`` is a scalar penalty tensor."""

    def __call__(self, x: Any) -> Any:
        return core.constant(0.0, dtype=x.dtype)

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config: dict) -> Regularizer:
        return cls(**config)


class L1L2(Regularizer):
    """``l1 * sum(|x|) + l2 * sum(x ** 2)``."""

    def __init__(self, l1: float = 0.0, l2: float = 0.0):
        self.l1, self.l2 = float(l1), float(l2)

    def __call__(self, x: Any) -> Any:
        penalty = core.constant(0.0, dtype=x.dtype)
        if self.l1:
            penalty = penalty + self.l1 * core.reduce_sum(core.abs(x))
        if self.l2:
            penalty = penalty + self.l2 * core.reduce_sum(core.square(x))
        return penalty

    def get_config(self) -> dict:
        return {"l1": self.l1, "l2": self.l2}


class L1(L1L2):
    def __init__(self, l1: float = 0.01, **kwargs: Any):
        super().__init__(l1=kwargs.pop("l", l1))

    def get_config(self) -> dict:
        return {"l1": self.l1}


class L2(L1L2):
    def __init__(self, l2: float = 0.01, **kwargs: Any):
        super().__init__(l2=kwargs.pop("l", l2))

    def get_config(self) -> dict:
        return {"l2": self.l2}


def l1(l1: float = 0.01) -> L1:
    return L1(l1)


def l2(l2: float = 0.01) -> L2:
    return L2(l2)


def l1_l2(l1: float = 0.01, l2: float = 0.01) -> L1L2:
    return L1L2(l1=l1, l2=l2)


_BY_NAME = {"l1": L1, "l2": L2, "l1_l2": lambda: L1L2(0.01, 0.01)}


def get(identifier: Any) -> Regularizer | None:
    """A regularizer from a name ('l2'), an instance, a class, a callable, or None."""
    if identifier is None:
        return None
    if isinstance(identifier, dict):
        config = identifier.get("config", {})
        return {"L1": L1, "L2": L2, "L1L2": L1L2}[identifier["class_name"]](**config)
    return resolve(identifier, "regularizer", _BY_NAME, base=Regularizer)


def serialize(regularizer: Regularizer) -> dict:
    return {"class_name": type(regularizer).__name__, "config": regularizer.get_config()}
