"""The straggler report: which rank holds the others up, by how much, and in which phase.

Each rank keeps a window of step records: the wall-clock time it arrived at the step's first
gradient all-reduce (on the chief's clock) and how long each phase of the step took. Every
``RINGTRAIN_REPORT_EVERY`` steps (and when the training loop ends) every rank calls
:meth:`StepRecorder.report` at the same step, one small ``allgather_object`` of the windows, and
the chief prints one line naming the straggler:

    rank 2 is the straggler: arrives 210 ms late per step (p50 over 20 steps), its data loading
    takes 190 ms longer than the median

(the median of the other ranks) or ``no straggler`` when every rank's median lateness is under the threshold
(:data:`LATE_FLOOR_S`, or :data:`LATE_FRACTION` of the median step if that is more).

Phases: ``data`` (waiting for the input pipeline), ``compute`` (forward and backward: the
rest of the step), ``optimizer`` and ``comm`` (blocked in the gradient all-reduce). Clocks are
aligned once, when the recorder is created (a collective): after a barrier every rank reads
its clock and the offset to the chief's reading is kept (exact on one machine up to the
barrier's exit skew, a few microseconds to a millisecond).
"""

from __future__ import annotations

import statistics
import sys
import time
from collections import deque
from typing import Any

from .. import env
from .timeline import Timeline

PHASES = ("data", "compute", "optimizer", "comm")
PHASE_WORDS = {"data": "data loading", "compute": "forward+backward",
               "optimizer": "optimizer step", "comm": "communication"}
LATE_FLOOR_S = 0.020        # lateness below this is scheduling noise, not a straggler
LATE_FRACTION = 0.10        # ... as is lateness below this share of the median step
MAX_WINDOW = 1000           # steps kept between reports


class StepRecorder:
    """One rank's step records. Call :meth:`add` for timed phases, :meth:`arrive` when the
    step's first gradient collective starts, :meth:`step_done` when the step ends (it reports
    every ``every`` steps), :meth:`finish` when the loop ends (reports what is left)."""

    def __init__(self, group: Any, every: int | None = None, timeline: str | None = None):
        self.group = group
        self.every = env.get("RINGTRAIN_REPORT_EVERY") if every is None else every
        self.window: deque[tuple[float, float, dict[str, float]]] = deque(
            maxlen=min(max(self.every, 1), MAX_WINDOW))
        self.steps = 0                  # steps done in all
        self.first_in_window = 1
        self._phases: dict[str, float] = dict.fromkeys(PHASES, 0.0)
        self._arrival: float | None = None
        self.offset = 0.0
        if group.world_size > 1:
            group.barrier()
            readings = group.allgather_object(time.time())
            self.offset = readings[0] - readings[group.rank]
        self.timeline = None if not timeline else Timeline(timeline, group.rank, self.offset)
        self._step_start = time.perf_counter()
        self._step_start_wall = time.time()

    def add(self, phase: str, seconds: float) -> None:
        self._phases[phase] += seconds
        if self.timeline is not None:
            self.timeline.ended(phase, phase, seconds)

    def arrive(self) -> None:
        """The step's first gradient collective starts now (later calls in the step: no-op)."""
        if self._arrival is None:
            self._arrival = time.time() + self.offset

    def step_done(self) -> None:
        now = time.perf_counter()
        total = now - self._step_start
        self._step_start = now
        if self.timeline is not None:
            self.timeline.span("step", f"step {self.steps + 1}", self._step_start_wall, total)
        self._step_start_wall = time.time()
        phases = self._phases
        phases["compute"] = max(0.0, total - phases["data"] - phases["optimizer"] - phases["comm"])
        arrival = self._arrival if self._arrival is not None else time.time() + self.offset
        self.window.append((arrival, total, phases))
        self._phases = dict.fromkeys(PHASES, 0.0)
        self._arrival = None
        self.steps += 1
        if self.every and self.steps % self.every == 0:
            self.report()

    def finish(self) -> None:
        """The training loop ended: report the steps since the last report (collective; every
        rank has run the same number of steps)."""
        if self.every and self.window:
            self.report()

    def report(self) -> None:
        records = list(self.window)
        everyone = self.group.allgather_object(records)
        first, last = self.first_in_window, self.steps
        self.window.clear()
        self.first_in_window = self.steps + 1
        if self.group.rank == 0:
            line = describe(everyone, first, last)
            sys.stderr.write(f"ringtrain: {line}\n")
            sys.stderr.flush()


