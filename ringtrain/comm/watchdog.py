"""The collective watchdog: names the ranks a collective waits for, and ends a job whose rank
stopped answering instead of letting it hang.

Every collective of a communicator gets a sequence number (the same on every rank: the call
order is part of the contract). A watchdog thread per process, on its own duplicate of the MPI
communicator, notices when this rank has waited in one collective for ``RINGTRAIN_STALL_WARNING``
seconds and asks every other rank where it is; each rank's watchdog thread answers with the
number of the collective it last entered, even while its program computes. Then:

* the lowest waiting rank prints one warning naming the ranks that have not joined
  (``allreduce #57 has waited 10 s for rank 3 (at #56: still computing) and rank 5 (does not
  answer)``), again every ``RINGTRAIN_STALL_WARNING`` seconds while the stall lasts;
* a rank that is frozen (stopped, or deadlocked with no CPU time) for ``RINGTRAIN_TIMEOUT``
  seconds ends the job. Under ringrun its own worker shim decides, without needing this
  process's GIL: the watchdog thread sends the shim a heartbeat (``RINGRUN_STATUS_FD``), and
  when the heartbeats stop the shim reads the process's state and CPU time from ``/proc``; a
  rank that computes (even in C code holding the GIL: ``sum(range(10**10))``, ``pickle.load``)
  is only warned about. Started another way (plain mpiexec, srun) there is no shim: a rank
  whose watchdog has not answered for ``RINGTRAIN_TIMEOUT`` seconds is declared lost by the
  waiting ranks, which print why and exit.

The queries are tiny point-to-point messages that never touch the collectives' communicator.

The warning comes with an autopsy of every late rank on this machine: where its program is
(the innermost frame of its main thread outside ringtrain, the standard library and installed
packages) and what it does there (computing, sleeping, blocked in I/O, waiting in another
communicator's collective, stopped). Each rank registers ``faulthandler`` on ``SIGUSR2`` with a
file of its own at start-up; the speaking rank signals the late ranks' main threads
(``tgkill``), whose C-level handler writes that thread's stack without needing the GIL (so a
rank stuck in ``sum(range(10**10))`` is found too), and reads the state of their main thread
from ``/proc/PID/task/PID``. Only the interrupted thread's own stack is written: walking the
other threads' frames from a signal handler races with those threads (a watchdog thread
returning from a call frees frames the handler reads) and killed ranks with SIGSEGV.
"""

from __future__ import annotations

import atexit
import ctypes
import errno
import faulthandler
import functools
import os
import platform
import re
import signal
import sys
import sysconfig
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from .. import env

_QUERY, _REPLY = 101, 102
#: Exit code of a rank that ends the job because another rank stopped answering.
STOPPED_ANSWERING_EXIT = 75
_POLL = 0.05
#: The kind of the last "collective" of every rank: its shutdown (see mpi.py).
SHUTDOWN = "shutdown"
#: Seconds between heartbeats to the worker shim.
HEARTBEAT = 0.1
#: The pipe to this worker's ringrun shim (set by ``ringrun._worker``).
STATUS_FD_VAR = "RINGRUN_STATUS_FD"
_status: dict[str, int | None] = {}
#: The signal that makes a rank write its stacks (faulthandler) for another rank's autopsy.
STACK_SIGNAL = getattr(signal, "SIGUSR2", None)
#: Seconds the autopsy waits for the late ranks' stack dumps.
DUMP_WAIT = 1.0
_dump: dict[str, Any] = {}
#: Collectives in progress in this process per communicator's watchdog: {id: sequence number}.
_waiting_in: dict[int, int] = {}


def _status_fd() -> int | None:
    """The write end of the pipe to this process's ringrun shim, or None when not under one."""
    if "fd" not in _status:
        fd = None
        value = os.environ.get(STATUS_FD_VAR, "")
        if value.isdigit() and value.isascii():
            try:
                os.set_inheritable(int(value), False)  # the program's children are not us
                os.set_blocking(int(value), False)  # a full pipe must never stall a rank
                fd = int(value)
            except OSError:
                fd = None
        _status["fd"] = fd
    return _status["fd"]


def supervised() -> bool:
    """Whether a ringrun shim watches this process (it then decides when a rank is frozen)."""
    return _status_fd() is not None


