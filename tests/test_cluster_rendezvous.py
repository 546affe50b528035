"""Unit tests of the cluster rendezvous (one process, threads): admission, strangers, failures."""

import json
import socket
import struct
import threading
import time

import pytest
from ringrun.cluster_rendezvous import (
    FAIL_GRACE,
    HANDSHAKE_TIMEOUT,
    Channel,
    RendezvousClient,
    RendezvousError,
    RendezvousServer,
)

SECRET = "s3cret-for-tests"


@pytest.fixture
def server_factory():
    servers = []

    def make(groups, **kw):
        kw.setdefault("join_timeout", 10.0)
        kw.setdefault("timeout", 2.0)
        logs, failures = [], []
        srv = RendezvousServer(0, SECRET, groups, host="127.0.0.1", log=logs.append,
                               on_failure=failures.append, **kw)
        srv.logs, srv.failures = logs, failures
        servers.append(srv)
        return srv

    yield make
    for srv in servers:
        srv.close()


def client(srv, group, size, role="machine", secret=SECRET, **kw):
    kw.setdefault("join_timeout", 10.0)
    kw.setdefault("timeout", 2.0)
    return RendezvousClient("127.0.0.1", srv.port, secret, role=role, group=group, size=size,
                            **kw)


def register_all(clients):
    """Register clients concurrently (each blocks until all groups are in); their replies."""
    replies, errors = [None] * len(clients), []

    def run(i):
        try:
            replies[i] = clients[i].register()
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert not errors, errors
    return replies


def test_offsets_follow_group_order_not_arrival_order(server_factory):
    srv = server_factory(["chief:0", "worker:0", "worker:1"])
    clients = [client(srv, 2, 1), client(srv, 0, 3), client(srv, 1, 2)]
    replies = register_all(clients)
    for reply in replies:
        assert reply["offsets"] == [0, 3, 5] and reply["world_size"] == 6
        assert reply["sizes"] == [3, 2, 1]
    for c in clients:
        c.done()
    assert srv.wait_done(5)
    assert srv.failures == []


def test_group_turns_are_handed_out_one_at_a_time(server_factory):
    srv = server_factory(["worker:0", "worker:1", "worker:2"], sizes=[1, 1, 1])
    chief = client(srv, 0, 1, role="group", port_name="mpi-port-name")
    assert chief.register()["turn"] == 0
    a, b = client(srv, 1, 1, role="group"), client(srv, 2, 1, role="group")
    first = {}

    def reg(c, key):
        first[key] = c.register()

    ta = threading.Thread(target=reg, args=(a, "a"))
    tb = threading.Thread(target=reg, args=(b, "b"))
    ta.start()
    tb.start()
    time.sleep(0.5)
    # Exactly one newcomer holds a turn until it says it has joined.
    assert len(first) == 1
    (key, reply), = first.items()
    assert reply["turn"] == 1 and reply["port"] == "mpi-port-name"
    (a if key == "a" else b).joined()
    ta.join(5)
    tb.join(5)
    assert sorted(r["turn"] for r in first.values()) == [1, 2]


def test_wrong_secret_is_refused_and_logged(server_factory):
    srv = server_factory(["worker:0", "worker:1"])
    with pytest.raises(RendezvousError, match="refused this machine: wrong secret"):
        client(srv, 1, 1, secret="not-the-secret").register()
    assert any("wrong secret" in line for line in srv.logs)
    assert srv.failures == [] and srv.sizes == [None, None]


def test_client_refuses_a_server_without_the_secret(server_factory):
    srv = RendezvousServer(0, "other-secret", ["worker:0"], host="127.0.0.1")
    try:
        with pytest.raises(RendezvousError):
            client(srv, 0, 1).register()
    finally:
        srv.close()


def frame(payload: bytes, kind: bytes = b"M") -> bytes:
    return kind + struct.pack("!I", len(payload)) + payload


