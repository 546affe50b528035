"""ringrun's cluster mode: one ``ringrun -np K`` per machine, described by RINGTRAIN_CONFIG.

Before anything starts, the config is validated (a malformed one exits with code 2 and a
message naming the field, before any network traffic). Then the machines meet at the chief's
rendezvous (``cluster_rendezvous``): the chief machine's ringrun listens at its address, every
machine's ringrun registers with its K and the shared ``RINGTRAIN_SECRET``, and learns its rank
offset (machines in order chief, worker 0..n; K may differ per machine). Workers always start
under ``mpiexec`` (MPICH cannot connect singletons) and join one MPI world in ``ringtrain.init()``
(``ringtrain/world/join.py``).

The ringruns stay connected for the whole job: a machine whose worker fails reports it, a
machine that disappears or stays silent for ``RINGTRAIN_TIMEOUT`` seconds is declared lost, and
every other ringrun then stops its workers and exits with an error naming the culprit. When all
is well each machine says goodbye, and the chief waits for everyone's before it exits.

With ``--max-restarts N`` (the same N on every machine) a failed job is restarted by every
machine together: each says goodbye to the failed attempt, waits the backoff and joins
attempt k (``attempt`` in the registration); the chief's rendezvous for attempt k-1 tells a
machine already at k to come back later, so every machine meets in the new rendezvous.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Mapping

from . import env
from .cluster_config import ClusterConfig, ClusterConfigError, from_environ, join_address
from .cluster_rendezvous import RendezvousClient, RendezvousError, RendezvousServer
from .doctor import port_holder
from .plan import ClusterSeat

#: ringrun's exit code when another machine of the cluster failed.
PEER_FAILED_EXIT = 1


def _fail(message: str, code: int) -> SystemExit:
    print(f"ringrun: {message}", file=sys.stderr, flush=True)
    return SystemExit(code)


class ClusterSession:
    """This machine's membership in the cluster, alive from registration to ringrun's exit.

    The supervisor polls :meth:`aborted` (another machine failed: stop our workers) and calls
    :meth:`failed` when a worker here fails; :meth:`finish` says goodbye.
    """

    def __init__(self, config: ClusterConfig, secret: str, np: int, *, join_timeout: float,
                 timeout: float, attempt: int = 0) -> None:
        self.config = config
        self.attempt = attempt
        self.secret = secret
        self.np = np
        self.join_timeout = join_timeout
        self.timeout = timeout
        self.server: RendezvousServer | None = None
        self.client: RendezvousClient | None = None
        self.reply: dict = {}
        self._abort: str | None = None      # another machine failed first: stop
        self._verdict: str | None = None    # the chief's word on what failed, whoever it was
        self._reported = False
        self._lock = threading.Lock()

    # --- joining ------------------------------------------------------------------------------
    def join(self) -> ClusterSeat:
        config = self.config
        chief = config.chief
        groups = [t.name for t in config.machines]
        if config.is_chief_machine:
            try:
                self.server = RendezvousServer(
                    chief.port, self.secret, groups, join_timeout=self.join_timeout,
                    timeout=self.timeout, attempt=self.attempt,
                    log=lambda line: print(f"ringrun: rendezvous: {line}", file=sys.stderr,
                                           flush=True))
            except OSError as exc:
                holder = port_holder(chief.port)
                raise _fail(f"this machine is {config.task.name}, the chief, but cannot listen "
                            f"on port {chief.port} of {config.source}'s {chief.address}: "
                            f"{exc.strerror or exc}"
                            f"{f' (held by {holder})' if holder else ''}; stop what holds it, "
                            f"or give {config.task.name} a free port in {config.source} on "
                            f"every machine", 1) from None
            host = "127.0.0.1"
        else:
            host = chief.host
        self.client = RendezvousClient(host, chief.port, self.secret, role="machine",
                                       group=config.machine_index, size=self.np,
                                       join_timeout=self.join_timeout, timeout=self.timeout,
                                       attempt=self.attempt)
        try:
            self.reply = self.client.register()
        except RendezvousError as exc:
            self.close()
            hint = ""
            if str(exc).startswith("could not reach"):
                hint = (f"; start ringrun on {chief.name}'s machine too, and check that "
                        f"{config.source} gives its address and that port {chief.port} there "
                        f"is open to this machine")
            raise _fail(f"{config.task.name} could not join the cluster: {exc}{hint}",
                        1) from None
        self.client.monitor(self._on_abort)
        index = config.machine_index
        assert index is not None
        offset = self.reply["offsets"][index]
        world = self.reply["world_size"]
        env = {
            "RINGTRAIN_JOIN": join_address(host, chief.port),
            "RINGTRAIN_GROUP": str(index),
            "RINGTRAIN_RANK_OFFSET": str(offset),
            "RINGTRAIN_WORLD_SIZE": str(world),
            "RINGTRAIN_SECRET": self.secret,
        }
        return ClusterSeat(first_rank=offset, world_size=world, env=env, session=self)

    # --- supervision hooks ----------------------------------------------------------------------
    def _on_abort(self, reason: str) -> None:
        with self._lock:
            self._verdict = reason
            if self._abort is None and not self._reported:
                self._abort = reason

    def aborted(self) -> str | None:
        """Why the job must stop because of another machine, or None."""
        with self._lock:
            return self._abort

    def failed(self, reason: str) -> None:
        """A worker here failed: tell the chief, which tells every other machine."""
        with self._lock:
            if self._reported or self._abort is not None:
                return
            self._reported = True
        if self.client is not None:
            self.client.failed(reason.split("; stopping")[0])

    def finish(self, code: int) -> int:
        """Say goodbye with ringrun's exit code; returns the exit code to use."""
        try:
            if code == 0 and self.aborted() is None:
                if self.client is not None:
                    self.client.done(0)
                # The chief's rendezvous stays up until every machine has finished: the others
                # would take its disappearance for a failure.
                if self.server is not None and not self.server.wait_done(None):
                    print(f"ringrun: {self.server.failure}", file=sys.stderr, flush=True)
                    return PEER_FAILED_EXIT
                return 0
            if self.aborted() is None:
                self.failed(f"its ringrun exited with code {code}")
                # The chief answers every failure report with the job's verdict; when another
                # machine's failure reached it first, ours was only a consequence: say so.
                deadline = time.monotonic() + 2.0
                while self._verdict is None and time.monotonic() < deadline:
                    time.sleep(0.02)
                others = [part for part in (self._verdict or "").split("; also ")
                          if part and not part.startswith(f"{self.config.task.name} (")]
                if others:
                    print(f"ringrun: the job failed on {'; also '.join(others)}",
                          file=sys.stderr, flush=True)
            if self.server is not None:
                # Let the server tell every machine before it goes away: its failure is set at
                # the first report, but the abort goes out only after the grace period.
                self.server.wait_told(2.0)
            return code
        finally:
            self.close()

    def close(self) -> None:
        if self.client is not None:
            self.client.done(-1)
        if self.server is not None:
            self.server.close()


