"""The reduction kernels: the C extension (when built) against NumPy, bit for bit."""

import errno
import os
import subprocess
import sys

import numpy as np
import pytest

from ringtrain.comm import kernels
from ringtrain.comm.base import ReduceOp

ckernels = pytest.importorskip("ringtrain._ckernels", reason="C extension not built")
needs_c = pytest.mark.skipif(kernels.BACKEND != "c", reason="RINGTRAIN_NO_CEXT=1 or no build")
needs_copy = pytest.mark.skipif(not hasattr(ckernels, "copy"), reason="extension built from "
                                "older sources: rebuild it (pip install -e .)")

INTS = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]
OPS = [ReduceOp.SUM, ReduceOp.MIN, ReduceOp.MAX]


def same(got, want):
    """Bitwise equal, except that any nan equals any nan."""
    if got.dtype.kind == "f":
        nan = np.isnan(got)
        assert np.array_equal(nan, np.isnan(want))
        got, want = got[~nan], want[~nan]
        return np.array_equal(got.view(f"u{got.itemsize}"), want.view(f"u{want.itemsize}"))
    return np.array_equal(got, want)


def all_halves():
    """Every float16 bit pattern, and a shuffled partner for each."""
    a = np.arange(1 << 16, dtype=np.uint16).view(np.float16)
    b = np.random.default_rng(0).permutation(a)
    return a, b


@needs_c
@pytest.mark.parametrize("f16c", [True, False])
@pytest.mark.parametrize("op", OPS)
def test_float16_every_bit_pattern(f16c, op):
    a, b = all_halves()
    previous = ckernels.set_f16c(f16c)
    try:
        with np.errstate(all="ignore"):
            dst = np.empty_like(a)
            kernels.reduce3(dst, a, b, op)
            want = np.empty_like(a)
            kernels.numpy_reduce3(want, a, b, op)
            assert same(dst, want)
            # AVG: C divides the float32 sum, then rounds once to float16
            kernels.reduce3(dst, a, b, ReduceOp.AVG, 3)
            ref = ((a.astype(np.float32) + b.astype(np.float32)) / np.float32(3)).astype(
                np.float16)
            assert same(dst, ref)
            x = a.copy()
            kernels.scale(x, 7)
            assert same(x, (a.astype(np.float32) / np.float32(7)).astype(np.float16))
    finally:
        ckernels.set_f16c(previous)


@needs_c
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 1001])
def test_floats_match_numpy(dtype, n):
    rng = np.random.default_rng(n)
    a = rng.standard_normal(n).astype(dtype)
    b = rng.standard_normal(n).astype(dtype)
    if n > 3:
        a[1], b[2], a[3] = np.nan, np.nan, np.inf
    for op in OPS:
        dst = np.empty_like(a)
        want = np.empty_like(a)
        kernels.reduce3(dst, a, b, op)
        kernels.numpy_reduce3(want, a, b, op)
        assert same(dst, want), op
    for divisor in (2, 3):
        dst = np.empty_like(a)
        want = np.empty_like(a)
        kernels.reduce3(dst, a, b, ReduceOp.AVG, divisor)
        kernels.numpy_reduce3(want, a, b, ReduceOp.AVG, divisor)
        assert same(dst, want)


@needs_c
@pytest.mark.parametrize("dtype", INTS + [np.bool_])
def test_integers_wrap_like_numpy(dtype):
    info = np.iinfo(dtype) if dtype is not np.bool_ else None
    rng = np.random.default_rng(1)
    if info is None:
        a, b = rng.random(100) < 0.5, rng.random(100) < 0.5
        ops = [ReduceOp.MIN, ReduceOp.MAX]
    else:
        a = rng.integers(info.min, info.max, 101, dtype=dtype, endpoint=True)
        b = rng.integers(info.min, info.max, 101, dtype=dtype, endpoint=True)
        ops = OPS
    for op in ops:
        dst = np.empty_like(a)
        want = np.empty_like(a)
        kernels.reduce3(dst, a, b, op)
        kernels.numpy_reduce3(want, a, b, op)
        assert np.array_equal(dst, want), op


@needs_c
def test_in_place_and_bad_arguments():
    a = np.arange(10, dtype=np.float32)
    kernels.reduce3(a, a, np.ones(10, np.float32), ReduceOp.SUM)
    assert a.tolist() == [float(i + 1) for i in range(10)]
    with pytest.raises(ValueError, match="equal lengths"):
        ckernels.reduce3(a, a, np.ones(9, np.float32), "f4", 0, 1.0)
    with pytest.raises(ValueError, match="unknown dtype"):
        ckernels.reduce3(a, a, a, "x4", 0, 1.0)
    with pytest.raises(ValueError, match="divisor"):
        ckernels.reduce3(a.view(np.int32), a.view(np.int32), a.view(np.int32), "i4", 0, 2.0)
    with pytest.raises(TypeError):
        ckernels.reduce3(b"x" * 40, a, a, "f4", 0, 1.0)             # dst must be writable


