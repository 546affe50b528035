"""The ``local`` backend: a world of one process, so ``python train.py`` runs unchanged."""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import ReduceOp
from .common import CommunicatorBase


class LocalCommunicator(CommunicatorBase):
    """Every collective of a world of one: results are copies of the input (AVG divides by 1).

    ``async_op=True`` runs on the communication thread as with every backend, so an async
    call is really asynchronous (Horovod's ``poll()`` may be False before ``synchronize``).
    """

    backend = "local"

    def __init__(self, check: bool | None = None):
        super().__init__(rank=0, world_size=1, local_rank=0, local_size=1, check=check)

    def _verify(self, desc: bytes, first_dim_free: bool = False):
        return None     # one rank cannot disagree with itself

    def _allreduce(self, src: np.ndarray, dst: np.ndarray, op: ReduceOp, alg: str) -> None:
        if dst is not src:
            dst[...] = src

    def _broadcast(self, buf: np.ndarray, root: int) -> None:
        pass

    def _allgatherv(self, src: np.ndarray, dst: np.ndarray, counts: list[int]) -> None:
        dst[...] = src

    def _reduce_scatter(self, src, dst, counts, op, alg) -> None:
        dst[...] = src

    def _alltoall_counts(self, send_rows: list[int]) -> list[int]:
        return list(send_rows)

    def _alltoallv(self, src, send_counts, dst, recv_counts) -> None:
        dst[...] = src

    def _barrier(self) -> None:
        pass

    def _bcast_obj(self, obj: Any, root: int) -> Any:
        return obj

    def _allgather_obj(self, obj: Any) -> list:
        return [obj]
