"""Random ops, seeded as TensorFlow 1 seeds them (graph seed, op seed).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .. import dtypes as _dt
from ..graph import Tensor, get_default_graph
from .array import _static_shape_arg, _tensor_like, constant, convert_to_tensor
from .base import KERNELS, _dims, _make1, kernel
from .math import add, multiply

_DEFAULT_GRAPH_SEED = 87654321


def _seeds(graph, seed: int | None) -> tuple[int | None, int | None]:
    """TF1's seed rule: the graph seed plus an op seed (the op count when none is given)."""
    if graph.seed is not None:
        return graph.seed, (seed if seed is not None else len(graph._ops))
    if seed is not None:
        return _DEFAULT_GRAPH_SEED, seed
    return None, None


def _random_op(op_type: str, shape: Any, dtype: Any, seed: int | None, name: str | None,
               extra_inputs: Sequence[Tensor] = (), absolute: bool = False) -> Tensor:
    dtype = _dt.as_dtype(dtype)
    static, st, out_shape = _static_shape_arg(shape)
    g = get_default_graph()
    s1, s2 = _seeds(g, seed)
    attrs = {"dtype": dtype, "seed": s1, "seed2": s2, "shape": static}
    inputs = ([] if st is None else [st]) + list(extra_inputs)
    return _make1(op_type, inputs, dtype, out_shape, name, attrs, absolute=absolute)


def random_normal(shape: Any, mean: Any = 0.0, stddev: Any = 1.0, dtype: Any = _dt.float32,
                  seed: int | None = None, name: str | None = None) -> Tensor:
    g = get_default_graph()
    with g.name_scope(name or "random_normal") as scope:
        rnd = _random_op("RandomStandardNormal", shape, dtype, seed, None)
        return _affine(rnd, stddev, mean, scope[:-1])


def truncated_normal(shape: Any, mean: Any = 0.0, stddev: Any = 1.0, dtype: Any = _dt.float32,
                     seed: int | None = None, name: str | None = None) -> Tensor:
    g = get_default_graph()
    with g.name_scope(name or "truncated_normal") as scope:
        rnd = _random_op("TruncatedNormal", shape, dtype, seed, None)
        return _affine(rnd, stddev, mean, scope[:-1])


def random_uniform(shape: Any, minval: Any = 0, maxval: Any = None, dtype: Any = _dt.float32,
                   seed: int | None = None, name: str | None = None) -> Tensor:
    dtype = _dt.as_dtype(dtype)
    g = get_default_graph()
    with g.name_scope(name or "random_uniform") as scope:
        if dtype.is_integer:
            if maxval is None:
                raise ValueError("random_uniform with an integer dtype needs maxval")
            lo = _tensor_like(minval, None, "min") if isinstance(minval, Tensor) else \
                constant(minval, dtype, name="min")
            hi = maxval if isinstance(maxval, Tensor) else constant(maxval, dtype, name="max")
            return _random_op("RandomUniformInt", shape, dtype, seed, scope[:-1],
                              extra_inputs=(lo, hi), absolute=True)
        maxval = 1.0 if maxval is None else maxval
        rnd = _random_op("RandomUniform", shape, dtype, seed, None)
        if isinstance(minval, Tensor) or isinstance(maxval, Tensor):
            lo = _tensor_like(minval, rnd, "min")
            return add(rnd * (_tensor_like(maxval, rnd, "max") - lo), lo, name=scope[:-1])
        return _affine(rnd, maxval - minval, minval, scope[:-1])


def _affine(x: Tensor, scale: Any, shift: Any, scope_name: str) -> Tensor:
    """x * scale + shift, the final Add named after the scope (TensorFlow's layout)."""
    scaled = multiply(x, _tensor_like(scale, x, "stddev"))
    return _make1("Add", (scaled, _tensor_like(shift, x, "mean")), x.dtype, x.shape, scope_name,
                  absolute=True)


def random_shuffle(value: Any, seed: int | None = None, name: str | None = None) -> Tensor:
    x = convert_to_tensor(value)
    s1, s2 = _seeds(x.graph, seed)
    return _make1("RandomShuffle", (x,), x.dtype, x.shape, name, {"seed": s1, "seed2": s2})


