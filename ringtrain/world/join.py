"""Form one MPI communicator across independently started worker groups.

A *group* is one MPI job started on its own: a machine's ``ringrun -np K`` (or ``mpiexec -n K``)
in a ``RINGTRAIN_CONFIG``/``TF_CONFIG`` cluster, or a single process started by torchrun or any
launcher that sets torchrun's variables (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``...). Groups
meet at the cluster rendezvous (``ringrun.cluster_rendezvous``: authenticated TCP, control
messages only), then build the communicator with MPI's dynamic-process calls:

1. the chief group's leader opens an MPI port and publishes its name at the rendezvous;
2. the rendezvous hands the name to the other groups one at a time; each ``Connect``s while
   the groups already joined ``Accept`` together, and both sides ``Merge`` the intercomm;
3. once every group is in, ``Split`` with key = global rank orders the ranks: the group's
   offset (the sizes of the groups before it) plus the rank inside the group.

Tensors then travel over MPI only. MPICH 5.0.2 cannot connect singletons (pmodels/mpich#7805),
so a process not started by an MPI launcher re-executes itself under ``mpiexec -n 1`` first.
The leader keeps its rendezvous connection open as a heartbeat channel: when another group is
lost, this process exits with an error naming it instead of hanging in a collective.
"""

from __future__ import annotations

import atexit
import json
import os
import secrets
import socket
import sys
from dataclasses import dataclass
from typing import Any

from ringrun.cluster_config import ClusterConfig, split_address
from ringrun.cluster_rendezvous import RendezvousClient, RendezvousError, RendezvousServer
from ringrun.plan import use_libfabric_between_machines

from .. import env
from ..errors import ConfigError, WorkerFailure
from .cluster import cluster_config

#: Exit code of a worker that ends itself because another group of the job was lost.
PEER_LOST_EXIT = 75
_REEXEC_VAR = "RINGTRAIN_REEXEC"
_state: dict[str, Any] = {}


@dataclass(frozen=True)
class JoinPlan:
    """How this process joins: decided from the environment alone, before any network use."""

    mode: str                       # "ringrun" (cluster mode), "config" or "torchrun"
    group: int                      # this group's index, in rank order
    groups: tuple[str, ...]         # every group's name, for messages
    host: str                       # where the rendezvous is
    port: int
    secret: str
    serve_port: int | None = None   # this process hosts the rendezvous on that port
    sizes: tuple[int, ...] | None = None    # group sizes when known in advance
    store: Any = None               # torchrun's agent store, when the address travels through it


def _torch_vars() -> dict[str, str] | None:
    names = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
    if not all(os.environ.get(n) for n in names):
        return None
    return {n: os.environ[n] for n in names}


def _under_mpi_launcher() -> bool:
    return any(v in os.environ for v in ("PMI_RANK", "PMI_FD", "PMI_PORT", "PMIX_RANK",
                                         "OMPI_COMM_WORLD_RANK"))


def _int(name: str, text: str) -> int:
    if not text.strip().isdigit():
        raise ConfigError(f"{name}={text!r} must be a non-negative integer")
    return int(text)


def _need_secret(why: str) -> str:
    secret = env.get("RINGTRAIN_SECRET")
    if not secret:
        raise ConfigError(f"RINGTRAIN_SECRET is not set: {why} need a shared secret to join "
                          f"one job; export the same RINGTRAIN_SECRET (e.g. the output of "
                          f"'openssl rand -hex 16') for every machine or process")
    return secret


def plan_join() -> JoinPlan | None:
    """The join this process must do, or None for a single-machine job. Reads only the env."""
    config = cluster_config()
    joined_by_ringrun = env.get("RINGTRAIN_JOIN")
    if joined_by_ringrun:
        host, port = split_address(joined_by_ringrun)
        groups = tuple(t.name for t in config.machines) if config is not None else ()
        return JoinPlan("ringrun", env.get("RINGTRAIN_GROUP"), groups, host, port,
                        _need_secret("the machines of a cluster"))
    if config is not None:
        return _plan_from_config(config)
    torch_vars = _torch_vars()
    if torch_vars is not None and (not _under_mpi_launcher() or env.get(_REEXEC_VAR)):
        return _plan_from_torch_vars(torch_vars)
    return None


def _plan_from_config(config: ClusterConfig) -> JoinPlan | None:
    if config.is_evaluator or config.num_machines == 1:
        return None
    groups = tuple(t.name for t in config.machines)
    chief = config.chief
    secret = _need_secret(f"the machines of a {config.source} cluster")
    if config.is_chief_machine:
        return JoinPlan("config", 0, groups, "127.0.0.1", chief.port, secret,
                        serve_port=chief.port)
    return JoinPlan("config", config.machine_index, groups, chief.host, chief.port, secret)


