"""TensorFlow 2's custom training loop under MirroredStrategy, with real workers (ringrun):
eager and tf.function steps (strategy.run outside or inside the function) on N workers match one
worker with the global batch."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import run_ringrun

OPTIMIZERS = ("sgd", "adam")
MODES = ("eager", "function", "run_in_function")


def _run(n: int, out, global_batch: int) -> dict:
    """``{(mode, optimizer): [rank0.npz, ...]}`` of one ringrun of strategy_eager_equiv.py."""
    out.mkdir()
    run_ringrun(n, "tests/mp/strategy_eager_equiv.py", str(out), "--optimizer",
                ",".join(OPTIMIZERS), "--mode", ",".join(MODES), "--global-batch",
                str(global_batch), timeout=120).check()
    return {(m, o): [out / f"{m}_{o}_rank{r}.npz" for r in range(n)]
            for m in MODES for o in OPTIMIZERS}


def _params(path, prefix: str) -> list:
    with np.load(path) as f:
        return [f[f"{prefix}_{i}"] for i in range(4)]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    cache: dict = {}

    def get(global_batch: int) -> dict:
        if global_batch not in cache:
            cache[global_batch] = _run(1, tmp_path_factory.mktemp("one") / "out", global_batch)
        return cache[global_batch]

    return get


# B = 6 and 4 rows per worker, and 7 rows over 3 workers (3, 2, 2).
@pytest.mark.parametrize("n, global_batch", [(2, 12), (3, 12), (3, 7)])
def test_n_workers_match_one_worker_with_the_global_batch(tmp_path, reference, n, global_batch):
    ranks = _run(n, tmp_path / "multi", global_batch)
    single = reference(global_batch)
    for key, paths in ranks.items():
        chief_initial, chief_final = _params(paths[0], "initial"), _params(paths[0], "final")
        for path in paths[1:]:  # ranks start from different draws: broadcast, then identical
            for a, b in zip(_params(path, "initial") + _params(path, "final"),
                            chief_initial + chief_final):
                np.testing.assert_array_equal(a, b)
        ref = single[key][0]
        for a, b in zip(chief_initial, _params(ref, "initial")):
            np.testing.assert_array_equal(a, b)
        for a, b, a0 in zip(chief_final, _params(ref, "final"), chief_initial):
            assert not np.array_equal(a, a0), key  # five steps moved every parameter
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
        with np.load(paths[0]) as multi, np.load(ref) as one:
            # strategy.reduce(SUM) of the replicas' losses is the global batch's mean loss
            np.testing.assert_allclose(multi["loss"], one["loss"], rtol=1e-9)


def test_tensorflow_custom_training_tutorial_learns_at_np2():
    res = run_ringrun(2, "examples/tf2_custom_training.py", "--train-samples", "768",
                      "--test-samples", "256", timeout=300).check()
    losses = [float(line.split()[-1]) for line in res.stdout_of(0) if line.startswith("Epoch")]
    assert len(losses) == 2 and losses[1] < losses[0], res.describe()
    accuracy = [line for line in res.stdout_of(0) if line.startswith("test accuracy:")]
    assert len(accuracy) == 1 and not any(
        line.startswith("test accuracy:") for line in res.stdout_of(1)), res.describe()
    assert float(accuracy[0].split()[2]) > 0.5, res.describe()  # chance is 0.1
    digests = [[line for line in res.stdout_of(r) if line.startswith("weights sha256:")]
               for r in range(2)]
    assert len(digests[0]) == 1 and digests[0] == digests[1], res.describe()