def seat(environ: Mapping[str, str], np: int, *, hosts: bool = False,
         dry_run: bool = False, attempt: int = 0) -> ClusterSeat | None:
    """This machine's seat in a RINGTRAIN_CONFIG/TF_CONFIG cluster, or None without one
    (``attempt``: the restart it joins, 0 for the first start).

    Exits with code 2 on a malformed config (before any network traffic) and with code 1 when
    the cluster cannot be joined. ``dry_run`` validates only: ranks are shown from 0 because
    the offset is known only once the other machines have joined.
    """
    try:
        config = from_environ(environ)
    except ClusterConfigError as exc:
        raise _fail(str(exc), 2) from None
    if config is None or config.is_evaluator or config.num_machines == 1:
        # An evaluator runs its program on its own; a one-machine cluster is a normal job.
        return None
    if hosts:
        raise _fail(f"{config.source} describes the machines already; drop -H/--hostfile", 2)
    try:
        secret = env.get("RINGTRAIN_SECRET", environ)
        join_timeout = env.get("RINGTRAIN_JOIN_TIMEOUT", environ)
        timeout = env.get("RINGTRAIN_TIMEOUT", environ)
    except env.EnvError as exc:
        raise _fail(str(exc), 2) from None
    if not secret:
        raise _fail(f"RINGTRAIN_SECRET is not set: the machines of a {config.source} cluster "
                    f"must share a secret to join; export the same RINGTRAIN_SECRET (e.g. the "
                    f"output of 'openssl rand -hex 16') on every machine", 2)
    if dry_run:
        return ClusterSeat(first_rank=0, world_size=0, env={
            "RINGTRAIN_JOIN": config.chief.address,
            "RINGTRAIN_GROUP": str(config.machine_index)})
    session = ClusterSession(config, secret, np, join_timeout=join_timeout, timeout=timeout,
                             attempt=attempt)
    return session.join()
