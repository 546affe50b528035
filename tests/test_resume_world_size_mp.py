"""A checkpoint written by N workers resumes on N' != N (issue 18 item 3): same global batches,
same sample order from the saved position, the loss sequence of an uninterrupted run."""

from __future__ import annotations

import re

import pytest
from conftest import run_ringrun

PROGRAM = "tests/mp/resume_world_size.py"
_REFERENCES: dict[str, dict[int, float]] = {}


def _losses(result) -> dict[int, float]:
    return {int(m.group(1)): float(m.group(2))
            for m in re.finditer(r"(?:step|epoch) (\d+) loss (\S+)",
                                 "\n".join(result.stdout_of(0)))}


def _reference(mode: list[str], tmp_path_factory) -> dict[int, float]:
    key = " ".join(mode)
    if key not in _REFERENCES:
        work = tmp_path_factory.mktemp("uninterrupted")
        _REFERENCES[key] = _losses(run_ringrun(2, PROGRAM, str(work), *mode,
                                               timeout=120).check())
    return _REFERENCES[key]


@pytest.mark.parametrize(("mode", "stop_after", "last"), [
    ([], 10, 28),               # graph: CheckpointManager every 3 steps, stopped after step 10
    (["--keras"], 2, 4),        # Keras fit + BackupAndRestore, stopped after epoch 2
], ids=["graph", "keras"])
@pytest.mark.parametrize(("before", "after"), [(2, 3), (3, 2)])
def test_resuming_on_another_number_of_workers_continues_the_same_losses(
        tmp_path, tmp_path_factory, mode, stop_after, last, before, after):
    reference = _reference(mode, tmp_path_factory)
    assert sorted(reference) == list(range(1, last + 1))
    first = run_ringrun(before, PROGRAM, str(tmp_path), *mode, "--stop-after", str(stop_after),
                        timeout=120).check()
    second = run_ringrun(after, PROGRAM, str(tmp_path), *mode, timeout=120).check()
    losses = {**_losses(first), **_losses(second)}
    assert sorted(losses) == list(range(1, last + 1)), second.describe()
    resumed_at = min(_losses(second))
    assert 1 < resumed_at <= stop_after + 1, second.describe()   # from the checkpoint
    for step, loss in losses.items():
        assert loss == pytest.approx(reference[step], abs=1e-6, rel=0), (step, second.describe())
