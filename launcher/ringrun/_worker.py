"""Worker shim: mpiexec runs one per rank; it runs the program and reports its exit to ringrun.

``python -m ringrun._worker PROG ARGS`` starts ``PROG ARGS`` as its child, which inherits the
environment and MPICH's PMI_FD, so MPI initialises as if mpiexec had started it. The child
writes to ordinary pipes; a forwarder (forked from the shim, in a session of its own) copies
them to two TCP connections to ringrun (announced by ATTACH frames), so the output reaches
ringrun even when mpiexec SIGKILLs the shim (it does on MPI_Abort). The shim forwards
SIGTERM/SIGINT/SIGHUP, stops the child when ringrun asks or disappears, and finally sends the
child's exit status. When ringrun cannot be reached the program is not started (an
unsupervised worker could outlive its job). Standard library only.

A status pipe (``RINGRUN_STATUS_FD``) carries lines from ringtrain in the program: ``beat PID``
(the stall watchdog's heartbeat), ``bye PID``, ``left PID`` (the program ended while other
ranks waited in a collective), ``after PID RANK`` (it failed because that rank left first) and
``peer_lost PID`` (MPI lost contact with another process: it failed because some other rank did).
While heartbeats come the program is alive. When they stop, the shim tells busy from frozen
without the program's GIL, from ``/proc/PID/stat``: a process that is stopped (state T/t) or
gets no CPU time for ``RINGTRAIN_TIMEOUT`` seconds since its last heartbeat is frozen, and the
shim kills it and reports that; one that computes (even in C code that holds the GIL) is left
alone.
"""

from __future__ import annotations

import errno
import os
import selectors
import signal
import socket
import subprocess
import sys
import time

from .plan import CONTROL_VAR
from .protocol import ATTACH, EXIT, HELLO, STOP, FrameReader, encode_json, parse_control
from .supervisor import exit_code

#: Seconds between SIGTERM and SIGKILL when the program is stopped.
GRACE = 2.0
#: Seconds the exit report waits for the forwarder to send the program's last output.
FLUSH_WAIT = 1.0
#: Seconds the shim waits for ringrun to settle its report (ringrun may first wait up to
#: supervisor.AFTER_WAIT for another rank's report).
REPORT_WAIT = 5.0
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
STATUS_FD_VAR = "RINGRUN_STATUS_FD"
#: Seconds between two looks at a silent program's /proc entry.
SAMPLE = 0.2
#: A heartbeat this late means the watchdog thread cannot run (the GIL is held, or frozen).
BEAT_LATE = 0.5


def _timeout() -> float:
    """RINGTRAIN_TIMEOUT as ringtrain reads it (30 s by default; 0 or less: never)."""
    try:
        return float(os.environ.get("RINGTRAIN_TIMEOUT", "30"))
    except ValueError:
        return 30.0


def proc_sample(pid: int) -> tuple[str, int] | None:
    """(state letter, user + system CPU clock ticks) of ``pid``, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rpartition(b")")[2].split()
    except OSError:
        return None
    # After the command's closing parenthesis: state is field 3, utime 14, stime 15.
    return fields[0].decode(), int(fields[11]) + int(fields[12])


class FreezeWatch:
    """Tells a busy program from a frozen one by its heartbeats and /proc (see module doc)."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.pid: int | None = None         # the heartbeating process (None: not watched)
        self.quiet_since = 0.0              # last heartbeat or CPU progress
        self.last_sample: tuple[str, int] | None = None
        self.next_sample = 0.0
        self.left = False
        self.after: int | None = None
        self.peer_lost = False
        self.buf = b""

    def feed(self, data: bytes, now: float) -> None:
        self.buf += data
        *lines, self.buf = self.buf.split(b"\n")
        for line in lines:
            kind, _, rest = line.decode(errors="replace").partition(" ")
            pid_text, _, text = rest.partition(" ")
            if not pid_text.isdigit():
                continue
            if kind == "beat":
                self.pid, self.quiet_since, self.last_sample = int(pid_text), now, None
            elif kind == "bye":
                self.pid = None
            elif kind == "left":
                self.left = True
            elif kind == "after" and text.strip().isdigit():
                self.after = int(text)
            elif kind == "peer_lost":
                self.peer_lost = True

    def frozen(self, now: float) -> str | None:
        """A description of the frozen state once it has lasted the timeout, else None."""
        if self.pid is None or self.timeout <= 0 or now - self.quiet_since < BEAT_LATE:
            return None
        if now < self.next_sample:
            return None
        self.next_sample = now + SAMPLE
        sample = proc_sample(self.pid)
        if sample is None:
            self.pid = None
            return None
        state, ticks = sample
        stopped = state in ("T", "t")
        if not stopped and (state == "R" or (self.last_sample is not None
                                             and ticks != self.last_sample[1])):
            self.quiet_since = now      # busy: it computes without reaching its watchdog
        self.last_sample = sample
        if now - self.quiet_since < self.timeout:
            return None
        return "stopped (state T)" if stopped else f"getting no CPU time (state {state})"


