"""Array ops: tensors from values (constant, convert_to_tensor, cast, identity), shapes and
layout, slicing and gathering, padding, filling and ranges.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from ...errors import InvalidArgumentError
from .. import dtypes as _dt
from ..graph import Tensor, TensorShape, as_shape
from .base import (
    _as_dtype,
    _bounds,
    _brange,
    _bslice,
    _dims,
    _is_dynamic_shape,
    _make,
    _make1,
    _norm_axes,
    kernel,
)

# --- constants, conversion, casts, copies --------------------------------------------------------

def constant(value: Any, dtype: Any = None, shape: Any = None, name: str = "Const",
             verify_shape: bool = False) -> Tensor:
    """A constant tensor; Python floats default to float32 and ints to int32 (as TensorFlow)."""
    if isinstance(value, Tensor):
        raise TypeError(f"tf.constant needs a Python or NumPy value, got Tensor {value.name!r}; "
                        f"use tf.identity to copy a tensor")
    dtype = _as_dtype(dtype) or _dt.infer_dtype(value)
    arr = _to_array(value, dtype)
    if shape is not None:
        shape = tuple(as_shape(shape).as_list())
        if arr.shape != shape:
            if verify_shape:
                raise TypeError(f"constant's value has shape {arr.shape}, expected {shape}")
            if arr.size == 1:
                arr = np.full(shape, arr.reshape(()), dtype=arr.dtype)
            elif arr.size == int(np.prod(shape)):
                arr = arr.reshape(shape)
            else:
                raise ValueError(f"constant of {arr.size} elements cannot have shape {shape}")
    return _make1("Const", (), dtype, arr.shape, name, {"value": arr})


def _to_array(value: Any, dtype: _dt.DType) -> np.ndarray:
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"cannot convert {value!r} to a tensor: {exc}") from None
    if dtype.name == "string":
        return np.asarray(value, dtype=object)
    if arr.dtype.kind in "OSU":
        raise TypeError(f"cannot convert {value!r} to a {dtype.name} tensor")
    if dtype.is_integer and arr.dtype.kind == "f" and not np.all(np.floor(arr) == arr):
        raise TypeError(f"cannot convert {value!r} to an integer tensor ({dtype.name}) without "
                        f"losing its fractional part; pass a float dtype or round it")
    return np.array(arr, dtype=dtype.np_dtype)


def convert_to_tensor(value: Any, dtype: Any = None, name: str | None = None,
                      preferred_dtype: Any = None, dtype_hint: Any = None) -> Tensor:
    """``value`` as a Tensor: Tensors (and Variables) pass through, other values become consts."""
    dtype = _as_dtype(dtype)
    if isinstance(value, Tensor):
        if dtype is not None and value.dtype != dtype:
            raise ValueError(f"Tensor conversion requested dtype {dtype.name} for Tensor "
                             f"{value.name!r} with dtype {value.dtype.name}; use tf.cast")
        return value
    conv = getattr(value, "_as_tensor", None)
    if conv is not None:
        return convert_to_tensor(conv(), dtype, name)
    if isinstance(value, (list, tuple)) and any(isinstance(v, Tensor) for v in value):
        return stack(list(value), name=name or "packed")
    if dtype is None:
        hint = _as_dtype(preferred_dtype or dtype_hint)
        inferred = _dt.infer_dtype(value)
        if hint is not None and (inferred == hint or (hint.is_floating and inferred.is_integer)
                                 or (hint.is_floating and inferred.is_floating
                                     and not isinstance(value, (np.ndarray, np.generic)))):
            dtype = hint
    return constant(value, dtype=dtype, name=name or "Const")


def _tensor_like(value: Any, other: Tensor | None, name: str) -> Tensor:
    """Convert an operand of a binary op, taking the dtype of the other (Tensor) operand."""
    if isinstance(value, Tensor):
        return value
    if other is not None:
        return constant(value, dtype=other.dtype, name=name)
    return convert_to_tensor(value, name=name)


def _pair(x, y):
    if isinstance(x, Tensor):
        return x, _tensor_like(y, x, "y")
    if isinstance(y, Tensor):
        return _tensor_like(x, y, "x"), y
    x = convert_to_tensor(x)
    return x, _tensor_like(y, x, "y")


def cast(x: Any, dtype: Any, name: str | None = None) -> Tensor:
    dtype = _dt.as_dtype(dtype)
    x = convert_to_tensor(x)
    if x.dtype == dtype:
        return x
    return _make1("Cast", (x,), dtype, x.shape, name, {"dtype": dtype})


def to_float(x: Any, name: str = "ToFloat") -> Tensor:
    return cast(x, _dt.float32, name)


def to_int32(x: Any, name: str = "ToInt32") -> Tensor:
    return cast(x, _dt.int32, name)


def to_int64(x: Any, name: str = "ToInt64") -> Tensor:
    return cast(x, _dt.int64, name)


def stop_gradient(x: Any, name: str | None = None) -> Tensor:
    x = convert_to_tensor(x)
    return _make1("StopGradient", (x,), x.dtype, x.shape, name)


def identity(x: Any, name: str | None = None) -> Tensor:
    x = convert_to_tensor(x)
    return _make1("Identity", (x,), x.dtype, x.shape, name)


# --- shapes and layout ---------------------------------------------------------------------------

def _static_shape_arg(shape: Any) -> tuple[tuple | None, Tensor | None, TensorShape]:
    """A shape argument: (static tuple, None, shape) or (None, int32 tensor, partial shape)."""
    if isinstance(shape, Tensor):
        n = shape.shape[0] if shape.shape.ndims == 1 else None
        return None, cast(shape, _dt.int32) if shape.dtype != _dt.int32 else shape, \
            TensorShape(None if n is None else [None] * n)
    if _is_dynamic_shape(shape):
        t = stack([cast(d, _dt.int32) if isinstance(d, Tensor) else d for d in shape])
        return None, t, TensorShape([None] * len(shape))
    dims = as_shape(shape)
    if not dims.is_fully_defined():
        raise ValueError(f"shape {shape!r} must be fully defined (or a Tensor)")
    return tuple(dims.as_list()), None, dims


def shape(input: Any, name: str | None = None, out_type: Any = _dt.int32) -> Tensor:
    x = convert_to_tensor(input)
    return _make1("Shape", (x,), _dt.as_dtype(out_type), [x.shape.ndims], name,
                  {"out_type": _dt.as_dtype(out_type)})


def size(input: Any, name: str | None = None, out_type: Any = _dt.int32) -> Tensor:
    x = convert_to_tensor(input)
    return _make1("Size", (x,), _dt.as_dtype(out_type), [], name,
                  {"out_type": _dt.as_dtype(out_type)})


def rank(input: Any, name: str | None = None) -> Tensor:
    x = convert_to_tensor(input)
    return _make1("Rank", (x,), _dt.int32, [], name)


def reshape(tensor: Any, shape: Any, name: str | None = None) -> Tensor:
    x = convert_to_tensor(tensor)
    if _is_dynamic_shape(shape):
        _, st, out = _static_shape_arg(shape)
        return _make1("Reshape", (x, st), x.dtype, out, name, {"shape": None})
    dims = [int(d) if d is not None else -1 for d in
            (shape.as_list() if isinstance(shape, TensorShape) else
             ([shape] if isinstance(shape, numbers.Integral) else list(shape)))]
    if dims.count(-1) > 1:
        raise ValueError(f"reshape: at most one dimension may be -1, got {dims}")
    out = [None if d == -1 else d for d in dims]
    n_in = x.shape.num_elements()
    known = int(np.prod([d for d in dims if d != -1]))
    if n_in is not None:
        if -1 in dims:
            if known == 0 or n_in % known:
                raise ValueError(f"cannot reshape a tensor of {n_in} elements ({x.name}) to "
                                 f"{dims}")
            out[dims.index(-1)] = n_in // known
        elif known != n_in:
            raise ValueError(f"cannot reshape a tensor of {n_in} elements ({x.name}, shape "
                             f"{x.shape}) to shape {dims}")
    return _make1("Reshape", (x,), x.dtype, out, name, {"shape": tuple(dims)})


def _reshape_like(g: Tensor, x: Tensor) -> Tensor:
    if x.shape.is_fully_defined():
        return reshape(g, x.shape.as_list())
    return _make1("ReshapeLike", (g, x), g.dtype, x.shape, None)


def transpose(a: Any, perm: Any = None, name: str | None = None, conjugate: bool = False
              ) -> Tensor:
    x = convert_to_tensor(a)
    n = x.shape.ndims
    if perm is None:
        if n is None:
            raise ValueError(f"transpose of {x.name} needs perm when its rank is unknown")
        perm = tuple(_brange(n - 1, -1, -1))
    perm = tuple(int(p) for p in perm)
    if n is not None and sorted(perm) != list(_brange(n)):
        raise ValueError(f"transpose: perm {list(perm)} is not a permutation of 0..{n - 1}")
    shape = TensorShape(None) if n is None else TensorShape([x.shape[p] for p in perm])
    return _make1("Transpose", (x,), x.dtype, shape, name, {"perm": perm})


def expand_dims(input: Any, axis: int | None = None, name: str | None = None,
                dim: int | None = None
                ) -> Tensor:
    if axis is None:
        axis = dim
    if axis is None:
        raise ValueError("expand_dims needs axis")
    x = convert_to_tensor(input)
    n = x.shape.ndims
    axis = int(axis)
    shape = TensorShape(None)
    if n is not None:
        if not -(n + 1) <= axis <= n:
            raise ValueError(f"expand_dims: axis {axis} out of range for rank {n}")
        axis %= n + 1
        dims = x.shape.as_list()
        shape = TensorShape(dims[:axis] + [1] + dims[axis:])
    return _make1("ExpandDims", (x,), x.dtype, shape, name, {"axis": axis})


def squeeze(input: Any, axis: Any = None, name: str | None = None,
            squeeze_dims: Any = None) -> Tensor:
    if axis is None:
        axis = squeeze_dims
    x = convert_to_tensor(input)
    axes = _norm_axes(axis, x.shape.ndims)
    if axes == ():
        axes = None
    shape = TensorShape(None)
    if x.shape.ndims is not None:
        dims = x.shape.as_list()
        if axes is None:
            if None in dims:
                shape = TensorShape(None)
            else:
                shape = TensorShape([d for d in dims if d != 1])
        else:
            for a in axes:
                if dims[a] not in (1, None):
                    raise ValueError(f"cannot squeeze dimension {a} of size {dims[a]} "
                                     f"({x.name}, shape {x.shape})")
            shape = TensorShape([d for i, d in enumerate(dims) if i not in axes])
    return _make1("Squeeze", (x,), x.dtype, shape, name, {"axis": axes})


def concat(values: Sequence[Any], axis: int, name: str = "concat") -> Tensor:
    if isinstance(values, numbers.Integral):  # tf.concat(0, [a, b]): TensorFlow 0.x's order
        raise TypeError(f"tf.concat takes (values, axis) since TensorFlow 1.0, got the axis "
                        f"{values} first; write tf.concat([a, b], axis={values})")
    values = [convert_to_tensor(v) for v in values]
    if not values:
        raise ValueError("concat needs at least one tensor")
    if len(values) == 1:
        return identity(values[0], name=name)
    dtype = values[0].dtype
    for v in values:
        if v.dtype != dtype:
            raise TypeError(f"concat: all values must have dtype {dtype.name}, {v.name} has "
                            f"{v.dtype.name}")
    n = values[0].shape.ndims
    ax = _norm_axes(axis, n)[0]
    shape = TensorShape(None)
    if n is not None and all(v.shape.ndims == n for v in values):
        dims = values[0].shape.as_list()
        for v in values[1:]:
            for i, d in enumerate(v.shape.as_list()):
                if i == ax:
                    dims[i] = None if dims[i] is None or d is None else dims[i] + d
                elif dims[i] is None:
                    dims[i] = d
                elif d is not None and d != dims[i]:
                    raise ValueError(f"concat: dimension {i} differs ({dims[i]} vs {d}) between "
                                     f"{values[0].name} and {v.name}")
        shape = TensorShape(dims)
    return _make1("ConcatV2", values, dtype, shape, name, {"axis": ax})


def split(value: Any, num_or_size_splits: Any, axis: int = 0, num: int | None = None,
          name: str = "split") -> list:
    if isinstance(value, numbers.Integral):  # tf.split(0, 2, x): TensorFlow 0.x's order
        raise TypeError(f"tf.split takes (value, num_or_size_splits, axis) since TensorFlow 1.0, "
                        f"got the scalar {value} as the value to split; write "
                        f"tf.split(x, {num_or_size_splits!r}, axis={value}) for the old "
                        f"tf.split({value}, {num_or_size_splits!r}, x)")
    x = convert_to_tensor(value)
    n = x.shape.ndims
    ax = _norm_axes(axis, n)[0]
    dims = x.shape.as_list() if n is not None else None
    if isinstance(num_or_size_splits, numbers.Integral):
        k = int(num_or_size_splits)
        if dims is not None and dims[ax] is not None and dims[ax] % k:
            raise ValueError(f"split: dimension {ax} of {x.name} (size {dims[ax]}) is not "
                             f"divisible by {k}")
        part = None if dims is None or dims[ax] is None else dims[ax] // k
        shapes = [None if dims is None else dims[:ax] + [part] + dims[ax + 1:]] * k
        attrs = {"axis": ax, "num": k, "sizes": None}
    else:
        sizes = tuple(int(s) for s in num_or_size_splits)
        shapes = [None if dims is None else dims[:ax] + [None if s == -1 else s] + dims[ax + 1:]
                  for s in sizes]
        attrs = {"axis": ax, "num": len(sizes), "sizes": sizes}
    op = _make("Split", (x,), [(x.dtype, s) for s in shapes], name, attrs)
    return list(op.outputs)


def stack(values: Sequence[Any], axis: int = 0, name: str = "stack") -> Tensor:
    first = next((v for v in values if isinstance(v, Tensor)), None)
    values = [_tensor_like(v, first, "x") for v in values]
    if not values:
        raise ValueError("stack needs at least one tensor")
    base = values[0].shape
    for v in values[1:]:
        base = base.merge_with(v.shape) if base.is_compatible_with(v.shape) else base
    n = base.ndims
    shape = TensorShape(None)
    if n is not None:
        ax = axis % (n + 1)
        dims = base.as_list()
        shape = TensorShape(dims[:ax] + [len(values)] + dims[ax:])
    else:
        ax = axis
    return _make1("Pack", values, values[0].dtype, shape, name, {"axis": ax})


def unstack(value: Any, num: int | None = None, axis: int = 0, name: str = "unstack") -> list:
    x = convert_to_tensor(value)
    n = x.shape.ndims
    if n is None:
        raise ValueError(f"unstack needs a tensor of known rank ({x.name})")
    ax = _norm_axes(axis, n)[0]
    dims = x.shape.as_list()
    if num is None:
        num = dims[ax]
        if num is None:
            raise ValueError(f"unstack: dimension {ax} of {x.name} is unknown; pass num")
    out_shape = dims[:ax] + dims[ax + 1:]
    op = _make("Unpack", (x,), [(x.dtype, out_shape)] * num, name, {"axis": ax, "num": num})
    return list(op.outputs)


def _canonical_key(key: Any, shape: TensorShape) -> tuple[tuple, TensorShape]:
    """A NumPy basic-indexing key (ints, slices, None, Ellipsis) and the result's shape."""
    if not isinstance(key, tuple):
        key = (key,)
    out_key = []
    for k in key:
        if isinstance(k, Tensor):
            raise TypeError("indexing with a Tensor is not supported; use tf.gather")
        if isinstance(k, _bslice):
            parts = []
            for p in (k.start, k.stop, k.step):
                if isinstance(p, Tensor):
                    raise TypeError("slice bounds must be Python ints; use tf.slice/tf.gather "
                                    "for dynamic bounds")
                parts.append(None if p is None else int(p))
            out_key.append(_bslice(*parts))
        elif k is None or k is Ellipsis:
            out_key.append(k)
        elif isinstance(k, (numbers.Integral, np.integer)):
            out_key.append(int(k))
        else:
            raise TypeError(f"unsupported index {k!r}: use ints, slices, None or ...")
    key = tuple(out_key)
    if shape.ndims is None:
        return key, TensorShape(None)
    # static result shape: index a zero-stride dummy with unknown dims standing in as size 1
    dims = shape.as_list()
    probe = np.broadcast_to(np.empty((), np.int8), [1 << 30 if d is None else d for d in dims])
    try:
        out = list(probe[key].shape)
    except IndexError as exc:
        raise ValueError(f"index {key!r} is out of range for shape {shape}: {exc}") from None
    # map dims back: which output dims come from unknown input dims
    res, i = [], 0
    for k in key + ((Ellipsis,) if Ellipsis not in key else ()):
        if k is Ellipsis:
            n_explicit = sum(1 for kk in key if kk is not None and kk is not Ellipsis)
            for _ in _brange(len(dims) - n_explicit):
                res.append(dims[i])
                i += 1
        elif k is None:
            res.append(1)
        elif isinstance(k, int):
            i += 1
        else:
            res.append(None if dims[i] is None else len(_brange(*k.indices(dims[i]))))
            i += 1
    if len(res) != len(out):
        res = out
    return key, TensorShape(res)


