"""The launcher's part of ``ringrun --doctor``: what must be checked before any worker runs.

The check itself runs as the job's program (``ringtrain.doctor``: versions, shared memory, the
ring's links), so it only reports on workers that started. What stops them from starting is
checked here, each failure named with its fix: for ``-H``/``--hostfile``, that MPI starts on
every host (one ``mpiexec -hosts HOST -n 1`` per host, all at once, that initializes MPI there
and finds ringtrain); for ``RINGTRAIN_CONFIG``/``TF_CONFIG`` clusters, who holds the chief's
port when it is taken (``port_holder``) and the shorter wait for the other machines.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping, Sequence

from .plan import Host

#: Seconds each host has to start one process and import ringtrain there.
HOST_PROBE_TIMEOUT = 8.0
#: Seconds the doctor waits for the other machines of a cluster (RINGTRAIN_JOIN_TIMEOUT wins).
DOCTOR_JOIN_TIMEOUT = 8.0
# MPI initialized there, and ringtrain found without importing it (seconds, on a loaded host).
_PROBE = ("import importlib.util, sys, mpi4py.MPI; sys.exit(None if importlib.util.find_spec("
          "'ringtrain') else 'ringtrain is not installed for ' + sys.executable)")


def probe_hosts(mpiexec: str, python: str, hosts: Sequence[Host],
                environ: Mapping[str, str], timeout: float = HOST_PROBE_TIMEOUT) -> list[str]:
    """One line per host where MPI could not start this Python with ringtrain, naming the
    host, what it said (its last line) and the fix; empty when every host answered."""
    started = {}
    for host in dict.fromkeys(h.name for h in hosts):
        started[host] = subprocess.Popen(
            [mpiexec, "-hosts", host, "-n", "1", python, "-c", _PROBE], env=dict(environ),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, start_new_session=True)
    deadline = time.monotonic() + timeout
    problems = []
    for host, proc in started.items():
        try:
            out, _ = proc.communicate(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            problems.append(f"MPI did not start on {host}: no answer within {timeout:g} s "
                            f"({_FIX})")
            continue
        if proc.returncode != 0:
            said = _meaningful_line(out) or f"exit code {proc.returncode}"
            problems.append(f"MPI did not start on {host}: {said} ({_FIX})")
    return problems


_FIX = ("ringrun starts workers there with ssh through mpiexec: check that "
        "'ssh -o BatchMode=yes HOST true' works without a password and that the same Python, "
        "with ringtrain and mpi4py, is installed at the same path")


def _meaningful_line(output: str) -> str:
    """The line that says what went wrong: the last one from ssh or Python, not hydra's trace."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in reversed(lines):
        if not line.startswith("[mpiexec@") and not line.startswith("[proxy:"):
            return line
    return lines[-1] if lines else ""


def port_holder(port: int) -> str | None:
    """'pid N (command)' of a process of ours listening on TCP ``port``, else None (another
    user's processes cannot be seen)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) > 9 and fields[3] == "0A" and \
                    int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return None
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            if not any(os.readlink(f"/proc/{pid}/fd/{fd}") in inodes for fd in fds):
                continue
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                command = " ".join(f.read().decode(errors="replace").replace("\0", " ").split())
        except OSError:
            continue
        return f"pid {pid} ({command[:80]})"
    return None