def test_no_cext_forces_numpy():
    code = "from ringtrain.comm import kernels; print(kernels.BACKEND)"
    env = {"RINGTRAIN_NO_CEXT": "1", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=60, check=True).stdout.strip()
    assert out == "numpy"
    out = subprocess.run([sys.executable, "-c", code], env={"PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, timeout=60, check=True).stdout.strip()
    assert out == "c"


@needs_c
@needs_copy
@pytest.mark.parametrize("stream", [True, False])
def test_streaming_copy_every_alignment_and_length(stream):
    """copy(stream=True): whole cache lines by non-temporal stores, head and tail by memcpy;
    every byte offset of source and destination against every length around the line size."""
    rng = np.random.default_rng(2)
    src_base = rng.integers(0, 256, 9000, dtype=np.uint8)
    previous = ckernels.set_stream(stream)
    try:
        for n in (0, 1, 2, 3, 63, 64, 65, 127, 128, 129, 191, 192, 193, 257, 4099, 8191):
            for d_off in range(0, 70, 3):
                for s_off in (0, 1, 5, 16, 63):
                    dst_base = np.zeros(n + 140, np.uint8)
                    ckernels.copy(dst_base[d_off:d_off + n], src_base[s_off:s_off + n], True)
                    assert np.array_equal(dst_base[d_off:d_off + n], src_base[s_off:s_off + n])
                    assert not dst_base[:d_off].any() and not dst_base[d_off + n:].any(), \
                        (n, d_off, s_off)          # nothing written outside dst
    finally:
        ckernels.set_stream(previous)


@needs_c
@needs_copy
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.int8, np.int32,
                                   np.uint64, np.bool_, np.complex64])
@pytest.mark.parametrize("n", [0, 1, 13, 97, 1031, 65537])
def test_kernels_copy_every_dtype(dtype, n):
    src = (np.arange(n) % 251).astype(dtype)
    for stream in (True, False):
        dst = np.zeros(n + 1, dtype)[1:]            # one element past an aligned start
        kernels.copy(dst, src, stream)
        assert np.array_equal(dst.view(np.uint8), src.view(np.uint8))
    dst = np.zeros(n, dtype)
    kernels.numpy_copy(dst, src)
    assert np.array_equal(dst, src)


@needs_c
@needs_copy
def test_copy_bad_arguments():
    a = np.zeros(10, np.uint8)
    with pytest.raises(ValueError, match="equal lengths"):
        ckernels.copy(a, np.zeros(9, np.uint8), True)
    with pytest.raises(TypeError):
        ckernels.copy(b"x" * 10, a, True)                           # dst must be writable
    assert ckernels.STREAM == kernels.STREAM


@needs_c
@pytest.mark.skipif(not hasattr(ckernels, "step"), reason="extension built from older sources")
def test_step_publishes_then_waits_for_both_neighbours():
    import threading

    flags = np.zeros(3 * 8, np.uint64)           # one flag per cache line: mine, left, right
    mine, left, right = flags[0:1], flags[8:9], flags[16:17]
    left[0], right[0] = 5, 4
    ckernels.step(mine, left, right, 4)          # both already there: returns at once
    assert mine[0] == 4
    done = threading.Event()
    waiter = threading.Thread(target=lambda: (ckernels.step(mine, left, right, 5), done.set()))
    waiter.start()
    assert not done.wait(0.2) and mine[0] == 5   # published, waits for the right neighbour
    right[0] = 5
    assert done.wait(10)
    waiter.join()
    with pytest.raises(ValueError, match="aligned"):
        ckernels.step(flags.view(np.uint8)[1:9], left, right, 1)


needs_cross_memory = pytest.mark.skipif(not kernels.CROSS_MEMORY, reason="no process_vm_readv "
                                        "(not Linux, no C extension, or built from older sources)")


def _left_fold(parts, op, divisor):
    """op(parts[0], parts[1], ...) left to right in the dtype, / divisor at the last step."""
    acc = parts[0].copy()
    for i, part in enumerate(parts[1:], start=1):
        kernels.numpy_reduce3(acc, acc, part, op, divisor if i == len(parts) - 1 else 1)
    return acc


