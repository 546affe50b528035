"""Merging the ranks' ``RINGTRAIN_TIMELINE`` files into one Chrome/Perfetto trace (standard
library only): ``ringrun`` does it when a job ends, ``ringrun --merge-timeline OUT IN...`` by
hand."""

from __future__ import annotations

import glob
import json
import os
import re
from collections.abc import Sequence


def rank_files(path: str) -> list[str]:
    """The per-rank files a job wrote for ``RINGTRAIN_TIMELINE=path``, in rank order."""
    found = glob.glob(glob.escape(path) + ".rank*")
    ranked = [(int(m.group(1)), f) for f in found
              if (m := re.fullmatch(r".*\.rank(\d+)", f)) is not None]
    return [f for _, f in sorted(ranked)]


def merge(out: str, inputs: Sequence[str]) -> int:
    """Write the events of every input trace into ``out`` (whole or not at all); the number of
    events. An input that is not a trace raises ValueError naming it."""
    events: list = []
    for name in inputs:
        try:
            with open(name) as f:
                trace = _load(f.read())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"--merge-timeline: cannot read {name} as a trace: {exc}") from None
        items = trace.get("traceEvents") if isinstance(trace, dict) else trace
        is_trace = isinstance(items, list)      # the object form, or the bare array form
        if not is_trace:
            raise ValueError(f"--merge-timeline: {name} has no traceEvents list (not a "
                             f"RINGTRAIN_TIMELINE file)")
        events.extend(items)
    partial = f"{out}.partial"
    with open(partial, "w") as f:
        json.dump({"traceEvents": events, "displayTimeUnit": "ms"}, f)
    os.replace(partial, out)
    return len(events)


def merge_job(path: str) -> str | None:
    """After a job run with ``RINGTRAIN_TIMELINE=path``: merge its rank files into ``path`` and
    remove them; a line for the user (None when the job wrote none)."""
    inputs = rank_files(path)
    if not inputs:
        return None
    count = merge(path, inputs)
    for name in inputs:
        os.remove(name)
    return f"ringrun: timeline of {len(inputs)} rank(s), {count} events: {path}"


def _load(text: str) -> object:
    """A trace; an array a rank left open (it died before closing it) is closed here, as Chrome
    does for the array form."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        stripped = text.rstrip().rstrip(",")
        if not stripped.startswith("["):
            raise
        return json.loads(stripped + "]")
