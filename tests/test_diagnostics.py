"""Seeing inside a running job (issue 17): the hang autopsy of a stalled collective, with real
processes under ringrun."""

from __future__ import annotations

import pytest
from test_failures import _stamp, _stamped_ringrun


@pytest.mark.parametrize("compute", ["python", "c"])
def test_a_stall_names_where_each_late_rank_is_and_what_it_does(compute):
    # Rank 0 waits in an allreduce; rank 1 sleeps, rank 2 computes (a pure-Python loop, or one
    # C call that holds the GIL so its watchdog cannot answer), rank 3 waits in a barrier of
    # another communicator. Before: "rank 1 (at #1: still computing)" for all three.
    code, lines = _stamped_ringrun(4, "tests/mp/diag_hang.py", compute, "5",
                                   env={"RINGTRAIN_STALL_WARNING": "2"})
    text = "\n".join(line for _, line in lines)
    assert code == 0, text
    at = {line.split()[2]: int(line.split()[3]) for _, line in lines if " LINE " in line}
    prog = "tests/mp/diag_hang.py"
    warned = [t for t, line in lines if line.startswith("[0] ringtrain: allreduce #2 has waited")]
    assert warned and warned[0] - _stamp(lines, "[0] WAITING") < 2 + 2, text
    first = text.split("[0] ringtrain: allreduce #2 has waited 2 s")[1].splitlines()[:4]
    # The loop is two lines (its test and its body): the dump may catch either.
    spins = ([f"computing at {prog}:{at['spin'] + i} in spin" for i in (0, 1)]
             if compute == "python" else [f"computing at {prog}:{at['crunch']} in crunch"])
    assert first[1] == f"[0] ringtrain:   rank 1: sleeping at {prog}:{at['sleep']} in nap", text
    assert first[2] in [f"[0] ringtrain:   rank 2: {spin}" for spin in spins], text
    assert first[3] == (f"[0] ringtrain:   rank 3: waiting in barrier #1 of another "
                        f"communicator at {prog}:{at['barrier']} in <module>"), text
    if compute == "c":
        assert "rank 2 (does not answer)" in first[0], text


@pytest.mark.parametrize(("np_", "front_end", "perturb"), [
    (3, "torch", 2), (3, "graph", 1), (2, "graph", -1)])
def test_the_replica_guard_names_a_parameter_changed_on_one_rank(ringrun, np_, front_end,
                                                                  perturb):
    # After step 3 one rank adds 0.25 to one weight; checked every step, step 4 stops on every
    # rank naming the tensor, the rank and the difference. Nothing is named without it.
    res = ringrun(np_, "tests/mp/diag_replicas.py", front_end, str(perturb),
                  env={"RINGTRAIN_CHECK_REPLICAS_EVERY": "1"}, timeout=120)
    if perturb < 0:
        res.check()
        assert all(res.stdout_of(r)[-1] == "DONE" for r in range(np_)), res.describe()
        return
    where, name = {"torch": ("DistributedOptimizer", "'0.weight' (3, 4)"),
                   "graph": ("MirroredStrategy", "'w1' (4, 3)")}[front_end]
    expected = (f"DIVERGED {where} step 4: the replicas' parameters differ: {name} on rank "
                f"{perturb} differs from rank 0's (largest difference 0.25).")
    for r in range(np_):
        out = res.stdout_of(r)
        assert out[:3] == ["STEP 1", "STEP 2", "STEP 3"], res.describe()
        assert out[3].startswith(expected), res.describe()
    assert res.returncode == 3, res.describe()