def _getitem(x: Tensor, key: Any) -> Tensor:
    key, shape = _canonical_key(key, x.shape)
    return _make1("StridedSlice", (x,), x.dtype, shape, "strided_slice", {"key": key})


def reverse(tensor: Any, axis: Any, name: str | None = None) -> Tensor:
    """``tensor`` with the order of its elements reversed along each axis in ``axis``."""
    x = convert_to_tensor(tensor)
    axes = _norm_axes(axis, x.shape.ndims, "axis") or ()
    key = tuple(_bslice(None, None, -1) if i in axes else _bslice(None)
                for i in _brange(x.shape.ndims))
    key, shape = _canonical_key(key, x.shape)
    return _make1("StridedSlice", (x,), x.dtype, shape, name or "ReverseV2", {"key": key})


def reverse_sequence(input: Any, seq_lengths: Any, seq_axis: int | None = None,
                     batch_axis: int | None = None, name: str | None = None,
                     seq_dim: int | None = None, batch_dim: int | None = None) -> Tensor:
    """Reverse the first ``seq_lengths[b]`` elements along ``seq_axis`` of each slice ``b``
    along ``batch_axis``; the rest of each sequence stays in place."""
    x = convert_to_tensor(input)
    seq_axis = seq_axis if seq_axis is not None else seq_dim
    batch_axis = batch_axis if batch_axis is not None else (batch_dim or 0)
    if seq_axis is None:
        raise ValueError("reverse_sequence needs seq_axis")
    dims = x.shape.as_list()
    n = dims[seq_axis]
    if n is None:
        raise ValueError(f"reverse_sequence needs the length of axis {seq_axis} known, got "
                         f"shape {x.shape}")
    lengths = cast(convert_to_tensor(seq_lengths), _dt.int64)
    return _make1("ReverseSequence", (x, lengths), x.dtype, x.shape, name,
                  {"seq_axis": int(seq_axis), "batch_axis": int(batch_axis)})


