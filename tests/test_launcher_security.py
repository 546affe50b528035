"""ringrun's control socket against strangers and junk (issue 12, item 1): the job survives."""

from __future__ import annotations

import ipaddress
import json
import os
import random
import re
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, worker_env

# Each rank says it is ready, waits for the go file, then finishes normally.
WAIT_FOR_GO = ('echo "ready $PMI_RANK"; while [ ! -e "$GO" ]; do sleep 0.05; done; '
               'echo "done $PMI_RANK"')


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(c) for c in (task / "children").read_text().split()]
    return out


def _control_of(ringrun_pid: int) -> tuple[str, str]:
    """(socket path, token) from the environment ringrun gave mpiexec (same user: readable)."""
    for child in _children(ringrun_pid):
        environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
        for item in environ:
            if item.startswith(b"RINGRUN_CONTROL="):
                rest, _, token = item.split(b"=", 1)[1].decode().rpartition(":")
                return rest, token
    raise AssertionError("ringrun's mpiexec has no RINGRUN_CONTROL")


def _wait_for(path: Path, text: str, count: int, proc, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().count(text) >= count:
            return
        assert proc.poll() is None, f"ringrun ended early: {path.read_text()}"
        time.sleep(0.05)
    raise AssertionError(f"no {count} x {text!r} in {path.read_text()!r}")


def _frame(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack("!I", len(payload)) + payload


def _junk(token: bytes, rng: random.Random) -> list[bytes]:
    """What a hostile or broken peer may send: with and without the token."""
    deep = b"[" * 30_000 + b"]" * 30_000
    cases = [
        _frame(b"H", b"1"),                                   # crashed ringrun before
        _frame(b"H", b"[]"),
        _frame(b"H", deep),
        b"\xff" * 40,
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"",
    ]
    with_token = [
        _frame(b"H", b"1"), _frame(b"H", b"[]"), _frame(b"H", deep[:4000]),
        _frame(b"H", b'{"rank": [' * 2000 + b"0" + b"]" * 2000 + b"}"),
        _frame(b"H", b"\xff\xfe{}"),                           # not UTF-8
        _frame(b"H", b'{"rank": ' + b"9" * 5000 + b', "pid": 5}'),
        _frame(b"H", json.dumps({"rank": "0", "pid": 5}).encode()),
        _frame(b"H", json.dumps({"rank": True, "pid": 5}).encode()),
        _frame(b"H", json.dumps({"rank": 99, "pid": 5}).encode()),
        _frame(b"H", json.dumps({"rank": 0, "pid": 4242}).encode()),  # rank 0 said hello already
        _frame(b"H", json.dumps({"rank": 1, "pid": "x"}).encode()),
        _frame(b"A", json.dumps({"rank": 0, "stream": 3}).encode()),
        _frame(b"X", json.dumps({"returncode": 0}).encode()),    # an exit before any hello
        b"H" + struct.pack("!I", 0xFFFFFFFF),                    # a 4 GiB length
        b"H" + struct.pack("!I", 1 << 24) + b"x" * 1000,
        b"Z" * 5,
    ]
    cases += [token + case for case in with_token]
    for _ in range(150):                                     # random frames and bytes
        body = rng.randbytes(rng.randrange(0, 300))
        kind = rng.choice([b"H", b"A", b"X", b"S", rng.randbytes(1)])
        data = _frame(kind, body) if rng.random() < 0.6 else body
        cases.append(token + data if rng.random() < 0.5 else data)
    return cases


def test_junk_on_the_control_socket_neither_crashes_nor_disturbs_the_job(tmp_path):
    tmpdir = tmp_path / "t"
    tmpdir.mkdir()
    out = tmp_path / "out"
    env = worker_env({"GO": str(tmp_path / "go"), "TMPDIR": str(tmpdir)})
    with open(out, "w") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "ringrun", "-np", "2", "sh", "-c",
                                 WAIT_FOR_GO], cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                                stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    held = []
    try:
        _wait_for(out, "ready", 2, proc)
        path, token = _control_of(proc.pid)
        # Only this user can even reach the socket: its directory is private.
        assert Path(path).parent.parent == tmpdir
        assert stat.S_IMODE(Path(path).parent.stat().st_mode) == 0o700
        for _ in range(80):                     # silent strangers, more than ringrun keeps
            held.append(socket.socket(socket.AF_UNIX))
            held[-1].connect(path)
        rng = random.Random(12)
        for data in _junk(token.encode(), rng):
            s = socket.socket(socket.AF_UNIX)
            s.connect(path)
            try:
                s.sendall(data)
            except OSError:
                pass                            # ringrun refused mid-send
            s.close()
        time.sleep(0.5)
        assert proc.poll() is None, out.read_text()
        (tmp_path / "go").touch()
        code = proc.wait(timeout=60)
    finally:
        for s in held:
            s.close()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    text = out.read_text()
    assert code == 0, text
    assert "[0] done 0" in text and "[1] done 1" in text
    assert "Traceback" not in text
    refusals = [line for line in text.splitlines() if "refused a connection" in line]
    assert len(refusals) == 5, text                  # a few lines, then only a count
    assert "(further refusals are only counted)" in refusals[-1]
    *_, count, summary = text.splitlines()
    assert "ringrun: refused " in count and "connections to the control socket in all" in count
    assert summary.startswith("ringrun: 2 worker(s) finished in "), text
    assert not Path(path).parent.exists()            # the private directory is gone


# --- what a single-machine job exposes (issue 12, item 4) -----------------------------------

INIT_THEN_WAIT = ("import os, time, numpy as np, ringtrain as rt\n"
                  "c = rt.init()\n"
                  "print('sum', c.allreduce(np.ones(3)).tolist(), flush=True)\n"
                  "while not os.path.exists(os.environ['GO']):\n"
                  "    time.sleep(0.05)\n")


def _family(pid: int) -> set[int]:
    """``pid`` and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        found.add(todo[-1])
        todo += children.get(todo.pop(), [])
    return found


def _listeners(pids: set[int]) -> list[str]:
    """``ss -ltnu`` lines of sockets that ``pids`` listen on (TCP) or are bound to (UDP)."""
    text = subprocess.run(["ss", "-H", "-lntup"], capture_output=True, text=True, check=True,
                          timeout=30).stdout
    return [line for line in text.splitlines()
            if {int(p) for p in re.findall(r"pid=(\d+)", line)} & pids]


def _is_loopback(line: str) -> bool:
    host = line.split()[4].rpartition(":")[0].strip("[]").split("%")[0]
    return host not in ("*", "0.0.0.0", "::") and ipaddress.ip_address(host).is_loopback


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2)")
def test_a_single_machine_job_listens_on_loopback_only(tmp_path):
    program = tmp_path / "wait.py"
    program.write_text(INIT_THEN_WAIT)
    out = tmp_path / "out"
    env = worker_env({"GO": str(tmp_path / "go")})
    env.pop("UCX_NET_DEVICES", None)
    with open(out, "w") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "ringrun", "-np", "3", str(program)],
                                cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=sink,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_for(out, "sum [3.0, 3.0, 3.0]", 3, proc)   # MPI is up in every worker
        family = _family(proc.pid)
        assert len(family) >= 4
        listening = _listeners(family)
        (tmp_path / "go").touch()
        assert proc.wait(timeout=60) == 0, out.read_text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    exposed = [line for line in listening if not _is_loopback(line)]
    assert exposed == [], "\n".join(listening)