def tell_launcher(kind: str, text: str = "") -> None:
    """Send one line to the ringrun shim: ``beat``, ``bye``, ``left TEXT`` (this rank's program
    ended while others waited in a collective) or ``after RANK`` (this rank fails because that
    rank left first). No-op without a shim."""
    fd = _status_fd()
    if fd is None:
        return
    line = f"{kind} {os.getpid()} {text}".replace("\n", " ").strip() + "\n"
    try:
        os.write(fd, line.encode())
    except OSError:
        pass    # the shim is gone or the pipe is full: a missed heartbeat is harmless


class Watchdog:
    """Watches this rank's collectives on ``mpi_comm``; see the module docstring."""

    def __init__(self, mpi_comm: Any, warn_after: float, timeout: float) -> None:
        from mpi4py import MPI

        self._MPI = MPI
        self.comm = mpi_comm.Dup()      # collective: every rank creates its watchdog together
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()
        # Every rank's (machine, pid, stack-dump file): the autopsy signals ranks of this one.
        self.peers = self.comm.allgather((_machine(), os.getpid(), _stack_dump_file()))
        self.warn_after = warn_after
        self.timeout = timeout
        # A shim (ringrun) decides whether this rank is frozen; else the waiting ranks do.
        self.supervised = supervised()
        # Queries go out this long before a report is due, so the report is on time.
        self.window = min(1.0, warn_after / 2, timeout / 3)
        self.entered = 0                # sequence number of the last collective entered
        self.kind = ""
        self._kinds: list[str] = []     # the collectives this rank is in, outermost first
        self.since: float | None = None     # when this rank entered the collective it waits in
        self._stop = threading.Event()
        self._query = np.zeros(1, dtype=np.int64)
        # Per other rank: the outstanding query's receive (at most one), its buffer, when it
        # was sent, and the latest answer (entered, waiting) with when it came.
        self._pending: dict[int, tuple[Any, np.ndarray, Any, float]] = {}
        self._answers: dict[int, tuple[int, int, float]] = {}
        self._thread = threading.Thread(target=self._run, name="ringtrain-watchdog",
                                        daemon=True)
        self._thread.start()

    # --- called by the communicator around every collective ------------------------------------
    def enter(self, kind: str = "collective") -> None:
        # A job run inside another (a named operation the ranks agreed to run first, see
        # CommunicatorBase._verify) takes the number of the call it was agreed in; the outer
        # call then waits again under the next number, as the ranks that ran it on its own do.
        self._kinds.append(kind)
        self._wait(kind, next_number=len(self._kinds) == 1)

    def leave(self) -> None:
        self._kinds.pop()
        if self._kinds:
            self._wait(self._kinds[-1], next_number=True)
            return
        self.since = None
        _waiting_in.pop(id(self), None)

    def _wait(self, kind: str, next_number: bool) -> None:
        self.kind = kind
        if next_number:
            self.entered += 1
        self.since = time.monotonic()
        _waiting_in[id(self)] = self.entered

    def close(self) -> None:
        """Stop the thread and free its communicator (collective: every rank closes)."""
        self.abandon()
        try:
            for req, *_ in self._pending.values():  # queries nobody will answer any more
                req.Cancel()
                req.Wait()
            self.comm.Free()
        except self._MPI.Exception:
            pass

    def abandon(self) -> None:
        """Stop the thread without any collective call (other ranks may never come)."""
        self._stop.set()
        self._thread.join(5)
        tell_launcher("bye")

    # --- the thread ---------------------------------------------------------------------------
    def _answer_queries(self) -> None:
        status = self._MPI.Status()
        while self.comm.Iprobe(self._MPI.ANY_SOURCE, _QUERY, status):
            source = status.Get_source()
            self.comm.Recv([self._query, self._MPI.INT64_T], source, _QUERY)
            waiting = 0 if self.since is None else 2 if self.kind == SHUTDOWN else 1
            # The collective this process waits in on another communicator, if any.
            elsewhere = max((seq for key, seq in list(_waiting_in.items()) if key != id(self)),
                            default=0)
            reply = np.array([self.entered, waiting, elsewhere], dtype=np.int64)
            self.comm.Send([reply, self._MPI.INT64_T], source, _REPLY)

    def _poll_answers(self, now: float) -> None:
        """Collect answers that came; ask again every rank whose last answer is a window old
        (a rank that does not answer keeps its one query outstanding)."""
        MPI = self._MPI
        for r, (req, buf, send, _) in list(self._pending.items()):
            if req.Test():
                send.Wait()
                self._answers[r] = (int(buf[0]), int(buf[1]), int(buf[2]), now)
                del self._pending[r]
        for r in range(self.size):
            if r == self.rank or r in self._pending:
                continue
            answer = self._answers.get(r)
            if answer is not None and now - answer[3] < self.window / 2:
                continue
            buf = np.zeros(3, dtype=np.int64)
            req = self.comm.Irecv([buf, MPI.INT64_T], r, _REPLY)
            send = self.comm.Isend([np.array([self.entered], dtype=np.int64), MPI.INT64_T],
                                   r, _QUERY)
            self._pending[r] = (req, buf, send, now)

    def _run(self) -> None:
        next_beat = 0.0
        watched, next_warn, lost_checked = 0, 0.0, False
        while not self._stop.is_set():
            try:
                now = time.monotonic()
                if now >= next_beat:
                    tell_launcher("beat")
                    next_beat = now + HEARTBEAT
                self._answer_queries()
                since, seq = self.since, self.entered
                if since is None:
                    time.sleep(_POLL)
                    continue
                if seq != watched:
                    watched, next_warn, lost_checked = seq, since + self.warn_after, False
                lost_at = None if self.supervised or lost_checked else since + self.timeout
                due = min(next_warn, lost_at) if lost_at is not None else next_warn
                # A rank in its shutdown asks at once: peers stuck in a collective mean that
                # it must leave without them (peers_in_collective).
                if now >= due - self.window or self.kind == SHUTDOWN:
                    self._poll_answers(now)
                if now < due:
                    time.sleep(min(_POLL, max(0.0, due - now)))
                    continue
                if self.since is None or self.entered != seq:
                    continue          # the collective finished meanwhile
                if lost_at is not None and now >= lost_at:
                    lost_checked = True
                    self._end_if_lost(seq, since, now)
                if now >= next_warn:
                    next_warn += self.warn_after
                    self._warn(seq, since, now)
            except self._MPI.Exception:
                return                # MPI is shutting down under us

    def peers_in_collective(self) -> list[int]:
        """While this rank waits in its shutdown: the ranks whose latest answer (within a
        window) says they wait in a collective this rank never entered (numbered like its
        shutdown or later), so they wait for it in vain."""
        now = time.monotonic()
        return sorted(r for r, (entered, waiting, _, at) in self._answers.items()
                      if waiting == 1 and entered >= self.entered and now - at <= self.window)

    def _silent(self, now: float) -> list[int]:
        """Ranks whose outstanding query has waited half a window (a live watchdog answers
        within ~_POLL)."""
        return sorted(r for r, (_, _, _, sent) in self._pending.items()
                      if now - sent >= self.window / 2)

    def _end_if_lost(self, seq: int, since: float, now: float) -> None:
        lost = self._silent(now)
        if not lost:
            return
        names = ", ".join(map(str, lost))
        _say(f"rank {self.rank}: rank{'s' if len(lost) > 1 else ''} {names} stopped "
             f"answering for {self.timeout:g} s (RINGTRAIN_TIMEOUT) while {self.kind} #{seq} "
             f"waited for {'them' if len(lost) > 1 else 'it'}; ending this worker so the job "
             f"stops")
        os._exit(STOPPED_ANSWERING_EXIT)

    def _warn(self, seq: int, since: float, now: float) -> None:
        silent = set(self._silent(now))
        behind = []
        waiting_ranks = [self.rank]
        for r in range(self.size):
            answer = self._answers.get(r)
            if r == self.rank or r in silent or answer is None or now - answer[3] > self.window:
                continue
            entered, waiting, _, _ = answer
            if entered == seq and waiting:
                waiting_ranks.append(r)
            else:
                behind.append((r, entered))
        if min(waiting_ranks) != self.rank or not (behind or silent):
            return            # the lowest waiting rank speaks for all
        parts = [f"rank {r} (at #{e}: still computing)" if e < seq
                 else f"rank {r} (has left #{e})" for r, e in behind]
        parts += [f"rank {r} (does not answer)" for r in sorted(silent)]
        lines = [(f"{self.kind} #{seq} has waited {now - since:.0f} s for {', '.join(parts)} "
                  f"(RINGTRAIN_STALL_WARNING)")]
        late = sorted([r for r, _ in behind] + list(silent))
        for r, what in self._autopsy(late).items():
            lines.append(f"  rank {r}: {what}")
        if self.since is None or self.entered != seq:
            return            # they arrived during the autopsy: its stacks are not the stall's
        _say("\n".join(lines))

    def _autopsy(self, ranks: list[int]) -> dict[int, str]:
        """What each of ``ranks`` on this machine does and where (see the module docstring)."""
        here = self.peers[self.rank][0]
        dumps: dict[int, tuple[int, str, int]] = {}     # rank -> (pid, path, size before)
        found: dict[int, str] = {}
        for r in ranks:
            machine, pid, path = self.peers[r]
            if machine != here or path is None:
                continue
            sample = _thread_state(pid)
            state = sample[0] if sample is not None else None
            if state is None:
                found[r] = "gone"
            elif state in "TtDZ":           # its handler cannot run now
                found[r] = _STATES.get(state, f"state {state}")
            else:
                try:
                    size = os.path.getsize(path)
                    _signal_main_thread(pid, STACK_SIGNAL)
                except OSError:     # gone (then said so below), or no tgkill: no stack
                    size = -1
                dumps[r] = (pid, path, size)
        stacks = _read_dumps({r: d for r, d in dumps.items() if d[2] >= 0})
        for r, (pid, _, _) in dumps.items():
            answer = self._answers.get(r)
            elsewhere = answer[2] if answer is not None else 0
            found[r] = _describe(pid, stacks.get(r), elsewhere)
        return {r: found[r] for r in sorted(found)}