def slice(input_: Any, begin: Sequence[int], size: Sequence[int], name: str | None = None
          ) -> Tensor:
    x = convert_to_tensor(input_)
    if isinstance(begin, Tensor) or isinstance(size, Tensor):
        raise TypeError("tf.slice needs Python ints for begin and size")
    key = tuple(_bslice(int(b), None if int(s) == -1 else int(b) + int(s))
                for b, s in zip(begin, size))
    key, shape = _canonical_key(key, x.shape)
    return _make1("StridedSlice", (x,), x.dtype, shape, name or "Slice", {"key": key})


def gather(params: Any, indices: Any, axis: int = 0, name: str | None = None,
           validate_indices: Any = None) -> Tensor:
    params = convert_to_tensor(params)
    indices = convert_to_tensor(indices)
    if not indices.dtype.is_integer:
        raise TypeError(f"gather: indices must be integers, got {indices.dtype.name}")
    n = params.shape.ndims
    ax = _norm_axes(axis, n)[0]
    shape = TensorShape(None)
    if n is not None and indices.shape.ndims is not None:
        d = params.shape.as_list()
        shape = TensorShape(d[:ax] + indices.shape.as_list() + d[ax + 1:])
    return _make1("GatherV2", (params, indices), params.dtype, shape, name, {"axis": ax})


