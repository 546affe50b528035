"""The pool of result arrays (comm/buffers.py): a block is handed out again only after every
array made from it is gone, idle memory stays within the limit, and results never alias
(that part: test_comm_local.py)."""

import ctypes
import gc
import os
import sys

import numpy as np
import pytest

from ringtrain.comm.buffers import PeerMappings, ResultBuffers

MIB = 1 << 20
linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="memfd and /proc: Linux")


def address(arr):
    return arr.__array_interface__["data"][0]


def test_a_dropped_result_block_is_handed_out_again():
    pool = ResultBuffers(64 * MIB)
    a = pool.empty((512, 1024), np.float32)
    where = address(a)
    del a
    b = pool.empty((1024, 512), np.float32)         # same bytes, other shape
    assert address(b) == where and b.shape == (1024, 512) and b.dtype == np.float32
    assert b.flags.c_contiguous and b.flags.writeable


@pytest.mark.parametrize("keeper", ["slice", "reshape", "torch"])
def test_a_block_is_not_reused_while_any_view_of_it_lives(keeper):
    pool = ResultBuffers(64 * MIB)
    a = pool.empty((MIB // 4,), np.float32)
    a[:] = 7
    if keeper == "torch":
        torch = pytest.importorskip("torch")
        kept = torch.from_numpy(a)
    else:
        kept = a[10:] if keeper == "slice" else a.reshape(1024, -1)
    del a
    gc.collect()
    b = pool.empty((MIB // 4,), np.float32)
    b[:] = -1
    assert (np.asarray(kept) == 7).all()
    del kept, b
    c = pool.empty((MIB // 4,), np.float32)       # now both blocks are idle: one comes back
    assert c.size == MIB // 4


def test_idle_blocks_stay_within_the_limit_and_small_or_huge_results_bypass_the_pool():
    pool = ResultBuffers(3 * MIB)
    arrays = [pool.empty((MIB,), np.uint8) for _ in range(5)]
    del arrays
    assert pool._idle_bytes == 3 * MIB
    small = pool.empty((100,), np.float64)
    huge = pool.empty((4 * MIB,), np.uint8)
    assert small.base is None and huge.base is None
    pool.clear()
    assert pool._idle_bytes == 0


def _open_fds():
    return len(os.listdir("/proc/self/fd"))


@linux
def test_blocks_from_the_shared_size_up_live_in_shared_memory_and_their_memfd_goes_with_them():
    pool = ResultBuffers(3 * MIB)
    pool.shared_bytes = MIB
    before = _open_fds()
    small = pool.empty((MIB // 2,), np.uint8)
    big = pool.empty((MIB // 4,), np.float32)
    assert pool.shared_location(small) is None
    fd, offset = pool.shared_location(big[100:])
    assert offset == 400 and _open_fds() == before + 2     # the memfd and the mapping's
    # the memfd is the array's memory: what is written through one is read through the other
    big[:] = np.arange(MIB // 4, dtype=np.float32)
    assert np.array_equal(np.frombuffer(os.pread(fd, 16, 400), np.float32), [100, 101, 102, 103])
    os.pwrite(fd, np.float32(-5).tobytes(), 0)
    assert big[0] == -5
    del big
    again = pool.empty((MIB,), np.uint8)              # the idle block is handed out again
    assert pool.shared_location(again) == (fd, 0) and _open_fds() == before + 2
    del again
    held = [pool.empty((MIB,), np.uint8) for _ in range(4)]
    assert _open_fds() == before + 8
    del held                                          # three stay idle, one is released
    assert pool._idle_bytes == 3 * MIB and _open_fds() == before + 6
    pool.clear()
    assert _open_fds() == before and not pool._shared
    pool.max_shared_blocks = 2
    held = [pool.empty((MIB,), np.uint8) for _ in range(3)]
    assert [pool.shared_location(h) is not None for h in held] == [True, True, False]


@linux
def test_a_shared_block_dropped_while_the_pool_is_busy_is_released_later():
    pool = ResultBuffers(8 * MIB)
    pool.shared_bytes = 0
    before = _open_fds()
    arr = pool.empty((MIB,), np.uint8)
    with pool._lock:                                  # as in a garbage collection under it
        del arr
        gc.collect()
    assert len(pool._orphans) == 1 and _open_fds() == before + 2 and not pool._idle
    pool.empty((MIB,), np.uint8)      # a new block: when it dies, the orphan is released
    assert not pool._orphans and pool._idle_bytes == MIB and _open_fds() == before + 2


@linux
def test_peer_mappings_map_another_processes_memfd_by_its_descriptor():
    pool = ResultBuffers(64 * MIB)
    pool.shared_bytes = 0
    maps = PeerMappings(3 * MIB)
    blocks = [pool.empty((MIB,), np.uint8) for _ in range(4)]
    fds = [pool.shared_location(b)[0] for b in blocks]
    pid = os.getpid()                                 # another process's /proc/PID/fd is the same
    blocks[0][:] = 1
    before = _open_fds()
    at = maps.address(pid, fds[0], 10, 100)
    ctypes.memset(at, 0x5A, 100)                      # written through the mapping ...
    assert (blocks[0][10:110] == 0x5A).all() and blocks[0][9] == 1 and blocks[0][110] == 1
    assert maps.address(pid, fds[0], 0, MIB) == at - 10      # ... mapped once
    for fd in fds[1:]:
        maps.address(pid, fd, 0, MIB)
    assert maps._bytes == 4 * MIB and _open_fds() == before  # no descriptor kept
    maps.trim()
    assert maps._bytes == 3 * MIB and len(maps._maps) == 3   # the oldest went first
    assert maps.address(pid, fds[0], MIB - 1, 2) is None      # past its end
    assert maps.address(pid, 10**6, 0, 1) is None            # no such descriptor
    assert maps.address(pid, fds[1], -1, 1) is None
    maps.clear()
    assert maps._bytes == 0 and not maps._maps
