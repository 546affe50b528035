"""Result arrays of the collectives, recycled once the caller lets go of them.

A collective that returns a new array (``allreduce(x)``, ``allreduce_many``, ``broadcast``
without ``out=``...) would otherwise allocate fresh memory on every call. glibc serves blocks
above its mmap threshold (at most 32 MiB) with ``mmap`` and unmaps them on free, so each call
faults every page of its result in again and the kernel zeroes it: one more pass of writes
over the whole result. Training calls the collectives with the same sizes every step, so the
communicator keeps the blocks its callers dropped and hands them out again.

A returned array's ``base`` is a ``_Loan``: NumPy views, slices and ``torch.from_numpy`` all
keep it alive, and when the last of them goes the loan returns its block to the pool (no
reference counting of ours, no guessing). Idle blocks are bounded by ``limit_bytes``; the
oldest are released first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np


class _Loan:
    """Owns a pooled block for as long as any array made from it is alive."""

    __slots__ = ("__array_interface__", "_block", "_pool")

    def __init__(self, pool: ResultBuffers, block: np.ndarray, view: np.ndarray):
        self.__array_interface__ = view.__array_interface__
        self._block = block
        self._pool = pool

    def __del__(self):
        pool = self._pool
        if pool is not None:
            pool._give_back(self._block)


class ResultBuffers:
    """A pool of result blocks keyed by size; thread-safe (arrays die on any thread)."""

    #: smaller results come from malloc's heap, which reuses memory without faulting
    min_bytes = 256 << 10

    def __init__(self, limit_bytes: int):
        self.limit_bytes = limit_bytes
        self._idle: OrderedDict[int, list[np.ndarray]] = OrderedDict()
        self._idle_bytes = 0
        self._lock = threading.Lock()

    def empty(self, shape: tuple, dtype: np.dtype) -> np.ndarray:
        """An uninitialised C-contiguous array, from an idle block of the same size if any."""
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if nbytes < self.min_bytes or nbytes > self.limit_bytes or dtype.hasobject:
            return np.empty(shape, dtype)
        block = None
        with self._lock:
            blocks = self._idle.get(nbytes)
            if blocks:
                block = blocks.pop()
                self._idle_bytes -= nbytes
                if not blocks:
                    del self._idle[nbytes]
        if block is None:
            block = np.empty(nbytes, np.uint8)
        view = block.view(dtype).reshape(shape)
        return np.asarray(_Loan(self, block, view))

    def _give_back(self, block: np.ndarray) -> None:
        # Runs wherever an array dies, even inside a garbage collection that started while
        # this thread holds the lock: never wait for it, just let such a block go.
        if not self._lock.acquire(blocking=False):
            return
        try:
            nbytes = block.nbytes
            self._idle.setdefault(nbytes, []).append(block)
            self._idle.move_to_end(nbytes)
            self._idle_bytes += nbytes
            while self._idle_bytes > self.limit_bytes:     # release the oldest sizes first
                size, blocks = next(iter(self._idle.items()))
                blocks.pop(0)
                self._idle_bytes -= size
                if not blocks:
                    del self._idle[size]
        finally:
            self._lock.release()

    def clear(self) -> None:
        """Release every idle block (arrays still in use return theirs when they die)."""
        with self._lock:
            self._idle.clear()
            self._idle_bytes = 0
