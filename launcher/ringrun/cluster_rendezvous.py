"""The cluster rendezvous: a small authenticated TCP service at the chief's address (stdlib only).

It carries only the handshake and control messages of a multi-machine job, never tensors:

* members register (a machine's ``ringrun``, or the leader of a worker group) with the number of
  workers they bring; once every expected group has registered, each learns its rank offset;
* the chief group's leader publishes its MPI port name and the other groups receive it one at a
  time, in turns, so the chief side accepts newcomers one by one;
* the connection then stays open as a heartbeat channel: a member that disconnects without
  saying ``done``, or stays silent for ``timeout`` seconds, fails the job, and every other member
  is told ``abort`` with a reason naming it.

Every message is one ``M`` frame of ``ringrun.protocol`` holding a JSON object. A connection
proves it knows the shared secret with an HMAC over fresh nonces (the secret never travels), and
the server proves it back. A stranger (wrong secret, junk bytes, silence) is refused with one log
line within ``HANDSHAKE_TIMEOUT`` seconds without touching the job's state; strangers holding
connections open cannot crowd the machines out: past ``MAX_PENDING_PER_SOURCE`` handshakes from
one address (``MAX_PENDING`` in all) the oldest is dropped, and a client whose connection is
dropped before it is authenticated tries again, backing off, until ``RINGTRAIN_JOIN_TIMEOUT``.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import secrets
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .cluster_config import join_address
from .protocol import MESSAGE, FrameError, FrameReader, decode_json, encode_json

PROTOCOL = "ringtrain-rendezvous/2"
MAX_FRAME = 64 * 1024
#: Seconds a new connection has to complete the handshake before it is dropped.
HANDSHAKE_TIMEOUT = 5.0
#: Unauthenticated connections served at once; past it the oldest is dropped.
MAX_PENDING = 64
#: Unauthenticated connections from one address; past it that address's oldest is dropped.
MAX_PENDING_PER_SOURCE = 8
#: Refusals logged one line each per address; after that they are only counted.
MAX_REFUSALS_SHOWN = 5
#: Longest pause between a client's attempts to reach the chief.
MAX_BACKOFF = 2.0
#: Seconds between the first failure report and the abort, to gather the reports it causes.
FAIL_GRACE = 0.5


class RendezvousError(ConnectionError):
    """The rendezvous failed: refused, timed out, lost, or a peer spoke junk."""


class _TryAgain(RendezvousError):
    """The connection failed before the chief answered: worth another attempt."""


class ProtocolError(RendezvousError):
    """A peer sent bytes that are not a valid frame of this protocol, or was refused.

    ``reply`` is the error told to the peer, sent after the refusal is logged.
    """

    def __init__(self, message: str, reply: str | None = None):
        super().__init__(message)
        self.reply = reply


def _mac(secret: str, label: str, *parts: str) -> str:
    return hmac.new(secret.encode(), "|".join((label, *parts)).encode(),
                    hashlib.sha256).hexdigest()


def encode(obj: dict) -> bytes:
    return encode_json(MESSAGE, obj)


class Channel:
    """One connection: frame-level send (thread-safe) and receive with a deadline."""

    def __init__(self, sock: socket.socket, peer: str) -> None:
        self.sock = sock
        self.peer = peer
        self._frames = FrameReader(max_payload=MAX_FRAME)
        self._ready: list[dict] = []
        self._send_lock = threading.Lock()
        self.closed = False

    def send(self, obj: dict) -> None:
        data = encode(obj)
        with self._send_lock:
            self.sock.sendall(data)

    def recv(self, timeout: float | None) -> dict | None:
        """The next message, or None when ``timeout`` passes first; EOF raises RendezvousError."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._ready:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return None
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                return None
            except OSError as exc:
                raise RendezvousError(f"connection to {self.peer} failed: {exc}") from None
            if not data:
                raise RendezvousError(f"{self.peer} closed the connection")
            try:
                for kind, payload in self._frames.feed(data):
                    if kind != MESSAGE:
                        raise FrameError(f"frame of kind {kind!r}")
                    self._ready.append(decode_json(payload))
            except FrameError as exc:
                raise ProtocolError(str(exc)) from None
        return self._ready.pop(0)

    def close(self) -> None:
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def heartbeat_interval(timeout: float) -> float:
    return max(0.05, min(1.0, timeout / 5))


