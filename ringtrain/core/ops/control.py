"""Graph plumbing and control flow: placeholders, no-ops and groups, cond, py_func.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ...errors import InvalidArgumentError
from .. import dtypes as _dt
from ..graph import Operation, Tensor, TensorShape, get_default_graph
from .array import convert_to_tensor, identity
from .base import _graph_of, _make, _make1, kernel
from .math import where

# --- inputs --------------------------------------------------------------------------------------

def placeholder(dtype: Any, shape: Any = None, name: str | None = None) -> Tensor:
    """A tensor that must be fed in ``Session.run`` (None dims accept any size)."""
    dtype = _dt.as_dtype(dtype)
    return _make("Placeholder", (), [(dtype, TensorShape(shape))], name, {"dtype": dtype},
                 graph=get_default_graph())._outputs[0]


def placeholder_with_default(input: Any, shape: Any, name: str | None = None
                             ) -> Tensor:
    """A tensor that is ``input`` unless fed (e.g. a training flag defaulting to False)."""
    x = convert_to_tensor(input)
    shape = TensorShape(shape)
    if not shape.is_compatible_with(x.shape):
        raise ValueError(f"placeholder_with_default: shape {shape} is not compatible with the "
                         f"default's shape {x.shape}")
    return _make1("PlaceholderWithDefault", (x,), x.dtype, shape, name)


# --- grouping and control flow -------------------------------------------------------------------

def no_op(name: str | None = None) -> Operation:
    return _make("NoOp", (), (), name, graph=get_default_graph())


def group(*inputs: Any, name: str | None = None) -> Operation:
    """An op that runs all of ``inputs`` (operations or tensors) and has no output."""
    deps = []
    for x in inputs:
        for item in (x if isinstance(x, (list, tuple)) else [x]):
            if item is None:
                continue
            op = item.op if isinstance(item, Tensor) else item
            if not isinstance(op, Operation):
                raise TypeError(f"tf.group needs Operations or Tensors, got {item!r}")
            deps.append(op)
    g = deps[0].graph if deps else get_default_graph()
    with g.control_dependencies(deps):
        return _make("NoOp", (), (), name or "group_deps", graph=g)


def tuple_(tensors: Sequence[Any], name: str | None = None) -> list:
    """Identity of each tensor, each run only after all of them are computed."""
    tensors = [convert_to_tensor(t) for t in tensors]
    gate = group(*tensors)
    with tensors[0].graph.control_dependencies([gate]):
        return [identity(t) for t in tensors]

_SIDE_EFFECTS = ("Assign", "AssignAdd", "AssignSub", "PyFunc", "ApplyGradientDescent",
                 "ApplyMomentum", "ApplyAdagrad", "ApplyAdam", "ApplyRMSProp", "ApplyAdadelta",
                 "ApplyAdagradDA")


def cond(pred: Any, true_fn: Callable, false_fn: Callable, name: str | None = None) -> Any:
    """Select between two branches by ``pred``.

    Both branches are computed and the result is selected elementwise, which is exact for
    side-effect-free branches (activations, dropout, batch statistics); a branch that assigns
    variables or calls py_func is rejected, since it would run whichever way ``pred`` goes.
    """
    pred = convert_to_tensor(pred)
    g = pred.graph
    if g._eager:  # the predicate has a value: run only the branch it picks (TF2)
        return true_fn() if bool(pred) else false_fn()
    first = len(g._ops)
    with g.name_scope(name or "cond"):
        t = true_fn()
        f = false_fn()
    for op in g._ops[first:]:
        if op.type in _SIDE_EFFECTS:
            raise NotImplementedError(f"tf.cond: branch op {op.name!r} ({op.type}) has side "
                                      f"effects; ringtrain computes both branches, so this is "
                                      f"not supported")
    single = not isinstance(t, (list, tuple))
    ts, fs = ([t], [f]) if single else (list(t), list(f))
    if len(ts) != len(fs):
        raise ValueError("tf.cond: both branches must return the same structure")
    out = [where(pred, a, b) for a, b in zip(ts, fs)]
    return out[0] if single else type(t)(out)


# --- Python functions ----------------------------------------------------------------------------

def py_func(func: Callable, inp: Sequence[Any], Tout: Any, stateful: bool = True,
            name: str | None = None) -> Any:
    """Run ``func`` on the NumPy values of ``inp`` inside Session.run (TF1's py_func).

    ``Tout`` is a dtype (one output, returned as a Tensor) or a list of dtypes (a list of
    Tensors). Exceptions raised by ``func`` (e.g. ``tf.errors.OutOfRangeError``) propagate out
    of ``Session.run`` unchanged. The op has no gradient.
    """
    if not callable(func):
        raise TypeError(f"py_func needs a callable, got {func!r}")
    inputs = [convert_to_tensor(x) for x in (inp or [])]
    single = not isinstance(Tout, (list, tuple))
    touts = tuple(_dt.as_dtype(t) for t in ([Tout] if single else Tout))
    op = _make("PyFunc", inputs, [(t, None) for t in touts], name,
               {"func": func, "Tout": touts, "single": single, "stateful": bool(stateful)},
               graph=_graph_of(*inputs))
    return op.outputs[0] if single else list(op.outputs)

numpy_function = py_func


# --- kernels -------------------------------------------------------------------------------------

@kernel("Placeholder")
def _placeholder(rt, **_):
    op = rt.op

    def run():  # a plan only contains an unfed placeholder when the caller forgot to feed it
        raise InvalidArgumentError(None, op, f"You must feed a value for placeholder tensor "
                                             f"'{op.name}'")
    return run


@kernel("NoOp")
def _noop(rt, **_):
    return lambda *args: None


@kernel("PyFunc")
def _py_func(rt, func, Tout, single, stateful=True, device_arrays=False):
    xp = rt.xp
    op = rt.op
    # On a GPU (CuPy) the function gets NumPy arrays, as TF's py_func does, and its results go
    # back to the device; ``device_arrays`` (the distribution strategy's own ops) hands it the
    # device arrays.
    to_host = None if device_arrays else getattr(xp, "asnumpy", None)

    def run(*args):
        if to_host is not None:
            args = [to_host(a) if isinstance(a, xp.ndarray) else a for a in args]
        out = func(*args)  # exceptions propagate unchanged (e.g. OutOfRangeError)
        if single or not isinstance(out, (list, tuple)):
            out = (out,)
        if len(out) != len(Tout):
            raise InvalidArgumentError(None, op, f"py_func {op.name!r}: the function returned "
                                                 f"{len(out)} values, Tout declares {len(Tout)}")
        res = tuple(o if dt.name == "string" else xp.asarray(o, dtype=dt.np_dtype)
                    for o, dt in zip(out, Tout))
        return res[0] if len(res) == 1 else res  # one-output kernels return the bare value
    return run