def _say(text: str) -> None:
    sys.stderr.write("".join(f"ringtrain: {line}\n" for line in text.splitlines()))
    sys.stderr.flush()


# --- the autopsy of a late rank --------------------------------------------------------------
_STATES = {"T": "stopped (state T)", "t": "stopped by a debugger (state t)",
           "D": "blocked in I/O (state D: uninterruptible)", "Z": "exited (zombie)"}
#: x86-64 system calls a waiting main thread sits in, by what they mean.
_SLEEP_CALLS = {35, 230}
#: Seconds over which a late rank that is not running at the moment must use no CPU time to
#: count as waiting rather than computing.
BUSY_WINDOW = 0.1
_IO_CALLS = {0, 1, 7, 17, 18, 19, 20, 23, 43, 45, 47, 61, 202, 232, 247, 270, 271, 281, 288}
_FRAME = re.compile(r'^  File "(.*)", line (\d+) in (.*)$')
_LIBRARY_DIRS = tuple({str(Path(p).resolve()) + os.sep for p in (
    sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"],
    sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"],
    Path(__file__).resolve().parents[1])})


def _machine() -> str:
    """This machine and PID namespace: pids are comparable between ranks with equal values."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return f"{boot}:{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return ""


def _stack_dump_file() -> str | None:
    """This process's stack-dump file (registered once for STACK_SIGNAL), or None where the
    program handles that signal itself or there is no /proc."""
    if "path" not in _dump:
        _dump["path"] = None
        if STACK_SIGNAL is not None and _machine() and \
                signal.getsignal(STACK_SIGNAL) in (signal.SIG_DFL, None):
            try:
                fd, path = tempfile.mkstemp(prefix=f"ringtrain-stacks-{os.getpid()}-",
                                            suffix=".txt")
                # Unlinked at once (nothing is left behind, even after os._exit); other ranks
                # read it through this process's descriptor.
                os.unlink(path)
                dump = os.fdopen(fd, "w")
                faulthandler.register(STACK_SIGNAL, file=dump, all_threads=False)
            except (OSError, RuntimeError, ValueError):
                return None
            _dump.update(path=f"/proc/{os.getpid()}/fd/{fd}", file=dump)
            atexit.register(_remove_dump_file)
    return _dump["path"]


def _remove_dump_file() -> None:
    if _dump.get("path"):
        faulthandler.unregister(STACK_SIGNAL)
        _dump["file"].close()
        _dump["path"] = None


def _signal_main_thread(pid: int, signum: int) -> None:
    """Sends ``signum`` to the main thread of process ``pid`` (whose thread id is ``pid``); a
    signal sent to the process would run the handler in whichever thread the kernel picks."""
    tgkill = _tgkill()
    if tgkill is None:
        raise OSError(errno.ENOSYS, "tgkill is not available")
    if tgkill(pid, pid, signum) != 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))


@functools.cache
def _tgkill() -> Any:
    try:
        return ctypes.CDLL(None, use_errno=True).tgkill
    except (OSError, AttributeError):
        return None


def _thread_state(pid: int) -> tuple[str, int] | None:
    """The state letter of ``pid``'s main thread and the CPU ticks it has used, or None once
    it is gone."""
    try:
        stat = Path(f"/proc/{pid}/task/{pid}/stat").read_bytes()
    except OSError:
        return None
    fields = stat.rpartition(b")")[2].split()
    return fields[0].decode(), int(fields[11]) + int(fields[12])    # state, utime + stime


def _computes(pid: int, ticks: int) -> bool:
    """Whether ``pid``'s main thread used CPU time within BUSY_WINDOW: a thread that computes
    in Python also waits for the GIL now and then (a futex, like a lock), so one look at its
    state can catch it waiting."""
    time.sleep(BUSY_WINDOW)
    later = _thread_state(pid)
    return later is not None and later[1] > ticks


def _read_dumps(dumps: dict[int, tuple[int, str, int]]) -> dict[int, str]:
    """The new text of each rank's dump file, once it has stopped growing (DUMP_WAIT at
    most)."""
    texts: dict[int, str] = {}
    sizes = {r: size for r, (_, _, size) in dumps.items()}
    deadline = time.monotonic() + DUMP_WAIT
    while len(texts) < len(dumps) and time.monotonic() < deadline:
        time.sleep(0.02)
        for r, (_, path, before) in dumps.items():
            if r in texts:
                continue
            try:
                size = os.path.getsize(path)
            except OSError:
                texts[r] = ""
                continue
            if size > before and size == sizes[r]:      # grew, then stayed for one poll
                with open(path, errors="replace") as f:
                    f.seek(before)
                    texts[r] = f.read()
            sizes[r] = size
    return {r: text for r, text in texts.items() if text}


def stack_frames(dump: str) -> list[tuple[str, int, str]]:
    """(file, line, function) of each frame in a faulthandler dump of one thread, innermost
    first."""
    return [(m.group(1), int(m.group(2)), m.group(3))
            for m in map(_FRAME.match, dump.splitlines()) if m]


def _is_user_file(filename: str) -> bool:
    if filename.startswith("<"):
        return False
    try:
        resolved = str(Path(filename).resolve())
    except OSError:
        resolved = filename
    return not resolved.startswith(_LIBRARY_DIRS)


def _short(filename: str) -> str:
    """``filename`` relative to the working directory when it lies below it."""
    try:
        relative = os.path.relpath(filename)
    except ValueError:
        return filename
    return filename if relative.startswith("..") else relative


def _describe(pid: int, dump: str | None, elsewhere: int) -> str:
    """What a late rank does and where, from its stack dump and /proc."""
    where = ""
    inside = None               # the outermost ringtrain/library call the user frame made
    frames = stack_frames(dump) if dump else []
    for i, (filename, line, function) in enumerate(frames):
        if _is_user_file(filename):
            where = f" at {_short(filename)}:{line} in {function}"
            inside = frames[i - 1] if i > 0 else None
            break
    sample = _thread_state(pid)
    if sample is None:
        return "gone"
    state, ticks = sample
    if state in _STATES:
        return _STATES[state] + where
    ringtrain_dir = str(Path(__file__).resolve().parents[1]) + os.sep
    if inside is not None and str(Path(inside[0]).resolve()).startswith(ringtrain_dir):
        if elsewhere:
            return f"waiting in {inside[2]} #{elsewhere} of another communicator{where}"
        return f"in ringtrain's {inside[2]}{where}"
    if state == "R" or _computes(pid, ticks):
        return f"computing{where}"
    call = _syscall(pid)
    if call in _SLEEP_CALLS:
        return f"sleeping{where}"
    if call in _IO_CALLS:
        return f"blocked in I/O or a lock (system call {call}){where}"
    return f"waiting (state {state}){where}"


def _syscall(pid: int) -> int | None:
    """The system call ``pid``'s main thread sits in (x86-64 numbers), or None."""
    if platform.machine() != "x86_64":
        return None
    try:
        first = Path(f"/proc/{pid}/task/{pid}/syscall").read_text().split()[0]
    except (OSError, IndexError):
        return None
    return int(first) if first.isdigit() else None


def start(mpi_comm: Any) -> Watchdog | None:
    """A watchdog for ``mpi_comm`` (collective over it), or None where it cannot run: one
    rank, MPI below MPI_THREAD_MULTIPLE, or ``RINGTRAIN_STALL_WARNING=0``."""
    from mpi4py import MPI

    warn_after = env.get("RINGTRAIN_STALL_WARNING")
    if mpi_comm.Get_size() == 1 or warn_after <= 0:
        return None
    if MPI.Query_thread() < MPI.THREAD_MULTIPLE:
        return None
    return Watchdog(mpi_comm, warn_after, env.get("RINGTRAIN_TIMEOUT"))