def _plan_from_torch_vars(v: dict[str, str]) -> JoinPlan | None:
    rank, size = _int("RANK", v["RANK"]), _int("WORLD_SIZE", v["WORLD_SIZE"])
    if size <= 1:
        return None
    if rank >= size:
        raise ConfigError(f"RANK={rank} is out of range for WORLD_SIZE={size}")
    master_port = _int("MASTER_PORT", v["MASTER_PORT"])
    groups = tuple(f"rank {r}" for r in range(size))
    sizes = (1,) * size
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() == "true":
        # torchrun's agent already listens on MASTER_PORT with its key-value store: rank 0's
        # rendezvous takes a free port and publishes its address (and, without a
        # RINGTRAIN_SECRET, a fresh secret) there.
        return JoinPlan("torchrun", rank, groups, v["MASTER_ADDR"], 0,
                        env.get("RINGTRAIN_SECRET") or "", serve_port=0 if rank == 0 else None,
                        sizes=sizes, store=(v["MASTER_ADDR"], master_port))
    # Without an agent, MASTER_PORT belongs to torch.distributed (if the program also uses it);
    # the rendezvous takes the next port.
    secret = _need_secret("processes started with RANK/WORLD_SIZE/MASTER_ADDR")
    port = master_port + 1
    if rank == 0:
        return JoinPlan("torchrun", 0, groups, "127.0.0.1", port, secret, serve_port=port,
                        sizes=sizes)
    return JoinPlan("torchrun", rank, groups, v["MASTER_ADDR"], port, secret, sizes=sizes)


def reexec_under_mpiexec() -> None:
    """Replace this process with ``mpiexec -n 1 <same command>`` (MPICH cannot connect
    singletons); the program restarts from the top, so call ``init()`` early."""
    if env.get(_REEXEC_VAR):
        raise ConfigError("ringtrain re-executed this program under 'mpiexec -n 1' but MPI "
                          "still sees no launcher; start it with ringrun or mpiexec")
    from ringrun.plan import find_mpiexec

    mpiexec = find_mpiexec(sys.executable)
    if mpiexec is None:
        raise ConfigError("joining a multi-machine job needs MPICH's mpiexec next to this "
                          "Python or on PATH; install it with: pip install mpi4py mpich")
    os.environ[_REEXEC_VAR] = "1"
    sys.stdout.flush()
    sys.stderr.flush()
    argv = list(getattr(sys, "orig_argv", [sys.executable, *sys.argv]))
    os.execv(mpiexec, [mpiexec, "-n", "1", sys.executable, *argv[1:]])


def _store_exchange(plan: JoinPlan, publish: tuple[str, str] | None, timeout: float
                    ) -> tuple[str, str]:
    """Publish (rank 0) or read the rendezvous address and secret in torchrun's agent store."""
    from datetime import timedelta

    from torch.distributed import TCPStore

    host, port = plan.store
    store = TCPStore(host, port, is_master=False, timeout=timedelta(seconds=timeout),
                     use_libuv=True)
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    run_id = os.environ.get("TORCHELASTIC_RUN_ID", "none")
    key = f"ringtrain/{run_id}/{attempt}/rendezvous"
    if publish is not None:
        store.set(key, json.dumps(publish))
        return publish
    address, secret = json.loads(store.get(key).decode())
    return address, secret


def _route_address(toward: str) -> str:
    """This machine's IP address on the route toward ``toward`` (no packet is sent)."""
    if toward in ("localhost", "127.0.0.1", "::1"):
        return "127.0.0.1"
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect((toward, 9))
            return probe.getsockname()[0]
    except OSError:
        return socket.gethostname()


def _abort_process(reason: str) -> None:
    """Another group is gone: this process cannot finish its collectives, so it ends now."""
    try:
        sys.stderr.write(f"ringtrain: stopping this worker: {reason}\n")
        sys.stderr.flush()
    finally:
        os._exit(PEER_LOST_EXIT)


def _leader_register(plan: JoinPlan, local_size: int, port_name: str | None) -> dict:
    join_timeout = env.get("RINGTRAIN_JOIN_TIMEOUT")
    timeout = env.get("RINGTRAIN_TIMEOUT")
    host, port, secret = plan.host, plan.port, plan.secret
    if plan.serve_port is not None:
        if plan.store is not None and not secret:
            secret = secrets.token_hex(16)
        server = RendezvousServer(plan.serve_port, secret, plan.groups, sizes=plan.sizes,
                                  join_timeout=join_timeout, timeout=timeout,
                                  on_failure=_abort_process,
                                  log=lambda line: print(f"ringtrain: rendezvous: {line}",
                                                         file=sys.stderr, flush=True))
        _state["server"] = server
        port = server.port
        if plan.store is not None:
            _store_exchange(plan, (f"{_route_address(plan.host)}:{server.port}", secret),
                            join_timeout)
        host = "127.0.0.1"
    elif plan.store is not None:
        address, published = _store_exchange(plan, None, join_timeout)
        host, port = split_address(address)
        secret = secret or published
    client = RendezvousClient(host, port, secret, role="group", group=plan.group,
                              size=local_size, port_name=port_name, join_timeout=join_timeout,
                              timeout=timeout)
    _state["client"] = client
    return client.register()


