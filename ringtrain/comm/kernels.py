"""Reduction kernels for the ring's reduce step: the optional C extension, or NumPy.

``BACKEND`` says which one loaded: ``"c"`` (``ringtrain._ckernels``, built from csrc/) or
``"numpy"`` (no extension, or ``RINGTRAIN_NO_CEXT=1``). Arrays are contiguous, 1-d and of one
dtype; ``dst`` may be ``a``.

``copy(dst, src, stream=True)`` writes ``dst`` with non-temporal (streaming) stores: for a
large destination that is not in cache they skip the read of every line before it is written
(read for ownership), a third of a copy's memory traffic. ``STREAM`` says whether the C
extension has them on this CPU; elsewhere (and with NumPy) the flag changes nothing but speed.
"""

from __future__ import annotations

import glob
import os

import numpy as np

from .. import env
from .base import ReduceOp

_UFUNC = {ReduceOp.SUM: np.add, ReduceOp.AVG: np.add, ReduceOp.MIN: np.minimum,
          ReduceOp.MAX: np.maximum}

_c = None
if not env.get("RINGTRAIN_NO_CEXT"):
    try:
        from .. import _ckernels as _c  # type: ignore[attr-defined, no-redef]
    except ImportError:
        _c = None

BACKEND = "c" if _c is not None else "numpy"
#: an extension built from older sources has no copy(): rebuild it (pip install -e .) to stream
STREAM = bool(getattr(_c, "STREAM", False))
#: the last-level cache assumed where sysfs does not tell (a common server L3)
DEFAULT_CACHE_BYTES = 32 << 20


def last_level_cache_bytes() -> int:
    """The size of this CPU's largest cache (Linux sysfs; ``DEFAULT_CACHE_BYTES`` elsewhere)."""
    sizes = {}
    for index in glob.glob("/sys/devices/system/cpu/cpu0/cache/index*"):
        try:
            with open(os.path.join(index, "level")) as f:
                level = int(f.read())
            with open(os.path.join(index, "size")) as f:
                text = f.read().strip().upper()
        except (OSError, ValueError):
            continue
        scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
        digits = text.rstrip("KMG")
        if digits.isdigit():
            sizes[level] = max(sizes.get(level, 0), int(digits) * scale)
    return sizes[max(sizes)] if sizes else DEFAULT_CACHE_BYTES


def numpy_reduce3(dst: np.ndarray, a: np.ndarray, b: np.ndarray, op: ReduceOp,
                  divisor: int = 1) -> None:
    """``dst = op(a, b)``, then ``dst /= divisor`` when divisor != 1 (NumPy)."""
    _UFUNC[op](a, b, out=dst)
    if divisor != 1:
        np.divide(dst, divisor, out=dst)


def numpy_copy(dst: np.ndarray, src: np.ndarray, stream: bool = False) -> None:
    """``dst[...] = src`` (NumPy)."""
    np.copyto(dst, src)


def numpy_scale(dst: np.ndarray, divisor: int) -> None:
    """``dst /= divisor`` in place (NumPy)."""
    np.divide(dst, divisor, out=dst)


if _c is not None:
    _C_OP = {ReduceOp.SUM: 0, ReduceOp.AVG: 0, ReduceOp.MIN: 1, ReduceOp.MAX: 2}
    _C_CODE = {np.dtype(f"{kind}{size}") if kind != "b" else np.dtype(np.bool_): f"{kind}{size}"
               for kind, size in _c.DTYPES}

    def reduce3(dst: np.ndarray, a: np.ndarray, b: np.ndarray, op: ReduceOp,
                divisor: int = 1) -> None:
        """``dst = op(a, b)``, then ``dst /= divisor`` when divisor != 1 (one fused pass)."""
        code = _C_CODE.get(dst.dtype)
        if code is None:
            numpy_reduce3(dst, a, b, op, divisor)
        else:
            _c.reduce3(dst, a, b, code, _C_OP[op], divisor)

    def copy(dst: np.ndarray, src: np.ndarray, stream: bool = False) -> None:
        """``dst[...] = src`` for contiguous arrays of one dtype and size."""
        if stream and STREAM and dst.dtype.kind in "biufc":  # numbers: plain buffers
            _c.copy(dst, src, True)
        else:
            np.copyto(dst, src)

    def scale(dst: np.ndarray, divisor: int) -> None:
        """``dst /= divisor`` in place."""
        code = _C_CODE.get(dst.dtype)
        if code is None or code[0] != "f":
            numpy_scale(dst, divisor)
        else:
            _c.scale(dst, code, divisor)
