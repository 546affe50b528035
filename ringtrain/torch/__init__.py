"""Horovod's PyTorch API on ringtrain: port a Horovod script by changing one import.

    import ringtrain.torch as hvd
    hvd.init()
    optimizer = hvd.DistributedOptimizer(optimizer, named_parameters=model.named_parameters())
    hvd.broadcast_parameters(model.state_dict(), root_rank=0)
    hvd.broadcast_optimizer_state(optimizer, root_rank=0)

Collectives match by call order (every worker must call them in the same order with the same
shapes and dtypes); a ``name=`` still in flight refuses a second operation, as in Horovod.
Importing this module imports torch; ``import ringtrain`` alone never does.
"""

from __future__ import annotations

import importlib.util

from ..errors import CommError as HorovodInternalError
from ..errors import UnsupportedFeatureError
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
    alltoall_async,
    barrier,
    broadcast,
    broadcast_,
    broadcast_async,
    broadcast_async_,
    broadcast_object,
    grouped_allgather,
    grouped_allgather_async,
    grouped_allreduce,
    grouped_allreduce_,
    grouped_allreduce_async,
    grouped_allreduce_async_,
    grouped_reducescatter,
    grouped_reducescatter_async,
    join,
    poll,
    reducescatter,
    reducescatter_async,
    sparse_allreduce_async,
    synchronize,
)
from ._optimizer import DistributedOptimizer, broadcast_optimizer_state, broadcast_parameters
from ._process_sets import (
    ProcessSet,
    add_process_set,
    global_process_set,
    remove_process_set,
)
from ._process_sets import (
    remove_all as _remove_process_sets,
)
from ._sync_batch_norm import SyncBatchNorm

#: Horovod names ringtrain does not provide, and what to use instead
_NOT_PROVIDED = {
    "elastic": "elastic training (hvd.elastic.run, TorchState) is not provided: restart the "
               "whole job when a worker fails with `ringrun --max-restarts N` and resume from "
               "hvd.save_checkpoint / hvd.load_checkpoint",
    "start_timeline": "start and stop a timeline from the program is not provided: set "
                      "RINGTRAIN_TIMELINE=trace.json (Horovod's HOROVOD_TIMELINE) for the job; "
                      "ringrun merges every rank's trace into that file when the job ends",
}
_NOT_PROVIDED["HostsUpdatedInterrupt"] = _NOT_PROVIDED["elastic"]
_NOT_PROVIDED["stop_timeline"] = _NOT_PROVIDED["start_timeline"]


def __getattr__(name: str):
    advice = _NOT_PROVIDED.get(name)
    if advice is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    raise UnsupportedFeatureError(f"hvd.{name}: {advice}")


def init(comm=None, process_sets=None) -> None:
    """Join the job (``ringtrain.init()``); safe to call more than once.

    ``comm``: an mpi4py intracommunicator to use as the world instead of COMM_WORLD.
    ``process_sets``: ``hvd.ProcessSet``s (or rank lists) to register at once, as
    ``add_process_set`` does (every worker passes the same ones).
    """
    if isinstance(comm, (list, tuple)):
        raise NotImplementedError("init: a list of ranks is not supported; start only the "
                                  "workers you need (ringrun -np N), or use process sets")
    _pg.init(comm=comm)
    if process_sets == "dynamic":
        return          # Horovod's dynamic mode: sets are added later, as here anyway
    for process_set in process_sets or ():
        if getattr(process_set, "process_set_id", None) is None:
            add_process_set(process_set)


def shutdown() -> None:
    """Leave the job; pending async handles are dropped, added process sets released."""
    _clear_handles()
    _remove_process_sets()
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


# --- what this build can do (Horovod's introspection functions), answered for ringtrain --------

def mpi_built() -> bool:
    """True: ringtrain's collectives between processes run over MPI (mpi4py)."""
    return importlib.util.find_spec("mpi4py") is not None


def mpi_enabled() -> bool:
    """True when this job's collectives run over MPI (False in a world of one without a
    launcher, which needs no MPI)."""
    return _pg.comm().backend in ("mpi", "nccl")


def mpi_threads_supported() -> bool:
    """True when MPI runs with MPI_THREAD_MULTIPLE (ringtrain itself needs only SERIALIZED)."""
    if not mpi_enabled():
        return False
    from mpi4py import MPI

    return MPI.Query_thread() == MPI.THREAD_MULTIPLE


def nccl_built() -> int:
    """The NCCL version ringtrain's ``nccl`` backend would use (CuPy's), or 0 without one
    (CUDA tensors are then staged through host memory)."""
    if importlib.util.find_spec("cupy") is None:
        return 0
    try:
        from cupy.cuda import nccl
    except ImportError:
        return 0
    return int(nccl.get_version())


def gloo_built() -> bool:
    """False: ringtrain has no Gloo controller."""
    return False


def gloo_enabled() -> bool:
    return False


def ccl_built() -> bool:
    """False: no oneCCL support."""
    return False


def cuda_built() -> bool:
    """True when the installed torch is built with CUDA: ringtrain.torch's collectives then
    take CUDA tensors (over NCCL, or staged through host memory)."""
    import torch

    return bool(torch.backends.cuda.is_built())


def rocm_built() -> bool:
    return False


def sycl_built() -> bool:
    """False: no SYCL (Intel GPU) support."""
    return False


def ddl_built() -> bool:
    return False


def is_homogeneous() -> bool:
    """True when every machine runs the same number of workers."""
    return _pg.comm().allgather_object(_pg.local_size()).count(_pg.local_size()) == _pg.size()


__all__ = [
    "Adasum",
    "Average",
    "Compression",
    "DistributedDataLoader",
    "DistributedOptimizer",
    "HorovodInternalError",
    "Max",
    "Min",
    "ProcessSet",
    "Product",
    "ShardSampler",
    "Sum",
    "SummaryWriter",
    "SyncBatchNorm",
    "add_process_set",
    "allgather",
    "allgather_async",
    "allgather_object",
    "allreduce",
    "allreduce_",
    "allreduce_async",
    "allreduce_async_",
    "alltoall",
    "alltoall_async",
    "barrier",
    "broadcast",
    "broadcast_",
    "broadcast_async",
    "broadcast_async_",
    "broadcast_object",
    "broadcast_optimizer_state",
    "broadcast_parameters",
    "ccl_built",
    "cross_rank",
    "cross_size",
    "cuda_built",
    "ddl_built",
    "global_process_set",
    "gloo_built",
    "gloo_enabled",
    "grouped_allgather",
    "grouped_allgather_async",
    "grouped_allreduce",
    "grouped_allreduce_",
    "grouped_allreduce_async",
    "grouped_allreduce_async_",
    "grouped_reducescatter",
    "grouped_reducescatter_async",
    "init",
    "is_chief",
    "is_homogeneous",
    "is_initialized",
    "join",
    "load_checkpoint",
    "local_rank",
    "local_size",
    "mpi_built",
    "mpi_enabled",
    "mpi_threads_supported",
    "nccl_built",
    "poll",
    "rank",
    "reducescatter",
    "reducescatter_async",
    "remove_process_set",
    "rocm_built",
    "save_checkpoint",
    "shutdown",
    "size",
    "sparse_allreduce_async",
    "sycl_built",
    "synchronize",
]
