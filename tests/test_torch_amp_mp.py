"""Mixed precision with ringtrain.torch across real worker processes (issue 18 item 5): 16-bit
all-reduces added in float32, GradScaler with DistributedOptimizer as Horovod documents, the
strategy scope's mixed_precision setting, and an overflow on one rank skipping the step on all."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytestmark = [pytest.mark.mpi, pytest.mark.torch]


@pytest.mark.parametrize("n", [1, 2, 3])
def test_mixed_precision_matches_one_process(ringrun, n):
    # Overlap forced on: buckets launch during backward, and differently on the rank that
    # lacks a gradient, which is what the 16-bit all-reduce's ordering must survive.
    res = ringrun(n, "tests/mp/torch_amp.py", timeout=150,
                  env={"RINGTRAIN_OVERLAP": "1"}).check()
    assert res.stdout_of(0) == [f"OK {name}" for name in (
        "sixteen-bit", "hvd-scaler", "strategy-bf16", "strategy-fp16")] + ["DONE 4"], \
        res.describe()