def join(plan: JoinPlan) -> Any:
    """Run the join for this process; returns the mpi4py Intracomm of the whole job.

    May re-execute the program under ``mpiexec -n 1`` first (see ``reexec_under_mpiexec``).
    """
    use_libfabric_between_machines(os.environ)   # before MPI starts (and before a re-exec)
    if not _under_mpi_launcher():
        reexec_under_mpiexec()
    import mpi4py

    mpi4py.rc.thread_level = "multiple"
    from mpi4py import MPI

    local = MPI.COMM_WORLD
    port_name = MPI.Open_port() if plan.group == 0 and local.Get_rank() == 0 else None
    info = _register(plan, local, port_name)
    merged = _connect(plan, local, info)
    merged = _accept_later_groups(local, merged, info)
    world = _order_ranks(plan, local, merged, info)
    if port_name is not None:
        MPI.Close_port(port_name)
    return world


def _register(plan: JoinPlan, local: Any, port_name: str | None) -> dict[str, Any]:
    """The group's leader registers at the rendezvous; every rank of the group gets the answer
    (its turn, the port to connect to, the groups' sizes and offsets), or raises its error."""
    info: dict[str, Any] = {}
    if local.Get_rank() == 0:
        try:
            info = _leader_register(plan, local.Get_size(), port_name)
        except (RendezvousError, OSError) as exc:
            name = plan.groups[plan.group] if plan.group < len(plan.groups) else "this machine"
            info = {"error": f"{name} could not join the job: {exc}"}
        except ConfigError as exc:
            info = {"error": str(exc)}
    info = local.bcast(info, root=0)
    if "error" in info:
        raise WorkerFailure(info["error"])
    return info


def _connect(plan: JoinPlan, local: Any, info: dict[str, Any]) -> Any:
    """Merge this group into the groups that joined before it (the first group starts alone),
    then hand liveness over: to the machine's ringrun in cluster mode, else to the rendezvous
    connection, which stops this process when another group is lost."""
    merged = local
    client: RendezvousClient | None = _state.get("client")
    if info["turn"] > 0:
        inter = local.Connect(info["port"], root=0)
        merged = inter.Merge(high=True)
        inter.Free()
        if client is not None:
            client.joined()
    if client is not None:
        if plan.mode == "ringrun":
            client.done()       # this connection was only for the port
        else:
            client.monitor(_abort_process)
            atexit.register(_goodbye)
    return merged


def _accept_later_groups(local: Any, merged: Any, info: dict[str, Any]) -> Any:
    """Groups that join after this one are accepted together by everyone already merged."""
    for _ in range(info["turn"] + 1, len(info["sizes"])):
        inter = merged.Accept(info["port"], root=0)
        bigger = inter.Merge(high=False)
        inter.Free()
        if merged is not local:
            merged.Free()
        merged = bigger
    return merged


def _order_ranks(plan: JoinPlan, local: Any, merged: Any, info: dict[str, Any]) -> Any:
    """The merged groups split into the job's world, ranked by group offset plus local rank."""
    offset = info["offsets"][plan.group]
    key = offset + local.Get_rank()
    if plan.mode == "ringrun" and (offset != env.get("RINGTRAIN_RANK_OFFSET")
                                   or info["world_size"] != env.get("RINGTRAIN_WORLD_SIZE")):
        raise WorkerFailure(f"ringrun placed this machine at rank offset "
                            f"{env.get('RINGTRAIN_RANK_OFFSET')} of "
                            f"{env.get('RINGTRAIN_WORLD_SIZE')}, but the chief says "
                            f"{offset} of {info['world_size']}")
    world = merged.Split(0, key)
    if merged is not local:
        merged.Free()
    if world.Get_rank() != key or world.Get_size() != info["world_size"]:
        raise WorkerFailure(f"joined a world of {world.Get_size()} as rank {world.Get_rank()}, "
                            f"expected {info['world_size']} and rank {key}")
    return world


def _goodbye() -> None:
    """At exit: tell the rendezvous this group finished; its host waits for everyone's
    goodbye so that no group mistakes the chief's normal exit for a failure."""
    client: RendezvousClient | None = _state.get("client")
    if client is not None:
        client.done(0)
    server: RendezvousServer | None = _state.get("server")
    if server is not None:
        server.wait_done(env.get("RINGTRAIN_JOIN_TIMEOUT"))
        server.close()

