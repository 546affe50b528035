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

From ``shared_bytes`` up (set by a communicator whose ranks on one machine write into each
other's results, mpi.py's cross-memory all-reduce), blocks live in shared memory (a memfd): the
other ranks map them (``PeerMappings``) and write their parts with streaming stores, where a
write through the kernel into a private block would read every line before writing it.
"""

from __future__ import annotations

import ctypes
import functools
import mmap
import os
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
    #: at most this many shared blocks at once (each holds two descriptors: its memfd and
    #: the mapping's duplicate), then private ones
    max_shared_blocks = 32

    def __init__(self, limit_bytes: int):
        self.limit_bytes = limit_bytes
        #: blocks of this size and larger are shared memory (None: none are)
        self.shared_bytes: int | None = None
        self._idle: OrderedDict[int, list[np.ndarray]] = OrderedDict()
        self._idle_bytes = 0
        self._lock = threading.Lock()
        # block address -> (memfd, block): the block stays mapped until its memfd is closed,
        # so an address here never names other memory
        self._shared: dict[int, tuple[int, np.ndarray]] = {}
        self._orphans: list[np.ndarray] = []    # shared blocks dropped while the lock was held

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
            block = self._new_block(nbytes)
        view = block.view(dtype).reshape(shape)
        return np.asarray(_Loan(self, block, view))

    def _new_block(self, nbytes: int) -> np.ndarray:
        if self.shared_bytes is None or nbytes < self.shared_bytes \
                or len(self._shared) >= self.max_shared_blocks:
            return np.empty(nbytes, np.uint8)
        try:
            fd = os.memfd_create("ringtrain-result")
        except (AttributeError, OSError):       # not Linux, or out of descriptors
            return np.empty(nbytes, np.uint8)
        try:
            os.ftruncate(fd, nbytes)
            block = np.frombuffer(mmap.mmap(fd, nbytes), np.uint8)
        except (OSError, ValueError):           # ValueError: mmap has no empty mappings
            os.close(fd)
            return np.empty(nbytes, np.uint8)
        with self._lock:
            self._shared[block.ctypes.data] = (fd, block)
        return block

    def shared_location(self, arr: np.ndarray) -> tuple[int, int] | None:
        """(memfd, byte offset) of ``arr`` where it lies in one of our shared blocks."""
        start = arr.ctypes.data
        with self._lock:
            for address, (fd, block) in self._shared.items():
                if address <= start and start + arr.nbytes <= address + block.nbytes:
                    return fd, start - address
        return None

    def _release(self, block: np.ndarray) -> None:
        # called with the lock held, for a block no array uses any more
        shared = self._shared.pop(block.ctypes.data, None)
        if shared is not None:
            os.close(shared[0])                 # the mapping goes with the block's last view

    def _give_back(self, block: np.ndarray) -> None:
        # Runs wherever an array dies, even inside a garbage collection that started while
        # this thread holds the lock: never wait for it, just let such a block go (a shared
        # one is released the next time).
        if not self._lock.acquire(blocking=False):
            if block.ctypes.data in self._shared:
                self._orphans.append(block)
            return
        try:
            while self._orphans:
                self._release(self._orphans.pop())
            nbytes = block.nbytes
            self._idle.setdefault(nbytes, []).append(block)
            self._idle.move_to_end(nbytes)
            self._idle_bytes += nbytes
            while self._idle_bytes > self.limit_bytes:     # release the oldest sizes first
                size, blocks = next(iter(self._idle.items()))
                self._release(blocks.pop(0))
                self._idle_bytes -= size
                if not blocks:
                    del self._idle[size]
        finally:
            self._lock.release()

    def clear(self) -> None:
        """Release every idle block (arrays still in use return theirs when they die)."""
        with self._lock:
            for blocks in [*self._idle.values(), self._orphans]:
                for block in blocks:
                    self._release(block)
            self._orphans.clear()
            self._idle.clear()
            self._idle_bytes = 0


class PeerMappings:
    """Other processes' shared result blocks mapped into this one, by the memfd each names.
    ``trim`` (after a call, never during one: the addresses handed out are in use) unmaps the
    least recently used beyond ``limit_bytes``; a block its owner has released stays allocated
    while it is mapped here. Mapped with libc's mmap, which keeps no descriptor open (Python's
    mmap keeps a duplicate of each)."""

    def __init__(self, limit_bytes: int):
        self.limit_bytes = limit_bytes
        self._maps: OrderedDict[tuple[int, int, int], tuple[int, int]] = OrderedDict()
        self._bytes = 0

    def address(self, pid: int, fd: int, offset: int, nbytes: int) -> int | None:
        """Where ``nbytes`` at ``offset`` of process ``pid``'s memfd ``fd`` are mapped here, or
        None where they cannot be (the descriptor is gone or not ours to open, or too small)."""
        try:
            here = os.open(f"/proc/{pid}/fd/{fd}", os.O_RDWR)
        except OSError:
            return None
        try:
            st = os.fstat(here)
            if offset < 0 or offset + nbytes > st.st_size:
                return None
            key = (pid, st.st_dev, st.st_ino)
            mapped = self._maps.get(key)
            if mapped is None:
                mapped = (_mmap_shared(here, st.st_size), st.st_size)
                self._maps[key] = mapped
                self._bytes += st.st_size
            self._maps.move_to_end(key)
            return mapped[0] + offset
        except OSError:
            return None
        finally:
            os.close(here)

    def trim(self) -> None:
        while self._bytes > self.limit_bytes and self._maps:
            self._unmap_oldest()

    def clear(self) -> None:
        while self._maps:
            self._unmap_oldest()

    def _unmap_oldest(self) -> None:
        address, nbytes = self._maps.popitem(last=False)[1]
        _libc().munmap(ctypes.c_void_p(address), ctypes.c_size_t(nbytes))
        self._bytes -= nbytes


@functools.cache
def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long)
    libc.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
    return libc


def _mmap_shared(fd: int, nbytes: int) -> int:
    """The address of all of ``fd`` mapped read-write and shared, its pages mapped at once."""
    address = _libc().mmap(None, nbytes, mmap.PROT_READ | mmap.PROT_WRITE,
                           mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0), fd, 0)
    if address in (None, ctypes.c_void_p(-1).value):
        raise OSError(ctypes.get_errno(), "mmap of another rank's result failed")
    return address
