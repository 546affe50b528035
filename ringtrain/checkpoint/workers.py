"""The process group as checkpoints see it: who writes, and how the others learn the result.

Outside a job of several workers every function here works alone (no collective).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .. import env, errors
from ..comm.replicas import check_replicas
from ..world import process_group


def _group():
    """The communicator when this process is one of several workers, else None."""
    if not process_group.is_initialized():
        return None
    comm = process_group.comm()
    return comm if comm.world_size > 1 else None


def is_chief() -> bool:
    """True on the worker that writes checkpoints (any process outside a multi-worker job)."""
    return process_group.is_chief() if process_group.is_initialized() else True


def worker_index() -> int:
    """This worker's rank (0 outside a job)."""
    return process_group.rank() if process_group.is_initialized() else 0


def gather_from_workers(mine: Any) -> list:
    """Every worker's ``mine`` in rank order (a collective: every worker must call it)."""
    comm = _group()
    return [mine] if comm is None else list(comm.allgather_object(mine))


def replicas_checked() -> bool:
    """Whether saves compare the replicas first: in a job of several workers, unless
    ``RINGTRAIN_CHECK_REPLICAS_EVERY=0`` turned the replica guard off."""
    return _group() is not None and env.get("RINGTRAIN_CHECK_REPLICAS_EVERY") > 0


def check_replicas_before_save(named: Callable[[], Sequence[tuple[str, np.ndarray]]],
                               what: str) -> None:
    """Before anything of ``what`` is written: compare ``named()`` (the state every replica
    should hold identically) across the workers; ``ReplicasDiverged`` on every worker if they
    differ, so a diverged model is never saved. A collective: every worker must call it, which
    is why only saves that every worker calls are checked."""
    if replicas_checked():
        check_replicas(_group(), named(), f"before writing {what}")


def chief_then_everyone(read: Callable[[], Any]) -> Any:
    """``read()`` on the chief, its result (or its error) on every worker.

    Every worker must call it. Only the chief touches the filesystem; an error there is sent
    to the others too, so every worker raises instead of some waiting forever in the broadcast.
    """
    comm = _group()
    if comm is None:
        return read()
    if is_chief():
        try:
            result = read()
        except Exception as exc:        # every worker must learn of it, or they wait forever
            comm.broadcast_object(("error", type(exc).__name__, str(exc)), root=0)
            raise
        comm.broadcast_object(("ok", result), root=0)
        return result
    message = comm.broadcast_object(None, root=0)
    if message[0] == "ok":
        return message[1]
    error_type = getattr(errors, message[1], None)
    if not (isinstance(error_type, type) and issubclass(error_type, Exception)):
        error_type = {"FileNotFoundError": errors.NotFoundError,
                      "ValueError": ValueError, "TypeError": TypeError}.get(message[1],
                                                                              errors.RingtrainError)
    raise error_type(f"on the chief: {message[2]}")