def tile(input: Any, multiples: Any, name: str | None = None) -> Tensor:
    x = convert_to_tensor(input)
    if isinstance(multiples, Tensor):
        return _make1("Tile", (x, cast(multiples, _dt.int32)), x.dtype,
                      TensorShape([None] * (x.shape.ndims or 0)) if x.shape.ndims else None,
                      name, {"multiples": None})
    mult = tuple(int(m) for m in multiples)
    shape = TensorShape(None)
    if x.shape.ndims is not None:
        if len(mult) != x.shape.ndims:
            raise ValueError(f"tile: multiples {list(mult)} must have one entry per dimension "
                             f"of {x.name} (rank {x.shape.ndims})")
        shape = TensorShape([None if d is None else d * m for d, m in zip(x.shape, mult)])
    return _make1("Tile", (x,), x.dtype, shape, name, {"multiples": mult})


def pad(tensor: Any, paddings: Any, mode: str = "CONSTANT", name: str | None = None,
        constant_values: Any = 0) -> Tensor:
    if mode.upper() != "CONSTANT":
        raise ValueError(f"pad: only mode='CONSTANT' is supported, got {mode!r}")
    x = convert_to_tensor(tensor)
    pads = tuple((int(a), int(b)) for a, b in np.asarray(paddings).tolist())
    shape = TensorShape(None)
    if x.shape.ndims is not None:
        shape = TensorShape([None if d is None else d + a + b
                             for d, (a, b) in zip(x.shape, pads)])
    return _make1("Pad", (x,), x.dtype, shape, name,
                  {"paddings": pads, "constant_values": constant_values})


