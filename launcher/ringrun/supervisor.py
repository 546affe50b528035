"""The supervisor: starts the plan, prefixes output per rank and ends the job on first failure.

One thread and one ``selectors`` loop watch everything: the launched process (``mpiexec``, or
the program itself for one worker), its pipes, the worker shims' connections (a control
connection per rank plus one per output stream, see ``ringrun.protocol``) and signals (through
``signal.set_wakeup_fd``). The first worker that exits non-zero or dies by a signal decides the
job's exit code; all other workers are then stopped (SIGTERM, then SIGKILL), so ringrun returns
within a few seconds of that failure. Standard library only.
"""

from __future__ import annotations

import functools
import hmac
import os
import selectors
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import BinaryIO

from .plan import Plan
from .protocol import (
    ATTACH,
    EXIT,
    HELLO,
    STOP,
    TOKEN_SIZE,
    FrameError,
    FrameReader,
    decode_json,
    encode,
    field,
)
from .shm import ShmTracker

#: Seconds from the decision to stop until everything left is SIGKILLed (shims use 2 s grace).
KILL_AFTER = 3.0
#: Seconds to wait for workers' last output and reports once mpiexec has exited.
DRAIN = 1.0
#: Seconds to wait for mpiexec's exit code after a shim vanished without reporting.
LOST_WAIT = 1.0
#: Seconds a rank's exit waits for the rest of its output before it is reported.
OUTPUT_GRACE = 0.5
#: A partial line longer than this is written out without waiting for its end.
MAX_LINE = 1 << 20
CHUNK = 1 << 16
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
TIMEOUT_EXIT_CODE = 124
#: Seconds between looks at which /dev/shm files the workers use.
SHM_SCAN = 0.2
#: Exit code of a job that ended because a rank was frozen (ringtrain's watchdog uses it too).
FROZEN_EXIT_CODE = 75
#: Seconds a rank that failed because another rank left first waits for that rank's report.
AFTER_WAIT = 2.0
#: What MPICH prints on the stderr of a rank that calls MPI_Abort.
ABORT_MARK = b"application called MPI_Abort"
#: Seconds a new control connection has to present the token and its first frame.
HANDSHAKE_TIMEOUT = 5.0
#: Control connections not yet past their first frame; beyond it the oldest is dropped.
MAX_PENDING = 64
#: Refused control connections logged one line each; after that only a count at the end.
MAX_REFUSALS_SHOWN = 5