def _parent_death_signal():
    """A preexec_fn asking Linux to SIGKILL the program if the shim dies (e.g. is SIGKILLed)."""
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, signal.SIGKILL)

    return preexec


def _close_fds_except(keep: set[int]) -> None:
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        fds = list(range(3, 1024))
    for fd in fds:
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


def _forward(pipes: dict[int, socket.socket]) -> None:
    """Copy each pipe to its socket until every pipe reaches EOF or ringrun goes away."""
    sel = selectors.DefaultSelector()
    for fd, sock in pipes.items():
        sel.register(fd, selectors.EVENT_READ, ("pipe", sock))
        sel.register(sock, selectors.EVENT_READ, ("sock", fd))  # readable only once closed
    while pipes:
        for key, _ in sel.select():
            kind, other = key.data
            if kind == "sock":
                return  # ringrun closed the connection: nobody reads any more
            data = os.read(key.fd, 1 << 16)
            if data:
                other.sendall(data)
                continue
            sel.unregister(key.fd)
            sel.unregister(other)
            os.close(key.fd)
            other.close()  # EOF for ringrun, after everything sent
            del pipes[key.fd]


def _start_forwarder(pipes: dict[int, socket.socket]) -> int:
    """Fork the forwarder of ``pipes`` (read end -> socket); returns its pid."""
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        # A session of its own: mpiexec's kill of the shim's process group spares it, and it
        # ends by itself when the program's pipes close.
        os.setsid()
        for signum in FORWARDED:
            signal.signal(signum, signal.SIG_DFL)
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):  # never hold mpiexec's own output pipes open
            os.dup2(devnull, fd)
        _close_fds_except({0, 1, 2, *pipes, *(s.fileno() for s in pipes.values())})
        _forward(pipes)
        code = 0
    finally:
        os._exit(code)  # never return into the shim's code in this forked copy


