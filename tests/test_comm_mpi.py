"""Multi-process tests of the collectives, run under the real ``ringrun`` at world sizes 1-3."""

import re

import pytest

from ringtrain.comm import kernels

pytestmark = pytest.mark.mpi


def _ok_lines(res, np_):
    found = {}
    for rank in range(np_):
        lines = [ln for ln in res.stdout_of(rank) if ln.startswith("COMM-OK")]
        assert len(lines) == 1, res.describe()
        fields = dict(f.split("=") for f in lines[0].split()[1:])
        assert int(fields["rank"]) == rank and int(fields["size"]) == np_
        assert int(fields["checks"]) > 1000
        found[rank] = fields
    return found


@pytest.mark.parametrize("np_", [1, 2, 3])
def test_every_collective(ringrun, np_):
    res = ringrun(np_, "tests/mp/comm_collectives.py", timeout=90).check()
    fields = _ok_lines(res, np_)
    assert {f["backend"] for f in fields.values()} == {"mpi" if np_ > 1 else "local"}
    if np_ > 1 and kernels.CROSS_MEMORY:
        # this machine lets the ranks access each other's memory: that path must have run
        assert all(f["cross_memory"] == "1" and int(f["cross_calls"]) > 100
                   for f in fields.values()), res.describe()
        # the odd ranks wrote into the even ranks' shared results through their mappings
        assert all(int(f["mapped_writes"]) > 50 for r, f in fields.items() if r % 2 == 1), \
            res.describe()


@pytest.mark.parametrize("np_", [2, 3])
def test_ranks_agree_on_cross_memory_access(ringrun, np_):
    """One rank with RINGTRAIN_CROSS_MEMORY=0: every rank goes without (one answer, taken
    together at start-up), and the results are right."""
    res = ringrun(np_, "tests/mp/comm_cross_memory_agree.py", timeout=60).check()
    for rank in range(np_):
        lines = [ln for ln in res.stdout_of(rank) if ln.startswith("AGREE-OK")]
        assert lines == [f"AGREE-OK rank={rank} cross_memory=0"], res.describe()


def test_mpi_backend_in_a_world_of_one(ringrun):
    res = ringrun(1, "tests/mp/comm_collectives.py", env={"RINGTRAIN_BACKEND": "mpi"}).check()
    assert _ok_lines(res, 1)[0]["backend"] == "mpi"


def test_collectives_without_checks_and_with_numpy_kernels(ringrun):
    res = ringrun(3, "tests/mp/comm_collectives.py",
                  env={"RINGTRAIN_CHECK_COLLECTIVES": "0", "RINGTRAIN_NO_CEXT": "1"},
                  timeout=90).check()
    _ok_lines(res, 3)


@pytest.mark.parametrize("np_, env", [(1, {}), (1, {"RINGTRAIN_BACKEND": "mpi"}), (2, {}),
                                       (3, {}), (3, {"RINGTRAIN_NO_CEXT": "1"})])
def test_min_max_propagate_nan_on_every_path(ringrun, np_, env):
    """NumPy's maximum/minimum: a NaN on any rank is NaN in the result, on every algorithm
    (MPI's own MIN/MAX gave [nan nan 1. 1.] for [1.0 | nan] before)."""
    res = ringrun(np_, "tests/mp/comm_nan.py", env=env, timeout=90).check()
    for rank in range(np_):
        lines = [ln for ln in res.stdout_of(rank) if ln.startswith("NAN-OK")]
        assert len(lines) == 1 and int(lines[0].split("checks=")[1]) >= 320, res.describe()


