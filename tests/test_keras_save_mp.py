"""Keras model files under MirroredStrategy across real worker processes (``ringrun -np N``):
the chief writes, the chief reads and sends, training resumes alike on every rank."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.mpi
pytest.importorskip("h5py")


@pytest.mark.parametrize("n", [1, 2, 3])
def test_save_and_load_model_under_mirrored_strategy(ringrun, n, tmp_path):
    res = ringrun(n, "tests/mp/keras_save_load.py", str(tmp_path), timeout=90).check()
    for rank in range(n):
        assert res.stdout_of(rank)[-1] == "keras_save_load ok", res.describe()
    assert [p.name for p in sorted(tmp_path.glob("rank*/*"))] == ["model.h5"]