@pytest.mark.parametrize("junk", [
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",          # huge length prefix
    frame(b"\xff\xfe\x00\x01\x02"),                   # not JSON
    frame(b"[]"),                                    # JSON, not an object
    b"",                                             # connect and hang up
])
def test_strangers_with_junk_neither_crash_nor_stall_the_job(server_factory, junk):
    srv = server_factory(["worker:0", "worker:1"])
    stranger = socket.create_connection(("127.0.0.1", srv.port))
    stranger.sendall(junk)
    if not junk:
        stranger.close()
    silent = socket.create_connection(("127.0.0.1", srv.port))   # says nothing at all
    start = time.monotonic()
    members = [client(srv, 0, 1), client(srv, 1, 2)]
    replies = register_all(members)
    assert replies[1]["offsets"] == [0, 1]
    aborts = []
    for member in members:
        member.monitor(aborts.append)
    assert time.monotonic() - start < HANDSHAKE_TIMEOUT   # the silent one did not hold us up
    deadline = time.monotonic() + HANDSHAKE_TIMEOUT + 3
    while junk and time.monotonic() < deadline and not any("refused" in x for x in srv.logs):
        time.sleep(0.1)
    if junk:
        assert any("refused connection from 127.0.0.1" in line for line in srv.logs), srv.logs
    stranger.close()
    silent.close()
    for member in members:
        member.done()
    assert srv.wait_done(5)
    assert srv.failures == [] and aborts == []


def test_a_lost_member_aborts_the_others_with_its_name(server_factory):
    srv = server_factory(["worker:0", "worker:1", "worker:2"])
    clients = [client(srv, g, 2) for g in range(3)]
    register_all(clients)
    aborts = {}
    for g in (0, 1):
        clients[g].monitor(lambda reason, g=g: aborts.setdefault(g, reason))
    clients[2].channel.close()     # as if its ringrun was killed -9
    deadline = time.monotonic() + 5
    while len(aborts) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert set(aborts) == {0, 1}
    for reason in aborts.values():
        assert "worker:2 (ranks 4-5) lost" in reason
    assert len(srv.failures) == 1


def test_silence_past_the_timeout_fails_the_job(server_factory):
    srv = server_factory(["worker:0", "worker:1"], timeout=1.0)
    clients = [client(srv, g, 1, timeout=1.0) for g in range(2)]
    register_all(clients)
    aborted = []
    clients[0].monitor(aborted.append)
    # clients[1] never starts its heartbeat: it "stops answering".
    start = time.monotonic()
    while not aborted and time.monotonic() - start < 6:
        time.sleep(0.05)
    assert aborted and "worker:1 (rank 1) lost: stopped answering for 1 s" in aborted[0]
    assert 0.9 < time.monotonic() - start < 4


def test_reported_failure_reaches_everyone_and_done_is_not_a_failure(server_factory):
    srv = server_factory(["worker:0", "worker:1", "worker:2"])
    clients = [client(srv, g, 1) for g in range(3)]
    register_all(clients)
    aborts = []
    clients[0].monitor(aborts.append)
    clients[1].monitor(aborts.append)
    clients[2].done()              # finished early and cleanly: not a failure
    time.sleep(0.5)
    assert aborts == [] and srv.failures == []
    clients[1].failed("rank 1 exited with code 3")
    deadline = time.monotonic() + 5
    while len(aborts) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert aborts and all("worker:1 (rank 1): rank 1 exited with code 3" in a for a in aborts)


def test_wait_told_returns_once_every_member_was_sent_the_abort(server_factory):
    srv = server_factory(["worker:0", "worker:1", "worker:2"])
    clients = [client(srv, g, 1) for g in range(3)]
    register_all(clients)
    assert not srv.wait_told(0.2)          # no failure yet
    clients[0].failed("rank 0 exited with code 3")
    started = time.monotonic()
    assert srv.wait_told(5)
    assert time.monotonic() - started >= FAIL_GRACE - 0.1
    srv.close()                            # the chief's ringrun exits right away
    for c in clients[1:]:
        msg = c._next(5)
        assert msg is not None and "worker:0 (rank 0): rank 0 exited with code 3" in msg["abort"]


