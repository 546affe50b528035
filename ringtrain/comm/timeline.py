"""``RINGTRAIN_TIMELINE=trace.json`` (Horovod's ``HOROVOD_TIMELINE``): a Chrome/Perfetto trace of
the training steps, one process per rank.

Each rank streams its spans to ``trace.json.rank<r>`` (complete events, ``"ph": "X"``, in
microseconds on the chief's clock: the straggler recorder's offset, measured at start-up).
``ringrun`` merges the ranks' files into ``trace.json`` when the job ends (``ringrun
--merge-timeline OUT IN...`` does it by hand).
Lanes (threads of the rank's process): the step, data waits, the optimizer step, the time
blocked in the gradient all-reduce, and each bucket's all-reduce with its three marks: a span
from queued (its gradients ready) to started (the communication thread began it, after the
buckets before it) on one lane, and from started to done on the next (its bytes, parameter
count and the three marks, in microseconds on the trace's clock, in ``args``).
"""

from __future__ import annotations

import atexit
import json
import time
from typing import Any

FLUSH_EVERY = 4096
LANES = ("step", "data", "optimizer", "comm", "queued", "allreduce")
LANE_NAMES = {"step": "training step", "data": "data wait", "optimizer": "optimizer step",
              "comm": "blocked in all-reduce", "queued": "bucket queued (queued-started)",
              "allreduce": "bucket all-reduce (started-done)"}


def rank_file(path: str, rank: int) -> str:
    return f"{path}.rank{rank}"


class Timeline:
    """One rank's spans, streamed to ``rank_file(path, rank)`` as a JSON array (Chrome's array
    form) in blocks of :data:`FLUSH_EVERY` events, so memory stays bounded in long jobs; the
    array is closed at exit (a rank that dies leaves it open: the merge closes it)."""

    def __init__(self, path: str, rank: int, offset: float):
        self.path, self.rank, self.offset = path, rank, offset
        self._file = open(rank_file(path, rank), "w")  # noqa: SIM115 (closed by close())
        self._file.write("[\n")
        self._first = True
        self.events: list[dict[str, Any]] = [
            {"name": "process_name", "ph": "M", "pid": rank, "args": {"name": f"rank {rank}"}},
            {"name": "process_sort_index", "ph": "M", "pid": rank, "args": {"sort_index": rank}}]
        for tid, lane in enumerate(LANES):
            self.events.append({"name": "thread_name", "ph": "M", "pid": rank, "tid": tid,
                                "args": {"name": LANE_NAMES[lane]}})
        atexit.register(self.close)

    def span(self, lane: str, name: str, start: float, seconds: float,
             args: dict[str, Any] | None = None) -> None:
        """A span that started at ``start`` (``time.time()`` of this rank) and lasted
        ``seconds``."""
        event = {"name": name, "ph": "X", "pid": self.rank, "tid": LANES.index(lane),
                 "ts": round((start + self.offset) * 1e6, 1), "dur": round(seconds * 1e6, 1)}
        if args:
            event["args"] = args
        self.events.append(event)
        if len(self.events) >= FLUSH_EVERY:
            self.flush()

    def bucket(self, name: str, queued: float, started: float | None, done: float,
               args: dict[str, Any]) -> None:
        """One bucket's all-reduce: queued (``time.time()``), started (None: not recorded by
        the backend, taken as queued) and done; two spans, waiting and running."""
        started = queued if started is None else max(queued, started)
        marks = {f"{mark}_us": round((t + self.offset) * 1e6, 1)
                 for mark, t in (("queued", queued), ("started", started), ("done", done))}
        self.span("queued", name, queued, started - queued, {**args, **marks})
        self.span("allreduce", name, started, max(0.0, done - started), {**args, **marks})

    def ended(self, lane: str, name: str, seconds: float,
              args: dict[str, Any] | None = None) -> None:
        """A span of ``seconds`` that ends now."""
        self.span(lane, name, time.time() - seconds, seconds, args)

    def flush(self) -> None:
        if self._file.closed or not self.events:
            return
        text = ",\n".join(json.dumps(e) for e in self.events)
        self._file.write(text if self._first else ",\n" + text)
        self._first = False
        self.events = []
        self._file.flush()

    def close(self) -> None:
        """Write what is left and close the array (at exit)."""
        if self._file.closed:
            return
        self.flush()
        self._file.write("\n]\n")
        self._file.close()
