"""tf.keras.backend: float type, layer names, a Session per graph, variable init and assignment."""

from __future__ import annotations

import re
import threading
from typing import Any

import numpy as np

_FLOATX = ["float32"]
_EPSILON = [1e-7]
_name_counts: dict[str, int] = {}
_name_lock = threading.Lock()
_state_lock = threading.Lock()


_SEED: list = [None]


def random_seed() -> int | None:
    """The seed set by ``tf.keras.utils.set_random_seed`` (None when unset)."""
    return _SEED[0]


def set_random_seed(seed: int | None) -> None:
    _SEED[0] = None if seed is None else int(seed)


def floatx() -> str:
    """The default float type of new layers' weights and inputs ('float32')."""
    return _FLOATX[0]


def set_floatx(value: str) -> None:
    """Set the default float type ('float16', 'float32' or 'float64')."""
    if value not in ("float16", "float32", "float64"):
        raise ValueError(f"floatx must be 'float16', 'float32' or 'float64', got {value!r}")
    _FLOATX[0] = value


def epsilon() -> float:
    """The fuzz factor used by losses and normalisation (1e-7)."""
    return _EPSILON[0]


def set_epsilon(value: float) -> None:
    _EPSILON[0] = float(value)


def unique_object_name(base: str) -> str:
    """Keras's automatic names: ``dense``, ``dense_1``, ``dense_2`` ... (reset by clear_session)."""
    with _name_lock:
        n = _name_counts.get(base, 0)
        _name_counts[base] = n + 1
    return base if n == 0 else f"{base}_{n}"


def snake_case(name: str) -> str:
    """``Conv2D`` -> ``conv2d``, ``BatchNormalization`` -> ``batch_normalization``."""
    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", s).lower()


def clear_session() -> None:
    """Reset layer-name counters (``dense``, ``dense_1``...); models keep graph and session."""
    with _name_lock:
        _name_counts.clear()


class _GraphState:
    """Keras's per-graph state, stored on the graph so it lives and dies with it."""

    def __init__(self, graph: Any):
        from .. import core

        self.session = core.Session(graph=graph)
        self.initialized: set[int] = set()   # ids of variables initialized in self.session
        self.assign_ops: dict[int, tuple] = {}


def _state(graph: Any) -> _GraphState:
    with _state_lock:
        st = getattr(graph, "_keras_state", None)
        if st is None:
            st = _GraphState(graph)
            graph._keras_state = st
            graph._variables_session = st.session   # where checkpoints find its variables
    return st


def get_session(graph: Any = None) -> Any:
    """The Session that holds the Keras variables of ``graph`` (default graph when None)."""
    from .. import core

    return _state(graph if graph is not None else core.get_default_graph()).session


def initialize_variables(variables: list, graph: Any) -> None:
    """Run the initializers of those ``variables`` not yet initialized in the graph's session."""
    from .. import core

    st = _state(graph)
    fresh = [v for v in variables if id(v) not in st.initialized]
    if not fresh:
        return
    with graph.as_default():
        init = core.variables_initializer(fresh)
    st.session.run(init)
    st.initialized.update(id(v) for v in fresh)


def graph_variables(graph: Any) -> list:
    """Every global variable of ``graph`` in creation order."""
    from .. import core

    with graph.as_default():
        return list(core.global_variables())


def batch_set_value(variables: list, values: list) -> None:
    """Assign NumPy ``values`` to Keras variables in their graph's session.

    The ``assign(var, placeholder)`` ops are cached per variable, so setting weights
    repeatedly does not grow the graph.
    """
    from .. import core

    if len(variables) != len(values):
        raise ValueError(f"got {len(values)} values for {len(variables)} weights")
    by_graph: dict[Any, list] = {}
    for var, value in zip(variables, values):
        by_graph.setdefault(var.graph, []).append((var, value))
    for graph, pairs in by_graph.items():
        st = _state(graph)
        ops, feed = [], {}
        for var, value in pairs:
            entry = st.assign_ops.get(id(var))
            if entry is None:
                with graph.as_default(), core.name_scope("keras_assign"):
                    ph = core.placeholder(var.dtype, shape=var.shape)
                    entry = (var, ph, core.assign(var, ph))
                st.assign_ops[id(var)] = entry
            _, ph, op = entry
            value = np.asarray(value)
            expected = tuple(var.shape.as_list())
            if value.shape != expected:
                raise ValueError(f"cannot assign a value of shape {value.shape} to weight "
                                 f"{var.name!r} of shape {expected}")
            feed[ph] = value
            ops.append(op)
        st.session.run(ops, feed_dict=feed)
        st.initialized.update(id(v) for v, _ in pairs)


def batch_get_value(variables: list) -> list:
    """The NumPy values of Keras variables (initializing them first when needed)."""
    out: list = [None] * len(variables)
    by_graph: dict[Any, list[int]] = {}
    for i, var in enumerate(variables):
        by_graph.setdefault(var.graph, []).append(i)
    for graph, idx in by_graph.items():
        chosen = [variables[i] for i in idx]
        initialize_variables(chosen, graph)
        values = get_session(graph).run(chosen)
        for i, v in zip(idx, values):
            out[i] = np.array(v, copy=True)
    return out


def get_value(x: Any) -> Any:
    """The value of a variable (or of an optimizer's learning rate) as NumPy."""
    if hasattr(x, "numpy") and not hasattr(x, "graph"):
        return x.numpy()
    return batch_get_value([x])[0]


def set_value(x: Any, value: Any) -> None:
    """Set a variable (or an optimizer's learning rate) to a NumPy value."""
    if hasattr(x, "assign") and not hasattr(x, "graph"):
        x.assign(value)
        return
    batch_set_value([x], [value])