def test_duplicate_task_and_missing_machine(server_factory):
    srv = server_factory(["worker:0", "worker:1"], join_timeout=1.5)
    first = client(srv, 1, 1)
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("r", _try(first.register)))
    t.start()
    time.sleep(0.3)
    with pytest.raises(RendezvousError, match="worker:1 has already joined"):
        client(srv, 1, 1).register()
    t.join(5)
    assert isinstance(result["r"], RendezvousError)
    assert "worker:0 did not join within 1.5 s" in str(result["r"])


def _try(fn):
    try:
        return fn()
    except RendezvousError as exc:
        return exc


def test_channel_reports_eof():
    a, b = socket.socketpair()
    ch = Channel(a, "peer")
    b.close()
    with pytest.raises(RendezvousError, match="closed the connection"):
        ch.recv(1.0)
    ch.close()


# --- strangers (issue 12, items 2 and 3) ----------------------------------------------------

def _hello(**fields):
    base = {"proto": "ringtrain-rendezvous/2", "nonce": "n" * 32, "role": "machine", "group": 0,
            "size": 1, "mac": "0" * 64}
    return frame(json.dumps({**base, **fields}).encode())


@pytest.fixture
def thread_errors():
    """Exceptions that escaped any thread (a traceback on the chief's terminal)."""
    errors, previous = [], threading.excepthook
    threading.excepthook = lambda args: errors.append(args.exc_value)
    yield errors
    threading.excepthook = previous


@pytest.mark.parametrize("junk, why", [
    (_hello(mac="é" * 64), "bad mac"),                         # compare_digest TypeError
    (frame(b"[" * 30_000 + b"]" * 30_000), "nests deeper"),    # RecursionError
    (frame(b'{"proto": ' + b"9" * 5000 + b"}"), "unknown protocol 'a 5000-digit number'"),
    (_hello(nonce=[[["n" * 32]]]), "bad nonce"),
    (_hello(group=int("9" * 30)), "wrong secret"),        # authentication comes first
    (frame(b"\xff" * 10), "not UTF-8"),
    (frame(b"{}", kind=b"Q"), "frame of kind"),
], ids=["non-ascii mac", "30k-deep", "5000 digits", "nested nonce", "huge group", "not utf-8",
        "unknown kind"])
def test_junk_on_the_chief_is_refused_with_one_line_and_closed(server_factory, thread_errors,
                                                                junk, why):
    # Before: a TypeError, RecursionError or ValueError traceback, and the socket left open.
    srv = server_factory(["worker:0", "worker:1"])
    stranger = socket.create_connection(("127.0.0.1", srv.port))
    stranger.settimeout(5)
    stranger.recv(4096)                                 # the greeting
    stranger.sendall(junk)
    start = time.monotonic()
    while True:                                         # the chief closes the connection
        data = stranger.recv(4096)
        if not data:
            break
        assert b"error" in data                         # at most a reason, then EOF
    assert time.monotonic() - start < 2
    stranger.close()
    deadline = time.monotonic() + 2
    while not srv.logs and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(srv.logs) == 1 and why in srv.logs[0], srv.logs
    assert srv.logs[0].startswith("refused connection from 127.0.0.1:")
    assert thread_errors == [] and srv.failures == [] and srv.sizes == [None, None]


def test_a_silent_stranger_is_dropped_within_5s(server_factory):
    srv = server_factory(["worker:0", "worker:1"])
    silent = socket.create_connection(("127.0.0.1", srv.port))
    silent.settimeout(HANDSHAKE_TIMEOUT + 3)
    start = time.monotonic()
    silent.recv(4096)                                   # the greeting
    assert silent.recv(4096) == b""                     # then the chief hangs up
    assert time.monotonic() - start <= HANDSHAKE_TIMEOUT + 0.5
    assert "no handshake within 5 s" in srv.logs[0]
    silent.close()


