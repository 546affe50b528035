"""The process group: init() reads the launcher's environment and builds the communicator.

Who started this process decides the world: ``ringrun`` (``RINGTRAIN_LAUNCHER=ringrun``; it uses
``mpiexec`` for more than one worker), plain ``mpiexec``/``mpirun`` (MPICH's hydra sets
``PMI_RANK``/``PMI_SIZE``, Open MPI ``OMPI_COMM_WORLD_*``) or SLURM's ``srun``
(``SLURM_PROCID``/``SLURM_NTASKS``). Without a launcher the world is this one process and the
``local`` backend is used, so every training script also runs as ``python train.py``.
``RINGTRAIN_BACKEND`` overrides the choice. MPI is only imported (and initialised) by init().
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from dataclasses import dataclass
from typing import Any

from .. import devices, env
from ..comm.base import Communicator
from ..errors import CommError, ConfigError, NotInitializedError, RingtrainError
from .join import JoinPlan, plan_join

_comm: Communicator | None = None
_device = "cpu"
_lock = threading.RLock()
_hooks_installed = False
#: The world was joined from separately started groups (a cluster, torchrun's processes): its
#: groups talk over MPI's network transport, which may need help to deliver at an abrupt exit.
_joined = False


@dataclass(frozen=True)
class Launch:
    """What the environment says about this process's place in the job."""

    launcher: str               # "ringrun", "mpiexec", "openmpi", "slurm" or "none"
    rank: int
    size: int
    local_rank: int | None      # None: ask MPI (ranks sharing this node)
    local_size: int | None


def _int_env(*names: str) -> int | None:
    for name in names:
        value = os.environ.get(name)
        if value is not None and value.strip().lstrip("-").isdigit():
            return int(value)
    return None


def detect_launch() -> Launch:
    """Read the launcher's variables (no MPI calls): rank, size and local placement."""
    launcher = env.get("RINGTRAIN_LAUNCHER")
    if os.environ.get("OMPI_COMM_WORLD_SIZE") is not None:
        found = Launch("openmpi", _int_env("OMPI_COMM_WORLD_RANK") or 0,
                       _int_env("OMPI_COMM_WORLD_SIZE") or 1,
                       _int_env("OMPI_COMM_WORLD_LOCAL_RANK"),
                       _int_env("OMPI_COMM_WORLD_LOCAL_SIZE"))
    elif os.environ.get("PMI_SIZE") is not None:
        found = Launch("mpiexec", _int_env("PMI_RANK") or 0, _int_env("PMI_SIZE") or 1,
                       _int_env("MPI_LOCALRANKID"), _int_env("MPI_LOCALNRANKS"))
    elif os.environ.get("SLURM_NTASKS") is not None and os.environ.get("SLURM_PROCID"):
        # SLURM names no local size here: MPI finds the ranks sharing this node.
        found = Launch("slurm", _int_env("SLURM_PROCID") or 0, _int_env("SLURM_NTASKS") or 1,
                       None, None)
    else:
        found = Launch("none", 0, 1, 0, 1)
    if launcher:
        found = Launch(launcher, found.rank, found.size, found.local_rank, found.local_size)
    if found.local_rank is not None and found.local_size is None:
        found = Launch(found.launcher, found.rank, found.size, None, None)
    return found


def world_intracomm(launch: Launch, plan: JoinPlan | None) -> Any:
    """The mpi4py intracommunicator of every worker in the job: the joined world of a
    multi-machine job (``plan``, see ``join.py``), else ``COMM_WORLD``."""
    if plan is not None:
        from .join import join

        return join(plan)
    import mpi4py

    # Let collectives run on the communication thread; ringtrain finalises MPI at exit itself.
    mpi4py.rc.thread_level = "multiple"
    from ..comm.mpi import take_over_finalize

    take_over_finalize()
    from mpi4py import MPI

    world = MPI.COMM_WORLD
    if launch.size > 1 and world.Get_size() != launch.size:
        raise ConfigError(
            f"the {launch.launcher} launcher started {launch.size} workers but MPI sees a world "
            f"of {world.Get_size()}; this MPI cannot talk to that launcher (with srun, try "
            f"'srun --mpi=pmi2', or start the job with ringrun/mpiexec)")
    return world


def _build(backend: str, launch: Launch, plan: JoinPlan | None, intracomm: Any,
           check: bool | None) -> Communicator:
    if backend == "local":
        from ..comm.local import LocalCommunicator

        return LocalCommunicator(check=check)
    if backend == "mpi":
        from ..comm.mpi import MPICommunicator

        if intracomm is None:
            intracomm = world_intracomm(launch, plan)
            # The launcher's local placement describes COMM_WORLD only, and only when its
            # world is MPI's.
            if (plan is None and launch.local_rank is not None
                    and intracomm.Get_size() == launch.size):
                return MPICommunicator(intracomm, local_rank=launch.local_rank,
                                       local_size=launch.local_size, check=check)
        return MPICommunicator(intracomm, check=check)
    raise ConfigError(f"unknown backend {backend!r}; RINGTRAIN_BACKEND must be auto, local, "
                      f"mpi or nccl")