def one_hot(indices: Any, depth: int, on_value: Any = None, off_value: Any = None,
            axis: int | None = None, dtype: Any = None, name: str | None = None) -> Tensor:
    indices = convert_to_tensor(indices)
    dtype = _as_dtype(dtype) or (on_value.dtype if isinstance(on_value, Tensor) else
                                 _dt.float32)
    on = on_value if isinstance(on_value, Tensor) else constant(
        1 if on_value is None else on_value, dtype, name="on_value")
    off = _tensor_like(0 if off_value is None else off_value, on, "off_value")
    depth = int(depth)
    n = indices.shape.ndims
    axis = -1 if axis is None else int(axis)
    shape = TensorShape(None)
    if n is not None:
        dims = indices.shape.as_list()
        pos = n if axis == -1 else axis
        shape = TensorShape(dims[:pos] + [depth] + dims[pos:])
    return _make1("OneHot", (indices, on, off), dtype, shape, name,
                  {"depth": depth, "axis": axis, "dtype": dtype})


def fill(dims: Any, value: Any, name: str | None = None) -> Tensor:
    value = convert_to_tensor(value)
    static, st, shape = _static_shape_arg(dims)
    if st is None:
        return _make1("Fill", (value,), value.dtype, shape, name, {"shape": static})
    return _make1("Fill", (st, value), value.dtype, shape, name, {"shape": None})


