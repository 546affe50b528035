"""Unit tests of ringrun (one process): the plan as data, argument errors, output and frames."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest
from ringrun import cli, protocol
from ringrun.plan import (
    CONTROL_VAR,
    ClusterSeat,
    Host,
    Options,
    PlanError,
    find_local_mpiexec,
    find_mpiexec,
    plan,
    program_argv,
)
from ringrun.supervisor import Output, describe, exit_code

PY = "/opt/py/bin/python3"
MPIEXEC = "/opt/py/bin/mpiexec"
CONTROL = "127.0.0.1:4000:tok"


def make(np, *command, hosts=(), environ=None, **kw):
    opts = Options(np=np, command=tuple(command), hosts=tuple(hosts))
    kw.setdefault("python", PY)
    kw.setdefault("mpiexec", MPIEXEC)
    kw.setdefault("control", CONTROL)
    return plan(opts, environ if environ is not None else {"PATH": "/bin"}, **kw)


# --- the plan -------------------------------------------------------------------------------

def test_one_worker_runs_the_program_directly_with_this_python():
    p = make(1, "train.py", "--lr", "0.1", secret="s" * 32)
    assert not p.via_mpiexec
    assert p.launch_argv == (PY, "train.py", "--lr", "0.1")
    assert p.launch_env["RINGTRAIN_LAUNCHER"] == "ringrun"
    assert p.launch_env["RINGTRAIN_SECRET"] == "s" * 32
    assert p.launch_env["PATH"] == "/bin"          # the caller's environment is kept
    assert CONTROL_VAR not in p.launch_env         # no shim, nothing to report to
    assert [(w.rank, w.host, w.argv) for w in p.workers] == [
        (0, "localhost", (PY, "train.py", "--lr", "0.1"))]


@pytest.mark.parametrize("np", [2, 3, 5])
def test_several_workers_run_shims_under_mpiexec(np):
    p = make(np, "train.py", "x")
    assert p.via_mpiexec and p.np == np
    assert p.launch_argv == (MPIEXEC, "-n", str(np), PY, "-m", "ringrun._worker",
                             PY, "train.py", "x")
    assert p.launch_env[CONTROL_VAR] == CONTROL
    assert [w.rank for w in p.workers] == list(range(np))
    secrets = {w.env["RINGTRAIN_SECRET"] for w in p.workers}
    assert len(secrets) == 1 and len(secrets.pop()) == 32     # one secret per job
    assert all(w.env["RINGTRAIN_LAUNCHER"] == "ringrun" for w in p.workers)


def test_each_job_gets_a_fresh_secret():
    a, b = make(2, "t.py"), make(2, "t.py")
    assert a.launch_env["RINGTRAIN_SECRET"] != b.launch_env["RINGTRAIN_SECRET"]
    int(a.launch_env["RINGTRAIN_SECRET"], 16)


def test_a_command_that_is_not_a_py_file_runs_as_given():
    p = make(2, "python", "-m", "mypkg.train", "--lr", "0.1")
    assert p.workers[0].argv == ("python", "-m", "mypkg.train", "--lr", "0.1")
    assert p.launch_argv[-5:] == ("python", "-m", "mypkg.train", "--lr", "0.1")
    assert program_argv(["./run.sh", "a.py"], PY) == ("./run.sh", "a.py")
    assert program_argv(["dir/a.py"], PY) == (PY, "dir/a.py")


def test_python_output_is_unbuffered_unless_the_user_chose():
    assert make(1, "t.py").launch_env["PYTHONUNBUFFERED"] == "1"
    assert make(1, "t.py", environ={"PYTHONUNBUFFERED": ""}).launch_env["PYTHONUNBUFFERED"] == ""


def test_workers_keep_freed_memory_for_reuse_unless_the_user_set_the_allocator():
    for np_ in (1, 2):
        env = make(np_, "t.py").launch_env
        assert env["MALLOC_MMAP_THRESHOLD_"] == str(1 << 30)
        assert env["MALLOC_TRIM_THRESHOLD_"] == str(4 << 30)
    mine = make(2, "t.py", environ={"PATH": "/bin", "MALLOC_TRIM_THRESHOLD_": "0"}).launch_env
    assert mine["MALLOC_TRIM_THRESHOLD_"] == "0" and "MALLOC_MMAP_THRESHOLD_" not in mine


def test_hosts_are_passed_to_hydra_and_fill_slots_in_order():
    p = make(3, "t.py", hosts=[Host("a", 2), Host("b", 2)])
    assert p.launch_argv[:5] == (MPIEXEC, "-n", "3", "-hosts", "a:2,b:2")
    assert [w.host for w in p.workers] == ["a", "a", "b"]


def test_missing_mpiexec_names_the_install_command():
    with pytest.raises(PlanError, match="pip install mpi4py mpich"):
        make(2, "t.py", mpiexec=None)
    make(1, "t.py", mpiexec=None)            # one worker needs no MPI


def test_cluster_seat_offsets_ranks_and_adds_environment():
    seat = ClusterSeat(first_rank=4, world_size=8, env={"RINGTRAIN_CONFIG": "{}"})
    p = make(2, "t.py", cluster=seat)
    assert [w.rank for w in p.workers] == [4, 5] and p.first_rank == 4
    assert p.launch_env["RINGTRAIN_CONFIG"] == "{}"
    assert p.workers[1].env["RINGTRAIN_CONFIG"] == "{}"


def test_zero_workers_or_no_program_cannot_be_planned():
    with pytest.raises(PlanError):
        make(0, "t.py")
    with pytest.raises(PlanError):
        make(1)


def test_find_mpiexec_prefers_the_one_beside_python(tmp_path):
    beside, elsewhere = tmp_path / "venv", tmp_path / "usr"
    beside.mkdir()
    elsewhere.mkdir()
    for folder in (beside, elsewhere):
        exe = folder / "mpiexec"
        exe.write_text("#!/bin/sh\n")
        exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    assert find_mpiexec(str(beside / "python"), path=str(elsewhere)) == str(beside / "mpiexec")
    (beside / "mpiexec").unlink()
    assert find_mpiexec(str(beside / "python"), path=str(elsewhere)) == str(
        elsewhere / "mpiexec")
    assert find_mpiexec(str(beside / "python"), path=str(beside)) is None
    base = tmp_path / "base"
    (base / "bin").mkdir(parents=True)
    (elsewhere / "mpiexec").rename(base / "bin" / "mpiexec")
    assert find_mpiexec(str(beside / "python"), path=str(beside),
                        prefixes=[str(beside), str(base)]) == str(base / "bin" / "mpiexec")


# --- the command line -----------------------------------------------------------------------

@pytest.mark.parametrize("argv, own, command", [
    (["-np", "2", "t.py", "--timeout", "3"], ["-np", "2"], ["t.py", "--timeout", "3"]),
    (["-np", "2", "--no-prefix", "python", "-m", "m"], ["-np", "2", "--no-prefix"],
     ["python", "-m", "m"]),
    (["-np", "2", "--", "-weird"], ["-np", "2"], ["-weird"]),
    (["--timeout=5", "-np", "3", "t.py"], ["--timeout=5", "-np", "3"], ["t.py"]),
])
def test_split_argv_stops_at_the_program(argv, own, command):
    assert cli.split_argv(argv) == (own, command)


def test_parse_args_builds_options(tmp_path):
    script = tmp_path / "t.py"
    script.write_text("")
    opts, _ = cli.parse_args(["-np", "3", "--timeout", "1.5", "--no-prefix", str(script), "a"])
    assert opts == Options(np=3, command=(str(script), "a"), timeout=1.5, prefix=False)
    opts, _ = cli.parse_args(["-H", "a:2,b", "echo", "hi"])
    assert opts.np == 3 and opts.hosts == (Host("a", 2), Host("b", 1))


@pytest.mark.parametrize("argv, message", [
    ([], "no program"),
    (["-np", "2"], "no program"),
    (["--max-restarts", "-1", "echo"], "whole number of restarts"),
    (["-np", "0", "echo"], "at least 1"),
    (["-np", "two", "echo"], "whole number"),
    (["-np", "2", "--frobnicate", "echo"], "unrecognized arguments"),
    (["-np", "2", "--timeout", "-1", "echo"], "more than 0"),
    (["-np", "2", "--timeout", "soon", "echo"], "expected seconds"),
    (["-np", "2", "-H", "a:x", "echo"], "positive number of slots"),
    (["-np", "2", "-H", "a:0", "echo"], "positive number of slots"),
    (["-np", "5", "-H", "a:2,b:2", "echo"], "needs 5 slots"),
    (["-np", "2", "-H", "a:2", "--hostfile", "f", "echo"], "not both"),
    (["-np", "2", "--hostfile", "/nonexistent/hosts", "echo"], "No such file"),
    (["-np", "2", "missing_program.py"], "missing_program.py: no such file"),
])
def test_bad_arguments_print_usage_and_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "usage: ringrun -np N" in err and message in err


def test_bad_arguments_from_the_shell_exit_2():
    res = subprocess.run([sys.executable, "-m", "ringrun", "-np"], capture_output=True,
                         text=True, timeout=30, check=False)
    assert res.returncode == 2 and "usage: ringrun" in res.stderr


def test_help_exits_0(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    assert "--no-prefix" in capsys.readouterr().out


def test_hostfile_formats(tmp_path):
    text = "# machines\nnode1 slots=4\nnode2:2   # two\n\nnode3\n"
    assert cli.parse_hostfile(text, "hosts") == (Host("node1", 4), Host("node2", 2),
                                                 Host("node3", 1))
    with pytest.raises(ValueError, match="hosts:2"):
        cli.parse_hostfile("a\nb c d\n", "hosts")
    with pytest.raises(ValueError, match="lists no hosts"):
        cli.parse_hostfile("# nothing\n", "hosts")
    f = tmp_path / "hosts"
    f.write_text("localhost slots=2\n")
    opts, _ = cli.parse_args(["--hostfile", str(f), "echo"])
    assert opts.np == 2 and opts.hosts == (Host("localhost", 2),)


def test_dry_run_prints_the_plan_without_the_secret(capsys):
    assert cli.main(["-np", "2", "--dry-run", "echo", "hi"]) == 0
    out = capsys.readouterr().out
    assert "rank 0 on localhost" in out and "rank 1 on localhost" in out
    assert "RINGTRAIN_SECRET=<secret>" in out and "echo hi" in out


def test_the_launcher_imports_nothing_heavy():
    code = ("import sys, ringrun.cli, ringrun.supervisor, ringrun._worker; "
            "print(sorted(m for m in ('numpy', 'torch', 'cupy', 'ringtrain') "
            "if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=30, check=True)
    assert res.stdout.strip() == "[]"


# --- output and frames ----------------------------------------------------------------------

def collect(prefix=b"[2] "):
    written = []
    return Output(lambda fd, data: written.append((fd, data)), 1, prefix), written


def test_output_writes_whole_prefixed_lines_only():
    out, written = collect()
    out.feed(b"hel")
    assert written == []
    out.feed(b"lo\nwor")
    out.feed(b"ld\nagain\nand")
    assert written == [(1, b"[2] hello\n"), (1, b"[2] world\n[2] again\n")]
    out.close()
    assert written[-1] == (1, b"[2] and\n")   # a last line without newline gets one


def test_output_keeps_carriage_returns_and_crlf():
    out, written = collect()
    out.feed(b"10%\r20%\r")
    out.feed(b"\nnext\r")
    out.feed(b"\n")
    assert b"".join(d for _, d in written) == b"[2] 10%\r[2] 20%\r\n[2] next\r\n"


def test_output_without_prefix_and_close_twice():
    out, written = collect(b"")
    out.feed(b"a\nb")
    out.close()
    out.close()
    assert b"".join(d for _, d in written) == b"a\nb\n"


def test_frames_survive_any_split():
    data = (protocol.encode_json(protocol.HELLO, {"rank": 3}) + protocol.encode(protocol.STOP)
            + protocol.encode(protocol.EXIT, b"e" * 70000))
    reader = protocol.FrameReader(max_payload=70000)
    frames = []
    for i in range(0, len(data), 7):
        frames += reader.feed(data[i:i + 7])
    assert [k for k, _ in frames] == [b"H", b"S", b"X"]
    assert frames[1][1] == b"" and frames[2][1] == b"e" * 70000 and reader.pending == 0
    with pytest.raises(ValueError):
        protocol.FrameReader().feed(b"X" + (1 << 30).to_bytes(4, "big"))


def test_attach_frame_then_raw_bytes():
    reader = protocol.FrameReader()
    header = protocol.encode_json(protocol.ATTACH, {"stream": 2})
    frames = reader.feed(header + b"raw output, not a frame", limit=1)
    assert frames == [(b"A", b'{"stream":2}')]
    assert reader.rest() == b"raw output, not a frame" and reader.pending == 0


def test_control_address_round_trip():
    assert protocol.parse_control("10.0.0.1:5555:abc") == ("10.0.0.1", 5555, "abc")
    assert protocol.parse_control("/tmp/ringrun-x/control:abc") == ("/tmp/ringrun-x/control", 0,
                                                                    "abc")
    with pytest.raises(ValueError):
        protocol.parse_control("nohostport")


@pytest.mark.parametrize("returncode, code, text", [
    (0, 0, "exited with code 0"), (3, 3, "exited with code 3"),
    (-9, 137, "killed by signal 9 (SIGKILL)"), (-15, 143, "killed by signal 15 (SIGTERM)"),
])
def test_exit_codes_follow_the_shell(returncode, code, text):
    assert exit_code(returncode) == code and text in describe(returncode)


def test_main_without_mpiexec_names_the_fix(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(cli, "find_mpiexec", lambda python, prefixes=(): None)
    assert cli.main(["-np", "2", "echo", "hi"]) == 1
    assert "pip install mpi4py mpich" in capsys.readouterr().err
    assert os.environ.get(CONTROL_VAR) is None


def test_a_one_machine_job_keeps_mpi_on_loopback():
    local = make(2, "train.py")
    assert local.launch_env["UCX_NET_DEVICES"] == "lo"
    assert "UCX_NET_DEVICES" not in make(2, "train.py", hosts=[Host("n1", 2)]).launch_env
    seat = ClusterSeat(first_rank=2, world_size=4, env={"RINGTRAIN_GROUP": "1"})
    assert "UCX_NET_DEVICES" not in make(2, "train.py", cluster=seat).launch_env
    mine = make(2, "train.py", environ={"PATH": "/bin", "UCX_NET_DEVICES": "eth1"})
    assert mine.launch_env["UCX_NET_DEVICES"] == "eth1"         # the user's choice wins


def test_machines_of_a_cluster_talk_over_libfabric_unless_the_user_chose():
    seat = ClusterSeat(first_rank=2, world_size=4, env={"RINGTRAIN_GROUP": "1"})
    assert make(2, "train.py", cluster=seat).launch_env["MPIR_CVAR_CH4_NETMOD"] == "ofi"
    assert "MPIR_CVAR_CH4_NETMOD" not in make(2, "train.py").launch_env
    assert "MPIR_CVAR_CH4_NETMOD" not in make(2, "train.py", hosts=[Host("n1", 2)]).launch_env
    for mine in ({"MPIR_CVAR_CH4_NETMOD": "ucx"}, {"UCX_NET_DEVICES": "eth1"}):
        plan = make(2, "train.py", cluster=seat, environ={"PATH": "/bin", **mine})
        assert plan.launch_env.get("MPIR_CVAR_CH4_NETMOD") == mine.get("MPIR_CVAR_CH4_NETMOD")


def test_a_one_machine_job_is_forked_by_gforker_when_there_is_one(tmp_path):
    hydra = tmp_path / "mpiexec"
    hydra.write_text("")
    assert find_local_mpiexec(str(hydra)) == str(hydra)           # no gforker: hydra
    gforker = tmp_path / "mpiexec.gforker"
    gforker.write_text("")
    gforker.chmod(0o755)
    assert find_local_mpiexec(str(hydra)) == str(gforker)
