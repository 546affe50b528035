"""The pool of result arrays (comm/buffers.py): a block is handed out again only after every
array made from it is gone, idle memory stays within the limit, and results never alias
(that part: test_comm_local.py)."""

import gc

import numpy as np
import pytest

from ringtrain.comm.buffers import ResultBuffers

MIB = 1 << 20


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
