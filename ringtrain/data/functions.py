"""The functions given to ``Dataset.map`` / ``filter``: NumPy functions, or functions of graph
ops (``tf.cast(x, tf.float32) / 255``) as TensorFlow's tutorials write them.

TensorFlow traces every dataset function into a graph. Here a function is first called on one
NumPy element inside a scratch graph: if it returns plain values it stays a NumPy function (the
fast path); if it returns graph tensors (or fails because it fed NumPy a symbolic tensor) it is
traced once on placeholders of the dataset's element spec into a graph of its own, and every
element is one Session.run of that graph.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from .structure import flatten, is_nested, pack_as


def _apply(fn: Callable, element: Any) -> Any:
    """``fn`` on one element: TensorFlow unpacks plain tuples into arguments; dicts and
    namedtuples go in whole."""
    return fn(*element) if type(element) is tuple else fn(element)


def _has_tensor(value: Any) -> bool:
    from .. import core
    leaves = flatten(tuple(value) if isinstance(value, list) else value)
    return any(isinstance(leaf, core.Tensor) for leaf in leaves)


class DataFunction:
    """``fn`` applied to elements, on NumPy or as a traced graph (decided on first use)."""

    def __init__(self, fn: Callable, input_spec: Callable[[], Any]):
        self._fn = fn
        self._input_spec = input_spec   # the input's element_spec, asked only when tracing
        self._mode: str | None = None   # "numpy" or "graph"
        self._lock = threading.Lock()
        self._traced: tuple | None = None

    def __call__(self, element: Any) -> Any:
        if self._mode is None:
            with self._lock:
                if self._mode is None:
                    out = self._probe(element)
                    if self._mode == "numpy":
                        return out
        if self._mode == "numpy":
            return _apply(self._fn, element)
        return self._run_traced(element)

    def _probe(self, element: Any) -> Any:
        from .. import core

        # A scratch graph catches the ops a graph-op function creates on NumPy input.
        try:
            with core.Graph().as_default():
                out = _apply(self._fn, element)
        except TypeError as exc:
            if "symbolic Tensor" not in str(exc):
                raise
            out = None
        else:
            if not _has_tensor(out):
                self._mode = "numpy"
                return out
        self._trace()
        self._mode = "graph"
        return None

    def _trace(self) -> None:
        from .. import core

        spec = self._input_spec()
        flat_specs = flatten(spec)
        graph = core.Graph()
        with graph.as_default():
            placeholders = [core.placeholder(s.dtype, shape=s.shape) for s in flat_specs]
            args = pack_as(spec, placeholders) if is_nested(spec) else placeholders[0]
            out = _apply(self._fn, args)
        if isinstance(out, list):
            out = tuple(out)
        leaves = flatten(out)
        fetch = [i for i, leaf in enumerate(leaves) if isinstance(leaf, core.Tensor)]
        # Input pipelines compute on the CPU, as TensorFlow's do, whatever the model's device.
        cpu_only = core.ConfigProto(device_count={"GPU": 0})
        self._traced = (core.Session(graph=graph, config=cpu_only), placeholders, out, leaves,
                        fetch)

    def _run_traced(self, element: Any) -> Any:
        session, placeholders, out, leaves, fetch = self._traced
        flat = flatten(element) if is_nested(element) else [element]
        feed = {ph: np.asarray(v) for ph, v in zip(placeholders, flat)}
        with self._lock:  # one Session, one run at a time
            values = session.run([leaves[i] for i in fetch], feed_dict=feed)
        result = list(leaves)
        for i, v in zip(fetch, values):
            result[i] = v
        return pack_as(out, result) if is_nested(out) else result[0]