def categorical(logits: Any, num_samples: int, dtype: Any = None, seed: int | None = None,
                name: str | None = None) -> Tensor:
    """``num_samples`` class indices per row of ``logits`` ([batch, classes], unnormalized
    log-probabilities): a [batch, num_samples] tensor (int64 unless ``dtype``)."""
    logits = convert_to_tensor(logits)
    if logits.shape.ndims is not None and logits.shape.ndims != 2:
        raise ValueError(f"categorical/multinomial: logits must be 2-D [batch, classes], got "
                         f"shape {logits.shape}")
    if not isinstance(num_samples, int) or num_samples < 0:
        raise TypeError(f"categorical/multinomial: num_samples must be a Python int >= 0, got "
                        f"{num_samples!r}")
    dtype = _dt.as_dtype(dtype or _dt.int64)
    s1, s2 = _seeds(logits.graph, seed)
    batch = logits.shape.as_list()[0] if logits.shape.ndims == 2 else None
    return _make1("Multinomial", (logits,), dtype, [batch, num_samples], name,
                  {"num_samples": num_samples, "dtype": dtype, "seed": s1, "seed2": s2})


def multinomial(logits: Any, num_samples: int, seed: int | None = None, name: str | None = None,
                output_dtype: Any = None) -> Tensor:
    """TF1's name for categorical (argument order: logits, num_samples, seed, name, dtype)."""
    return categorical(logits, num_samples, output_dtype, seed, name)


# --- kernels -------------------------------------------------------------------------------------

def _random(kind: str):
    def factory(rt, dtype, seed=None, seed2=None, shape=None):
        gen = rt.rng(seed, seed2)
        xp = rt.xp
        npd = dtype.np_dtype
        # Generators make float32/float64 natively; other float widths are cast.
        native = npd if npd.name in ("float32", "float64") else xp.dtype("float32")

        def draw(shp):
            if kind == "normal":
                return gen.standard_normal(shp, dtype=native).astype(npd, copy=False)
            if kind == "uniform":
                return gen.random(shp, dtype=native).astype(npd, copy=False)
            out = gen.standard_normal(shp, dtype=native)
            bad = xp.abs(out) > 2
            while bad.any():  # truncated normal: redraw everything beyond two stddevs
                out[bad] = gen.standard_normal(int(bad.sum()), dtype=native)
                bad = xp.abs(out) > 2
            return out.astype(npd, copy=False)

        if shape is not None:
            return lambda: draw(shape)
        return lambda s: draw(_dims(s))
    return factory


KERNELS["RandomStandardNormal"] = _random("normal")
KERNELS["RandomUniform"] = _random("uniform")
KERNELS["TruncatedNormal"] = _random("truncated")


@kernel("RandomUniformInt")
def _random_int(rt, dtype, seed=None, seed2=None, shape=None):
    gen = rt.rng(seed, seed2)
    npd = dtype.np_dtype
    if shape is not None:
        return lambda lo, hi: gen.integers(lo, hi, size=shape, dtype=npd)
    return lambda s, lo, hi: gen.integers(lo, hi, size=_dims(s), dtype=npd)


@kernel("RandomShuffle")
def _random_shuffle(rt, seed=None, seed2=None):
    gen = rt.rng(seed, seed2)
    return lambda x: x[gen.permutation(x.shape[0])] if x.ndim else x


@kernel("Multinomial")
def _multinomial(rt, num_samples, dtype, seed=None, seed2=None):
    gen = rt.rng(seed, seed2)
    xp = rt.xp
    npd = dtype.np_dtype

    def run(logits):
        z = logits.astype("float64")
        z = xp.exp(z - z.max(axis=1, keepdims=True))
        cdf = xp.cumsum(z, axis=1)
        cdf /= cdf[:, -1:]
        draws = gen.random((z.shape[0], num_samples))
        out = xp.empty((z.shape[0], num_samples), dtype=npd)
        for row in range(z.shape[0]):
            out[row] = xp.searchsorted(cdf[row], draws[row], side="right")
        return xp.minimum(out, z.shape[1] - 1)
    return run