def test_200_silent_connections_do_not_keep_the_machines_out(server_factory, thread_errors):
    srv = server_factory(["worker:0", "worker:1", "worker:2"], join_timeout=30.0)
    held = [socket.create_connection(("127.0.0.1", srv.port)) for _ in range(200)]
    try:
        start = time.monotonic()
        members = [client(srv, g, 1, join_timeout=30.0) for g in range(3)]
        replies = register_all(members)
        assert [r["offsets"] for r in replies] == [[0, 1, 2]] * 3
        assert time.monotonic() - start < HANDSHAKE_TIMEOUT   # not after the strangers' timeout
        for member in members:
            member.done()
        assert srv.wait_done(5)
        assert srv.failures == [] and thread_errors == []
        assert srv.refusals() >= 200 - 8                       # one address keeps at most 8
        assert len(srv.logs) <= 6                               # five lines, and the count
    finally:
        for s in held:
            s.close()


def test_the_client_tries_again_when_accepted_and_closed(server_factory):
    # A chief crowded out by strangers accepts and hangs up; the machine must not give up.
    door = socket.create_server(("127.0.0.1", 0))
    port = door.getsockname()[1]
    stop = threading.Event()

    def slam():
        door.settimeout(0.05)
        while not stop.is_set():
            try:
                door.accept()[0].close()
            except TimeoutError:
                pass
        door.close()

    slammer = threading.Thread(target=slam)
    slammer.start()
    result = {}
    member = RendezvousClient("127.0.0.1", port, SECRET, role="machine", group=0, size=1,
                              join_timeout=20.0, timeout=2.0)
    joiner = threading.Thread(target=lambda: result.update(reply=_try(member.register)))
    joiner.start()
    time.sleep(1.5)                                      # many attempts slammed shut
    stop.set()
    slammer.join()
    srv = RendezvousServer(port, SECRET, ["worker:0"], host="127.0.0.1", join_timeout=20.0,
                           timeout=2.0)
    try:
        joiner.join(15)
        assert not isinstance(result["reply"], Exception), result["reply"]
        assert result["reply"]["world_size"] == 1
        member.done()
    finally:
        srv.close()


def test_the_client_gives_up_at_the_join_timeout():
    door = socket.create_server(("127.0.0.1", 0))   # listens, never answers
    port = door.getsockname()[1]
    member = RendezvousClient("127.0.0.1", port, SECRET, role="machine", group=0, size=1,
                              join_timeout=1.0, timeout=2.0)
    start = time.monotonic()
    door.close()
    with pytest.raises(RendezvousError, match=r"within 1 s \(RINGTRAIN_JOIN_TIMEOUT\)"):
        member.register()
    assert 1.0 <= time.monotonic() - start < 4


def test_a_machine_at_the_next_attempt_waits_for_the_chiefs_next_rendezvous(server_factory):
    # ringrun --max-restarts: the failed attempt's rendezvous tells a machine that restarted
    # sooner to retry; it joins the next attempt's rendezvous on the same port once it opens.
    old = server_factory(["worker:0", "worker:1"], attempt=0)
    port = old.port
    early = client(old, 1, 2, attempt=1)
    replies = []
    thread = threading.Thread(target=lambda: replies.append(early.register()))
    thread.start()
    time.sleep(0.5)
    assert not replies                          # told to come back later, still trying
    old.close()
    new = RendezvousServer(port, SECRET, ["worker:0", "worker:1"], host="127.0.0.1",
                           join_timeout=10.0, timeout=2.0, attempt=1)
    try:
        chief = client(new, 0, 1, attempt=1)
        assert chief.register()["offsets"] == [0, 1]
        thread.join(20)
        assert replies and replies[0]["world_size"] == 3
        for member in (chief, early):
            member.done(0)
    finally:
        new.close()


def test_a_machine_from_an_earlier_attempt_is_refused_naming_the_flag(server_factory):
    srv = server_factory(["worker:0", "worker:1"], attempt=2)
    with pytest.raises(RendezvousError, match="same --max-restarts"):
        client(srv, 1, 1, attempt=1).register()
