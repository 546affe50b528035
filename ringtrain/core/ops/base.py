"""What every op family builds on: the kernel registry, node creation and the static shape
rules.

``KERNELS[op_type](rt, **attrs)`` is called once when a Session builds its execution plan and
returns the function that computes the op's outputs from its input arrays; attribute handling,
buffer allocation and namespace lookup happen there, not on every run. ``rt`` is the Session's
runtime (``rt.xp``: NumPy now, CuPy on GPUs; variable storage, random generators; see
session.py). Kernels never modify their inputs; only variable-update kernels write, in place,
into variable storage.
"""

from __future__ import annotations

import builtins
import itertools
import numbers
from collections.abc import Callable, Sequence
from typing import Any

from .. import dtypes as _dt
from ..graph import Operation, Tensor, TensorShape, get_default_graph

# --- kernel registry -----------------------------------------------------------------------------

KERNELS: dict[str, Callable[..., Callable]] = {}


def kernel(*names: str):
    def register(factory):
        for n in names:
            KERNELS[n] = factory
        return factory
    return register


def _dims(shape_array) -> tuple:
    """A shape fed as a tensor (an int array) as the tuple of ints NumPy wants."""
    return tuple(int(d) for d in shape_array.tolist())


def _bounds(sizes) -> list:
    """Split points of pieces of ``sizes`` along one axis (what ``xp.split`` takes)."""
    return list(itertools.accumulate(sizes[:-1]))


# --- creation helpers ----------------------------------------------------------------------------

_pysum = builtins.sum

_brange = builtins.range

_bslice = builtins.slice


def _graph_of(*values: Any):
    """The graph an op on ``values`` goes into: that of its first graph tensor, else the
    default graph (eager tensors join any graph: core/eager.py captures them there)."""
    for v in values:
        if isinstance(v, (list, tuple)):
            for x in v:
                if isinstance(x, Tensor) and not x._op._graph._eager:
                    return _graph_tensor_graph(x)
        elif isinstance(v, Tensor) and not v._op._graph._eager:
            return _graph_tensor_graph(v)
    return get_default_graph()


def _graph_tensor_graph(t: Tensor):
    if get_default_graph()._eager:
        raise TypeError(f"the graph tensor {t.name!r} was passed to an op running eagerly: graph "
                        f"tensors only have values inside Session.run. Build and run the graph "
                        f"inside `with tf.Graph().as_default():`, or compute the value eagerly")
    return t._op._graph


def _make(op_type: str, inputs: Sequence[Tensor], specs: Sequence[tuple], name: str | None,
          attrs: dict | None = None, graph=None, absolute: bool = False) -> Operation:
    g = graph if graph is not None else _graph_of(*inputs)
    return g._create_op(op_type, inputs, attrs, name, specs, absolute_name=absolute)


def _make1(op_type: str, inputs: Sequence[Tensor], dtype: _dt.DType, shape: Any,
           name: str | None = None, attrs: dict | None = None, absolute: bool = False) -> Tensor:
    return _make(op_type, inputs, [(dtype, shape)], name, attrs, absolute=absolute)._outputs[0]


def _as_dtype(dtype: Any) -> _dt.DType | None:
    return None if dtype is None else _dt.as_dtype(dtype)


# --- static shape rules --------------------------------------------------------------------------

def _broadcast_shape(a: TensorShape, b: TensorShape) -> TensorShape:
    if a._dims == b._dims:  # the common case (and every eager op on equal shapes): no work
        return a
    if a.ndims is None or b.ndims is None:
        return TensorShape(None)
    da, db = a.as_list(), b.as_list()
    n = max(len(da), len(db))
    da = [1] * (n - len(da)) + da
    db = [1] * (n - len(db)) + db
    out = []
    for x, y in zip(da, db):
        if x == 1:
            out.append(y)
        elif y == 1:
            out.append(x)
        elif x is None:
            out.append(y)
        elif y is None or x == y:
            out.append(x)
        else:
            raise ValueError(f"Dimensions must be equal or 1 to broadcast, but are {x} and {y} "
                             f"for shapes {a} and {b}")
    return TensorShape(out)


def _norm_axes(axis: Any, ndims: int | None, what: str = "axis") -> tuple | None:
    if axis is None:
        return None
    if isinstance(axis, Tensor):
        raise TypeError(f"{what} must be a Python int or list of ints, not a Tensor")
    axes = (axis,) if isinstance(axis, numbers.Integral) else tuple(axis)
    out = []
    for a in axes:
        a = int(a)
        if ndims is not None:
            if not -ndims <= a < max(ndims, 1):
                raise ValueError(f"{what} {a} is out of range for a tensor of rank {ndims}")
            a %= max(ndims, 1)
        out.append(a)
    return tuple(out)


def _reduced_shape(shape: TensorShape, axes: tuple | None, keepdims: bool) -> TensorShape:
    if shape.ndims is None:
        return TensorShape(None)
    dims = shape.as_list()
    if axes is None:
        return TensorShape([1] * len(dims) if keepdims else [])
    axes = {a % max(len(dims), 1) for a in axes}
    if keepdims:
        return TensorShape([1 if i in axes else d for i, d in enumerate(dims)])
    return TensorShape([d for i, d in enumerate(dims) if i not in axes])


def _is_dynamic_shape(shape: Any) -> bool:
    """Whether a shape argument is (or holds) a Tensor, so it is only known at run time."""
    return isinstance(shape, Tensor) or (isinstance(shape, (list, tuple))
                                         and any(isinstance(d, Tensor) for d in shape))
