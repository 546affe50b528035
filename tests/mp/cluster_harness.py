"""Test harness: several independently started ``ringrun``s ("machines") on one host.

Each :class:`Machine` is one ``python -m ringrun -np K PROG`` with its own RINGTRAIN_CONFIG
(same cluster, its own task), reading its merged output in a thread. Every wait has a deadline,
and :func:`cleanup` kills whatever a test left running, so a hang is a failure, not a stall.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MP = REPO / "tests" / "mp"
SECRET = "cluster-tests-secret"


def free_ports(n: int) -> list[int]:
    """``n`` distinct TCP ports that were free a moment ago on 127.0.0.1."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def clean_env(extra: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """The test's environment without any RINGTRAIN_*/TF_CONFIG/torchrun variable, plus extra."""
    drop = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR",
            "MASTER_PORT", "TF_CONFIG", "PMI_RANK", "PMI_SIZE", "PMI_FD", "PMI_PORT")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RINGTRAIN_", "TORCHELASTIC_")) and k not in drop}
    env["PYTHONUNBUFFERED"] = "1"
    for key, value in (extra or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def config(cluster: Mapping[str, Sequence[str]], task_type: str, index: int) -> str:
    return json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})


_RUNNING: list[Machine] = []


class Machine:
    """One independently started command (normally ``ringrun -np K PROG``), output collected."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], name: str = "",
                 cwd: str | os.PathLike = REPO) -> None:
        self.name = name
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(list(argv), env=dict(env), cwd=cwd,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.started = time.monotonic()
        _RUNNING.append(self)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @classmethod
    def ringrun(cls, np: int, prog: str | Path, cluster: Mapping[str, Sequence[str]] | None,
                task: tuple[str, int] | None, env: Mapping[str, str | None] | None = None,
                args: Sequence[str] = (), name: str = "",
                cwd: str | os.PathLike = REPO, options: Sequence[str] = ()) -> Machine:
        extra: dict[str, str | None] = {"RINGTRAIN_SECRET": SECRET}
        if cluster is not None and task is not None:
            extra["RINGTRAIN_CONFIG"] = config(cluster, *task)
        extra.update(env or {})
        argv = [sys.executable, "-m", "ringrun", "-np", str(np), *options, str(prog), *args]
        return cls(argv, clean_env(extra), name or (f"{task[0]}:{task[1]}" if task else "job"),
                   cwd=cwd)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            with self._cond:
                self.lines.append(raw.decode(errors="replace").rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def text(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = 30.0) -> re.Match:
        """The first output line matching ``pattern``; AssertionError after ``timeout``."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines:
                    found = regex.search(line)
                    if found:
                        return found
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.proc.poll() is not None and not
                                      self._reader.is_alive()):
                    raise AssertionError(f"{self.name}: no line matching {pattern!r} within "
                                         f"{timeout:g} s; output:\n{chr(10).join(self.lines)}")
                self._cond.wait(min(remaining, 0.2))

    def wait_for_nth(self, pattern: str, n: int, timeout: float = 30.0) -> re.Match:
        """The ``n``-th (1-based) output line matching ``pattern``, as ``wait_for``."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [m for m in map(regex.search, self.lines) if m]
                if len(found) >= n:
                    return found[n - 1]
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.proc.poll() is not None and not
                                      self._reader.is_alive()):
                    raise AssertionError(f"{self.name}: no {n} lines matching {pattern!r} "
                                         f"within {timeout:g} s; output:\n"
                                         f"{chr(10).join(self.lines)}")
                self._cond.wait(min(remaining, 0.2))

    def wait(self, timeout: float = 60.0) -> int:
        """The exit code; kills the machine and fails after ``timeout``."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.name} did not exit within {timeout:g} s; output:\n"
                                 f"{self.text}") from None
        self._reader.join(10)
        return rc

    def signal(self, signum: int) -> None:
        try:
            os.kill(self.proc.pid, signum)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        """SIGKILL the command's process group (ringrun, or the program itself)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait(10)


def wait_all(machines: Sequence[Machine], timeout: float = 60.0) -> list[int]:
    deadline = time.monotonic() + timeout
    return [m.wait(max(1.0, deadline - time.monotonic())) for m in machines]


def cleanup() -> None:
    """Stop everything still running (SIGCONT first: a test may have stopped it)."""
    while _RUNNING:
        m = _RUNNING.pop()
        if m.proc.poll() is None:
            m.signal(signal.SIGCONT)
            m.signal(signal.SIGTERM)
            try:
                m.proc.wait(5)
            except subprocess.TimeoutExpired:
                m.kill()


def live(pids: Sequence[int]) -> list[int]:
    """Which of ``pids`` still run (zombies count as gone)."""
    alive = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if state not in ("Z", "X"):
            alive.append(pid)
    return alive
