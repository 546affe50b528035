"""The straggler report (issue 17, item 2) with real processes under ringrun: a rank whose data
loading is 200 ms slower per step is named, with its phase, within 20 steps; an even job names
no one."""

from __future__ import annotations

import re

import pytest

from ringtrain.comm import stragglers

REPORT = re.compile(r"^\[0\] ringtrain: (steps? [\d-]+): (.*)$", re.MULTILINE)
# The training loops: hvd.DistributedOptimizer over distribute_dataloader (a Dataset whose
# __getitem__ sleeps on the slow rank), Keras fit and a TF1 graph loop under MirroredStrategy
# (a generator dataset that sleeps on the slow rank).
LOOPS = {"torch": ["tests/mp/diag_straggler.py"],
         "keras": ["tests/mp/diag_straggler_graph.py", "keras"],
         "graph": ["tests/mp/diag_straggler_graph.py", "graph"]}


def _reports(ringrun, loop: str, slow: int, delay: float, steps: int, every: int):
    result = ringrun(3, *LOOPS[loop], str(slow), str(delay), str(steps), timeout=120,
                     env={"RINGTRAIN_REPORT_EVERY": str(every)})
    assert result.returncode == 0, result.describe()
    assert result.stdout.count(f"STEPS {steps}") == 3, result.describe()
    # Only the chief reports.
    assert not re.search(r"^\[[12]\] ringtrain: step", result.stdout + result.stderr, re.MULTILINE)
    return REPORT.findall(result.stdout + result.stderr), result


@pytest.mark.parametrize("loop", ["torch", "keras", "graph"])
def test_a_rank_with_slow_data_loading_is_named_with_its_phase(ringrun, loop):
    reports, result = _reports(ringrun, loop, slow=2, delay=0.2, steps=12, every=5)
    # Every 5 steps, and the 2 steps left when the loop ends.
    assert [where for where, _ in reports] == ["steps 1-5", "steps 6-10", "steps 11-12"], \
        result.describe()
    for _, line in reports:
        found = re.fullmatch(r"rank 2 is the straggler: arrives (\d+) ms late per step \(p50 over "
                             r"(\d+) steps\), its data loading takes (\d+) ms longer than the "
                             r"median", line)
        assert found, result.describe()
        late, _, longer = map(int, found.groups())
        assert 150 <= late <= 320 and 170 <= longer <= 320, line


@pytest.mark.parametrize("loop", ["torch", "keras"])
def test_an_even_job_names_no_straggler(ringrun, loop):
    reports, result = _reports(ringrun, loop, slow=-1, delay=0, steps=7, every=5)
    assert [where for where, _ in reports] == ["steps 1-5", "steps 6-7"], result.describe()
    assert all(line.startswith("no straggler (the latest, rank ") for _, line in reports), \
        result.describe()


def _record(arrival: float, **phases: float) -> tuple[float, float, dict[str, float]]:
    full = dict.fromkeys(stragglers.PHASES, 0.0) | phases
    return arrival, sum(full.values()), full


@pytest.mark.parametrize("world", [2, 3, 4])
def test_the_line_from_known_records(world):
    # Rank 1's optimizer step takes 50 ms more; it arrives 50 ms after the others each step.
    everyone = [[_record(10.0 * step + (0.05 if rank == 1 else 0.0), compute=0.1,
                         optimizer=0.05 if rank == 1 else 0.0, comm=0.0 if rank == 1 else 0.05)
                 for step in range(4)] for rank in range(world)]
    assert stragglers.describe(everyone, 9, 12) == (
        "steps 9-12: rank 1 is the straggler: arrives 50 ms late per step (p50 over 4 steps), "
        "its optimizer step takes 50 ms longer than the median")


def test_lateness_under_the_threshold_names_no_one():
    everyone = [[_record(0.001 * rank, compute=0.1)] for rank in range(3)]
    assert stragglers.describe(everyone, 3, 3).startswith(
        "step 3: no straggler (the latest, rank 2, arrives 1.5 ms after the others")
