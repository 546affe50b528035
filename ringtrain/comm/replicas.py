"""The replica guard: notices replicas whose parameters drifted apart, and stops the job.

Synchronous data parallelism keeps every replica's parameters identical only as long as every
rank applies the same update; a non-deterministic op, a rank-dependent branch, a bit flip or a
parameter changed by hand on one rank makes them drift, silently. Every
``RINGTRAIN_CHECK_REPLICAS_EVERY`` steps (and before every checkpoint, where a front end asks)
each rank hashes its parameters in buckets (64-bit BLAKE2b, over the raw bytes, so NaNs and
signed zeros count) and one small all-gather compares the digests. On a mismatch every rank
raises the same :class:`~ringtrain.errors.ReplicasDiverged` naming the first differing tensor,
the ranks whose value differs from rank 0's and the largest absolute difference (one more
all-gather of that tensor, on the error path only).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .. import env
from ..errors import ReplicasDiverged

#: Bytes per hashed bucket (one digest each).
BUCKET_BYTES = 16 << 20


def _digest(arrays: Sequence[np.ndarray]) -> int:
    h = hashlib.blake2b(digest_size=8)
    for a in arrays:
        h.update(np.ascontiguousarray(a).view(np.uint8).reshape(-1))
    return int.from_bytes(h.digest(), "little", signed=True)


def _buckets(named: Sequence[tuple[str, np.ndarray]]) -> list[list[int]]:
    """Indices of ``named`` grouped in order into buckets of about BUCKET_BYTES."""
    buckets: list[list[int]] = [[]]
    size = 0
    for i, (_, a) in enumerate(named):
        if buckets[-1] and size + a.nbytes > BUCKET_BYTES:
            buckets.append([])
            size = 0
        buckets[-1].append(i)
        size += a.nbytes
    return buckets


def check_replicas(comm: Any, named: Sequence[tuple[str, np.ndarray]], where: str) -> None:
    """Compare ``named`` (the same names, shapes and order on every rank) across the ranks of
    ``comm``; raise :class:`~ringtrain.errors.ReplicasDiverged` on every rank if any replica differs."""
    if comm.world_size == 1:
        return
    named = [(name, np.asarray(a)) for name, a in named]
    buckets = _buckets(named)
    mine = np.array([_digest([named[i][1] for i in b]) for b in buckets], dtype=np.int64)
    everyone = comm.allgather(mine).reshape(comm.world_size, len(mine))
    bad = np.flatnonzero((everyone != everyone[0]).any(axis=0))
    if not len(bad):
        return
    members = buckets[int(bad[0])]
    per_tensor = np.array([_digest([named[i][1]]) for i in members], dtype=np.int64)
    tensors = comm.allgather(per_tensor).reshape(comm.world_size, len(members))
    first = members[int(np.flatnonzero((tensors != tensors[0]).any(axis=0))[0])]
    name, value = named[first]
    values = comm.allgather_object(value)
    differ = [r for r in range(comm.world_size) if _digest([values[r]]) != _digest([values[0]])]
    largest = max(_largest_difference(values[0], values[r]) for r in differ)
    raise ReplicasDiverged(
        f"{where}: the replicas' parameters differ: {name!r} {tuple(value.shape)} on "
        f"rank{'s' if len(differ) > 1 else ''} {', '.join(map(str, differ))} differs from "
        f"rank 0's (largest difference {largest:.6g}). Every rank must apply the same update: "
        f"look for rank-dependent code, a parameter changed on one rank, or non-deterministic "
        f"ops (RINGTRAIN_CHECK_REPLICAS_EVERY sets how often this is checked)")


def _largest_difference(a: np.ndarray, b: np.ndarray) -> float:
    a64, b64 = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if not a64.size:
        return 0.0
    with np.errstate(invalid="ignore"):
        diff = np.abs(a64 - b64)
    both_nan = np.isnan(a64) & np.isnan(b64)
    diff[both_nan] = 0.0
    return float(np.nan_to_num(diff, nan=np.inf).max())


class ReplicaGuard:
    """Counts steps and checks the replicas every ``RINGTRAIN_CHECK_REPLICAS_EVERY`` of them."""

    def __init__(self, comm: Any, where: str, every: int | None = None) -> None:
        self.comm = comm
        self.where = where
        self.every = env.get("RINGTRAIN_CHECK_REPLICAS_EVERY") if every is None else every
        self.steps = 0

    def step(self, named: Callable[[], Sequence[tuple[str, np.ndarray]]]) -> None:
        """One training step; ``named()`` gives the parameters when a check is due."""
        self.steps += 1
        if self.every > 0 and self.comm.world_size > 1 and self.steps % self.every == 0:
            check_replicas(self.comm, named(), f"{self.where} step {self.steps}")
