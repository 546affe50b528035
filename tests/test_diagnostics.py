"""Seeing inside a running job (issue 17): the hang autopsy of a stalled collective, with real
processes under ringrun."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_failures import _stamp, _stamped_ringrun

sys.path.insert(0, str(Path(__file__).resolve().parent / "mp"))
from cluster_harness import REPO, Machine, cleanup, free_ports, wait_all

from ringtrain.comm import watchdog


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


SAVE_TARGETS = {  # api: (what the message names, the perturbed tensor, the second save's file)
    "manager": ("checkpoint {d}/ckpt-2", "'session/w1' (4, 3)", "ckpt-2.npz"),
    "write": ("checkpoint {d}/single-2", "'session/w1' (4, 3)", "single-2.npz"),
    "backup": ("BackupAndRestore {d}/backup.npz", "'model/00000:dense/kernel:0' (4, 3)",
               "backup.npz"),
    "modelcheckpoint": ("ModelCheckpoint {d}/w-2.h5", "'dense/kernel:0' (4, 3)", "w-2.h5"),
    "save": ("Model.save {d}/model-2.h5", "'dense/kernel:0' (4, 3)", "model-2.h5"),
}


@pytest.mark.parametrize(("np_", "api", "perturb"), [
    (3, "manager", 1), (2, "write", 1), (3, "backup", 2), (2, "modelcheckpoint", 1),
    (3, "save", 0), (1, "manager", 0), (2, "backup", -1)])
def test_no_checkpoint_is_written_from_replicas_that_differ(ringrun, tmp_path, np_, api,
                                                            perturb):
    # Two saves; between them one rank adds 0.25 to one weight. The second save stops on every
    # rank naming the tensor, the ranks and the difference, and leaves the directory as the
    # first left it (no new file, none rewritten, the index untouched). Per-rank metrics do
    # not count; a single worker has no one to differ from.
    res = ringrun(np_, "tests/mp/diag_replicas_save.py", api, str(perturb), str(tmp_path),
                  timeout=120)
    what, name, second = SAVE_TARGETS[api]
    files = [json.loads(line[len("FILES "):]) for line in res.stdout_of(0)
             if line.startswith("FILES ")]
    if perturb < 0 or np_ == 1:
        res.check()
        assert all(res.stdout_of(r)[:1] == ["SAVED 1"] for r in range(np_)), res.describe()
        assert len(files) == 3 and files[1] == files[2], res.describe()
        assert second in files[2] and files[1] != files[0], res.describe()
        return
    differ = ", ".join(str(r) for r in range(1, np_)) if perturb == 0 else str(perturb)
    expected = (f"DIVERGED before writing {what.format(d=tmp_path)}: the replicas' parameters "
                f"differ: {name} on rank{'s' if ', ' in differ else ''} {differ} differs from "
                f"rank 0's (largest difference 0.25).")
    for r in range(np_):
        out = [line for line in res.stdout_of(r) if not line.startswith("FILES ")]
        assert out[0] == "SAVED 1", res.describe()
        assert out[1].startswith(expected), res.describe()
    assert len(files) == 2 and files[0] == files[1], res.describe()
    assert res.returncode == 3, res.describe()


@pytest.mark.parametrize("np_", [2, 3])
def test_doctor_checks_every_worker_and_names_the_slowest_link(ringrun, np_):
    res = ringrun(np_, "--doctor", timeout=60)
    res.check()
    out = res.stdout_of(0)
    assert out[0].startswith(f"ringrun doctor: {np_} worker(s) on 1 host(s), checked in")
    assert float(out[0].split()[-2]) <= 10, res.describe()
    assert out[1].endswith(f"(ranks 0-{np_ - 1})"), res.describe()
    assert out[3].startswith("  versions agree on every worker: Python 3."), res.describe()
    assert "torch 2.13.0" in out[3], res.describe()
    assert out[4].startswith("  shared memory on ") and ": ok (" in out[4], res.describe()
    links = out[5].split(": ", 1)[1].split(", ")
    assert [link.split()[0] for link in links] == [
        f"{(r - 1) % np_}->{r}" for r in range(np_)], res.describe()
    rates = {link.split()[0]: float(link.split()[1]) for link in links}
    slowest = out[6].split()[2]
    assert rates[slowest] == min(rates.values()), res.describe()
    assert out[7].startswith("  all-reduce of 4 MiB (best of 3): bus bandwidth"), res.describe()
    assert out[-1] == "ringrun doctor: OK", res.describe()
    assert all(not res.stdout_of(r) for r in range(1, np_)), res.describe()


def test_doctor_names_version_skew_with_its_ranks():
    from ringtrain.doctor import skew

    facts = [{"Python": "3.11.7", "ringtrain": "0.1.0", "NumPy": "2.4.6", "torch": t,
              "mpi4py": "4.1.2", "MPI": "MPICH Version: 5.0.2"}
             for t in ("2.13.0", "2.13.0", "2.12.1", "2.13.0")]
    assert skew(facts) == ["torch differs: 2.13.0 on ranks 0-1, 3; 2.12.1 on rank 2"]
    assert skew(facts[:2]) == []


def test_doctor_takes_no_program(ringrun):
    res = ringrun(2, "train.py", options=["--doctor"], timeout=30)
    assert res.returncode == 2
    assert "--doctor runs its own check: give no program" in res.stderr


def test_doctor_with_hosts_starts_mpi_on_each_host_first_and_names_the_one_that_fails(
        ringrun, tmp_path):
    res = ringrun(None, "--doctor", options=["-H", "localhost:2"], timeout=60)
    res.check()
    out = res.stdout_of(0)
    assert out[0].startswith("ringrun doctor: 2 worker(s) on 1 host(s)"), res.describe()
    assert out[1] == f"  MPI started on every host: {socket.gethostname()} (ranks 0-1)"
    assert out[-1] == "ringrun doctor: OK", res.describe()
    # A host MPI cannot reach: named with the fix, before any worker starts.
    hostfile = tmp_path / "hosts"
    hostfile.write_text("localhost slots=1\nnosuch.invalid slots=1\n")
    res = ringrun(None, "--doctor", options=["--hostfile", str(hostfile)], timeout=60)
    assert res.returncode == 1, res.describe()
    problems = [line for line in res.stderr.splitlines() if line.startswith("ringrun doctor:")]
    assert len(problems) == 1, res.describe()
    assert problems[0].startswith("ringrun doctor: MPI did not start on nosuch.invalid: ")
    assert "'ssh -o BatchMode=yes HOST true' works without a password" in problems[0]
    assert not res.stdout, res.describe()


@pytest.fixture
def machines():
    yield
    cleanup()


def _doctor_machines(sizes, ports, cwds=None):
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    return [Machine.ringrun(k, "--doctor", cluster, ("worker", i), cwd=(cwds or {}).get(i, REPO))
            for i, k in enumerate(sizes)]


def test_doctor_in_a_cluster_names_each_machine_and_the_rendezvous(machines):
    chief, other = _doctor_machines([2, 1], free_ports(2))
    assert wait_all([chief, other]) == [0, 0], chief.text + "\n---\n" + other.text
    out = [line for line in chief.lines if line.startswith(("[0] ringrun", "[0]   "))]
    host = socket.gethostname()
    assert out[0].startswith("[0] ringrun doctor: 3 worker(s) on 1 host(s), checked in")
    assert out[1] == (f"[0]   MPI started on every machine: worker:0 on {host} (ranks 0-1); "
                      f"worker:1 on {host} (rank 2)"), chief.text
    assert out[2].startswith("[0]   rendezvous: the chief, worker:0 at 127.0.0.1:"), chief.text
    assert out[2].endswith(", was reached by all 2 machines"), chief.text
    assert out[4].startswith("[0]   versions agree on every worker: "), chief.text
    assert out[-1] == "[0] ringrun doctor: OK", chief.text


def test_doctor_in_a_cluster_names_version_skew_by_machine(machines, tmp_path):
    # Machine worker:1 runs a copy of ringtrain that says it is 0.0.9.
    shutil.copytree(REPO / "ringtrain", tmp_path / "ringtrain",
                    ignore=shutil.ignore_patterns("__pycache__"))
    init = tmp_path / "ringtrain" / "__init__.py"
    init.write_text(init.read_text().replace('__version__ = "0.1.0"', '__version__ = "0.0.9"'))
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    chief = Machine.ringrun(1, "--doctor", cluster, ("worker", 0))
    other = Machine.ringrun(1, "--doctor", cluster, ("worker", 1), cwd=tmp_path,
                            env={"PYTHONPATH": f"{tmp_path}:{REPO / 'launcher'}"})
    assert wait_all([chief, other]) == [1, 0], chief.text + "\n---\n" + other.text
    expected = ("ringtrain differs: 0.1.0 on rank 0 (worker:0); 0.0.9 on rank 1 (worker:1)")
    assert f"[0]   version skew: {expected}" in chief.lines, chief.text
    assert f"[0] ringrun doctor: 1 problem(s): {expected}" in chief.lines, chief.text


def test_doctor_names_a_taken_rendezvous_port_and_a_chief_it_cannot_reach(machines):
    ports = free_ports(2)
    with socket.create_server(("127.0.0.1", ports[0])):
        (chief,) = _doctor_machines([1], ports)
        assert chief.wait(30) == 1, chief.text
    assert (f"ringrun: this machine is worker:0, the chief, but cannot listen on port "
            f"{ports[0]} of RINGTRAIN_CONFIG's 127.0.0.1:{ports[0]}: ") in chief.text
    assert f"(held by pid {os.getpid()} (" in chief.text, chief.text
    assert chief.text.endswith("; stop what holds it, or give worker:0 a free port in "
                               "RINGTRAIN_CONFIG on every machine"), chief.text
    # Nobody listens at the chief's address: worker:1 gives up after the doctor's 8 s.
    other = Machine.ringrun(1, "--doctor", {"worker": [f"127.0.0.1:{p}" for p in ports]},
                            ("worker", 1))
    start = time.monotonic()
    assert other.wait(30) == 1, other.text
    assert time.monotonic() - start < 15, other.text
    assert (f"ringrun: worker:1 could not join the cluster: could not reach the chief at "
            f"127.0.0.1:{ports[0]} within 8 s (RINGTRAIN_JOIN_TIMEOUT): ") in other.text
    assert other.text.endswith(f"; start ringrun on worker:0's machine too, and check that "
                               f"RINGTRAIN_CONFIG gives its address and that port {ports[0]} "
                               f"there is open to this machine"), other.text


def test_stack_dumps_are_the_main_threads_and_survive_threads_that_churn():
    # The autopsy signals a late rank for its stack while that rank's other threads (the
    # watchdog's) push and pop frames. A handler that walked every thread's frames read
    # frames being freed: rank 3 of the stall test above died of SIGSEGV now and then, and
    # this process within a few signals.
    proc = subprocess.Popen([sys.executable, str(REPO / "tests/mp/diag_stack_churn.py")],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        ready = proc.stdout.readline().split()
        assert ready[0] == "READY" and ready[1] != "None", ready
        path = ready[1]
        dumps = []
        try:
            for _ in range(300):
                before = os.path.getsize(path)
                watchdog._signal_main_thread(proc.pid, watchdog.STACK_SIGNAL)
                deadline = time.monotonic() + 5
                dump = ""
                while not dump.endswith(" in <module>\n") and time.monotonic() < deadline:
                    time.sleep(0.001)
                    with open(path) as f:
                        f.seek(before)
                        dump = f.read()
                dumps.append(dump)
        except OSError:         # its dump file went with it
            pytest.fail(f"the worker died: exit code {proc.wait()}")
        for dump in dumps:
            assert dump.startswith("Stack (most recent call first):\n"), dump
            frames = watchdog.stack_frames(dump)
            assert [f[2] for f in frames] == ["hold", "<module>"], dump
        proc.stdin.close()
        assert proc.stdout.read() == "ALIVE\n"
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
        proc.wait()