def _filled(shape: Any, dtype: Any, value: int, name: str) -> Tensor:
    """zeros/ones: a constant when the shape is static, else a Fill of the run-time shape."""
    dtype = _dt.as_dtype(dtype)
    if not _is_dynamic_shape(shape):
        return constant(np.full(as_shape(shape).as_list(), value, dtype.np_dtype), dtype,
                        name=name)
    return fill(shape, constant(value, dtype), name=name)


def zeros(shape: Any, dtype: Any = _dt.float32, name: str | None = None) -> Tensor:
    return _filled(shape, dtype, 0, name or "zeros")


def ones(shape: Any, dtype: Any = _dt.float32, name: str | None = None) -> Tensor:
    return _filled(shape, dtype, 1, name or "ones")


def _filled_like(tensor: Any, dtype: Any, value: int, op_type: str, name: str | None,
                 default_name: str) -> Tensor:
    """zeros_like/ones_like: a Fill when x's shape is static (as TensorFlow: no dependency on
    x's value), else an op reading x's shape at run time."""
    x = convert_to_tensor(tensor)
    dt = _as_dtype(dtype) or x.dtype
    if x.shape.is_fully_defined():
        return fill(x.shape.as_list(), constant(value, dt), name=name or default_name)
    out = _make1(op_type, (x,), x.dtype, x.shape, name)
    return out if dtype is None else cast(out, dtype)


def zeros_like(tensor: Any, dtype: Any = None, name: str | None = None) -> Tensor:
    return _filled_like(tensor, dtype, 0, "ZerosLike", name, "zeros_like")


