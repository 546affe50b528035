"""``tf.summary``: summary ops and FileWriter, writing real TensorBoard event files.

Records are built with tensorboard's own protos and written by its EventFileWriter; tensorboard
is imported only when a summary is run or a writer is created (importing ringtrain does not).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from typing import Any

from . import dtypes as _dt
from . import ops as _ops
from .graph import GraphKeys, Tensor, get_default_graph
from .ops.base import _make1, kernel

__all__ = ["FileWriter", "histogram", "merge", "merge_all", "scalar"]


def _summary_op(op_type: str, name: str, value: Any, collections: Any, family: Any,
                **attrs: Any) -> Tensor:
    value = _ops.convert_to_tensor(value)
    g = value.graph
    family_scope = g.name_scope(family) if family else contextlib.nullcontext()
    with family_scope, g.name_scope(name) as scope:
        tag = scope[:-1]
        out = _make1(op_type, (value,), _dt.string, [], tag, {"tag": tag, **attrs},
                     absolute=True)
    for key in (collections if collections is not None else [GraphKeys.SUMMARIES]):
        g.add_to_collection(key, out)
    return out


def scalar(name: str, tensor: Any, collections: Sequence[str] | None = None,
           family: str | None = None) -> Tensor:
    """A serialized ``Summary`` with one scalar value (tag = the scoped name)."""
    t = _ops.convert_to_tensor(tensor)
    if t.shape.ndims not in (None, 0) and t.shape.num_elements() != 1:
        raise ValueError(f"tf.summary.scalar {name!r} needs a scalar, got shape {t.shape}")
    return _summary_op("ScalarSummary", name, t, collections, family)


def histogram(name: str, values: Any, collections: Sequence[str] | None = None,
              family: str | None = None) -> Tensor:
    """A serialized ``Summary`` with a histogram of ``values``."""
    return _summary_op("HistogramSummary", name, values, collections, family)


def merge(inputs: Sequence[Tensor], collections: Sequence[str] | None = None,
          name: str | None = None) -> Tensor:
    """One serialized ``Summary`` holding the values of all ``inputs``."""
    inputs = [_ops.convert_to_tensor(t) for t in inputs]
    if not inputs:
        raise ValueError("tf.summary.merge needs at least one summary tensor")
    out = _make1("MergeSummary", inputs, _dt.string, [], name or "Merge/MergeSummary")
    for key in collections or []:
        out.graph.add_to_collection(key, out)
    return out


def merge_all(key: str = GraphKeys.SUMMARIES, scope: str | None = None,
              name: str | None = None) -> Tensor | None:
    """Merge every summary of the default graph's collection (None when there are none)."""
    found = get_default_graph().get_collection(key, scope)
    return merge(found, name=name) if found else None


def __getattr__(name: str) -> Any:
    # tf.summary.Summary / tf.summary.Event: tensorboard's proto classes, loaded on first use
    if name in ("Summary", "Event"):
        from tensorboard.compat.proto import event_pb2, summary_pb2
        return summary_pb2.Summary if name == "Summary" else event_pb2.Event
    from .unsupported import missing
    raise missing(__name__, name)


class FileWriter:
    """Writes summaries and the graph to an event file in ``logdir`` (TensorBoard's format)."""

    def __init__(self, logdir: str, graph: Any = None, max_queue: int = 10,
                 flush_secs: float = 120, graph_def: Any = None,
                 filename_suffix: str | None = None, session: Any = None):
        self._logdir = str(logdir)
        self._options = {"max_queue_size": max_queue, "flush_secs": flush_secs,
                         "filename_suffix": filename_suffix or ""}
        self._writer = self._open()
        self._closed = False
        if graph is not None or graph_def is not None:
            self.add_graph(graph, graph_def=graph_def)

    def get_logdir(self) -> str:
        return self._logdir

    def add_event(self, event: Any) -> None:
        if self._closed:
            raise RuntimeError("FileWriter is closed; call reopen() first")
        self._writer.add_event(event)

    def add_summary(self, summary: Any, global_step: int | None = None) -> None:
        """Write ``summary`` (the bytes from running a summary op, or a Summary proto)."""
        from tensorboard.compat.proto import event_pb2, summary_pb2
        if isinstance(summary, (bytes, bytearray)):
            summary = summary_pb2.Summary.FromString(bytes(summary))
        elif not isinstance(summary, summary_pb2.Summary):
            raise TypeError(f"add_summary needs the bytes of a summary op or a Summary proto, "
                            f"got {type(summary).__name__}")
        event = event_pb2.Event(wall_time=time.time(), summary=summary)
        if global_step is not None:
            event.step = int(global_step)
        self.add_event(event)

    def add_graph(self, graph: Any, global_step: int | None = None, graph_def: Any = None
                  ) -> None:
        """Write the graph (shown on TensorBoard's Graphs tab)."""
        from tensorboard.compat.proto import event_pb2
        gd = graph_def if graph_def is not None else graph.as_graph_def(add_shapes=True)
        event = event_pb2.Event(wall_time=time.time(), graph_def=gd.SerializeToString())
        if global_step is not None:
            event.step = int(global_step)
        self.add_event(event)

    def add_scalar(self, tag: str, value: float, global_step: int | None = None) -> None:
        """Write one scalar without building an op (a convenience beyond TF1's API)."""
        from tensorboard.compat.proto import summary_pb2
        self.add_summary(summary_pb2.Summary(value=[summary_pb2.Summary.Value(
            tag=tag, simple_value=float(value))]), global_step)

    def flush(self) -> None:
        if not self._closed:
            self._writer.flush()

    def close(self) -> None:
        if not self._closed:
            self._writer.close()
            self._closed = True

    def _open(self) -> Any:
        from tensorboard.summary.writer.event_file_writer import EventFileWriter
        return EventFileWriter(self._logdir, **self._options)

    def reopen(self) -> None:
        """Open a new event file in the same directory, with the same options, after close()."""
        if self._closed:
            self._writer = self._open()
            self._closed = False

    def __enter__(self) -> FileWriter:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- kernels ---------------------------------------------------------------------------------------

def _summary_pb2():
    from tensorboard.compat.proto import summary_pb2
    return summary_pb2


@kernel("ScalarSummary")
def _scalar_summary(rt, tag):
    pb = _summary_pb2()

    def run(value):
        s = pb.Summary(value=[pb.Summary.Value(tag=tag, simple_value=float(value))])
        return s.SerializeToString()
    return run


@kernel("HistogramSummary")
def _histogram_summary(rt, tag, bins=30):
    pb = _summary_pb2()
    xp = rt.xp

    def run(values):
        v = xp.asarray(values, dtype="float64").reshape(-1)
        hist = pb.HistogramProto()
        if v.size:
            counts, edges = xp.histogram(v, bins=bins)
            hist.min, hist.max = float(v.min()), float(v.max())
            hist.num, hist.sum = float(v.size), float(v.sum())
            hist.sum_squares = float(xp.dot(v, v))
            hist.bucket_limit.extend(float(e) for e in edges[1:])
            hist.bucket.extend(float(c) for c in counts)
        return pb.Summary(value=[pb.Summary.Value(tag=tag, histo=hist)]).SerializeToString()
    return run


@kernel("MergeSummary")
def _merge_summary(rt):
    pb = _summary_pb2()

    def run(*parts):
        merged = pb.Summary()
        for p in parts:
            merged.MergeFromString(bytes(p))
        return merged.SerializeToString()
    return run