def exit_code(returncode: int) -> int:
    """A Popen return code as a shell exit status: a signal N becomes 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


def describe(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "unknown"
        return f"was killed by signal {-returncode} ({name})"
    return f"exited with code {returncode}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _ranks(ranks) -> str:
    ranks = sorted(ranks)
    return f"rank {ranks[0]}" if len(ranks) == 1 else f"ranks {', '.join(map(str, ranks))}"


def _stamped(tag: str) -> bytes:
    """``[rank 2026-12-07 04:40:01.123] `` (``--timestamp``), the rank left out with
    ``--no-prefix``."""
    now = time.time()
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now)) + f".{int(now % 1 * 1000):03d}"
    return f"[{tag + ' ' if tag else ''}{stamp}] ".encode()


class Output:
    """Writes whole lines to a file descriptor, each prefixed; one per (source, stream).

    Lines end at ``\\n`` or ``\\r`` (so progress bars that redraw with ``\\r`` stay live), and
    the complete lines of one chunk go out in a single ``write``, so ranks never mix mid-line.
    """

    def __init__(self, write: Callable[[int, bytes], None], fd: int,
                 prefix: bytes | Callable[[], bytes], copy: BinaryIO | None = None) -> None:
        # prefix: fixed bytes, or a function called once per chunk (timestamps); copy: a file
        # that also gets every line, unprefixed (--output-filename)
        self._write, self._fd, self._prefix, self._copy = write, fd, prefix, copy
        self._buf = b""
        self.aborted_at: float | None = None  # when a line said the program called MPI_Abort

    def feed(self, data: bytes) -> None:
        buf = self._buf + data
        end = max(buf.rfind(b"\n"), buf.rfind(b"\r"))
        if end == len(buf) - 1 and buf.endswith(b"\r"):
            end = max(buf.rfind(b"\n", 0, end), buf.rfind(b"\r", 0, end))  # may be \r\n
        if end < 0:
            if len(buf) > MAX_LINE:
                self._emit(buf + b"\n")
                buf = b""
            self._buf = buf
            return
        complete, self._buf = buf[:end + 1], buf[end + 1:]
        self._emit(complete)

    def _emit(self, complete: bytes) -> None:
        if ABORT_MARK in complete and self.aborted_at is None:
            self.aborted_at = time.monotonic()
        lines = complete.splitlines(keepends=True)
        prefix = self._prefix() if callable(self._prefix) else self._prefix
        self._write(self._fd, b"".join(prefix + line for line in lines))
        if self._copy is not None:
            self._copy.write(complete)
            self._copy.flush()

    def close(self) -> None:
        if self._buf:
            text = self._buf if self._buf.endswith((b"\n", b"\r")) else self._buf + b"\n"
            self._buf = b""
            self._emit(text)
        if self._copy is not None:
            self._copy.close()


@dataclass
class _Conn:
    """A connection from a shim: control (after HELLO) or one output stream (after ATTACH)."""

    sock: socket.socket
    opened: float = dataclass_field(default_factory=time.monotonic)
    token: bytearray = dataclass_field(default_factory=bytearray)  # the first TOKEN_SIZE bytes
    reader: FrameReader = dataclass_field(default_factory=FrameReader)
    kind: bytes | None = None
    rank: int | None = None
    stream: int = 0
    pid: int | None = None
    local: bool = False


class Supervisor:
    """Runs one :class:`~ringrun.plan.Plan` to its end; :meth:`run` returns the exit code."""

    def __init__(self, plan: Plan, listener: socket.socket | None = None,
                 token: str = "", stdout_fd: int = 1, stderr_fd: int = 2,
                 cluster: object = None, timestamp: bool = False,
                 output_dir: str | None = None) -> None:
        self.plan = plan
        self.timestamp = timestamp      # --timestamp: each chunk of lines gets the time
        self.output_dir = output_dir    # --output-filename: DIR/rank.N/stdout|stderr
        self.reason: str | None = None  # the first thing ringrun said: what decided the job
        # Cluster mode (ringrun.cluster.ClusterSession): polled for another machine's failure,
        # told of ours.
        self.cluster = cluster
        self.cluster_told = False
        self.last_said = ""
        self.listener = listener
        self.token = token
        self.fds = {1: stdout_fd, 2: stderr_fd}
        self.broken: set[int] = set()
        self.sel = selectors.DefaultSelector()
        self.proc: subprocess.Popen | None = None
        self.pidfd: int | None = None
        self.launch_rc: int | None = None
        self.hostname = socket.gethostname()
        self.ranks = [w.rank for w in plan.workers]
        self.conns: list[_Conn] = []
        self.outputs: dict[tuple[object, int], Output] = {}
        self.streams_closed: dict[int, int] = {}      # rank -> output streams at EOF
        self.returncodes: dict[int, int] = {}         # rank -> reported (and settled) status
        self.exits: dict[int, tuple[int, float]] = {}  # rank -> (status, when) awaiting output
        self.lost: dict[int, float] = {}  # rank -> when its shim vanished without a report
        self.notes: dict[int, dict] = {}  # rank -> its exit report (frozen, left, after, peer_lost)
        # MPI's /dev/shm files of this job, removed at the end whatever happened (shm.py).
        self.shm = ShmTracker() if plan.via_mpiexec else None
        self.next_shm_scan = 0.0
        self.decided: int | None = None   # the job's exit code once something decided it
        self.stopping_since: float | None = None
        self.killed = False
        self.refused = 0                  # control connections refused (strangers, junk)

    # --- writing ------------------------------------------------------------------------------
    def _write(self, which: int, data: bytes) -> None:
        if which in self.broken:
            return
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self.fds[which], view):]
        except BrokenPipeError:
            self.broken.add(which)  # the reader went away; keep supervising regardless

    def say(self, text: str) -> None:
        if self.reason is None:
            self.reason = text.split("; stopping")[0]
        self.last_said = text
        self._write(2, f"ringrun: {text}\n".encode())

    def _poll_cluster(self) -> None:
        """Cluster mode: stop when another machine failed; report when this one did."""
        if self.cluster_told:
            return
        if self.decided is None:
            reason = self.cluster.aborted()
            if reason:
                self.cluster_told = True
                others = len(self.running())
                self.say(f"{reason}; stopping {_plural(others, 'worker')}" if others else reason)
                self.decided = 1
                self.stop()
        else:
            self.cluster_told = True
            self.cluster.failed(self.last_said or f"exit code {self.decided}")

    def _output(self, source: object, which: int) -> Output:
        key = (source, which)
        if key not in self.outputs:
            tag = str(source) if isinstance(source, int) and self.plan.prefix else ""
            prefix: bytes | Callable[[], bytes] = f"[{tag}] ".encode() if tag else b""
            if self.timestamp:
                prefix = functools.partial(_stamped, tag)
            copy = None
            if self.output_dir is not None and isinstance(source, int):
                folder = os.path.join(self.output_dir, f"rank.{source}")
                os.makedirs(folder, exist_ok=True)
                # closed by Output.close() when the stream ends
                copy = open(os.path.join(folder, "stdout" if which == 1 else "stderr"),  # noqa: SIM115
                            "ab")
            self.outputs[key] = Output(self._write, which, prefix, copy)
        return self.outputs[key]

    # --- ranks --------------------------------------------------------------------------------
    def running(self) -> list[int]:
        return [r for r in self.ranks if r not in self.returncodes and r not in self.exits]

    def _settle_exits(self, now: float, force: bool = False) -> None:
        """Report exits whose output has fully arrived (or waited long enough)."""
        # Causes first: a rank that failed after another left is settled after that one.
        order = sorted(self.exits.items(), key=lambda i: (
            self.notes.get(i[0], {}).get("after") in self.exits
            or self.notes.get(i[0], {}).get("peer_lost", False), i[1][1]))
        for rank, (returncode, when) in order:
            if not force and self._waits_for_cause(rank, now - when):
                continue
            if force or self.streams_closed.get(rank, 0) >= 2 or now - when > OUTPUT_GRACE:
                del self.exits[rank]
                self._rank_exited(rank, returncode)

    def _waits_for_cause(self, rank: int, waited: float) -> bool:
        """A rank that failed only because another left first waits (AFTER_WAIT at most) for
        that rank's report, so the job is decided, and named, by the first rank that ended.
        When the cause is unknown or on another machine (``peer_lost``: MPI lost contact with
        a peer), it waits for whatever decides the job first: another rank's exit here, or the
        chief's verdict naming another machine."""
        note = self.notes.get(rank, {})
        if note.get("peer_lost"):
            return self.decided is None and waited < AFTER_WAIT
        cause = note.get("after")
        return (cause in self.ranks and cause not in self.returncodes and cause != rank
                and waited < AFTER_WAIT)

    def _rank_exited(self, rank: int, returncode: int) -> None:
        if rank in self.returncodes:
            return
        self.returncodes[rank] = returncode
        for conn in self.conns:
            if conn.kind == HELLO and conn.rank == rank and conn.sock.fileno() >= 0:
                if conn.sock in self.sel.get_map():
                    self.sel.unregister(conn.sock)
                conn.sock.close()  # tells the shim its report arrived
        note = self.notes.get(rank, {})
        frozen, left = note.get("frozen"), note.get("left")
        if self.decided is not None or (returncode == 0 and not left):
            return
        others = len(self.running())
        tail = f"; stopping the other {_plural(others, 'worker')}" if others else ""
        if frozen:
            # The shim killed it: name the frozen rank and why, not the kill.
            self.say(f"rank {rank} stopped answering for {frozen['seconds']:g} s "
                     f"(RINGTRAIN_TIMEOUT): its process was {frozen['state']}{tail}")
            self.decided = FROZEN_EXIT_CODE
        elif left:
            self.say(f"rank {rank} {describe(returncode)} while other ranks waited in a "
                     f"collective{tail}")
            self.decided = exit_code(returncode) or 1
        else:
            self.say(f"rank {rank} {describe(returncode)}{tail}")
            self.decided = exit_code(returncode)
        self.stop()

    def _decide_lost(self) -> None:
        """Shims vanished without a report: mpiexec killed them (MPI_Abort) or someone did."""
        # Which of several aborting ranks was first cannot be told from here (their output
        # travels on separate connections), so all are named.
        aborted = [rank for (rank, which), out in self.outputs.items()
                   if which == 2 and out.aborted_at is not None]
        lost = sorted(self.lost)
        # Once mpiexec has exited no worker is left to stop.
        others = 0 if self.launch_rc is not None else len(
            [r for r in self.running() if r not in self.lost])
        tail = f"; stopping the other {_plural(others, 'worker')}" if others else ""
        if aborted:
            code = f" (mpiexec {describe(self.launch_rc)})" if self.launch_rc else ""
            why = "" if len(aborted) == 1 else "; their output above says why"
            self.say(f"{_ranks(aborted)} called MPI_Abort{code}{tail}{why}")
        elif self.launch_rc:
            self.say(f"{_ranks(lost)} ended without an exit status and mpiexec "
                     f"{describe(self.launch_rc)} (a worker process was killed or called "
                     f"MPI_Abort){tail}")
        else:
            self.say(f"{_ranks(lost)} ended without an exit status (the worker process was "
                     f"killed){tail}")
        self.decided = exit_code(self.launch_rc) if self.launch_rc else 1
        self.stop()

    # --- stopping -----------------------------------------------------------------------------
    def _scan_shm(self) -> None:
        if self.shm is not None and self.proc is not None:
            self.shm.scan([self.proc.pid, *(c.pid for c in self.conns
                                            if c.kind == HELLO and c.local and c.pid)],
                          time.monotonic())

    def stop(self) -> None:
        """Ask every worker to end (SIGTERM); :meth:`_hard_kill` follows after KILL_AFTER."""
        if self.stopping_since is not None:
            return
        self.stopping_since = time.monotonic()
        self._scan_shm()  # the workers' files, while they are still there to be seen
        if self.plan.via_mpiexec:
            for conn in self.conns:
                if conn.kind == HELLO:
                    self._send_stop(conn)
        elif self.proc is not None:
            self._killpg(self.proc.pid, signal.SIGTERM)

    @staticmethod
    def _send_stop(conn: _Conn) -> None:
        try:
            conn.sock.sendall(encode(STOP))
        except OSError:
            pass

    def _hard_kill(self) -> None:
        self.killed = True
        if self.proc is not None:
            self._killpg(self.proc.pid, signal.SIGKILL)
        self._kill_shims()

    def _kill_shims(self) -> None:
        # Each rank's shim is a session of its own (hydra's, or its own under gforker): kill
        # the shim's group (the program is in it) wherever ringrun can, i.e. on this machine.
        for conn in self.conns:
            if conn.kind == HELLO and conn.local and conn.pid:
                self._killpg(conn.pid, signal.SIGKILL)

    @staticmethod
    def _killpg(pgid: int, signum: int) -> None:
        try:
            os.killpg(pgid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    # --- connections --------------------------------------------------------------------------
    def _on_accept(self) -> None:
        assert self.listener is not None
        try:
            sock, _ = self.listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        sock.setblocking(False)
        pending = [c for c in self.conns if c.kind is None]
        if len(pending) >= MAX_PENDING:
            self._refuse(pending[0], f"more than {MAX_PENDING} connections say nothing")
        conn = _Conn(sock)
        self.conns.append(conn)
        self.sel.register(sock, selectors.EVENT_READ, ("conn", conn))

    def _refuse(self, conn: _Conn, why: str) -> None:
        """Close a connection that is not one of our shims; one line each for the first few."""
        self.refused += 1
        if self.refused <= MAX_REFUSALS_SHOWN:
            more = " (further refusals are only counted)" \
                if self.refused == MAX_REFUSALS_SHOWN else ""
            self.say(f"refused a connection to the control socket: {why}{more}")
        self._close_conn(conn)

    def _expire_pending(self, now: float) -> None:
        for conn in [c for c in self.conns if c.kind is None]:
            if now - conn.opened > HANDSHAKE_TIMEOUT:
                self._refuse(conn, f"no hello within {HANDSHAKE_TIMEOUT:g} s")

    def _close_conn(self, conn: _Conn) -> None:
        self.sel.unregister(conn.sock)
        conn.sock.close()
        if conn.kind is None:
            self.conns.remove(conn)  # a stranger's; a shim's stays known until the end
        if conn.kind == ATTACH and conn.rank is not None:
            self._output(conn.rank, conn.stream).close()
            self.streams_closed[conn.rank] = self.streams_closed.get(conn.rank, 0) + 1

    def _on_conn(self, conn: _Conn) -> None:
        try:
            data = conn.sock.recv(CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            if conn.kind == HELLO and conn.rank in self.exits:
                # Reported, not yet settled: keep the shim waiting (see EXIT below).
                self.sel.unregister(conn.sock)
                return
            self._close_conn(conn)
            if (conn.kind == HELLO and conn.rank not in self.returncodes
                    and conn.rank not in self.exits):
                # Its shim was killed (MPI_Abort makes mpiexec SIGKILL every rank): wait for
                # mpiexec's exit code, which then carries the abort code, before deciding.
                self.lost.setdefault(conn.rank, time.monotonic())
            return
        if conn.kind == ATTACH:
            self._output(conn.rank, conn.stream).feed(data)
            return
        if conn.kind is None:
            data = self._authenticate(conn, data)
            if data is None:
                return
        try:
            if conn.kind is None:
                frames = conn.reader.feed(data, limit=1)
                if not frames:
                    return
                self._first_frame(conn, *frames[0])
                if conn.kind == ATTACH:  # the rest of the connection is raw output
                    rest = conn.reader.rest()
                    if rest:
                        self._output(conn.rank, conn.stream).feed(rest)
                    return
                data = b""
            for kind, payload in conn.reader.feed(data):
                if kind == EXIT:
                    info = decode_json(payload)
                    returncode = field(info, "returncode", int)
                    if not -255 <= returncode <= 255:
                        raise FrameError(f"exit status {returncode} out of range")
                    self.exits[conn.rank] = (returncode, time.monotonic())
                    self.notes[conn.rank] = self._exit_notes(info)
                    # Closed once the exit is settled (_rank_exited): the shim waits for that,
                    # so mpiexec (which ends the job when a worker ends without MPI_Finalize)
                    # cannot kill a rank that is about to report the cause first.
                    return
        except FrameError as exc:
            self._refuse(conn, str(exc))

    def _exit_notes(self, info: dict) -> dict:
        """What a shim adds to an exit status (see _worker.Shim.report), checked field by
        field: ``frozen`` {seconds, state}, ``left`` (true), ``after`` (a rank of this job),
        ``peer_lost`` (true)."""
        notes: dict = {}
        frozen = info.get("frozen")
        if (isinstance(frozen, dict) and isinstance(frozen.get("state"), str)
                and isinstance(frozen.get("seconds"), int | float)):
            notes["frozen"] = {"seconds": float(frozen["seconds"]),
                               "state": frozen["state"][:80]}
        if info.get("left") is True:
            notes["left"] = True
        after = info.get("after")
        # ringtrain's rank in the whole job, as ringrun numbers ranks.
        if isinstance(after, int) and not isinstance(after, bool) and after >= 0:
            if after in self.ranks:
                notes["after"] = after
            elif self.cluster is not None:
                notes["peer_lost"] = True   # the rank that left first is on another machine
        if info.get("peer_lost") is True:
            notes["peer_lost"] = True
        return notes

    def _authenticate(self, conn: _Conn, data: bytes) -> bytes | None:
        """Collect the token that opens every connection; compared once, whole, in constant
        time, before any frame is parsed. The bytes after it, or None (wait for more or
        refused)."""
        need = TOKEN_SIZE - len(conn.token)
        if need > 0:
            conn.token += data[:need]
            data = data[need:]
            if len(conn.token) < TOKEN_SIZE:
                return None
            if not hmac.compare_digest(bytes(conn.token), self.token.encode()):
                self._refuse(conn, "wrong token")
                return None
        return data

    def _first_frame(self, conn: _Conn, kind: bytes, payload: bytes) -> None:
        """HELLO or ATTACH, naming a rank of this job; anything else raises FrameError."""
        if kind not in (HELLO, ATTACH):
            raise FrameError(f"first frame of kind {kind!r}, expected a hello")
        info = decode_json(payload)
        rank = field(info, "rank", int) + self.plan.first_rank
        if rank not in self.ranks:
            raise FrameError(f"rank {rank} is not part of this job")
        if kind == ATTACH:
            stream = field(info, "stream", int)
            if stream not in (1, 2):
                raise FrameError(f"stream {stream} is neither stdout (1) nor stderr (2)")
            conn.kind, conn.rank, conn.stream = ATTACH, rank, stream
            return
        if any(c.kind == HELLO and c.rank == rank for c in self.conns):
            raise FrameError(f"rank {rank} said hello twice")
        pid = field(info, "pid", int)
        if pid <= 1:
            raise FrameError(f"pid {pid} is no shim's")
        conn.kind, conn.rank, conn.pid = HELLO, rank, pid
        conn.local = info.get("host") == self.hostname
        if self.stopping_since is not None:
            self._send_stop(conn)

    # --- other events -------------------------------------------------------------------------
    def _on_pipe(self, fileobj, source: object, which: int) -> None:
        data = os.read(fileobj.fileno(), CHUNK)
        if not data:
            self.sel.unregister(fileobj)
            self._output(source, which).close()
        elif source == "mpiexec" and self.decided is not None:
            pass  # hydra's clean-up banners after ringrun stopped the job are noise
        else:
            self._output(source, which).feed(data)

    def _on_signals(self, wake: socket.socket) -> None:
        try:
            data = wake.recv(64)
        except (BlockingIOError, InterruptedError):
            return
        for signum in data:
            if signum not in STOP_SIGNALS:
                continue
            if self.decided is None:
                name = signal.Signals(signum).name
                running = len(self.running())
                self.say(f"received {name}; stopping {_plural(running, 'worker')}")
                self.decided = 128 + signum
                self.stop()
            elif not self.killed:
                self._hard_kill()  # a second Ctrl-C: no more waiting

    # --- main loop ----------------------------------------------------------------------------
    def _start(self) -> None:
        self.proc = subprocess.Popen(
            list(self.plan.launch_argv), env=dict(self.plan.launch_env),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True)
        source: object = "mpiexec" if self.plan.via_mpiexec else self.plan.workers[0].rank
        self.sel.register(self.proc.stdout, selectors.EVENT_READ, ("pipe", source, 1))
        self.sel.register(self.proc.stderr, selectors.EVENT_READ, ("pipe", source, 2))
        try:
            self.pidfd = os.pidfd_open(self.proc.pid)
            self.sel.register(self.pidfd, selectors.EVENT_READ, ("exit",))
        except (AttributeError, OSError):
            self.pidfd = None  # polled instead

    def run(self) -> int:
        wake_r, wake_w = socket.socketpair()
        wake_r.setblocking(False)
        wake_w.setblocking(False)
        old_wakeup = signal.set_wakeup_fd(wake_w.fileno(), warn_on_full_buffer=False)
        old_handlers = {s: signal.signal(s, lambda *_: None) for s in STOP_SIGNALS}
        try:
            self.sel.register(wake_r, selectors.EVENT_READ, ("signal",))
            if self.listener is not None:
                self.listener.setblocking(False)
                self.sel.register(self.listener, selectors.EVENT_READ, ("accept",))
            try:
                self._start()
            except OSError as exc:
                self.say(f"cannot start {self.plan.launch_argv[0]}: {exc.strerror}")
                return 127 if isinstance(exc, FileNotFoundError) else 126
            return self._loop(wake_r)
        finally:
            # Nothing of the job outlives ringrun, not even its shared-memory files.
            self._scan_shm()
            if self.proc is not None:
                self._killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            self._kill_shims()
            if self.shm is not None:
                self.shm.remove()
            signal.set_wakeup_fd(old_wakeup)
            for signum, handler in old_handlers.items():
                signal.signal(signum, handler)
            for conn in self.conns:
                conn.sock.close()
            self.sel.close()
            wake_r.close()
            wake_w.close()
            if self.pidfd is not None:
                os.close(self.pidfd)

    def _loop(self, wake: socket.socket) -> int:
        assert self.proc is not None
        started = time.monotonic()
        timeout = self.plan.timeout
        drain_until: float | None = None
        while True:
            if self.cluster is not None:
                self._poll_cluster()
            now = time.monotonic()
            if now >= self.next_shm_scan:
                self._scan_shm()
                self.next_shm_scan = now + SHM_SCAN
            self._settle_exits(now)
            self._expire_pending(now)
            if timeout is not None and self.decided is None and now - started > timeout:
                self.say(f"the job ran longer than --timeout {timeout:g}s; stopping "
                         f"{_plural(len(self.running()), 'worker')}")
                self.decided = TIMEOUT_EXIT_CODE
                self.stop()
            if (self.stopping_since is not None and not self.killed
                    and now - self.stopping_since > KILL_AFTER):
                self._hard_kill()
            if self.launch_rc is None and (self.pidfd is None or self.killed):
                self.launch_rc = self.proc.poll()
            if self.lost and self.decided is None:
                # Decide once mpiexec has exited and every connection has drained (the output
                # that names the rank which called MPI_Abort may still be on its way).
                first = min(self.lost.values())
                drained = not any(k.data[0] == "conn" for k in self.sel.get_map().values())
                if ((self.launch_rc is not None and drained)
                        or now - first > LOST_WAIT + OUTPUT_GRACE):
                    self._decide_lost()
            if self.launch_rc is not None:
                if drain_until is None:
                    drain_until = now + DRAIN
                busy = any(k.data[0] in ("conn", "pipe") for k in self.sel.get_map().values())
                if (not busy and not self.lost and not self.exits) or now > drain_until:
                    break
            for key, _ in self.sel.select(timeout=0.05):
                kind = key.data[0]
                if kind == "signal":
                    self._on_signals(wake)
                elif kind == "accept":
                    self._on_accept()
                elif kind == "conn":
                    self._on_conn(key.data[1])
                elif kind == "pipe":
                    self._on_pipe(key.fileobj, key.data[1], key.data[2])
                elif kind == "exit":
                    self.sel.unregister(key.fileobj)
                    self.launch_rc = self.proc.wait()
        for out in self.outputs.values():
            out.close()
        if self.refused > MAX_REFUSALS_SHOWN:
            self.say(f"refused {self.refused} connections to the control socket in all")
        self._settle_exits(time.monotonic(), force=True)
        if self.lost and self.decided is None:
            self._decide_lost()
        if not self.plan.via_mpiexec:
            # Reported after the program's last output has been written.
            self._rank_exited(self.plan.workers[0].rank, self.launch_rc)
        return self._verdict()

    def _verdict(self) -> int:
        if self.decided is not None:
            return self.decided
        assert self.launch_rc is not None
        missing = self.running()
        if self.launch_rc != 0:
            self.say(f"mpiexec {describe(self.launch_rc)}")
            return exit_code(self.launch_rc)
        if missing:
            self.say(f"no exit status from {_ranks(missing)}; treating the job as failed")
            return 1
        return 0


def run(plan: Plan, listener: socket.socket | None = None, token: str = "",
        cluster: object = None, **presentation) -> int:
    """Run ``plan`` under a :class:`Supervisor`; returns ringrun's exit code."""
    return Supervisor(plan, listener, token, cluster=cluster, **presentation).run()


__all__ = ["Output", "Supervisor", "describe", "exit_code", "run"]
