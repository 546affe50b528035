"""RINGTRAIN_TIMELINE (issue 17, item 4): a Chrome/Perfetto trace per job, with real processes
under ringrun, and ``ringrun --merge-timeline``."""

from __future__ import annotations

import itertools
import json
import statistics
import subprocess
import sys

import pytest
from conftest import worker_env

STEPS = 6


def test_a_job_writes_one_trace_with_a_process_per_rank_and_aligned_clocks(ringrun, tmp_path):
    trace = tmp_path / "trace.json"
    # Rank 1's batches take 100 ms longer to load (tests/mp/diag_straggler.py's Dataset).
    result = ringrun(3, "tests/mp/diag_straggler.py", "1", "0.1", str(STEPS), timeout=120,
                     env={"RINGTRAIN_TIMELINE": str(trace), "RINGTRAIN_REPORT_EVERY": "0"})
    assert result.returncode == 0, result.describe()
    assert "ringrun: timeline of 3 rank(s)" in result.stderr, result.describe()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trace.json"]  # rank files merged
    events = json.loads(trace.read_text())["traceEvents"]
    names = {e["pid"]: e["args"]["name"] for e in events if e["name"] == "process_name"}
    assert names == {0: "rank 0", 1: "rank 1", 2: "rank 2"}
    lanes = {(e["pid"], e["tid"]): e["args"]["name"] for e in events if e["name"] == "thread_name"}
    spans: dict[tuple[int, str], list[dict]] = {}
    for e in events:
        if e["ph"] == "X":
            spans.setdefault((e["pid"], lanes[e["pid"], e["tid"]]), []).append(e)
    for rank in range(3):
        steps = spans[rank, "training step"]
        assert [e["name"] for e in steps] == [f"step {i}" for i in range(1, STEPS + 1)]
        buckets = spans[rank, "bucket all-reduce (started-done)"]
        # One bucket: Linear(4, 1)'s 5 float32 gradients and two flags per parameter (4: had a
        # dense gradient, had a sparse one).
        assert [(e["args"]["bytes"], e["args"]["parameters"]) for e in buckets] == \
            [(36, 2)] * STEPS
        assert len(spans[rank, "bucket queued (queued-started)"]) == STEPS
        assert len(spans[rank, "data wait"]) == STEPS
        assert len(spans[rank, "blocked in all-reduce"]) == STEPS
        assert len(spans[rank, "optimizer step"]) == STEPS
    data = {r: statistics.median(e["dur"] for e in spans[r, "data wait"]) for r in range(3)}
    assert data[1] >= 90_000 and data[0] < 50_000 and data[2] < 50_000, data
    # Clocks aligned: an all-reduce ends at about the same time on every rank.
    ends = [[e["ts"] + e["dur"] for e in spans[r, "bucket all-reduce (started-done)"]]
            for r in range(3)]
    skew = [max(step) - min(step) for step in zip(*ends)]
    assert statistics.median(skew) < 20_000, skew


@pytest.mark.parametrize("np_", [2])        # the test above runs 3 ranks
def test_each_bucket_all_reduce_is_marked_queued_started_and_done(ringrun, tmp_path, np_):
    # A bucket per parameter (six) and one of two float flags per parameter: each step, every
    # bucket is queued when its gradients are ready, started when the communication thread
    # reaches it (after the buckets before it: one collective at a time) and done; its bytes
    # are its parameter's floats.
    trace = tmp_path / "trace.json"
    steps = 3
    result = ringrun(np_, "tests/mp/diag_timeline_buckets.py", str(steps), timeout=120,
                     env={"RINGTRAIN_TIMELINE": str(trace), "RINGTRAIN_REPORT_EVERY": "0",
                          "RINGTRAIN_BUCKET_BYTES": "0"})
    assert result.returncode == 0, result.describe()
    document = json.loads(trace.read_text())          # valid JSON, Chrome's object form
    events = document["traceEvents"]
    for e in events:
        assert e["ph"] in ("M", "X") and isinstance(e["pid"], int), e
        if e["ph"] == "X":
            assert isinstance(e["tid"], int) and e["ts"] > 0 and e["dur"] >= 0, e
    lanes = {(e["pid"], e["tid"]): e["args"]["name"] for e in events if e["name"] == "thread_name"}
    for rank in range(np_):
        running = [e for e in events if e["ph"] == "X" and e["pid"] == rank
                   and lanes[rank, e["tid"]] == "bucket all-reduce (started-done)"]
        waiting = [e for e in events if e["ph"] == "X" and e["pid"] == rank
                   and lanes[rank, e["tid"]] == "bucket queued (queued-started)"]
        assert len(running) == len(waiting) == 7 * steps, (rank, len(running), len(waiting))
        for step in range(steps):
            ran = sorted(running[7 * step:7 * step + 7], key=lambda e: e["ts"])
            # float32: Linear(4, 3) 12 + 3, Linear(3, 2) 6 + 2, Linear(2, 1) 2 + 1; 12 flags
            assert sorted(e["args"]["bytes"] for e in ran) == [4, 8, 8, 12, 24, 48, 48], ran
            for e in ran:
                a = e["args"]
                assert a["queued_us"] <= a["started_us"] <= a["done_us"], a
                assert e["ts"] == a["started_us"], (e, a)
                assert abs(e["ts"] + e["dur"] - a["done_us"]) < 1, (e, a)
            for before, after in itertools.pairwise(ran):   # one at a time, in order
                assert after["args"]["started_us"] >= before["args"]["done_us"] - 1, ran
        for e in waiting:
            a = e["args"]
            assert e["ts"] == a["queued_us"], e
            assert abs(e["dur"] - (a["started_us"] - a["queued_us"])) < 1, e


def _merge(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ringrun", "--merge-timeline", *args],
                          env=worker_env(), capture_output=True, text=True, timeout=60,
                          check=False)


def test_merge_timeline_joins_files_and_refuses_what_is_not_a_trace(tmp_path):
    a, b, out = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "out.json"
    a.write_text(json.dumps({"traceEvents": [{"name": "x", "ph": "X", "pid": 0, "ts": 1,
                                              "dur": 2}]}))
    b.write_text(json.dumps({"traceEvents": [{"name": "y", "ph": "X", "pid": 1, "ts": 3,
                                              "dur": 4}]}))
    # A rank that died leaves its array open (after a flushed block): it is closed.
    c = tmp_path / "c.json"
    c.write_text('[\n{"name": "z", "ph": "X", "pid": 2, "ts": 5, "dur": 6}')
    done = _merge(str(out), str(a), str(b), str(c))
    assert done.returncode == 0, done.stderr
    assert [e["name"] for e in json.loads(out.read_text())["traceEvents"]] == ["x", "y", "z"]
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    refused = _merge(str(tmp_path / "never.json"), str(a), str(bad))
    assert refused.returncode == 1 and f"cannot read {bad} as a trace" in refused.stderr
    assert not (tmp_path / "never.json").exists()
    assert _merge(str(out)).returncode == 2