else:
    reduce3 = numpy_reduce3
    copy = numpy_copy
    scale = numpy_scale

#: ``step(mine, left, right, value)``: the shared-memory ring's barrier between neighbours on
#: 8-byte flags in the window (C only; None: the ring uses MPI's barrier)
step = getattr(_c, "step", None)
#: the shared-memory ring's loop (None without the extension, or in one built from older
#: sources: rebuild it with pip install -e .)
_ring_shm = getattr(_c, "ring_shm", None)


def ring_shm(src: np.ndarray, dst: np.ndarray, scratch: np.ndarray, mine: list, theirs: list,
             flags: list, op: ReduceOp, divisor: int, first: int, rs: tuple, ag: tuple,
             per_chunk: int, slot: int, steps: int, stream: bool) -> tuple[int, int] | None:
    """The shared-memory ring's whole loop in C (``MPICommunicator._ring_shm`` is the
    reference; the C loop also picks, block by block, whether its slots are written through
    the cache or with streaming stores, by timing both); chunks of ``per_chunk`` elements, and
    ``scratch`` holds one. Returns the next (slot, step count), or None where the C extension
    (or its loop for this dtype) is missing and the caller runs the loop in Python."""
    code = _C_CODE.get(dst.dtype) if _ring_shm is not None else None
    if code is None:
        return None
    return _ring_shm(src, dst, scratch, mine, theirs, flags, code, _C_OP[op], divisor, first, rs,
                     ag, per_chunk, slot, steps, stream and STREAM)


#: single-copy access to another process's memory (process_vm_readv/writev: the kernel's
#: cross-memory attach; C extension on Linux only)
CROSS_MEMORY = bool(getattr(_c, "CROSS_MEMORY", False))


def peer_reduce_supports(dtype: np.dtype) -> bool:
    """Whether ``peer_reduce`` has a loop for ``dtype`` (the same answer on every rank)."""
    return CROSS_MEMORY and dtype in _C_CODE


def peer_reduce(dst: np.ndarray, own: np.ndarray, scratch: np.ndarray, sources: tuple,
                targets: tuple, op: ReduceOp, divisor: int, stream: bool = False) -> None:
    """``dst = op(source 0, ..., source n-1)`` in that order, ``/ divisor`` at the last step,
    in blocks of a third of ``scratch``; a source is None for ``own`` or ``(pid, address)`` of
    another process's buffer of the same length. Each finished block is also written to every
    ``(pid, address)`` of ``targets`` (pid 0: an address in this process, such as another
    process's shared memory mapped here); ``stream``: an out-of-place ``dst`` and the mapped
    targets are written with streaming stores. Raises OSError naming the buffer it could not
    access."""
    _c.peer_reduce(dst, own, scratch, sources, targets, _C_CODE[dst.dtype], _C_OP[op], divisor,
                   stream and STREAM)


def peer_read(dst: np.ndarray, pid: int, address: int) -> None:
    """Fill ``dst`` with the bytes at ``address`` in process ``pid`` (OSError if refused)."""
    _c.peer_read(dst, pid, address)


def peer_write(src: np.ndarray, pid: int, address: int) -> None:
    """Write the bytes of ``src`` at ``address`` in process ``pid`` (OSError if refused)."""
    _c.peer_write(src, pid, address)


def allow_peer_access() -> None:
    """Let this user's other processes read and write this one's memory, where Yama
    (ptrace_scope 1) would otherwise allow only its ancestors; changes nothing elsewhere."""
    _c.allow_peer_access()
