"""The launch plan: what ringrun starts (argv and environment of every process), as plain data.

Computing the plan touches nothing: no process is started and no file is opened, so every
decision the launcher makes (which Python, which mpiexec, which hosts, which variables) can be
unit-tested by comparing data.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: Variable (private to the launcher) through which a worker shim learns where to report.
CONTROL_VAR = "RINGRUN_CONTROL"


class PlanError(Exception):
    """The job cannot be planned (e.g. no mpiexec for a multi-worker job); exit code 2."""


@dataclass(frozen=True)
class Host:
    name: str
    slots: int

    def __str__(self) -> str:
        return f"{self.name}:{self.slots}"


@dataclass(frozen=True)
class ClusterSeat:
    """This machine's place in a multi-machine job (cluster mode, ``RINGTRAIN_CONFIG``).

    Filled in by ``ringrun.cluster`` once this machine has joined; ``None`` means a
    single-machine job. ``first_rank`` offsets the ranks shown in output, ``env`` is added to every worker.
    """

    first_rank: int
    world_size: int
    env: Mapping[str, str] = field(default_factory=dict)
    #: The live cluster membership (``ringrun.cluster.ClusterSession``) the supervisor polls.
    session: Any = field(default=None, compare=False)


@dataclass(frozen=True)
class Options:
    """Parsed command line of ringrun."""

    np: int
    command: tuple[str, ...]
    hosts: tuple[Host, ...] = ()
    timeout: float | None = None
    prefix: bool = True


@dataclass(frozen=True)
class Worker:
    """One rank: the program it runs and the variables ringrun adds to its environment."""

    rank: int
    host: str
    argv: tuple[str, ...]
    env: Mapping[str, str]


@dataclass(frozen=True)
class Plan:
    """Everything ringrun will start.

    ``launch`` is the single process ringrun spawns: ``mpiexec`` (which starts one worker shim
    per rank, each of which runs ``workers[r].argv``) or, for one worker, the program itself.
    """

    np: int
    launch_argv: tuple[str, ...]
    launch_env: Mapping[str, str]
    workers: tuple[Worker, ...]
    via_mpiexec: bool
    timeout: float | None
    prefix: bool
    first_rank: int = 0


def program_argv(command: Sequence[str], python: str) -> tuple[str, ...]:
    """``train.py a b`` runs as ``<python> train.py a b``; any other command runs as given."""
    if not command:
        raise PlanError("no program given")
    if command[0].endswith(".py"):
        return (python, *command)
    return tuple(command)


def find_mpiexec(python: str = sys.executable, path: str | None = None,
                 prefixes: Sequence[str] = ()) -> str | None:
    """MPICH's mpiexec: beside ``python`` (the mpich wheel installs it there), in the ``bin``
    of ``prefixes`` (a virtual environment's base installation), else the first on PATH."""
    folders = [os.path.dirname(python)] + [os.path.join(p, "bin") for p in prefixes]
    for folder in folders:
        candidate = os.path.join(folder, "mpiexec")
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("mpiexec", path=path)


def find_local_mpiexec(mpiexec: str) -> str:
    """The launcher for a job whose workers all run on this machine: MPICH's ``gforker``
    beside ``mpiexec`` (it forks the workers and speaks PMI to them over inherited socket
    pairs, where hydra's mpiexec listens on every interface), else ``mpiexec`` itself."""
    gforker = os.path.join(os.path.dirname(mpiexec), "mpiexec.gforker")
    return gforker if os.access(gforker, os.X_OK) else mpiexec


#: Added (unless set already) for a job whose workers all run on this machine: MPI's UCX
#: transports listen on loopback only (by default they listen on every interface).
LOOPBACK_ENV = {"UCX_NET_DEVICES": "lo"}


def use_libfabric_between_machines(environ: dict[str, str]) -> None:
    """For a job whose groups join with MPI_Comm_connect/accept (a cluster, torchrun's
    processes): MPICH's libfabric netmod, unless the environment chose a netmod or configures
    UCX. With UCX, MPICH 5.0.2's MPI_Comm_connect leaves a request unreleased on each
    connecting leader, and UCX's leak report in MPI_Finalize then reads it and now and then
    crashes (SIGSEGV after the work is done); libfabric has no such leak."""
    if "MPIR_CVAR_CH4_NETMOD" in environ or any(k.startswith("UCX_") for k in environ):
        return
    environ["MPIR_CVAR_CH4_NETMOD"] = "ofi"


#: glibc's allocator for every worker unless the caller set either variable: blocks up to
#: 1 GiB come from the heap, and freed memory stays there for the next allocation. By default
#: glibc maps every block above its mmap threshold (at most 32 MiB) afresh and unmaps it on
#: free, so a training step that allocates the same large tensors every step faults them in,
#: zeroed by the kernel, every step (a torch CNN in one process: 1.38x the samples/s, same
#: peak resident memory; README). The cost: memory freed stays resident until the process ends.
ALLOCATOR_ENV = {"MALLOC_MMAP_THRESHOLD_": str(1 << 30), "MALLOC_TRIM_THRESHOLD_": str(4 << 30)}


def ranks_on_hosts(np: int, hosts: Sequence[Host]) -> list[str]:
    """Host of each rank, filling each host's slots in order (hydra's default placement)."""
    if not hosts:
        return ["localhost"] * np
    placed: list[str] = []
    for host in hosts:
        placed.extend([host.name] * host.slots)
    return placed[:np]


def plan(options: Options, environ: Mapping[str, str], *, python: str = sys.executable,
         mpiexec: str | None = None, secret: str | None = None,
         control: str | None = None, cluster: ClusterSeat | None = None) -> Plan:
    """The processes to start for ``options``, given the caller's environment.

    ``mpiexec`` is the path found by :func:`find_mpiexec` (needed when ``np > 1``); ``secret``
    defaults to a fresh random token; ``control`` is ``host:port:token`` where worker shims
    report (None for a one-worker job, which ringrun supervises directly).
    """
    if options.np < 1:
        raise PlanError(f"-np must be at least 1, got {options.np}")
    argv = program_argv(options.command, python)
    added = {
        "RINGTRAIN_LAUNCHER": "ringrun",
        "RINGTRAIN_SECRET": secret if secret is not None else secrets.token_hex(16),
    }
    if cluster is not None:
        added.update(cluster.env)
    env = dict(environ)
    env.update(added)
    # Workers write to pipes; unbuffered Python output keeps lines live and in order.
    env.setdefault("PYTHONUNBUFFERED", "1")
    if not any(name in environ for name in ALLOCATOR_ENV):
        env.update(ALLOCATOR_ENV)
    first_rank = cluster.first_rank if cluster is not None else 0
    hosts = ranks_on_hosts(options.np, options.hosts)
    workers = tuple(Worker(first_rank + r, hosts[r], argv, dict(added))
                    for r in range(options.np))

    # Cluster mode always goes through mpiexec: MPICH cannot connect singletons.
    if options.np == 1 and not options.hosts and cluster is None:
        return Plan(1, argv, env, workers, False, options.timeout, options.prefix, first_rank)

    if mpiexec is None:
        raise PlanError(f"-np {options.np} needs MPI, but no mpiexec was found next to "
                        f"{python} or on PATH; install it with: pip install mpi4py mpich")
    if control is None:
        raise PlanError("a multi-worker plan needs a control address for the worker shims")
    env[CONTROL_VAR] = control
    if not options.hosts and cluster is None:
        for name, value in LOOPBACK_ENV.items():
            env.setdefault(name, value)
    if cluster is not None:
        use_libfabric_between_machines(env)
    launch = [mpiexec, "-n", str(options.np)]
    if options.hosts:
        launch += ["-hosts", ",".join(str(h) for h in options.hosts)]
    launch += [python, "-m", "ringrun._worker", *argv]
    return Plan(options.np, tuple(launch), env, workers, True, options.timeout, options.prefix,
                first_rank)
