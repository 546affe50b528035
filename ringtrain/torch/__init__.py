"""Horovod's PyTorch API on ringtrain: port a Horovod script by changing one import.

    import ringtrain.torch as hvd
    hvd.init()
    optimizer = hvd.DistributedOptimizer(optimizer, named_parameters=model.named_parameters())
    hvd.broadcast_parameters(model.state_dict(), root_rank=0)
    hvd.broadcast_optimizer_state(optimizer, root_rank=0)

Collectives match by call order (every worker must call them in the same order with the same
shapes and dtypes); ``name=`` arguments are accepted and ignored. Importing this module imports
torch; ``import ringtrain`` alone never does.
"""

from __future__ import annotations

from ..world import process_group as _pg
from ._chief import SummaryWriter, load_checkpoint, save_checkpoint
from ._compression import Compression
from ._data import DistributedDataLoader, ShardSampler
from ._ops import (
    Adasum,
    Average,
    Max,
    Min,
    Product,
    Sum,
    _clear_handles,
    allgather,
    allgather_async,
    allgather_object,
    allreduce,
    allreduce_,
    allreduce_async,
    allreduce_async_,
    alltoall,
    barrier,
    broadcast,
    broadcast_,
    broadcast_async,
    broadcast_async_,
    broadcast_object,
    global_process_set,
    join,
    poll,
    synchronize,
)
from ._optimizer import DistributedOptimizer, broadcast_optimizer_state, broadcast_parameters


def init(comm=None, process_sets=None) -> None:
    """Join the job (``ringtrain.init()``); safe to call more than once.

    ``comm``: an mpi4py intracommunicator to use as the world instead of COMM_WORLD.
    """
    if process_sets is not None:
        raise NotImplementedError("init: process sets are not supported by ringtrain; every "
                                  "collective spans all workers (omit process_sets=)")
    if isinstance(comm, (list, tuple)):
        raise NotImplementedError("init: a list of ranks is not supported; start only the "
                                  "workers you need (ringrun -np N)")
    _pg.init(comm=comm)


def shutdown() -> None:
    """Leave the job; pending async handles are dropped."""
    _clear_handles()
    _pg.shutdown()


def is_initialized() -> bool:
    return _pg.is_initialized()


def rank() -> int:
    """This worker's rank, 0..size()-1 (0 is the chief)."""
    return _pg.rank()


def size() -> int:
    """The number of workers."""
    return _pg.size()


def local_rank() -> int:
    """This worker's rank among the workers on its machine."""
    return _pg.local_rank()


def local_size() -> int:
    """The number of workers on this machine."""
    return _pg.local_size()


def cross_rank() -> int:
    """This machine's index (assuming the same number of workers on every machine)."""
    return _pg.rank() // _pg.local_size()


def cross_size() -> int:
    """The number of machines (assuming the same number of workers on every machine)."""
    return _pg.size() // _pg.local_size()


def is_chief() -> bool:
    """True on rank 0, the worker that writes checkpoints and logs."""
    return _pg.is_chief()


def mpi_enabled() -> bool:
    """True when the collectives run over MPI."""
    return _pg.comm().backend == "mpi"


def mpi_built() -> bool:
    return True


def gloo_enabled() -> bool:
    return False


def gloo_built() -> bool:
    return False


def nccl_built() -> bool:
    return False


__all__ = [
    "Adasum", "Average", "Compression", "DistributedDataLoader", "DistributedOptimizer", "Max",
    "Min", "Product", "ShardSampler", "Sum", "SummaryWriter", "allgather", "allgather_async",
    "allgather_object", "allreduce", "allreduce_", "allreduce_async", "allreduce_async_",
    "alltoall", "barrier", "broadcast", "broadcast_", "broadcast_async", "broadcast_async_",
    "broadcast_object", "broadcast_optimizer_state", "broadcast_parameters", "cross_rank",
    "cross_size", "global_process_set", "gloo_built", "gloo_enabled", "init", "is_chief",
    "is_initialized", "join", "load_checkpoint", "local_rank", "local_size", "mpi_built",
    "mpi_enabled", "nccl_built", "poll", "rank", "save_checkpoint", "shutdown", "size",
    "synchronize",
]
