"""Failures in a cluster of separate ringruns: every machine stops, in bounded time, naming the
culprit; checkpoints survive kill -9 and SIGTERM, and rerunning the same commands resumes."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "mp"))
from cluster_harness import MP, Machine, clean_env, cleanup, free_ports, live, wait_all

pytestmark = pytest.mark.mpi
STEPS = MP / "cluster_steps.py"
RESUME = MP / "cluster_resume.py"


@pytest.fixture(autouse=True)
def _stop_leftovers():
    yield
    cleanup()


def two_machines(prog, env0=None, env1=None, np0=1, np1=2, timeout="30"):
    """worker:0 (the chief, ``np0`` workers) and worker:1 (``np1``), both started now."""
    a, b = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{a}", f"127.0.0.1:{b}"]}
    common = {"RINGTRAIN_TIMEOUT": timeout}
    m0 = Machine.ringrun(np0, prog, cluster, ("worker", 0), env={**common, **(env0 or {})})
    m1 = Machine.ringrun(np1, prog, cluster, ("worker", 1), env={**common, **(env1 or {})})
    return m0, m1


def pids(machine, count):
    found = {}
    deadline = time.monotonic() + 30
    while len(found) < count:
        m = machine.wait_for(r"\[(\d+)\] READY rank=\d+ size=\d+ pid=(\d+)",
                             max(1, deadline - time.monotonic()))
        for line in machine.lines:
            if "READY" in line:
                rank = int(line.split("]")[0][1:])
                found[rank] = int(line.rsplit("pid=", 1)[1])
        if len(found) < count:
            time.sleep(0.1)
        del m
    return found


def test_kill9_of_a_worker_mid_step_stops_every_machine_naming_it():
    m0, m1 = two_machines(STEPS)
    worker_pids = pids(m1, 2)
    chief_pids = pids(m0, 1)
    m1.wait_for(r"STEPPING rank=2")
    killed_at = time.monotonic()
    os.kill(worker_pids[2], signal.SIGKILL)
    rc0, rc1 = wait_all([m0, m1], timeout=30)
    elapsed = time.monotonic() - killed_at
    assert rc1 == 128 + signal.SIGKILL, m1.text
    assert rc0 == 1, m0.text
    assert "rank 2 was killed by signal 9 (SIGKILL)" in m1.text
    assert "ringrun: worker:1 (ranks 1-2): rank 2 was killed by signal 9 (SIGKILL)" in m0.text
    assert elapsed < 15
    assert live([*worker_pids.values(), *chief_pids.values()]) == []


def test_a_failing_worker_on_the_chief_machine_stops_the_others():
    m0, m1 = two_machines(STEPS, env0={"CLUSTER_TEST_FAIL_RANK": "0",
                                       "CLUSTER_TEST_FAIL_STEP": "5"},
                          env1={"CLUSTER_TEST_FAIL_RANK": "0", "CLUSTER_TEST_FAIL_STEP": "5"})
    rc0, rc1 = wait_all([m0, m1], timeout=40)
    # 7, or 1 when the library's exit hook aborts MPI because the other ranks still wait.
    assert rc0 in (7, 1), m0.text
    assert rc1 == 1, m1.text
    # worker:1 stops because of worker:0's failure, or (when MPI told its ranks first) fails
    # itself and then learns from the chief where the job failed first.
    cause = f"worker:0 (rank 0): rank 0 exited with code {rc0}"
    assert (f"ringrun: {cause}" in m1.text or f"ringrun: the job failed on {cause}" in m1.text
            or f"; also {cause}" in m1.text), m1.text


def test_a_vanished_machine_is_named_by_the_others():
    m0, m1 = two_machines(STEPS)
    worker_pids = pids(m1, 2)
    m1.wait_for(r"STEPPING")
    m1.kill()          # ringrun itself is SIGKILLed: its shims stop its workers
    assert m0.wait(30) == 1, m0.text
    assert "ringrun: worker:1 (ranks 1-2) lost:" in m0.text
    deadline = time.monotonic() + 10
    while live(list(worker_pids.values())) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert live(list(worker_pids.values())) == []


def test_a_machine_that_stops_answering_is_declared_lost_after_the_timeout():
    m0, m1 = two_machines(STEPS, timeout="2")
    pids(m1, 2)
    m1.wait_for(r"STEPPING")
    stopped_at = time.monotonic()
    os.killpg(m1.proc.pid, signal.SIGSTOP)   # ringrun and its shims freeze; TCP stays open
    try:
        assert m0.wait(30) == 1, m0.text
        elapsed = time.monotonic() - stopped_at
    finally:
        os.killpg(m1.proc.pid, signal.SIGCONT)
    assert "worker:1 (ranks 1-2) lost: stopped answering for 2 s (RINGTRAIN_TIMEOUT)" in m0.text
    assert 1.5 < elapsed < 12
    # Once thawed, the frozen machine learns it was given up and stops too.
    assert m1.wait(30) != 0, m1.text


def resume_env(directory, **extra):
    return {"CLUSTER_TEST_DIR": str(directory), "CLUSTER_TEST_STEPS": "12", **extra}


def finished(machine):
    return [line for line in machine.lines if "FINISHED" in line]


def test_kill9_mid_checkpoint_then_rerun_resumes_from_the_last_whole_one(tmp_path):
    slow = {"CLUSTER_TEST_SLOW_SAVE_AT": "5", "CLUSTER_TEST_SLOW_SAVE_S": "60"}
    m0, m1 = two_machines(RESUME, env0=resume_env(tmp_path, **slow),
                          env1=resume_env(tmp_path), np1=1)
    m0.wait_for(r"WRITING step=5")
    chief_pid = int(m0.wait_for(r"START rank=0 step=0 pid=(\d+)").group(1))
    os.kill(chief_pid, signal.SIGKILL)
    assert wait_all([m0, m1], timeout=30) == [128 + signal.SIGKILL, 1]
    leftovers = [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]
    assert leftovers, "the kill should have interrupted a checkpoint write"

    # The same commands again: both resume from step 4, the last complete checkpoint.
    m0, m1 = two_machines(RESUME, env0=resume_env(tmp_path), env1=resume_env(tmp_path), np1=1)
    assert wait_all([m0, m1], timeout=60) == [0, 0], m0.text + "\n---\n" + m1.text
    assert "START rank=0 step=4" in m0.text and "START rank=1 step=4" in m1.text
    assert finished(m0) == ["[0] FINISHED rank=0 step=12 w=36"]
    assert finished(m1) == ["[1] FINISHED rank=1 step=12 w=36"]


def test_sigterm_lets_the_chief_finish_its_checkpoint_then_rerun_resumes_there(tmp_path):
    slow = {"CLUSTER_TEST_SLOW_SAVE_AT": "5", "CLUSTER_TEST_SLOW_SAVE_S": "1"}
    m0, m1 = two_machines(RESUME, env0=resume_env(tmp_path, **slow),
                          env1=resume_env(tmp_path), np1=1)
    m0.wait_for(r"WRITING step=5")
    m0.signal(signal.SIGTERM)     # what a scheduler does to stop the job
    rc0, rc1 = wait_all([m0, m1], timeout=30)
    assert rc0 == 128 + signal.SIGTERM, m0.text
    assert rc1 == 1, m1.text
    m0, m1 = two_machines(RESUME, env0=resume_env(tmp_path), env1=resume_env(tmp_path), np1=1)
    assert wait_all([m0, m1], timeout=60) == [0, 0], m0.text + "\n---\n" + m1.text
    # The checkpoint being written when SIGTERM came is the one the job resumes from.
    assert "START rank=0 step=5" in m0.text, m0.text
    assert finished(m0) == ["[0] FINISHED rank=0 step=12 w=36"]


def test_deferred_termination_holds_sigterm_until_the_block_ends(tmp_path):
    program = textwrap.dedent("""
        import os, signal, sys, time
        from ringtrain.checkpoint import deferred_termination
        with deferred_termination():
            print("IN", flush=True)
            time.sleep(1.0)
            print("LEAVING", flush=True)
        time.sleep(5)
        print("NOT REACHED", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", program], env=clean_env(),
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "IN"
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=20)
    assert out.split() == ["LEAVING"]
    assert proc.returncode == -signal.SIGTERM


