"""RINGTRAIN_TIMELINE (issue 17, item 4): a Chrome/Perfetto trace per job, with real processes
under ringrun, and ``ringrun --merge-timeline``."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys

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
        buckets = spans[rank, "bucket all-reduce (queued-done)"]
        # One bucket: Linear(4, 1)'s 5 float32 gradients and a flag per parameter (2).
        assert [e["args"] for e in buckets] == [{"bytes": 28, "parameters": 2}] * STEPS
        assert len(spans[rank, "data wait"]) == STEPS
        assert len(spans[rank, "blocked in all-reduce"]) == STEPS
        assert len(spans[rank, "optimizer step"]) == STEPS
    data = {r: statistics.median(e["dur"] for e in spans[r, "data wait"]) for r in range(3)}
    assert data[1] >= 90_000 and data[0] < 50_000 and data[2] < 50_000, data
    # Clocks aligned: an all-reduce ends at about the same time on every rank.
    ends = [[e["ts"] + e["dur"] for e in spans[r, "bucket all-reduce (queued-done)"]]
            for r in range(3)]
    skew = [max(step) - min(step) for step in zip(*ends)]
    assert statistics.median(skew) < 20_000, skew


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
