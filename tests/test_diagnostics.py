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
    code, lines = _stamped_ringrun(4, "tests/mp/diag_hang.py", compute, "4",
                                   env={"RINGTRAIN_STALL_WARNING": "2"})
    text = "\n".join(line for _, line in lines)
    assert code == 0, text
    at = {line.split()[2]: int(line.split()[3]) for _, line in lines if " LINE " in line}
    prog = "tests/mp/diag_hang.py"
    warned = [t for t, line in lines if line.startswith("[0] ringtrain: allreduce #2 has waited")]
    assert warned and warned[0] - _stamp(lines, "[0] WAITING") < 2 + 2, text
    first = text.split("[0] ringtrain: allreduce #2 has waited 2 s")[1].splitlines()[:4]
    spin = (f"computing at {prog}:{at['spin']} in spin" if compute == "python"
            else f"computing at {prog}:{at['crunch']} in crunch")
    assert first[1:] == [
        f"[0] ringtrain:   rank 1: sleeping at {prog}:{at['sleep']} in nap",
        f"[0] ringtrain:   rank 2: {spin}",
        f"[0] ringtrain:   rank 3: waiting in barrier #1 of another communicator at "
        f"{prog}:{at['barrier']} in <module>"], text
    if compute == "c":
        assert "rank 2 (does not answer)" in first[0], text
