"""Shared pytest fixtures: run programs under the real ``ringrun`` and read each rank's output.

``ringrun`` (fixture) is a function that starts ``python -m ringrun -np N ...`` from the repository
root, waits at most ``timeout`` seconds (a hang becomes a test failure that shows the output so
far; every worker is stopped) and returns a :class:`RingrunResult`::

    def test_sum(ringrun):
        res = ringrun(3, "tests/mp/comm_collectives.py", "--size", "17")   # a .py file, or
        res = ringrun(2, code="import ringtrain as rt; rt.init(); print(rt.rank())")
        res = ringrun(2, sys.executable, "-m", "mypkg.train")              # any command
        res.check()                       # AssertionError with the full output unless exit code 0
        assert res.stdout_of(1) == ["1"]  # rank 1's stdout lines, "[1] " prefix removed
        res.stderr_of(0), res.returncode, res.duration, res.messages  # ringrun's own lines

Keyword arguments: ``timeout`` (seconds, default 60), ``env`` (variables to set; ``None`` as a
value removes one), ``options`` (extra ringrun options before the program, e.g.
``["--timeout", "5"]``), ``cwd`` (default: the repository root), ``code`` (an inline Python
program, written to a temporary file). The workers' environment starts from the test's own with
every ``RINGTRAIN_*`` variable and ``TF_CONFIG`` removed, so an outer setting cannot leak in.

``live_pids`` (fixture) returns which of a list of pids are still running (zombies count as
gone), for tests that check that no worker outlives its job.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@dataclass
class RingrunResult:
    """What one ``ringrun`` run printed and returned."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    duration: float
    _by_rank: dict[tuple[str, int], list[str]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for stream, text in (("out", self.stdout), ("err", self.stderr)):
            for line in text.splitlines():
                if line.startswith("[") and "] " in line:
                    tag, _, rest = line[1:].partition("] ")
                    if tag.isdigit():
                        self._by_rank.setdefault((stream, int(tag)), []).append(rest)

    def stdout_of(self, rank: int) -> list[str]:
        """Lines rank ``rank`` wrote to stdout, in order, without the ``[rank] `` prefix."""
        return self._by_rank.get(("out", rank), [])

    def stderr_of(self, rank: int) -> list[str]:
        """Lines rank ``rank`` wrote to stderr, in order, without the ``[rank] `` prefix."""
        return self._by_rank.get(("err", rank), [])

    @property
    def ranks(self) -> list[int]:
        """Ranks that wrote at least one line (stdout or stderr)."""
        return sorted({rank for _, rank in self._by_rank})

    @property
    def messages(self) -> list[str]:
        """ringrun's own messages (stderr lines starting with ``ringrun:``)."""
        return [line for line in self.stderr.splitlines() if line.startswith("ringrun:")]

    def describe(self) -> str:
        return (f"$ {' '.join(self.argv)}\nexit code {self.returncode} after "
                f"{self.duration:.2f}s\n--- stdout ---\n{self.stdout}\n--- stderr ---\n"
                f"{self.stderr}")

    def check(self) -> RingrunResult:
        """Raise AssertionError showing everything unless ringrun exited with code 0."""
        if self.returncode != 0:
            raise AssertionError(self.describe())
        return self


def worker_env(env: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """The test's environment without RINGTRAIN_* and TF_CONFIG, plus ``env``."""
    out = {k: v for k, v in os.environ.items()
           if not k.startswith("RINGTRAIN_") and k != "TF_CONFIG"}
    for key, value in (env or {}).items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def run_ringrun(np: int | None, *argv: str, code: str | None = None, timeout: float = 60,
                env: Mapping[str, str | None] | None = None, options: Sequence[str] = (),
                cwd: str | os.PathLike | None = None) -> RingrunResult:
    """Run ``ringrun -np np [options] argv...`` (or an inline ``code``; ``np=None`` leaves
    ``-np`` out); see the module doc."""
    tmp = None
    if code is not None:
        if argv:
            raise TypeError("give either a program (argv) or code=, not both")
        fd, tmp = tempfile.mkstemp(suffix=".py", prefix="ringrun_code_")
        with os.fdopen(fd, "w") as f:
            f.write(code)
        argv = (tmp,)
    if not argv:
        raise TypeError("ringrun needs a program: a .py path, a command, or code=")
    size = [] if np is None else ["-np", str(np)]
    cmd = [sys.executable, "-m", "ringrun", *size, *options, *argv]
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=cwd or REPO, env=worker_env(env), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        # SIGTERM lets ringrun stop every worker; SIGKILL if even that hangs.
        proc.send_signal(signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
        result = RingrunResult(cmd, proc.returncode, out, err, time.monotonic() - start)
        pytest.fail(f"ringrun did not finish within {timeout}s (a hang?)\n{result.describe()}",
                    pytrace=False)
    finally:
        if tmp is not None:
            os.unlink(tmp)
    return RingrunResult(cmd, proc.returncode, out, err, time.monotonic() - start)


def alive(pids: Iterable[int]) -> list[int]:
    """The pids among ``pids`` that are still running (a zombie counts as gone)."""
    out = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rpartition(")")[2].split()[0]
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if state not in ("Z", "X"):
            out.append(pid)
    return out


@pytest.fixture
def ringrun() -> Callable[..., RingrunResult]:
    """``ringrun(np, *argv, code=None, timeout=60, env=None, options=(), cwd=None)``."""
    return run_ringrun


@pytest.fixture
def live_pids() -> Callable[[Iterable[int]], list[int]]:
    """``live_pids(pids)``: those still running (zombies count as gone)."""
    return alive
