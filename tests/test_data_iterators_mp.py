"""TF1 iterators on a strategy's distributed dataset and unseeded shuffles under
MirroredStrategy, across real worker processes (``ringrun -np N``)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.mpi


@pytest.mark.parametrize("n", [1, 2, 3])
def test_distributed_iterators_and_unseeded_shuffles(ringrun, n):
    res = ringrun(n, "tests/mp/data_tf1_iterators.py", timeout=90).check()
    for rank in range(n):
        assert res.stdout_of(rank)[-1] == "data_tf1_iterators ok", res.describe()