class Shim:
    def __init__(self, argv: list[str], control: str) -> None:
        self.argv = argv
        self.host, self.port, self.token = parse_control(control)
        self.rank = int(os.environ.get("PMI_RANK", "0"))
        self.sock: socket.socket | None = None
        self.child: subprocess.Popen | None = None
        self.stop_deadline: float | None = None
        self.pending_signals: list[int] = []
        self.forwarder: int | None = None
        self.status_fd: int | None = None
        self.watch = FreezeWatch(_timeout())
        self.frozen: str | None = None

    def _connect(self, first_frame: bytes) -> socket.socket:
        """A connection to ringrun (a Unix socket when its address is a path), authenticated
        by the token ringrun reads before anything else, then ``first_frame``."""
        if self.host.startswith("/"):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(10)
            try:
                sock.connect(self.host)
            except OSError:
                sock.close()
                raise
        else:
            sock = socket.create_connection((self.host, self.port), timeout=10)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # small writes go at once
        sock.settimeout(None)
        sock.sendall(self.token.encode() + first_frame)
        return sock

    def _output_socket(self, stream: int) -> socket.socket:
        return self._connect(encode_json(ATTACH, {"rank": self.rank, "stream": stream}))

    # --- lifecycle --------------------------------------------------------------------------
    def stop(self) -> None:
        if self.stop_deadline is None and self.child is not None:
            self.stop_deadline = time.monotonic() + GRACE
            self._signal_child(signal.SIGTERM)

    def _signal_child(self, signum: int) -> None:
        if self.child is not None and self.child.returncode is None:
            try:
                self.child.send_signal(signum)
            except ProcessLookupError:
                pass

    def _on_signal(self, signum: int, frame: object) -> None:
        self.pending_signals.append(signum)

    def run(self) -> int:
        try:
            self.sock = self._connect(encode_json(HELLO, {
                "rank": self.rank, "pid": os.getpid(), "host": socket.gethostname()}))
            out, err = self._output_socket(1), self._output_socket(2)
        except OSError as exc:
            where = self.host if self.host.startswith("/") else f"{self.host}:{self.port}"
            sys.stderr.write(f"ringrun worker (rank {self.rank}): cannot reach ringrun at "
                             f"{where} ({exc}); not starting {self.argv[0]}\n")
            return 1
        # Pipes, not the sockets themselves, so that /dev/stdout and friends work as usual.
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        self.forwarder = _start_forwarder({out_r: out, err_r: err})
        for fd in (out_r, err_r):
            os.close(fd)
        out.close()
        err.close()
        for signum in FORWARDED:
            signal.signal(signum, self._on_signal)
        pmi_fd = os.environ.get("PMI_FD", "")
        status_r, status_w = os.pipe()
        os.set_blocking(status_r, False)
        self.status_fd = status_r
        code = 0
        try:
            self.child = subprocess.Popen(
                self.argv, stdout=out_w, stderr=err_w,
                env={**os.environ, STATUS_FD_VAR: str(status_w)},
                pass_fds=[status_w, *([int(pmi_fd)] if pmi_fd.isdigit() else [])],
                preexec_fn=_parent_death_signal())  # noqa: PLW1509 -- single-threaded
        except OSError as exc:
            code = 127 if exc.errno in (errno.ENOENT, errno.ENOTDIR) else 126
            what = "command not found" if code == 127 else "cannot run"
            os.write(err_w, f"ringrun: {what}: {self.argv[0]} ({exc.strerror})\n".encode())
        finally:
            os.close(out_w)  # the child keeps its own copies
            os.close(err_w)
            os.close(status_w)
        if self.child is not None:
            code = self._wait()
        self._wait_forwarder()
        return self._finish(code)

    def _wait_forwarder(self) -> None:
        """Let the last output go out before the exit report (a grandchild may keep the pipes
        open: then the forwarder carries on alone and the report goes first)."""
        deadline = time.monotonic() + FLUSH_WAIT
        while self.forwarder is not None and time.monotonic() < deadline:
            if os.waitpid(self.forwarder, os.WNOHANG)[0]:
                self.forwarder = None
            else:
                time.sleep(0.005)

    def _wait(self) -> int:
        assert self.child is not None and self.sock is not None
        sel = selectors.DefaultSelector()
        sel.register(self.sock, selectors.EVENT_READ, "control")
        try:
            # Report the exit at once: on MPI_Abort, mpiexec SIGKILLs the shims within ms.
            pidfd = os.pidfd_open(self.child.pid)
            sel.register(pidfd, selectors.EVENT_READ, "exit")
        except (AttributeError, OSError):
            pidfd = None
        if self.status_fd is not None:
            sel.register(self.status_fd, selectors.EVENT_READ, "status")
        frames = FrameReader()
        while self.child.poll() is None:
            while self.pending_signals:
                self._signal_child(self.pending_signals.pop(0))
            now = time.monotonic()
            if self.stop_deadline is not None and now > self.stop_deadline:
                self._signal_child(signal.SIGKILL)
            if self.frozen is None:
                self.frozen = self.watch.frozen(now)
                if self.frozen is not None:
                    self._kill_frozen()
            events = sel.select(timeout=0.05)
            if any(key.data == "status" for key, _ in events):
                self._read_status(sel)
            if not any(key.data == "control" for key, _ in events):
                continue
            try:
                data = self.sock.recv(1 << 12)
            except OSError:
                data = b""
            if not data:  # ringrun is gone: nobody supervises the program any more
                sel.unregister(self.sock)
                self.sock.close()
                self.sock = None
                self.stop()
                while self.child.poll() is None:
                    if time.monotonic() > self.stop_deadline:
                        self._signal_child(signal.SIGKILL)
                    time.sleep(0.05)
                break
            if any(kind == STOP for kind, _ in frames.feed(data)):
                self.stop()
        sel.close()
        if pidfd is not None:
            os.close(pidfd)
        return self.child.wait()

    def _read_status(self, sel: selectors.BaseSelector) -> None:
        assert self.status_fd is not None
        try:
            data = os.read(self.status_fd, 1 << 12)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            self.watch.feed(data, time.monotonic())
            return
        sel.unregister(self.status_fd)  # the program (and anything it started) closed it
        os.close(self.status_fd)
        self.status_fd = None
        self.watch.pid = None

    def _kill_frozen(self) -> None:
        """SIGKILL works on a stopped process too; the program is reported as frozen."""
        for pid in {self.watch.pid, self.child.pid if self.child else None} - {None}:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def report(self, returncode: int) -> dict:
        """The EXIT frame's payload: the status and what the program told us about it."""
        if self.status_fd is not None:  # notes written just before the program ended
            try:
                self.watch.feed(os.read(self.status_fd, 1 << 16), time.monotonic())
            except OSError:
                pass
        info: dict = {"returncode": returncode}
        if self.frozen is not None:
            info["frozen"] = {"seconds": self.watch.timeout, "state": self.frozen}
        if self.watch.left:
            info["left"] = True
        if self.watch.after is not None:
            info["after"] = self.watch.after
        if self.watch.peer_lost:
            info["peer_lost"] = True
        return info

    def _finish(self, returncode: int) -> int:
        if self.sock is None:
            return exit_code(returncode)
        try:
            self.sock.sendall(encode_json(EXIT, self.report(returncode)))
            self.sock.shutdown(socket.SHUT_WR)
            # Wait for ringrun to close its end, so the report is read before we exit.
            self.sock.settimeout(REPORT_WAIT)
            while self.sock.recv(1 << 12):
                pass
        except OSError:
            pass
        self.sock.close()
        return 0  # reported: ringrun decides the job's fate, not mpiexec


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    control = os.environ.pop(CONTROL_VAR, None)
    if not args or not control:
        sys.stderr.write(f"usage: {CONTROL_VAR}=host:port:token python -m ringrun._worker "
                         f"PROG [ARGS...]  (started by ringrun, not by hand)\n")
        return 2
    # A session of its own, as hydra gives every rank (mpiexec.gforker does not): Linux shares
    # CPU per session (autogroups), so on a busy machine ranks in one session ran at a third of
    # the speed of hydra's (3 ranks: numpy's import 2.6 s instead of 0.8 s).
    if os.getsid(0) != os.getpid():
        try:
            os.setsid()
        except OSError:
            pass  # a process-group leader already: keep the session it has
    return Shim(list(args), control).run()


if __name__ == "__main__":
    sys.exit(main())