def ones_like(tensor: Any, dtype: Any = None, name: str | None = None) -> Tensor:
    return _filled_like(tensor, dtype, 1, "OnesLike", name, "ones_like")


def range(start: Any, limit: Any = None, delta: Any = 1, dtype: Any = None,
          name: str = "range") -> Tensor:
    if limit is None:
        start, limit = 0, start
    if not any(isinstance(v, Tensor) for v in (start, limit, delta)):
        dt = _as_dtype(dtype) or _dt.infer_dtype([start, limit, delta])
        return constant(np.arange(start, limit, delta, dtype=dt.np_dtype), dt, name=name)
    dt = _as_dtype(dtype) or next(v.dtype for v in (start, limit, delta)
                                  if isinstance(v, Tensor))
    args = [cast(v, dt) if isinstance(v, Tensor) else constant(v, dt) for v in (start, limit,
                                                                                 delta)]
    return _make1("Range", args, dt, [None], name, {"dtype": dt})


def broadcast_to(input: Any, shape: Any, name: str | None = None) -> Tensor:
    x = convert_to_tensor(input)
    return x * ones(shape, x.dtype) if x.dtype != _dt.bool_ else x & ones(shape, _dt.bool_)

Tensor.__getitem__ = _getitem


# --- kernels -------------------------------------------------------------------------------------

@kernel("Const")
def _const(rt, value):
    v = rt.constant(value)
    return lambda: v


@kernel("Identity", "PlaceholderWithDefault", "StopGradient", "Snapshot")
def _identity(rt, **_):
    return lambda x: x


@kernel("Cast")
def _cast(rt, dtype):
    npd = dtype.np_dtype
    xp = rt.xp
    return lambda x: xp.asarray(x).astype(npd, copy=False)


@kernel("Shape")
def _shape(rt, out_type):
    xp, npd = rt.xp, out_type.np_dtype
    return lambda x: xp.asarray(xp.shape(x), dtype=npd)


@kernel("Size")
def _size(rt, out_type):
    xp, npd = rt.xp, out_type.np_dtype
    return lambda x: xp.asarray(xp.size(x), dtype=npd)


@kernel("Rank")
def _rank(rt):
    xp = rt.xp
    return lambda x: xp.asarray(xp.ndim(x), dtype="int32")


@kernel("Reshape")
def _reshape(rt, shape=None):
    xp = rt.xp
    if shape is not None:
        return lambda x: xp.reshape(x, shape)
    return lambda x, s: xp.reshape(x, _dims(s))


@kernel("ReshapeLike")
def _reshape_like_kernel(rt):
    xp = rt.xp
    return lambda g, x: xp.reshape(g, xp.shape(x))


@kernel("Transpose")
def _transpose(rt, perm=None):
    xp = rt.xp
    return lambda x: xp.transpose(x, perm)


@kernel("ExpandDims")
def _expand_dims(rt, axis):
    xp = rt.xp
    return lambda x: xp.expand_dims(x, axis)


@kernel("Squeeze")
def _squeeze(rt, axis=None):
    xp = rt.xp
    return lambda x: xp.squeeze(x, axis=axis)


@kernel("ConcatV2")
def _concat(rt, axis):
    xp = rt.xp
    return lambda *xs: xp.concatenate(xs, axis=axis)


@kernel("ConcatGrad")
def _concat_grad(rt, axis):
    """Split the gradient of a concat into pieces shaped like the concat's inputs."""
    xp = rt.xp

    def run(g, *xs):
        return tuple(xp.split(g, _bounds([xp.shape(x)[axis] for x in xs]), axis=axis))
    return run


@kernel("Split")
def _split(rt, axis, num=None, sizes=None):
    xp = rt.xp
    op = rt.op

    def run(x):
        n = x.shape[axis]
        if sizes is None:
            if n % num:
                raise InvalidArgumentError(None, op, f"Split {op.name!r}: dimension {axis} of "
                                                     f"size {n} is not divisible by {num}")
            return tuple(xp.split(x, num, axis=axis))
        sz = list(sizes)
        if -1 in sz:
            sz[sz.index(-1)] = n - (sum(sz) + 1)
        if sum(sz) != n:
            raise InvalidArgumentError(None, op, f"Split {op.name!r}: sizes {list(sizes)} do "
                                                 f"not add up to dimension {axis} of size {n}")
        return tuple(xp.split(x, _bounds(sz), axis=axis))
    return run


