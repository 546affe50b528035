"""tf.keras.utils: seeding, label and sequence helpers."""

from __future__ import annotations

import random
from typing import Any

import numpy as np

from .preprocessing.sequence import pad_sequences

__all__ = ["pad_sequences", "set_random_seed", "to_categorical"]


def set_random_seed(seed: int) -> None:
    """Seed Python's, NumPy's and the core's default-graph random generators at once.

    Keras initializers draw from NumPy's generator, fit's shuffling seed too, and each model's
    graph takes it as its graph-level seed (dropout), so model construction and training are
    reproducible.
    """
    from .. import core
    from . import backend

    seed = int(seed)
    backend.set_random_seed(seed)  # models' own graphs take it as their graph-level seed
    random.seed(seed)
    np.random.seed(seed % 2**32)
    core.set_random_seed(seed)


def to_categorical(y: Any, num_classes: int | None = None, dtype: str = "float32") -> np.ndarray:
    """One-hot rows for integer class labels ``y``."""
    y = np.asarray(y, dtype=np.int64)
    shape = y.shape
    if shape and shape[-1] == 1 and len(shape) > 1:
        shape = shape[:-1]
    y = y.reshape(-1)
    if y.size and y.min() < 0:
        raise ValueError("to_categorical needs non-negative class labels")
    n = int(num_classes) if num_classes is not None else (int(y.max()) + 1 if y.size else 0)
    if y.size and y.max() >= n:
        raise ValueError(f"label {int(y.max())} does not fit num_classes={n}")
    out = np.zeros((y.size, n), dtype=dtype)
    out[np.arange(y.size), y] = 1
    return out.reshape(*shape, n)
