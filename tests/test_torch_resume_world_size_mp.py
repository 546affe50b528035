"""A torch checkpoint written by N workers resumes on N' != N (issue 18 item 3):
``distribute_dataloader(loader, split_batches=True)`` keeps the global batches, the position
continues, and the losses are an uninterrupted run's (float64, within 1e-6)."""

from __future__ import annotations

import re

import pytest
from conftest import run_ringrun

pytest.importorskip("torch")
pytestmark = [pytest.mark.mpi, pytest.mark.torch]

PROGRAM = "tests/mp/torch_resume_world_size.py"
_REFERENCE: dict[int, float] = {}


def _losses(result) -> dict[int, float]:
    return {int(m.group(1)): float(m.group(2))
            for m in re.finditer(r"step (\d+) loss (\S+)", "\n".join(result.stdout_of(0)))}


@pytest.fixture
def uninterrupted(tmp_path_factory) -> dict[int, float]:
    if not _REFERENCE:
        work = tmp_path_factory.mktemp("uninterrupted")
        _REFERENCE.update(_losses(run_ringrun(2, PROGRAM, str(work), timeout=150).check()))
    return _REFERENCE


@pytest.mark.parametrize(("before", "after"), [(2, 3), (3, 2)])
def test_torch_resumes_on_another_number_of_workers(tmp_path, uninterrupted, before, after):
    assert sorted(uninterrupted) == list(range(1, 33))
    first = run_ringrun(before, PROGRAM, str(tmp_path), "--stop-after", "10",
                        timeout=150).check()
    second = run_ringrun(after, PROGRAM, str(tmp_path), timeout=150).check()
    assert sorted(_losses(first)) == list(range(1, 11)), first.describe()
    resumed = _losses(second)
    assert min(resumed) == 10, second.describe()      # the checkpoint of step 9
    assert max(resumed) == 32, second.describe()
    for run in (_losses(first), resumed):
        for step, loss in run.items():
            assert loss == pytest.approx(uninterrupted[step], abs=1e-6, rel=0), \
                (step, second.describe())