def test_stall_warning_names_a_slow_rank_and_the_job_still_completes():
    m = Machine.ringrun(3, STEPS, None, None, env={
        "RINGTRAIN_STALL_WARNING": "1", "RINGTRAIN_TIMEOUT": "4", "CLUSTER_TEST_STEPS": "8",
        "CLUSTER_TEST_SLOW_RANK": "1", "CLUSTER_TEST_SLOW_STEP": "3",
        "CLUSTER_TEST_SLOW_S": "3"})
    assert m.wait(60) == 0, m.text
    warnings = [line for line in m.lines if "RINGTRAIN_STALL_WARNING" in line]
    # Rank 0 (the lowest waiting rank) speaks for the waiting ones; step 3 is collective #4.
    assert warnings and all(line.startswith("[0] ringtrain: allreduce #4 has waited") and
                            "for rank 1 (at #3: still computing)" in line
                            for line in warnings), m.text
    assert len([line for line in m.lines if "DONE" in line]) == 3


def test_a_frozen_worker_is_named_and_every_machine_stops():
    m0, m1 = two_machines(STEPS, env0={"RINGTRAIN_STALL_WARNING": "1"},
                          env1={"RINGTRAIN_STALL_WARNING": "1"}, timeout="3")
    worker_pids = pids(m1, 2)
    m1.wait_for(r"STEPPING rank=2")
    frozen_at = time.monotonic()
    os.kill(worker_pids[2], signal.SIGSTOP)
    try:
        rc0, rc1 = wait_all([m0, m1], timeout=40)
        elapsed = time.monotonic() - frozen_at
    finally:
        try:
            os.kill(worker_pids[2], signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert rc0 != 0 and rc1 != 0, m0.text + "\n---\n" + m1.text
    both = m0.text + "\n" + m1.text
    assert "rank 2 (does not answer) (RINGTRAIN_STALL_WARNING)" in both
    assert "rank 2 stopped answering for 3 s (RINGTRAIN_TIMEOUT)" in both
    assert elapsed < 20


def test_a_machine_that_finishes_later_is_not_a_failure():
    linger = {"CLUSTER_TEST_STEPS": "5", "CLUSTER_TEST_LINGER_RANK": "2",
              "CLUSTER_TEST_LINGER_S": "3"}
    m0, m1 = two_machines(STEPS, env0=linger, env1=linger, timeout="1")
    assert wait_all([m0, m1], timeout=40) == [0, 0], m0.text + "\n---\n" + m1.text
    assert "lost" not in m0.text + m1.text
