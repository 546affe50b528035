"""The Communicator interface every backend (local, mpi, nccl) implements, and ReduceOp."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any


class ReduceOp(enum.Enum):
    """How a reduction combines the workers' values; the one enum of every API.

    ``tf.distribute.ReduceOp`` is this enum (TensorFlow's names: SUM, MEAN); ``AVG`` is the
    communicator's and Horovod's name for MEAN (the same member). MIN and MAX are for the
    communicator's collectives (a strategy reduces with SUM or MEAN only).
    """

    SUM = "sum"
    MEAN = "mean"
    MIN = "min"
    MAX = "max"
    AVG = "mean"  # noqa: PIE796 (an alias on purpose: ReduceOp.AVG is ReduceOp.MEAN)


class Handle:
    """The result of an ``async_op=True`` collective.

    Keeps its input and output buffers referenced until the collective has finished.
    ``wait()`` blocks and returns the result (re-raising any error of the collective);
    ``done()`` polls without blocking. ``started`` and ``finished`` are the ``time.time()`` at
    which the collective began running (after every earlier submission) and ended, where the
    backend records them (the communication thread of host communicators), else None: the
    timeline's marks of a bucket's all-reduce.
    """

    started: float | None = None
    finished: float | None = None

    def wait(self) -> Any:
        raise NotImplementedError

    def done(self) -> bool:
        raise NotImplementedError


class Communicator:
    """A group of ``world_size`` workers that run collectives in lock-step.

    Contract (checked, see ``errors.CollectiveMismatch``): every rank calls the same collectives
    in the same order with the same shapes (allreduce/broadcast/reduce_scatter), dtypes, ops and
    roots. Arrays are NumPy arrays (CuPy arrays and torch tensors are accepted where a backend
    says so). Results are new arrays unless ``out=`` is given; inputs are never modified.
    Async collectives run in submission order on one communication thread per communicator.
    """

    backend: str            # "local", "mpi" or "nccl"
    rank: int
    world_size: int
    local_rank: int
    local_size: int

    def allreduce(self, x, op: ReduceOp = ReduceOp.SUM, algorithm: str = "auto", out=None,
                  async_op: bool = False):
        raise NotImplementedError

    def allreduce_many(self, arrays: Sequence, op: ReduceOp = ReduceOp.SUM,
                       algorithm: str = "auto", bucket_bytes: int | None = None,
                       async_op: bool = False):
        """All-reduce many arrays through fusion buckets; returns a list of results."""
        raise NotImplementedError

    def broadcast(self, x, root: int = 0, out=None, async_op: bool = False):
        raise NotImplementedError

    def allgather(self, x, async_op: bool = False):
        """Concatenation along axis 0 in rank order; the first dimension may differ per rank."""
        raise NotImplementedError

    def reduce_scatter(self, x, op: ReduceOp = ReduceOp.SUM, async_op: bool = False):
        """Rank r gets part r of ``np.array_split(reduced, world_size)`` along axis 0."""
        raise NotImplementedError

    def alltoall(self, x, splits: Sequence[int] | None = None, async_op: bool = False):
        """Rank r sends rows ``splits``-partitioned (even split by default) to each rank;
        returns the received rows concatenated in rank order (Horovod's alltoall)."""
        raise NotImplementedError

    def barrier(self, *, after_pending: bool = True) -> None:
        """Returns once every rank has called barrier. ``after_pending=False``: without first
        waiting for this rank's async collectives in flight, which stay queued (Horovod's
        ``hvd.barrier``, where ranks may have started different async operations)."""
        raise NotImplementedError

    def broadcast_object(self, obj: Any, root: int = 0) -> Any:
        """A picklable object from ``root`` to every rank."""
        raise NotImplementedError

    def allgather_object(self, obj: Any) -> list:
        """Every rank's picklable object, as a list in rank order."""
        raise NotImplementedError

    def join(self) -> int:
        """This rank has no more data (Horovod's join); returns the rank that joined last.
        Backends without contract descriptors cannot stand in for the others' calls: they
        only wait until every rank has joined."""
        return len(self.allgather_object(0)) - 1

    def shutdown(self) -> None:
        """Finish queued work and release the engine's resources."""