def keep_alive(channel: Channel, timeout: float, on_message: Callable[[dict], bool],
               stopped: Callable[[], bool] = lambda: False) -> bool:
    """Send a heartbeat every ``heartbeat_interval`` and hand every other message to
    ``on_message`` until it returns True or ``stopped()``: then True. False when the peer said
    nothing for ``timeout`` seconds; a lost connection raises (RendezvousError, OSError)."""
    interval = heartbeat_interval(timeout)
    last_heard = time.monotonic()
    next_beat = 0.0
    while not stopped():
        now = time.monotonic()
        if now >= next_beat:
            channel.send({"hb": 1})
            next_beat = now + interval
        msg = channel.recv(interval)
        now = time.monotonic()
        if msg is None:
            if now - last_heard > timeout:
                return False
            continue
        last_heard = now
        if "hb" not in msg and on_message(msg):
            return True
    return True


@dataclass
class _Pending:
    """A connection that has not finished its handshake."""

    source: str         # the peer's address, without the port
    since: float
    channel: Channel


class _Member:
    """A registered connection: a machine's ringrun or a worker group's leader."""

    def __init__(self, role: str, group: int, channel: Channel) -> None:
        self.role = role
        self.group = group
        self.channel = channel
        self.done = False


class RendezvousServer:
    """The chief's side. ``groups`` names the groups in rank order (e.g. ``worker:0``).

    ``sizes[g]`` is the number of workers of group g when known in advance (else it arrives
    when the group registers). ``on_failure(reason)`` is called once, from a server thread,
    when a member is lost; ``log(line)`` receives notices such as refused strangers.
    """

    def __init__(self, port: int, secret: str, groups: Sequence[str], *,
                 sizes: Sequence[int | None] | None = None, join_timeout: float = 300.0,
                 timeout: float = 30.0, host: str = "",
                 on_failure: Callable[[str], None] | None = None,
                 log: Callable[[str], None] | None = None, attempt: int = 0) -> None:
        if not secret:
            raise ValueError("the rendezvous needs a non-empty shared secret")
        self.secret = secret
        self.attempt = attempt      # the job's restart (ringrun --max-restarts) it serves
        self.groups = list(groups)
        self.sizes: list[int | None] = list(sizes) if sizes is not None else [None] * len(groups)
        self.join_timeout = join_timeout
        self.timeout = timeout
        self.on_failure = on_failure
        self.log = log or (lambda line: None)
        self.failure: str | None = None
        self._reports: list[str] = []
        self._aborted = False
        self._told = False                  # every member has been sent the abort
        self._cond = threading.Condition()
        self._members: list[_Member] = []
        self._registered: set[tuple[str, int]] = set()
        self._port_name: str | None = None
        self._next_turn = 1
        self._joining: int | None = None
        self._pending: dict[int, _Pending] = {}    # id(channel) -> connection in handshake
        self._refusals: dict[str, int] = {}         # source address -> refusals so far
        self._closing = False
        self._started = time.monotonic()
        if host:
            self._listener = socket.create_server((host, port), reuse_port=False)
        elif socket.has_dualstack_ipv6():
            self._listener = socket.create_server(("", port), family=socket.AF_INET6,
                                                  dualstack_ipv6=True)
        else:
            self._listener = socket.create_server(("", port))
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept_loop, name="rendezvous-accept",
                                        daemon=True)
        self._thread.start()

    # --- public ---------------------------------------------------------------------------------
    def offsets(self) -> list[int]:
        out, total = [], 0
        for size in self.sizes:
            out.append(total)
            total += size or 0
        return out

    def fail(self, reason: str) -> None:
        """Declare the job failed and tell every member to abort.

        One failure usually brings others along (MPI tells the other ranks that a peer left,
        and they fail too), and the report that arrives first is not always the cause; so
        the reports of the next ``FAIL_GRACE`` seconds are gathered and sent together,
        first arrival first.
        """
        with self._cond:
            if self._closing or self._aborted:
                return
            if self.failure is not None:
                if reason not in self._reports:
                    self._reports.append(reason)
                return
            self.failure = reason
            self._reports = [reason]
            self._cond.notify_all()
        threading.Thread(target=self._abort_all, name="rendezvous-abort", daemon=True).start()

    def _abort_all(self) -> None:
        time.sleep(FAIL_GRACE)
        with self._cond:
            self._aborted = True
            reason = "; also ".join(self._reports)
            self.failure = reason
            members = list(self._members)
            self._cond.notify_all()
        for member in members:
            if not member.done:
                try:
                    member.channel.send({"abort": reason})
                except OSError:
                    pass
        with self._cond:
            self._told = True
            self._cond.notify_all()
        if self.on_failure is not None:
            self.on_failure(reason)

    def wait_told(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until a failure has been sent to every member (the
        reports of ``FAIL_GRACE`` gathered first); False when none was by then."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._told:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def wait_done(self, timeout: float | None) -> bool:
        """Wait until every registered member said ``done``; False on a failure (a member
        lost or reporting one) or after ``timeout`` seconds (None: no limit; a member that is
        merely slower is alive and heartbeating, and a lost one is a failure)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while any(not m.done and not m.channel.closed for m in self._members):
                remaining = 1.0 if deadline is None else deadline - time.monotonic()
                if remaining <= 0 or self.failure is not None:
                    return False
                self._cond.wait(min(remaining, 1.0))
            return self.failure is None

    def close(self) -> None:
        with self._cond:
            self._closing = True
            members = list(self._members)
            self._cond.notify_all()
        try:
            # close() alone leaves the socket listening while the accept thread is blocked in
            # accept(): the port stays taken, and a restart's rendezvous could not bind it.
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self._listener.close()
        except OSError:
            pass
        if self._thread is not threading.current_thread():
            self._thread.join(5.0)
        for member in members:
            member.channel.close()

    # --- connection handling --------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while True:
            try:
                sock, addr = self._listener.accept()
            except OSError:
                return
            source = addr[0].removeprefix("::ffff:")     # IPv4 peers of a dual-stack socket
            channel = Channel(sock, join_address(source, addr[1]))
            with self._cond:
                victim = self._make_room(source)
                self._pending[id(channel)] = _Pending(source, time.monotonic(), channel)
            if victim is not None:
                self._refuse(victim.source, victim.channel.peer,
                             f"oldest of {len(self._pending)} unfinished handshakes (at most "
                             f"{MAX_PENDING_PER_SOURCE} per address, {MAX_PENDING} in all)")
                victim.channel.close()
            threading.Thread(target=self._serve, args=(channel,), daemon=True,
                             name=f"rendezvous-{channel.peer}").start()

    def _make_room(self, source: str) -> _Pending | None:
        """The handshake to drop for a newcomer from ``source`` (holding the condition): the
        oldest of that address when it has too many, else the oldest of all when full.
        Strangers can hold connections open, so the newest (maybe a machine) is never the one
        dropped."""
        same = [p for p in self._pending.values() if p.source == source]
        crowd = same if len(same) >= MAX_PENDING_PER_SOURCE else (
            list(self._pending.values()) if len(self._pending) >= MAX_PENDING else [])
        if not crowd:
            return None
        victim = min(crowd, key=lambda p: p.since)
        del self._pending[id(victim.channel)]
        return victim

    def _refuse(self, source: str, peer: str, why: str) -> None:
        """One log line per refused connection, for the first few of each address."""
        with self._cond:
            count = self._refusals[source] = self._refusals.get(source, 0) + 1
        if count <= MAX_REFUSALS_SHOWN:
            more = f" (further refusals from {source} are only counted)" \
                if count == MAX_REFUSALS_SHOWN else ""
            self.log(f"refused connection from {peer}: {why}{more}")

    def refusals(self) -> int:
        """Connections refused so far (strangers, junk, silence, crowding)."""
        with self._cond:
            return sum(self._refusals.values())

    def _handshake(self, channel: Channel) -> dict:
        nonce = secrets.token_hex(16)
        channel.send({"proto": PROTOCOL, "nonce": nonce})
        hello = channel.recv(HANDSHAKE_TIMEOUT)
        if hello is None:
            raise ProtocolError(f"no handshake within {HANDSHAKE_TIMEOUT:g} s")
        if hello.get("proto") != PROTOCOL:
            raise ProtocolError(f"unknown protocol {str(hello.get('proto'))[:40]!r}")
        client_nonce = hello.get("nonce")
        if not isinstance(client_nonce, str) or not 16 <= len(client_nonce) <= 128:
            raise ProtocolError("bad nonce")
        mac = hello.get("mac")
        if not isinstance(mac, str) or not mac.isascii():
            raise ProtocolError("bad mac")
        expected = _mac(self.secret, "client", nonce, client_nonce)
        if not hmac.compare_digest(mac.encode(), expected.encode()):
            raise ProtocolError("wrong secret", reply="wrong secret: set the same "
                                                      "RINGTRAIN_SECRET on every machine")
        channel.send({"mac": _mac(self.secret, "server", client_nonce, nonce)})
        return hello

    def _serve(self, channel: Channel) -> None:
        pending = self._pending.get(id(channel))
        source = pending.source if pending is not None else channel.peer
        try:
            try:
                hello = self._handshake(channel)
                member = self._register(hello, channel)
            finally:
                with self._cond:
                    self._pending.pop(id(channel), None)
        except ProtocolError as exc:
            self._refuse(source, channel.peer, str(exc))
            if exc.reply is not None:
                try:
                    channel.send({"error": exc.reply})
                except OSError:
                    pass
            channel.close()
            return
        except (RendezvousError, OSError) as exc:
            if not channel.closed:  # else it was dropped for a newcomer, and said so
                self._refuse(source, channel.peer, f"lost during the handshake: {exc}")
            channel.close()
            return
        except Exception as exc:  # noqa: BLE001 - a stranger's bytes must never end this thread
            self._refuse(source, channel.peer, f"{type(exc).__name__}: {str(exc)[:100]}")
            channel.close()
            return
        if member is None:
            channel.close()
            return
        try:
            self._admit(member)
            self._monitor(member)
        except (RendezvousError, OSError) as exc:
            self._lost(member, str(exc))
        finally:
            channel.close()
            with self._cond:
                self._cond.notify_all()

    def _describe(self, group: int) -> str:
        first = self.offsets()[group]
        size = self.sizes[group] or 0
        ranks = f"rank {first}" if size == 1 else f"ranks {first}-{first + size - 1}"
        return f"{self.groups[group]} ({ranks})"

    def _register(self, hello: dict, channel: Channel) -> _Member | None:
        role, group, size = hello.get("role"), hello.get("group"), hello.get("size")
        if role not in ("machine", "group"):
            raise ProtocolError(f"unknown role {str(role)[:40]!r}")
        if not isinstance(group, int) or isinstance(group, bool) or \
                not 0 <= group < len(self.groups):
            raise ProtocolError(f"unknown group {group!r}",
                                reply=f"group {group!r} is not part of this job (expected 0.."
                                      f"{len(self.groups) - 1}); check task.index")
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise ProtocolError(f"bad size {size!r}")
        attempt = hello.get("attempt", self.attempt)    # workers' groups send none
        if attempt != self.attempt:
            if isinstance(attempt, int) and attempt > self.attempt:
                # A machine that restarts sooner than the chief: this rendezvous is the
                # failed attempt's, the next one opens when the chief restarts too.
                channel.send({"later": f"the chief is still ending attempt {self.attempt}"})
            else:
                channel.send({"error": f"this machine joins attempt {attempt!r} but the job "
                                       f"is at attempt {self.attempt} (restart "
                                       f"{self.attempt} of --max-restarts); give every "
                                       f"machine's ringrun the same --max-restarts"})
            return None
        with self._cond:
            name = self.groups[group]
            if self.failure is not None:
                channel.send({"abort": self.failure})
                return None
            if (role, group) in self._registered:
                self.log(f"refused {channel.peer}: {name} has already joined")
                channel.send({"error": f"{name} has already joined this job; is task.index set "
                                       f"to the same value on two machines?"})
                return None
            known = self.sizes[group]
            if known is not None and known != size:
                raise ProtocolError(f"size mismatch for {name}",
                                    reply=f"{name} registered {known} workers but its group "
                                          f"reports {size}")
            port_name = hello.get("port")
            if role == "group" and group == 0:
                if not isinstance(port_name, str) or not port_name:
                    raise ProtocolError("the chief group did not send a port name")
                self._port_name = port_name
            self.sizes[group] = size
            self._registered.add((role, group))
            member = _Member(role, group, channel)
            self._members.append(member)
            self._cond.notify_all()
        return member

    def _wait(self, predicate: Callable[[], bool]) -> None:
        """Wait (holding the condition) until ``predicate``; raise on failure or timeout."""
        deadline = self._started + self.join_timeout
        while not predicate():
            if self.failure is not None:
                raise RendezvousError(self.failure)
            if self._closing:
                raise RendezvousError("the rendezvous is closing")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            self._cond.wait(min(remaining, 1.0))

    def _admit(self, member: _Member) -> None:
        """Reply once every group has registered: offsets, and for a group its MPI turn."""
        reason = None
        with self._cond:
            try:
                self._wait(lambda: all(s is not None for s in self.sizes))
            except TimeoutError:
                missing = [self.groups[g] for g, s in enumerate(self.sizes) if s is None]
                reason = (f"{', '.join(missing)} did not join within {self.join_timeout:g} s "
                          f"(RINGTRAIN_JOIN_TIMEOUT); is ringrun running there with the same "
                          f"RINGTRAIN_CONFIG and RINGTRAIN_SECRET?")
        if reason is not None:
            self.fail(reason)
            member.channel.send({"abort": reason})
            raise RendezvousError(reason)
        with self._cond:
            reply = {"offsets": self.offsets(), "sizes": list(self.sizes),
                     "world_size": sum(self.sizes), "groups": self.groups}
            if member.role == "group" and member.group != 0:
                try:
                    self._wait(lambda: self._port_name is not None and self._joining is None)
                except TimeoutError:
                    reason = "the chief's workers never published their MPI port"
                else:
                    self._joining = member.group
                    reply.update(turn=self._next_turn, port=self._port_name)
                    self._next_turn += 1
            elif member.role == "group":
                reply.update(turn=0, port=self._port_name)
        if reason is not None:
            self.fail(reason)
            member.channel.send({"abort": reason})
            raise RendezvousError(reason)
        member.channel.send(reply)
        if member.role == "group" and member.group != 0:
            # Hold the next newcomer back until this one is merged: the chief side accepts
            # exactly one connection per turn.
            msg = member.channel.recv(self.join_timeout)
            if msg is None or not msg.get("joined"):
                raise RendezvousError(
                    f"its MPI connection to the chief's workers did not complete within "
                    f"{self.join_timeout:g} s (RINGTRAIN_JOIN_TIMEOUT); check that MPI traffic "
                    f"can flow between the machines (choose the network interface: UCX_NET_DEVICES "
                    f"or FI_TCP_IFACE, see the README)")
            with self._cond:
                self._joining = None
                self._cond.notify_all()

    def _monitor(self, member: _Member) -> None:
        """Heartbeats until the member says done; silence or a lost connection fails the job."""

        def on_message(msg: dict) -> bool:
            if "done" in msg:
                with self._cond:
                    member.done = True
                    self._cond.notify_all()
                return True
            if "failed" in msg:
                # Keep listening: the member waits for the job's verdict before it exits.
                self.fail(f"{self._describe(member.group)}: {str(msg['failed'])[:2000]}")
            return False

        if not keep_alive(member.channel, self.timeout, on_message):
            self._lost(member, f"stopped answering for {self.timeout:g} s (RINGTRAIN_TIMEOUT)")

    def _lost(self, member: _Member, why: str) -> None:
        with self._cond:
            if member.done or self._closing:
                return
        self.fail(f"{self._describe(member.group)} lost: {why}")


class RendezvousClient:
    """A member's side: connect (retrying until ``join_timeout``), authenticate, register."""

    def __init__(self, host: str, port: int, secret: str, *, role: str, group: int, size: int,
                 port_name: str | None = None, join_timeout: float = 300.0,
                 timeout: float = 30.0, attempt: int | None = None) -> None:
        if not secret:
            raise ValueError("the rendezvous needs a non-empty shared secret")
        self.address = join_address(host, port)
        self.host, self.port, self.secret = host, port, secret
        self.hello: dict = {"role": role, "group": group, "size": size}
        if attempt is not None:
            self.hello["attempt"] = attempt
        if port_name is not None:
            self.hello["port"] = port_name
        self.join_timeout = join_timeout
        self.timeout = timeout
        self.channel: Channel | None = None
        self._done = False
        self._thread: threading.Thread | None = None

    def register(self) -> dict:
        """Connect, authenticate and register; the reply (offsets, sizes, turn, port).

        A connection refused, or closed before the handshake is done (the chief not up yet,
        or crowded by strangers), is tried again after a pause that doubles up to
        MAX_BACKOFF, until ``join_timeout``; an answer from the chief (refused, aborted) is
        final."""
        deadline = time.monotonic() + self.join_timeout
        pause = 0.1
        while True:
            try:
                return self._attempt()
            except _TryAgain as exc:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise RendezvousError(f"could not reach the chief at {self.address} within "
                                          f"{self.join_timeout:g} s (RINGTRAIN_JOIN_TIMEOUT): "
                                          f"{exc}") from None
                time.sleep(min(remaining, pause * random.uniform(0.5, 1.0)))
                pause = min(MAX_BACKOFF, pause * 2)

    def _attempt(self) -> dict:
        """One connection: the handshake (transport failures raise _TryAgain), then admission."""
        try:
            sock = socket.create_connection((self.host, self.port), timeout=HANDSHAKE_TIMEOUT)
        except OSError as exc:
            raise _TryAgain(str(exc)) from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        channel = Channel(sock, f"the chief at {self.address}")
        try:
            greeting = channel.recv(HANDSHAKE_TIMEOUT)
            if greeting is None:
                raise _TryAgain(f"no greeting within {HANDSHAKE_TIMEOUT:g} s")
            nonce = secrets.token_hex(16)
            server_nonce = str(greeting.get("nonce"))
            if greeting.get("proto") != PROTOCOL:
                raise ProtocolError(f"it greeted with {str(greeting.get('proto'))[:40]!r}")
            channel.send({"proto": PROTOCOL, "nonce": nonce, **self.hello,
                          "mac": _mac(self.secret, "client", server_nonce, nonce)})
            proof = channel.recv(HANDSHAKE_TIMEOUT)
            if proof is None:
                raise _TryAgain(f"no answer to the handshake within {HANDSHAKE_TIMEOUT:g} s")
        except ProtocolError as exc:
            channel.close()
            raise RendezvousError(f"{self.address} is not a {PROTOCOL} rendezvous ({exc})"
                                  ) from None
        except (RendezvousError, OSError) as exc:   # closed, reset: perhaps crowded out
            channel.close()
            raise _TryAgain(str(exc)) from None
        self.channel = channel
        if "error" in proof:
            raise RendezvousError(f"the chief at {self.address} refused this machine: "
                                  f"{str(proof['error'])[:500]}")
        if not hmac.compare_digest(str(proof.get("mac", "")).encode(),
                                   _mac(self.secret, "server", nonce, server_nonce).encode()):
            raise RendezvousError(f"{self.address} does not know RINGTRAIN_SECRET; refusing it")
        reply = self._next(self.join_timeout + HANDSHAKE_TIMEOUT)
        if reply is not None and "later" in reply:      # the chief has not restarted yet
            channel.close()
            self.channel = None
            raise _TryAgain(str(reply["later"])[:200])
        if reply is None:
            raise RendezvousError(f"the chief at {self.address} did not admit this machine "
                                  f"within {self.join_timeout:g} s")
        if "error" in reply:
            raise RendezvousError(f"the chief at {self.address} refused this machine: "
                                  f"{str(reply['error'])[:500]}")
        if "abort" in reply:
            raise RendezvousError(str(reply["abort"])[:2000])
        return reply

    def _next(self, timeout: float) -> dict | None:
        """The next message that is not a heartbeat."""
        assert self.channel is not None
        deadline = time.monotonic() + timeout
        while True:
            msg = self.channel.recv(max(0.0, deadline - time.monotonic()))
            if msg is None or "hb" not in msg:
                return msg

    def joined(self) -> None:
        """Tell the chief this group's MPI connect finished, so the next one may start."""
        assert self.channel is not None
        self.channel.send({"joined": 1})

    def monitor(self, on_abort: Callable[[str], None]) -> None:
        """Keep the channel alive in a thread; ``on_abort(reason)`` when the job must stop."""
        self._thread = threading.Thread(target=self._heartbeat, args=(on_abort,), daemon=True,
                                        name="rendezvous-heartbeat")
        self._thread.start()

    def _heartbeat(self, on_abort: Callable[[str], None]) -> None:
        channel = self.channel
        assert channel is not None

        def on_message(msg: dict) -> bool:
            if "abort" in msg and not self._done:
                on_abort(str(msg["abort"]))
                return True
            return False

        try:
            alive = keep_alive(channel, self.timeout, on_message, stopped=lambda: self._done)
        except (RendezvousError, OSError) as exc:
            if not self._done:
                on_abort(f"lost contact with the chief at {self.address}: {exc}")
            return
        if not alive and not self._done:
            on_abort(f"the chief at {self.address} stopped answering for {self.timeout:g} s "
                     f"(RINGTRAIN_TIMEOUT)")

    def failed(self, reason: str) -> None:
        """Tell the chief this member failed (the chief then aborts everyone)."""
        if self.channel is not None and not self._done:
            try:
                self.channel.send({"failed": reason})
            except OSError:
                pass

    def done(self, code: int = 0) -> None:
        """Say goodbye: this member finished; its disconnect is no longer a failure."""
        if self._done:
            return
        self._done = True
        if self.channel is not None:
            try:
                self.channel.send({"done": code})
            except OSError:
                pass
            self.channel.close()