MISMATCHES = {
    # case: (regexes every rank's message must match, the error the culprit raises instead)
    "shape": ([r"^allreduce: every rank must pass the same shape; ", r"rank 1 sent \(3, 4\)",
               r"ranks? 0(, 2)? sent \(4, 3\)"], None),
    "dtype": ([r"^allreduce: every rank must pass the same dtype; ", r"rank LAST sent float32",
               r"0.* sent float64"], None),
    "op": ([r"^allreduce: every rank must pass the same op; ", r"rank 0 sent MAX"], None),
    "root": ([r"^broadcast: every rank must pass the same root; ", r"rank 1 sent root=1"], None),
    "collective": ([r"^collective mismatch: ", r"rank 0 called broadcast",
                    r"ranks? 1(, 2)? called allreduce"], None),
    "invalid": ([r"^allreduce: rank LAST passed invalid arguments"], "TypeError"),
    "allgather": ([r"^allgather: every rank must pass the same shape after the first dimension",
                   r"rank 0 sent \(\*, 3\)"], None),
    "async": ([r"^allreduce: every rank must pass the same shape; ", r"rank 1 sent \(5,\)"],
              None),
    "many": ([r"^allreduce_many: every rank must pass the same arrays"], None),
    "algorithm": ([r"^allreduce: every rank must pass the same algorithm; ",
                   r"rank 0 sent algorithm='ring'"], None),
    "reduce_scatter": ([r"^reduce_scatter: every rank must pass the same shape; ",
                        r"rank 0 sent \(NP, 2\)"], None),
    "badroot": ([r"^broadcast: rank 0 passed invalid arguments"], "ValueError"),
}


@pytest.mark.parametrize("np_", [2, 3])
def test_mismatches_raise_on_every_rank(ringrun, np_):
    res = ringrun(np_, "tests/mp/comm_mismatch.py", timeout=60).check()
    for rank in range(np_):
        lines = res.stdout_of(rank)
        assert f"MISMATCH-DONE rank={rank}" in lines, res.describe()
        cases = {ln.split()[1]: ln.split(" ", 3)[3] for ln in lines if ln.startswith("CASE")}
        assert set(cases) == set(MISMATCHES), res.describe()
        for name, (patterns, own_error) in MISMATCHES.items():
            got = cases[name]
            culprit = {"invalid": np_ - 1, "badroot": 0}.get(name)
            if own_error and rank == culprit:
                assert got.startswith(own_error + ":"), (name, rank, got)
                continue
            assert got.startswith("CollectiveMismatch: "), (name, rank, got)
            message = got.removeprefix("CollectiveMismatch: ")
            for pattern in patterns:
                pattern = pattern.replace("LAST", str(np_ - 1)).replace("NP", str(np_))
                assert re.search(pattern, message), (name, rank, pattern, message)


@pytest.mark.parametrize("mode", ["raise", "exit", "kill"])
def test_a_dying_rank_ends_the_job_quickly(ringrun, mode):
    res = ringrun(3, "tests/mp/comm_crash.py", mode, timeout=30)
    assert res.returncode != 0, res.describe()
    assert res.duration < 15, res.describe()
    assert "UNREACHABLE" not in res.stdout


@pytest.mark.torch
def test_async_allreduce_in_place_on_torch_views(ringrun):
    pytest.importorskip("torch")
    res = ringrun(2, "tests/mp/comm_torch_views.py", timeout=90).check()
    for rank in range(2):
        assert f"TORCH-OK rank={rank}" in res.stdout_of(rank), res.describe()


@pytest.mark.parametrize("np_", [2, 3, 4])
def test_one_step_and_ring_all_reduces_interleave_through_the_same_slots(ringrun, np_):
    # without the contract check: its exchange at the start of every call would line the ranks
    # up and hide a step that waits for too few of them
    res = ringrun(np_, "tests/mp/comm_one_shot.py", env={"RINGTRAIN_CHECK_COLLECTIVES": "0"},
                  timeout=90).check()
    for rank in range(np_):
        lines = [ln for ln in res.stdout_of(rank) if ln.startswith("ONE-SHOT-OK")]
        assert lines == [f"ONE-SHOT-OK rank={rank} calls=400 shared_memory=True"], res.describe()
