"""tf.keras.initializers: initial weight values computed in NumPy (seeded by NumPy's global RNG).

Without a ``seed`` an initializer draws from ``np.random`` (so ``np.random.seed`` or
``tf.keras.utils.set_random_seed`` makes model construction reproducible); with a seed it is
deterministic on its own. Under MirroredStrategy the chief's values are broadcast anyway.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.variables import variance_scaling_rule, variance_scaling_spread
from .registry import Configurable, resolve


def _rng(seed: int | None) -> Any:
    return np.random if seed is None else np.random.RandomState(seed)


class Initializer(Configurable):
    """Base class: ``init(shape, dtype) -> np.ndarray``."""

    def __call__(self, shape: tuple, dtype: Any = "float32") -> np.ndarray:
        raise NotImplementedError

    def get_config(self) -> dict:
        return {}


class Zeros(Initializer):
    def __call__(self, shape, dtype="float32"):
        return np.zeros(shape, dtype=dtype)


class Ones(Initializer):
    def __call__(self, shape, dtype="float32"):
        return np.ones(shape, dtype=dtype)


class Constant(Initializer):
    def __init__(self, value: Any = 0):
        self.value = value

    def __call__(self, shape, dtype="float32"):
        return np.broadcast_to(np.asarray(self.value, dtype=dtype), shape).copy()


class RandomUniform(Initializer):
    def __init__(self, minval: float = -0.05, maxval: float = 0.05, seed: int | None = None):
        self.minval, self.maxval, self.seed = minval, maxval, seed

    def __call__(self, shape, dtype="float32"):
        return _rng(self.seed).uniform(self.minval, self.maxval, size=shape).astype(dtype)


class RandomNormal(Initializer):
    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None):
        self.mean, self.stddev, self.seed = mean, stddev, seed

    def __call__(self, shape, dtype="float32"):
        return _rng(self.seed).normal(self.mean, self.stddev, size=shape).astype(dtype)


class Orthogonal(Initializer):
    """``gain`` times a random orthogonal matrix (QR of a normal one, signs fixed so the draw is
    uniform), over the last axis; Keras's default for recurrent kernels."""

    def __init__(self, gain: float = 1.0, seed: int | None = None):
        self.gain, self.seed = float(gain), seed

    def __call__(self, shape, dtype="float32"):
        if len(shape) < 2:
            raise ValueError(f"the Orthogonal initializer needs a shape of rank 2 or more, got "
                             f"{tuple(shape)}")
        rows, cols = int(np.prod(shape[:-1])), int(shape[-1])
        flat = _rng(self.seed).normal(size=(max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(flat)
        q *= np.sign(np.diag(r))
        if rows < cols:
            q = q.T
        return (self.gain * q).reshape(shape).astype(dtype)


class TruncatedNormal(Initializer):
    """Normal values redrawn until within two standard deviations of the mean."""

    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None):
        self.mean, self.stddev, self.seed = mean, stddev, seed

    def __call__(self, shape, dtype="float32"):
        rng = _rng(self.seed)
        out = rng.normal(size=shape)
        bad = np.abs(out) > 2
        while bad.any():
            out[bad] = rng.normal(size=int(bad.sum()))
            bad = np.abs(out) > 2
        return (self.mean + self.stddev * out).astype(dtype)


class VarianceScaling(Initializer):
    """Random values with variance ``scale / n`` (n = fan_in, fan_out or their average): the
    rule of ``tf.initializers.variance_scaling``, drawn in NumPy."""

    def __init__(self, scale: float = 1.0, mode: str = "fan_in",
                 distribution: str = "truncated_normal", seed: int | None = None):
        distribution = variance_scaling_rule(scale, mode, distribution)
        self.scale, self.mode, self.distribution, self.seed = scale, mode, distribution, seed

    def __call__(self, shape, dtype="float32"):
        spread = variance_scaling_spread(shape, self.scale, self.mode, self.distribution)
        if self.distribution == "uniform":
            return RandomUniform(-spread, spread, self.seed)(shape, dtype)
        if self.distribution == "untruncated_normal":
            return RandomNormal(0.0, spread, self.seed)(shape, dtype)
        return TruncatedNormal(0.0, spread, self.seed)(shape, dtype)


class GlorotUniform(VarianceScaling):
    def __init__(self, seed: int | None = None):
        super().__init__(1.0, "fan_avg", "uniform", seed)


class GlorotNormal(VarianceScaling):
    def __init__(self, seed: int | None = None):
        super().__init__(1.0, "fan_avg", "truncated_normal", seed)


class HeNormal(VarianceScaling):
    def __init__(self, seed: int | None = None):
        super().__init__(2.0, "fan_in", "truncated_normal", seed)


class HeUniform(VarianceScaling):
    def __init__(self, seed: int | None = None):
        super().__init__(2.0, "fan_in", "uniform", seed)


class LecunNormal(VarianceScaling):
    def __init__(self, seed: int | None = None):
        super().__init__(1.0, "fan_in", "truncated_normal", seed)


_BY_NAME = {
    "zeros": Zeros, "ones": Ones, "constant": Constant, "uniform": RandomUniform,
    "random_uniform": RandomUniform, "normal": RandomNormal, "random_normal": RandomNormal,
    "truncated_normal": TruncatedNormal, "glorot_uniform": GlorotUniform,
    "glorot_normal": GlorotNormal, "he_normal": HeNormal, "he_uniform": HeUniform,
    "lecun_normal": LecunNormal, "variance_scaling": VarianceScaling,
    "orthogonal": Orthogonal,
}

zeros, ones, constant = Zeros, Ones, Constant
glorot_uniform, glorot_normal = GlorotUniform, GlorotNormal
he_normal, he_uniform = HeNormal, HeUniform


def get(identifier: Any) -> Initializer:
    """An initializer from a name ('glorot_uniform'), an instance, a class, or a callable."""
    return resolve(identifier, "initializer", _BY_NAME, base=Initializer)