@needs_cross_memory
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.uint8])
@pytest.mark.parametrize("n_sources", [2, 3, 4])
def test_peer_reduce_folds_the_sources_in_order_and_writes_the_targets(dtype, n_sources):
    """Another process's memory played by this one's (process_vm_readv/writev of our own pid):
    every position of our own part, in place or not (streamed or not), in blocks smaller than
    the data (a ragged last block), the result written to two targets as well (one through
    the kernel, one at an address in this process)."""
    pid = os.getpid()
    rng = np.random.default_rng(n_sources)
    length = 37
    ops = [ReduceOp.SUM, ReduceOp.MIN, ReduceOp.MAX]
    if np.dtype(dtype).kind == "f":
        ops.append(ReduceOp.AVG)
    for op in ops:
        divisor = n_sources if op is ReduceOp.AVG else 1
        for own_at in range(n_sources):
            parts = [(rng.standard_normal(length) * 50).astype(dtype) for _ in range(n_sources)]
            want = _left_fold(parts, op, divisor)
            # in place, out of place, and out of place with streaming stores
            for in_place, stream in ((True, False), (False, False), (False, True)):
                own = parts[own_at].copy()
                dst = own if in_place else np.full(length, 7, dtype)
                sources = tuple(None if q == own_at else (pid, part.ctypes.data)
                                for q, part in enumerate(parts))
                copies = [np.full(length + 2, 3, dtype) for _ in range(2)]
                # one through the kernel, one mapped here (pid 0: another process's shared
                # memory mapped into this one)
                targets = tuple((who, copy[1:].ctypes.data) for who, copy in zip((pid, 0), copies))
                scratch = np.empty(3 * 8 * np.dtype(dtype).itemsize, np.uint8)   # 8 per block
                kernels.peer_reduce(dst, own, scratch, sources, targets, op, divisor, stream)
                assert same(dst, want), (op, own_at, in_place, stream)
                assert same(own, parts[own_at]) or in_place
                for copy in copies:          # exactly the result's bytes, nothing around them
                    assert same(copy[1:-1], want) and copy[0] == 3 and copy[-1] == 3


@needs_cross_memory
def test_peer_read_write_and_their_errors():
    pid = os.getpid()
    src = np.arange(1000, dtype=np.int64)
    for n in (0, 1, 999, 1000):
        dst = np.zeros(n, np.int64)
        kernels.peer_read(dst, pid, src.ctypes.data)
        assert np.array_equal(dst, src[:n])
        back = np.zeros(1000, np.int64)
        kernels.peer_write(src[:n], pid, back.ctypes.data)
        assert np.array_equal(back[:n], src[:n]) and not back[n:].any()
    with pytest.raises(OSError, match="peer_read: pid") as caught:
        kernels.peer_read(np.zeros(4, np.int64), pid, 0)            # nothing mapped at 0
    assert caught.value.errno == errno.EFAULT
    with pytest.raises(OSError, match="peer_write: pid") as caught:
        kernels.peer_write(np.zeros(4, np.int64), pid, 0)
    assert caught.value.errno == errno.EFAULT
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    with pytest.raises(OSError) as caught:
        kernels.peer_read(np.zeros(4, np.int64), gone.pid, src.ctypes.data)
    assert caught.value.errno == errno.ESRCH
    with pytest.raises(OSError, match=r"reading source 1 \(pid") as caught:
        kernels.peer_reduce(np.zeros(4), np.zeros(4), np.zeros(96, np.uint8),
                            (None, (gone.pid, src.ctypes.data)), (), ReduceOp.SUM, 1)
    assert caught.value.errno == errno.ESRCH
    with pytest.raises(OSError, match=r"writing target 1 \(pid") as caught:
        kernels.peer_reduce(np.zeros(4), np.zeros(4), np.zeros(96, np.uint8),
                            (None, (pid, src.ctypes.data)),
                            ((pid, src.ctypes.data), (pid, 8)), ReduceOp.SUM, 1)
    assert caught.value.errno == errno.EFAULT
    kernels.allow_peer_access()                  # without Yama: changes nothing, raises nothing


@needs_cross_memory
def test_peer_reduce_bad_arguments():
    a = np.zeros(4, np.float32)
    mine = (None, (os.getpid(), a.ctypes.data))
    scratch = np.zeros(96, np.uint8)
    with pytest.raises(ValueError, match="equal lengths"):
        ckernels.peer_reduce(a, np.zeros(3, np.float32), scratch, mine, (), "f4", 0, 1.0)
    with pytest.raises(ValueError, match="three"):
        ckernels.peer_reduce(a, a, np.zeros(8, np.uint8), mine, (), "f4", 0, 1.0)
    with pytest.raises(ValueError, match="2 or more"):
        ckernels.peer_reduce(a, a, scratch, (None,), (), "f4", 0, 1.0)
    with pytest.raises(ValueError, match=r"sources\[1\] must be None or \(pid, address\)"):
        ckernels.peer_reduce(a, a, scratch, (None, (0, 1)), (), "f4", 0, 1.0)
    with pytest.raises(ValueError, match=r"targets\[0\] must be \(pid, address\)"):
        ckernels.peer_reduce(a, a, scratch, mine, (None,), "f4", 0, 1.0)
    with pytest.raises(ValueError, match=r"targets\[1\] must be .* 0 \(this process\) or positive"):
        ckernels.peer_reduce(a, a, scratch, mine, ((0, a.ctypes.data), (-1, 1)), "f4", 0, 1.0)
    with pytest.raises(ValueError, match="targets must be a tuple"):
        ckernels.peer_reduce(a, a, scratch, mine, [], "f4", 0, 1.0)
    with pytest.raises(ValueError, match="divisor"):
        ckernels.peer_reduce(a.view(np.int32), a, scratch, mine, (), "i4", 0, 2.0)
    with pytest.raises(ValueError, match="positive"):
        ckernels.peer_read(a, -1, a.ctypes.data)
    with pytest.raises(ValueError, match="positive"):
        ckernels.peer_write(a, 0, a.ctypes.data)
