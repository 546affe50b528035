"""ringtrain.torch across real worker processes started by ``ringrun -np N``: Horovod's
semantics at 1, 2 and 3 workers, and equivalence with single-process training."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytestmark = [pytest.mark.mpi, pytest.mark.torch]

API_CHECKS = ["process-group", "allreduce", "allgather", "broadcast", "alltoall",
              "barrier-join-objects", "broadcast-parameters", "distributed-optimizer", "chief",
              "strategy"]
EQUIVALENCE_CASES = ["hvd-sgd", "hvd-adam", "strategy-sgd", "strategy-adam",
                     "hvd-sgd-accumulate", "hvd-adam-zero", "strategy-sgd-no-sync"]


@pytest.mark.parametrize("n, overlap", [(1, "auto"), (2, "0"), (3, "1")])
def test_horovod_semantics(ringrun, n, overlap, tmp_path):
    res = ringrun(n, "tests/mp/torch_api.py", str(tmp_path), timeout=100,
                  env={"RINGTRAIN_OVERLAP": overlap}).check()
    assert res.stdout_of(0) == [f"OK {name}" for name in API_CHECKS] + ["DONE 10"], \
        res.describe()


PARITY_CHECKS = ["errors", "names", "grouped", "reducescatter", "product-scaling", "sparse",
                 "async", "optimizer", "introspection"]


@pytest.mark.parametrize("n", [1, 2, 3])
def test_horovod_parity(ringrun, n):
    # Errors that leave the job usable, names in flight, grouped collectives, reducescatter,
    # Product, integer scaling, sparse all-reduce, async handles, optimizer warnings and state.
    res = ringrun(n, "tests/mp/torch_horovod_parity.py", timeout=100).check()
    assert res.stdout_of(0) == [f"OK {name}" for name in PARITY_CHECKS] + ["DONE 9"], \
        res.describe()


@pytest.mark.parametrize("n", [1, 2, 3])
def test_process_sets(ringrun, n):
    # Even and odd ranks as two sets: every collective, errors and DistributedOptimizer
    # within a set, then remove_process_set and init(process_sets=...).
    res = ringrun(n, "tests/mp/torch_process_sets.py", timeout=100).check()
    assert res.stdout_of(0) == [f"OK {name}" for name in
                                ("add", "collectives", "errors", "optimizer", "remove")] + \
        ["DONE 5"], res.describe()


@pytest.mark.parametrize("n", [2, 3])
def test_equivalence_with_one_process(ringrun, n):
    # Small buckets (200 bytes) so that the gradients span fused and one-parameter buckets,
    # launched during backward (overlap forced on: this machine may have no core to spare).
    res = ringrun(n, "tests/mp/torch_equivalence.py", timeout=100,
                  env={"RINGTRAIN_BUCKET_BYTES": "200", "RINGTRAIN_OVERLAP": "1"}).check()
    assert res.stdout_of(0) == [f"OK {case}" for case in EQUIVALENCE_CASES], res.describe()


@pytest.mark.parametrize("n", [1, 2, 3])
def test_join_uneven_data(ringrun, n):
    # Rank r runs r + 1 steps, then joins: the joined ranks' zeros are in every average (Sum,
    # Average of floats and integers, fused lists, DistributedOptimizer), other collectives
    # raise on the callers, and join() returns the last rank to join.
    res = ringrun(n, "tests/mp/torch_join.py", timeout=100).check()
    assert res.stdout_of(0) == [f"OK {name}" for name in ("allreduce", "refused", "optimizer")] \
        + ["DONE 3"], res.describe()


@pytest.mark.parametrize("n", [2, 3])
def test_join_while_a_rank_ends_without_joining(ringrun, n):
    # Rank 0 joins; the others end their programs: rank 0's join() raises naming them (no hang).
    res = ringrun(n, "tests/mp/torch_join.py", "abandon", timeout=100)
    others = "rank 1" if n == 2 else "ranks 1, 2"
    raised = (f"RAISED join: rank 0 waited for the other ranks to join, but {others} ended "
              f"without calling join()")
    assert res.stdout_of(0) == [raised], res.describe()
    assert res.returncode != 0, res.describe()


@pytest.mark.parametrize("n", [1, 2, 3])
def test_sparse_gradients_stay_sparse(ringrun, n):
    # Embedding(sparse=True): the averaged (or summed) gradient is sparse and SparseAdam steps
    # alike everywhere; a rank without the gradient gets the others'; sparse_as_dense=True.
    res = ringrun(n, "tests/mp/torch_sparse_grads.py", timeout=100).check()
    assert res.stdout_of(0) == [f"OK {name}" for name in ("sparse-grad", "sparse-adam", "mixed")] \
        + ["DONE 3"], res.describe()


@pytest.mark.parametrize("n", [1, 2, 3])
def test_sync_batch_norm_is_batch_norm_over_the_global_batch(ringrun, n):
    # Ranks hold 2, 0 and 3 rows (np 3): outputs, input gradients, summed parameter gradients
    # and running statistics equal torch's BatchNorm over all rows (float64), for 3-D, 4-D and
    # 2-D inputs; bad input raises the same ValueError on every rank.
    res = ringrun(n, "tests/mp/torch_sync_batch_norm.py", timeout=100).check()
    for rank in range(n):
        assert res.stdout_of(rank) == [f"SYNCBN-OK rank={rank} checks=54"], res.describe()


@pytest.mark.parametrize("n", [1, 2, 3])
def test_barrier_does_not_wait_for_async_operations_in_flight(ringrun, n):
    # Horovod's duplicate-name tests: rank 0 starts a named async operation (and fails to start
    # it twice) before a barrier, the others after it; the operations still pair up, with
    # closed-form results, for allreduce, allgather, broadcast, alltoall and reducescatter.
    res = ringrun(n, "tests/mp/torch_barrier_beside_async.py", timeout=100).check()
    for rank in range(n):
        assert res.stdout_of(rank) == [f"ASYNC-BARRIER-OK rank={rank} kinds=5"], res.describe()


@pytest.mark.parametrize("n", [1, 2, 3])
def test_named_operations_pair_by_name_not_call_order(ringrun, n):
    # Horovod matches named operations by name: every kind started (and synchronized) in
    # rank-dependent orders, named ones among unnamed ones, a rank starting its part late;
    # closed-form results, and the job stays in step. At np 2 the late part waits past a
    # 1-second RINGTRAIN_STALL_WARNING, which names the wait.
    env = {"RINGTRAIN_STALL_WARNING": "1"} if n == 2 else {}
    res = ringrun(n, "tests/mp/torch_named_order.py", timeout=100, env=env).check()
    for rank in range(n):
        assert res.stdout_of(rank) == [f"NAMED-OK rank={rank} cases=19"], res.describe()
    if n == 2:
        warned = [line for line in res.stderr_of(0) if "each other's named operations" in line]
        assert warned and "allreduce 'late-a' not started on rank 1" in warned[0] and \
            "allreduce 'late-b' not started on rank 0" in warned[0], res.describe()


@pytest.mark.parametrize("n", [1, 2, 4])
def test_adasum_matches_its_closed_forms(ringrun, n):
    # Equal tensors come back unchanged, orthogonal ones add up, rank-dependent ones follow
    # Horovod's pairing tree; grouped tensors get their own coefficients; the optimizer moves
    # each parameter by -lr * Adasum of the workers' gradients (float64, to 1e-12).
    res = ringrun(n, "tests/mp/torch_adasum.py", timeout=100).check()
    for rank in range(n):
        checks = 11 if n == 1 else 13
        assert res.stdout_of(rank) == [f"ADASUM-OK rank={rank} checks={checks}"], res.describe()