@kernel("Pack")
def _pack(rt, axis):
    xp = rt.xp
    return lambda *xs: xp.stack(xs, axis=axis)


@kernel("Unpack")
def _unpack(rt, axis, num):
    xp = rt.xp
    return lambda x: tuple(xp.moveaxis(x, axis, 0))


@kernel("StridedSlice")
def _strided_slice(rt, key):
    return lambda x: x[key]


@kernel("StridedSliceGrad")
def _strided_slice_grad(rt, key):
    xp = rt.xp

    def run(g, x):
        z = xp.zeros(xp.shape(x), dtype=g.dtype)
        z[key] = g
        return z
    return run


@kernel("Tile")
def _tile(rt, multiples=None):
    xp = rt.xp
    if multiples is not None:
        return lambda x: xp.tile(x, multiples)
    return lambda x, m: xp.tile(x, _dims(m))


@kernel("TileGrad")
def _tile_grad(rt, multiples):
    xp = rt.xp

    def run(g, x):
        split = []
        for m, d in zip(multiples, xp.shape(x)):
            split += [m, d]
        return xp.reshape(g, split).sum(axis=tuple(_brange(0, len(split), 2)))
    return run


@kernel("Pad")
def _pad(rt, paddings, constant_values=0):
    xp = rt.xp
    return lambda x: xp.pad(x, paddings, constant_values=constant_values)


@kernel("GatherV2")
def _gather(rt, axis=0):
    xp = rt.xp
    return lambda params, indices: xp.take(params, indices, axis=axis)


def _scatter_add(xp, target, indices, values):
    if hasattr(xp.add, "at"):
        xp.add.at(target, indices, values)
    else:  # CuPy
        import cupyx
        cupyx.scatter_add(target, indices, values)


@kernel("GatherGrad")
def _gather_grad(rt, axis=0):
    xp = rt.xp

    def run(g, indices, params):
        z = xp.zeros(xp.shape(params), dtype=g.dtype)
        if axis == 0:
            _scatter_add(xp, z, indices, g)
        else:
            zm = xp.moveaxis(z, axis, 0)
            gm = xp.moveaxis(g, tuple(_brange(axis, axis + xp.ndim(indices))),
                             tuple(_brange(xp.ndim(indices))))
            _scatter_add(xp, zm, indices, gm)
        return z
    return run


@kernel("OneHot")
def _one_hot(rt, depth, axis=-1, dtype=None):
    xp, npd = rt.xp, dtype.np_dtype

    def run(indices, on, off):
        hot = indices[..., None] == xp.arange(depth)
        out = xp.where(hot, on, off).astype(npd, copy=False)
        return out if axis in (-1, out.ndim - 1) else xp.moveaxis(out, -1, axis)
    return run


@kernel("Fill")
def _fill(rt, shape=None):
    xp = rt.xp
    if shape is not None:
        return lambda value: xp.full(shape, value, dtype=value.dtype)
    return lambda dims, value: xp.full(_dims(dims), value, dtype=value.dtype)


@kernel("ZerosLike")
def _zeros_like(rt):
    return rt.xp.zeros_like


@kernel("OnesLike")
def _ones_like(rt):
    return rt.xp.ones_like


@kernel("Range")
def _range(rt, dtype):
    xp, npd = rt.xp, dtype.np_dtype
    return lambda start, limit, delta: xp.arange(start, limit, delta, dtype=npd)


@kernel("ReverseSequence")
def _reverse_sequence(rt, seq_axis, batch_axis):
    xp = rt.xp

    def index(x, lengths):
        """For each (batch, step): the step it is read from."""
        steps = xp.arange(x.shape[seq_axis])[None, :]
        lengths = lengths.astype("int64")[:, None]
        return xp.where(steps < lengths, lengths - 1 - steps, steps)

    def run(x, lengths):
        src = index(x, lengths)
        moved = xp.moveaxis(x, (batch_axis, seq_axis), (0, 1))
        out = xp.take_along_axis(moved, src.reshape(src.shape + (1,) * (moved.ndim - 2)), 1)
        return xp.moveaxis(out, (0, 1), (batch_axis, seq_axis))
    return run