def describe(everyone: list[list[tuple[float, float, dict[str, float]]]], first: int,
             last: int) -> str:
    """The report's line from every rank's records (the same steps on every rank)."""
    steps = min(len(records) for records in everyone)
    ranks = range(len(everyone))
    where = f"steps {first}-{last}" if first < last else f"step {last}"
    if steps == 0 or len(everyone) < 2:
        return f"{where}: no straggler"
    lateness: dict[int, list[float]] = {r: [] for r in ranks}
    for i in range(steps):
        arrivals = [everyone[r][-steps + i][0] for r in ranks]
        for r in ranks:
            lateness[r].append(arrivals[r] - _median_of_others(arrivals, r))
    late = {r: statistics.median(lateness[r]) for r in ranks}
    step_time = statistics.median(rec[1] for records in everyone for rec in records[-steps:])
    slowest = max(ranks, key=lambda r: late[r])
    threshold = max(LATE_FLOOR_S, LATE_FRACTION * step_time)
    if late[slowest] < threshold:
        return (f"{where}: no straggler (the latest, rank {slowest}, arrives "
                f"{_ms(late[slowest])} after the others, p50 over {steps} steps; threshold "
                f"{_ms(threshold)}, step {_ms(step_time)})")
    typical = {p: {r: statistics.median(rec[2][p] for rec in everyone[r][-steps:]) for r in ranks}
               for p in PHASES}
    # The straggler waits less in the all-reduce than the others: its cause is another phase.
    excess = {p: typical[p][slowest] - _median_of_others(list(typical[p].values()), slowest)
              for p in PHASES if p != "comm"}
    phase = max(excess, key=lambda p: excess[p])
    return (f"{where}: rank {slowest} is the straggler: arrives {_ms(late[slowest])} late per "
            f"step (p50 over {steps} steps), its {PHASE_WORDS[phase]} takes "
            f"{_ms(excess[phase])} longer than the median")


def _median_of_others(values: list[float], rank: int) -> float:
    """The median of every rank's value but ``rank``'s (with two ranks: the other one's)."""
    return statistics.median(values[:rank] + values[rank + 1:])


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if abs(seconds) >= 0.0095 else f"{seconds * 1000:.1f} ms"


_current: StepRecorder | None = None
# One recorder per communicator (keyed by id, checked by identity): creating one is a
# collective of that communicator's ranks, so whether it exists must not depend on what else
# this rank did (a member of a process set also uses the world's).
_recorders: dict[int, StepRecorder] = {}


def recorder_for(group: Any) -> StepRecorder | None:
    """The process's recorder for ``group``, created on first use (a collective: call it at
    the same point on every rank of ``group``); None when neither the report nor the timeline
    is on, or the group is one process."""
    global _current
    timeline = env.get("RINGTRAIN_TIMELINE")
    if group.world_size < 2 or not (env.get("RINGTRAIN_REPORT_EVERY") or timeline):
        return None
    recorder = _recorders.get(id(group))
    if recorder is None or recorder.group is not group:
        recorder = _recorders[id(group)] = StepRecorder(group, timeline=timeline)
    _current = recorder
    return recorder


def current() -> StepRecorder | None:
    """The recorder a training loop's gradient collectives use, if any (input pipelines add
    their waits to it)."""
    return _current
