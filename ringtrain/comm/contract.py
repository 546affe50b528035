"""Argument checks for collectives, and the descriptor every rank exchanges to catch mismatches.

Each collective is a contract among all ranks (same call order, shapes, dtypes, ops, roots).
Before moving data, every rank contributes one fixed-size descriptor of its call (17 int64) to
an all-gather; equal descriptors mean the call is safe, and different ones let every rank raise
the same ``CollectiveMismatch`` naming what differed on which ranks. Because the descriptor has
the same size for every collective, the check itself can never mismatch.

Named operations (Horovod's ``name=``) carry a hash of their name. Descriptors whose names
differ raise ``NamesDiffer``: the communicator then agrees with the other ranks on which named
operation runs first, since Horovod matches named operations by name, not by call order.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import hashlib
import struct
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import env
from ..errors import CollectiveMismatch
from .base import ReduceOp
from .ring import chunk_bounds

# --- collective kinds, ops, algorithms: stable small codes for the descriptor --------------------
KINDS = ("none", "allreduce", "broadcast", "allgather", "reduce_scatter", "alltoall", "barrier",
         "broadcast_object", "allgather_object", "shutdown", "join", "split")
KIND_CODE = {name: i for i, name in enumerate(KINDS)}
OPS = (None, ReduceOp.SUM, ReduceOp.AVG, ReduceOp.MIN, ReduceOp.MAX)
OP_CODE = {op: i for i, op in enumerate(OPS)}
ALGORITHMS = ("auto", "ring", "native")
ALGORITHM_CODE = {None: 0, "ring": 1, "native": 2, "auto": 3}

# Arrays whose dtype takes part in reductions; anything else (complex, structured) can still be
# broadcast / gathered as raw bytes, but not reduced.
REDUCIBLE = tuple(np.dtype(t) for t in (
    np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64,
    np.float16, np.float32, np.float64))
FLOATING = tuple(np.dtype(t) for t in (np.float16, np.float32, np.float64))
_REDUCIBLE = frozenset(REDUCIBLE)     # hashed lookups: cheaper than comparing dtypes in turn
_FLOATING = frozenset(FLOATING)

_OP_NAMES = {"sum": ReduceOp.SUM, "avg": ReduceOp.AVG, "average": ReduceOp.AVG,
             "mean": ReduceOp.AVG, "min": ReduceOp.MIN, "max": ReduceOp.MAX}

DESCRIPTOR_FIELDS = 17
_MAX_DIMS = 7           # dims 0..6 travel verbatim; the rest as a hash
_PACK = struct.Struct(f"<{DESCRIPTOR_FIELDS}q")
DESCRIPTOR_BYTES = _PACK.size
FLAG_INVALID = 1        # this rank's arguments were invalid: every rank must skip the call

# descriptor field indices
F_KIND, F_OP, F_DTYPE, F_ROOT, F_ALG, F_NDIM, F_DIM0 = range(7)
F_SHAPE_HASH, F_FLAGS, F_COUNT, F_NAME = 13, 14, 15, 16
JOIN = KIND_CODE["join"]


# --- names: Horovod matches named operations by name ---------------------------------------------

_operation_name: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "ringtrain_operation_name", default=None)


@contextlib.contextmanager
def named(label: str | None):
    """Collectives called inside carry ``label`` (e.g. ``"allreduce 'loss'"``): ranks match
    them by it instead of by call order (the torch layer's ``name=``)."""
    token = _operation_name.set(label)
    try:
        yield
    finally:
        _operation_name.reset(token)


def operation_name() -> str | None:
    """The label set by the innermost ``named()`` around this call, if any."""
    return _operation_name.get()


_labels: dict[int, str] = {}    # code -> label of names this rank used, for messages only


@functools.lru_cache(maxsize=4096)
def name_code(label: str | None) -> int:
    """A label's code in descriptors: a 63-bit hash for a name, 0 for none."""
    if label is None:
        return 0
    digest = hashlib.blake2b(label.encode(), digest_size=8).digest()
    code = (int.from_bytes(digest, "little") >> 1) or 1
    if len(_labels) > 4096:
        _labels.clear()
    _labels[code] = label
    return code


def label_of(code: int) -> str | None:
    """For messages: the label this rank used for ``code`` (None for 0, an unnamed call)."""
    return _labels.get(code, f"an operation named #{code}") if code else None


class NamesDiffer(CollectiveMismatch):
    """The ranks started differently named operations (or a named one beside an unnamed one):
    they agree on an order (``CommunicatorBase._run_agreed_name``) instead of failing."""


# --- argument checks (the caller's thread; errors name the argument and the fix) -----------------

def as_array(x: Any, what: str, name: str = "x") -> np.ndarray:
    """``x`` as a NumPy array (no copy for arrays and buffers), or TypeError naming ``name``."""
    if isinstance(x, np.ndarray):
        arr = x
    else:
        try:
            arr = np.asarray(x)
        except (TypeError, ValueError, RuntimeError) as exc:  # e.g. a CUDA tensor
            raise TypeError(f"{what}: {name} must be a NumPy array (or convertible to one), "
                            f"got {type(x).__name__}: {exc}") from None
    if arr.dtype.hasobject:
        raise TypeError(f"{what}: {name} has dtype object, which cannot be communicated; pass "
                        f"a numeric array (use broadcast_object/allgather_object for objects)")
    return arr


def check_op(op: Any, what: str) -> ReduceOp:
    if isinstance(op, ReduceOp):
        return op
    if isinstance(op, str) and op.lower() in _OP_NAMES:
        return _OP_NAMES[op.lower()]
    raise ValueError(f"{what}: op must be a ringtrain.ReduceOp (SUM, AVG, MIN or MAX), "
                     f"got {op!r}")


def check_reducible(dtype: np.dtype, op: ReduceOp, what: str) -> None:
    if dtype in _FLOATING and op is not ReduceOp.AVG or dtype in _REDUCIBLE and (
            op is ReduceOp.MIN or op is ReduceOp.MAX):
        return                # the common cases, decided quickly
    if dtype not in _REDUCIBLE:
        raise TypeError(f"{what}: dtype {dtype} cannot be reduced; use one of "
                        f"{', '.join(str(d) for d in REDUCIBLE)}")
    if dtype == np.bool_ and op in (ReduceOp.SUM, ReduceOp.AVG):
        raise TypeError(f"{what}: op={op.name} is not defined for bool arrays; use op=MAX "
                        f"(any rank true) or op=MIN (every rank true), or cast to an integer")
    if op is ReduceOp.AVG and dtype not in _FLOATING:
        raise TypeError(f"{what}: op=MEAN/AVG needs a floating dtype, got {dtype}; use op=SUM and "
                        f"divide, or cast to float32")


def check_root(root: Any, world_size: int, what: str) -> int:
    if isinstance(root, bool) or not isinstance(root, (int, np.integer)):
        raise TypeError(f"{what}: root must be an int rank, got {type(root).__name__}")
    if not 0 <= root < world_size:
        raise ValueError(f"{what}: root={root} is not a rank of this world of {world_size} "
                         f"(valid: 0..{world_size - 1})")
    return int(root)


def check_algorithm(algorithm: Any, what: str) -> str:
    if algorithm is None:
        algorithm = env.get("RINGTRAIN_ALGORITHM")
    if algorithm not in ALGORITHMS:
        raise ValueError(f"{what}: algorithm must be one of {', '.join(ALGORITHMS)}, "
                         f"got {algorithm!r}")
    return algorithm


def check_out(out: Any, shape: tuple, dtype: np.dtype, what: str) -> np.ndarray:
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{what}: out must be a NumPy array, got {type(out).__name__}")
    if out.shape != shape or out.dtype != dtype:
        raise ValueError(f"{what}: out must have the shape and dtype of the result, "
                         f"{shape} {dtype}; got {out.shape} {out.dtype}")
    if not out.flags.writeable:
        raise ValueError(f"{what}: out is read-only; pass a writeable array")
    return out


def check_axis0(arr: np.ndarray, what: str) -> None:
    if arr.ndim == 0:
        raise ValueError(f"{what}: x must have at least one dimension (rows are split or "
                         f"concatenated along axis 0); got a 0-d array, reshape it to (1,)")


def check_splits(splits: Sequence[int] | None, rows: int, world_size: int, what: str) -> list:
    if splits is None:
        return [b - a for a, b in chunk_bounds(rows, world_size)]
    splits = [int(s) for s in splits]
    if len(splits) != world_size or any(s < 0 for s in splits) or sum(splits) != rows:
        raise ValueError(f"{what}: splits must be {world_size} non-negative row counts summing "
                         f"to x.shape[0]={rows}; got {splits}")
    return splits


# --- descriptors ---------------------------------------------------------------------------------

_DTYPE_CODES: dict = {}


def _dtype_code(dtype: np.dtype | None) -> int:
    if dtype is None:
        return 0
    code = _DTYPE_CODES.get(dtype)
    if code is None:
        code = _DTYPE_CODES[dtype] = zlib.crc32(dtype.str.encode()) & 0x7FFFFFFF
    return code


_DTYPE_NAMES = {_dtype_code(np.dtype(t)): np.dtype(t).name for t in (
    *REDUCIBLE, np.complex64, np.complex128, np.longdouble)}


@functools.lru_cache(maxsize=4096)
def descriptor(kind: str, shape: tuple | None = None, dtype: np.dtype | None = None,
               op: ReduceOp | None = None, root: int = -1, algorithm: str | None = None,
               flags: int = 0, count: int = 0, members: tuple | None = None,
               name: str | None = None) -> bytes:
    """The packed 17-int64 descriptor of one collective call on this rank (cached: training
    repeats the same calls every step). ``members``: the shapes of the ``count`` arrays fused
    into one allreduce_many bucket, which travel as a hash. ``name``: a named operation's
    label (``named()``), which travels as ``name_code``."""
    fields = [0] * DESCRIPTOR_FIELDS
    fields[F_KIND] = KIND_CODE[kind]
    fields[F_OP] = OP_CODE[op]
    fields[F_DTYPE] = _dtype_code(dtype)
    fields[F_ROOT] = root
    fields[F_ALG] = ALGORITHM_CODE[algorithm]
    fields[F_FLAGS] = flags
    fields[F_COUNT] = count
    fields[F_NAME] = name_code(name)
    if shape is None:
        fields[F_NDIM] = -1
    else:
        fields[F_NDIM] = len(shape)
        fields[F_DIM0:F_DIM0 + min(len(shape), _MAX_DIMS)] = shape[:_MAX_DIMS]
        if len(shape) > _MAX_DIMS:
            fields[F_SHAPE_HASH] = zlib.crc32(repr(tuple(shape[_MAX_DIMS:])).encode())
    if members is not None:
        fields[F_SHAPE_HASH] = zlib.crc32(repr(list(members)).encode())
    return _PACK.pack(*fields)


def invalid_descriptor(kind: str) -> bytes:
    return descriptor(kind, flags=FLAG_INVALID)


def unpack(raw: bytes | memoryview, world_size: int) -> list[tuple[int, ...]]:
    return [_PACK.unpack_from(raw, i * DESCRIPTOR_BYTES) for i in range(world_size)]


def dim0s(raw: bytes | memoryview, world_size: int) -> list[int]:
    """Every rank's first dimension, read from a gathered descriptor buffer."""
    return [int(d[F_DIM0]) for d in unpack(raw, world_size)]


def verify(raw: bytes | memoryview, mine: bytes, world_size: int, first_dim_free: bool) -> None:
    """Raise CollectiveMismatch on every rank unless all gathered descriptors agree.

    ``raw`` holds world_size descriptors in rank order. With ``first_dim_free`` (allgather,
    alltoall) the first dimension may differ. The fast path compares bytes only.
    """
    n = DESCRIPTOR_BYTES
    if not first_dim_free:
        view = memoryview(raw)
        same = all(view[i * n:(i + 1) * n] == mine for i in range(world_size))
        if same and mine[F_FLAGS * 8] & FLAG_INVALID == 0:
            return
    rows = unpack(raw, world_size)
    joined = [i for i, r in enumerate(rows) if r[F_KIND] == JOIN]
    if joined:
        mine_row = _PACK.unpack(mine)
        refusal = join_refusal(mine_row, joined)
        if refusal:
            error = CollectiveMismatch(refusal)
            error.departed = ()
            raise error
        # the joined ranks stand in for this call: compare the other ranks' descriptors
        rows = [mine_row if r[F_KIND] == JOIN else r for r in rows]
    elif len({r[F_NAME] for r in rows}) > 1 and not any(
            r[F_FLAGS] & FLAG_INVALID or r[F_KIND] == KIND_CODE["shutdown"] for r in rows):
        raise NamesDiffer("the ranks started differently named operations")
    problem = describe_mismatch(rows, first_dim_free)
    if problem:
        error = CollectiveMismatch(problem)
        # Ranks whose program ended (their shutdown met this collective): the cause.
        error.departed = tuple(i for i, r in enumerate(rows) if r[F_KIND] == KIND_CODE["shutdown"])
        raise error


# --- join: ranks without data stand in for the others' allreduces ---------------------------------

_JOIN_OPS = (OP_CODE[ReduceOp.SUM], OP_CODE[ReduceOp.AVG])


def join_refusal(row: tuple[int, ...], joined: list[int]) -> str:
    """Why a collective described by ``row`` cannot run while ``joined`` ranks wait in join()
    ('' if it can). Joined ranks contribute zeros, which only a sum or an average of an array
    whose full shape travels in the descriptor can use. Every rank decides from the same
    descriptors, so the joined ranks skip exactly the calls the others refuse."""
    kind = KINDS[row[F_KIND]] if 0 <= row[F_KIND] < len(KINDS) else "?"
    who = f"{ranks_text(joined)} called join()"
    if kind == "shutdown":
        return (f"collective mismatch: {who}, waiting for every rank to join; a rank shut "
                f"down (or its program ended) without calling join()")
    if kind != "allreduce":
        return (f"{kind}: {who}; while a rank has joined only allreduce can run (the joined "
                f"ranks contribute zeros). Call {kind} before any rank joins")
    if row[F_OP] not in _JOIN_OPS:
        return (f"allreduce: {who}; joined ranks contribute zeros, so only op Sum or Average "
                f"can run while a rank has joined")
    if row[F_NDIM] > _MAX_DIMS and not row[F_COUNT]:
        return (f"allreduce: {who}; joined ranks can stand in for arrays of at most {_MAX_DIMS} "
                f"dimensions; reshape the tensor")
    return ""


def joined_stand_in(row: tuple[int, ...]) -> tuple[tuple[int, ...], np.dtype, ReduceOp, str]:
    """(shape, dtype, op, algorithm) of the allreduce ``row`` describes, for a joined rank's
    zeros (a fused bucket travels as one flat array: its first dimension is the total)."""
    dims = tuple(row[F_DIM0:F_DIM0 + row[F_NDIM]])
    algorithm = {code: name for name, code in ALGORITHM_CODE.items()}[row[F_ALG]]
    return dims, np.dtype(_DTYPE_NAMES[row[F_DTYPE]]), OPS[row[F_OP]], algorithm


def ranks_text(ranks: list[int]) -> str:
    """For messages: rank 2, or ranks 0, 1."""
    return ("rank " if len(ranks) == 1 else "ranks ") + ", ".join(str(r) for r in ranks)


def _groups(values: list) -> list[tuple[Any, list[int]]]:
    groups: dict[Any, list[int]] = {}
    for rank, value in enumerate(values):
        groups.setdefault(value, []).append(rank)
    # the odd ones out first, as in "rank 1 sent (3, 4), ranks 0, 2 sent (4, 3)"
    return sorted(groups.items(), key=lambda kv: (len(kv[1]), kv[1][0]))


def _shape_text(row: tuple[int, ...], skip_first: bool) -> str:
    ndim = row[F_NDIM]
    dims = list(row[F_DIM0:F_DIM0 + min(ndim, _MAX_DIMS)])
    if skip_first:
        dims = ["*", *dims[1:]]
    text = "(" + ", ".join(str(d) for d in dims)
    if ndim > _MAX_DIMS:
        text += ", ..."
    return text + ("," if ndim == 1 else "") + ")"


def describe_mismatch(rows: list[tuple[int, ...]], first_dim_free: bool) -> str:
    """A message naming what differed among the descriptors and on which ranks ('' if none)."""
    kinds = [KINDS[r[F_KIND]] if 0 <= r[F_KIND] < len(KINDS) else "?" for r in rows]
    if len(set(kinds)) > 1:
        calls = "; ".join(
            f"{ranks_text(rs)} shut down (or its program ended)" if k == "shutdown"
            else f"{ranks_text(rs)} called {k}" for k, rs in _groups(kinds))
        return (f"collective mismatch: {calls}. Every rank must call the same collectives in "
                f"the same order")
    what = kinds[0]
    bad = [i for i, r in enumerate(rows) if r[F_FLAGS] & FLAG_INVALID]
    if bad:
        return (f"{what}: {ranks_text(bad)} passed invalid arguments (see the error raised there); "
                f"the call was skipped on every rank")

    def differ(label: str, values: list) -> str:
        groups = _groups(values)
        parts = ", ".join(f"{ranks_text(rs)} sent {v}" for v, rs in groups)
        return f"{what}: every rank must pass the same {label}; {parts}"

    if any(r[F_COUNT] for r in rows):
        key = [(r[F_COUNT], r[F_NDIM], r[F_DIM0:F_SHAPE_HASH + 1]) for r in rows]
        if len(set(key)) > 1:     # buckets of allreduce_many
            return ("allreduce_many: every rank must pass the same arrays (number, shapes and "
                    "order); " + ", ".join(
                        f"{ranks_text(rs)} sent a bucket of {v}" for v, rs in _groups(
                            [f"{max(r[F_COUNT], 1)} arrays, {r[F_DIM0]} elements"
                             for r in rows])))
    first = F_DIM0 + 1 if first_dim_free else F_DIM0
    shapes_equal_key = [(r[F_NDIM], r[first:F_SHAPE_HASH + 1]) for r in rows]
    if len(set(shapes_equal_key)) > 1:
        label = "shape after the first dimension" if first_dim_free else "shape"
        return differ(label, [_shape_text(r, first_dim_free) for r in rows])
    if len({r[F_DTYPE] for r in rows}) > 1:
        return differ("dtype", [_DTYPE_NAMES.get(r[F_DTYPE], f"dtype#{r[F_DTYPE]}")
                                for r in rows])
    if len({r[F_OP] for r in rows}) > 1:
        return differ("op", [OPS[r[F_OP]].name if OPS[r[F_OP]] else "no op" for r in rows])
    if len({r[F_ROOT] for r in rows}) > 1:
        return differ("root", [f"root={r[F_ROOT]}" for r in rows])
    if len({r[F_ALG] for r in rows}) > 1:
        names = {v: k for k, v in ALGORITHM_CODE.items()}
        return differ("algorithm", [f"algorithm={names.get(r[F_ALG])!r}" for r in rows])
    if len({r[F_COUNT] for r in rows}) > 1:
        return differ("number of arrays", [str(r[F_COUNT]) for r in rows])
    if len({r[F_NAME] for r in rows}) > 1:    # only while a rank has joined: see verify()
        started = "; ".join(f"{ranks_text(rs)} started {label_of(code) or 'an unnamed one'}"
                            for code, rs in _groups([r[F_NAME] for r in rows]))
        return (f"{what}: the ranks started differently named operations ({started}) while "
                f"a rank waited in join(), which pairs calls by order")
    return ""