def _on_device(host: Communicator, backend: str, device: str) -> Communicator:
    """The communicator for a worker computing on ``device``: ``host`` itself on the CPU; on a
    GPU, NCCL when asked for (or, with "auto", when CuPy is there and every local worker has a
    GPU of its own), else the host backend staging GPU arrays through pinned memory."""
    index = devices.device_index(device)
    if index is None:
        if backend == "nccl":
            raise ConfigError("RINGTRAIN_BACKEND=nccl needs a GPU, and this worker computes on "
                              "the CPU (no GPU visible, or RINGTRAIN_DEVICE=cpu); use mpi")
        return host
    if backend in ("nccl", "auto"):
        try:
            import cupy  # noqa: F401 - NCCL comes with CuPy
        except ImportError:
            if backend == "nccl":
                raise ConfigError("RINGTRAIN_BACKEND=nccl needs CuPy: pip install "
                                  "'ringtrain[gpu]' (cupy-cuda12x)") from None
        else:
            if backend == "nccl" or host.local_size <= devices.cuda_device_count():
                from ..comm.nccl import NcclCommunicator

                return NcclCommunicator(host, index)
    from ..comm.device import StagedCommunicator

    return StagedCommunicator(host)


def init(backend: str | None = None, comm: Any = None, check: bool | None = None
         ) -> Communicator:
    """Join the job and return its communicator (idempotent: later calls return the same one).

    ``backend``: ``"auto"`` (default, from ``RINGTRAIN_BACKEND``): ``mpi`` when a launcher
    started several workers, else ``local``; on a GPU worker (see ``ringtrain.devices``) GPU
    arrays then go over NCCL (CuPy present, one GPU per local worker) or are staged through
    pinned host memory. ``"nccl"`` insists on NCCL. ``comm``: an mpi4py Intracomm to use as the world
    instead of ``COMM_WORLD``. ``check``: contract checks on every collective (default
    ``RINGTRAIN_CHECK_COLLECTIVES``, on).
    """
    global _comm, _device, _joined
    with _lock:
        if _comm is not None:
            return _comm
        launch = detect_launch()
        chosen = backend if backend is not None else env.get("RINGTRAIN_BACKEND")
        requested = chosen
        # Multi-machine jobs (RINGTRAIN_CONFIG/TF_CONFIG clusters, torchrun's variables) join
        # their separately started groups into one world (join.py); None on one machine.
        plan = plan_join() if comm is None and chosen != "local" else None
        several = launch.size > 1 or comm is not None or plan is not None
        if chosen in ("auto", "nccl"):     # NCCL moves GPU arrays; a host backend the rest
            chosen = "mpi" if several else "local"
        host = _build(chosen, launch, plan, comm, check)
        _joined = plan is not None
        try:
            _device = devices.choose(host.local_rank)
            _comm = _on_device(host, requested, _device)
        except BaseException:
            host.shutdown()
            raise
        _install_hooks()
        return _comm


def _install_hooks() -> None:
    """At exit, release the communicator; on an uncaught exception in a multi-worker job, abort
    every worker at once instead of leaving the others waiting in a collective."""
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    atexit.register(_atexit)
    previous = sys.excepthook

    def excepthook(kind, value, tb):
        previous(kind, value, tb)
        current = _comm
        if current is not None and current.world_size > 1 and current.backend != "local":
            sys.stderr.flush()
            sys.stdout.flush()
            from ..comm import watchdog

            if watchdog.supervised():
                # ringrun stops the other ranks and names this one (MPI_Abort would make
                # mpiexec kill every rank at once, before the first to fail could report).
                departed = getattr(value, "departed", ())
                if departed:    # this error only followed that rank's leaving
                    watchdog.tell_launcher("after", str(departed[0]))
                elif isinstance(value, CommError) and _raised_by_mpi(value):
                    # MPI lost contact with a peer (it died, or its connection dropped): this
                    # rank fails because another did, which ringrun should name instead.
                    watchdog.tell_launcher("peer_lost")
                if _joined:
                    from ..comm import mpi

                    mpi.deliver_sent()
                os._exit(1)
            from mpi4py import MPI

            MPI.COMM_WORLD.Abort(1)

    sys.excepthook = excepthook


def _raised_by_mpi(error: BaseException) -> bool:
    mpi = sys.modules.get("mpi4py.MPI")
    return mpi is not None and isinstance(error.__cause__, mpi.Exception)


def _atexit() -> None:
    current = _comm
    try:
        shutdown()
    except RingtrainError as exc:
        # Other ranks still wait in a collective: nothing collective may run any more (the
        # communicator released only its own resources and MPI_Finalize is skipped), so this
        # process ends with its program's exit code; ringrun names it.
        print(f"ringtrain: rank {current.rank}'s program ended while other ranks were in a "
              f"collective: {exc}", file=sys.stderr, flush=True)
        if current.backend != "local" and current.world_size > 1:
            from ..comm import mpi, watchdog

            watchdog.tell_launcher("left", str(exc))
            if not mpi.finalize_is_safe():
                # mpi4py was imported before ringtrain and will call MPI_Finalize, which
                # would wait forever: end now (the program's own exit code is unknown here).
                sys.stdout.flush()
                if _joined:
                    mpi.deliver_sent()
                os._exit(1)


def shutdown() -> None:
    """Finish queued collectives and release the communicator (init() may be called again)."""
    global _comm
    with _lock:
        current, _comm = _comm, None
    if current is not None:
        current.shutdown()


def device() -> str:
    """This worker's device: "cpu" or "cuda:N" (GPU ``local_rank % count``, or
    ``RINGTRAIN_DEVICE``), decided by init()."""
    comm()
    return _device


def is_initialized() -> bool:
    return _comm is not None


def comm() -> Communicator:
    """The communicator built by init()."""
    current = _comm
    if current is None:
        raise NotInitializedError("call ringtrain.init() first (it sets up the process group)")
    return current


def rank() -> int:
    return comm().rank


def size() -> int:
    return comm().world_size


def local_rank() -> int:
    return comm().local_rank


def local_size() -> int:
    return comm().local_size


def is_chief() -> bool:
    return comm().rank == 0
