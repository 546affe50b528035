"""Chief duties for torch programs: atomic checkpoints written by rank 0 only, resuming on
every rank, and TensorBoard logging on the chief (a writer that does nothing elsewhere)."""

from __future__ import annotations

import os
from typing import Any

import torch

from ..checkpoint import atomic_write
from ..world import process_group
from ._ops import comm

_MISSING = object()


def save_checkpoint(obj: Any, path: str | os.PathLike) -> bool:
    """On the chief, ``torch.save(obj)`` to ``path`` atomically (temporary file, fsync,
    rename); elsewhere nothing. Call it on every rank; returns True where it wrote.

    No collective runs here, so calling it on the chief alone is fine too.
    """
    if not process_group.is_initialized():
        raise RuntimeError("save_checkpoint: call hvd.init() (or ringtrain.init()) first, so "
                           "that only the chief writes")
    if not process_group.is_chief():
        return False
    atomic_write(path, lambda fileobj: torch.save(obj, fileobj))
    return True


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu", *,
                    from_chief: bool = True, default: Any = _MISSING, **load_kwargs: Any) -> Any:
    """Load a checkpoint on every rank (a collective: every rank must call it).

    ``from_chief=True`` (default): the chief reads the file and broadcasts the object, so the
    other machines need not see the file. ``from_chief=False``: every rank reads ``path``
    itself (a shared filesystem). A missing file returns ``default`` on every rank when given,
    else raises FileNotFoundError on every rank. ``load_kwargs`` go to ``torch.load`` (e.g.
    ``weights_only=False`` for checkpoints holding arbitrary objects).
    """
    group = comm()
    path = os.fspath(path)
    if not from_chief or group.world_size == 1:
        outcome = _read(path, map_location, load_kwargs)
        if not from_chief and group.world_size > 1:
            # Every rank must agree on whether it exists, or some would resume and some not.
            found = group.allgather_object(outcome[0] == "ok")
            if not all(found) and any(found):
                missing = [r for r, ok in enumerate(found) if not ok]
                raise FileNotFoundError(f"load_checkpoint: {path} could not be read on rank(s) "
                                        f"{missing} but was on the others; use "
                                        f"from_chief=True when the file is on one machine only")
    else:
        outcome = group.broadcast_object(
            _read(path, map_location, load_kwargs) if group.rank == 0 else None, root=0)
    status, value = outcome
    if status == "ok":
        return value
    if status == "missing" and default is not _MISSING:
        return default
    if status == "missing":
        raise FileNotFoundError(f"load_checkpoint: no checkpoint at {path}; pass default=None "
                                f"to start from scratch when there is none")
    raise RuntimeError(f"load_checkpoint: {path} could not be loaded ({value}). If it is "
                       f"damaged, put back a good copy, or move it away and pass default=None "
                       f"to start from scratch; a checkpoint of arbitrary Python objects needs "
                       f"weights_only=False")


def _read(path: str, map_location: Any, load_kwargs: dict) -> tuple[str, Any]:
    if not os.path.exists(path):
        return "missing", None
    try:
        return "ok", torch.load(path, map_location=map_location, **load_kwargs)
    except Exception as exc:  # noqa: BLE001 -- reported on every rank, not just here
        return "error", f"{type(exc).__name__}: {exc}"


class _NullWriter:
    """A SummaryWriter stand-in for non-chief ranks: every method does nothing."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _nothing

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def _nothing(*args: Any, **kwargs: Any) -> None:
    return None


def SummaryWriter(log_dir: str | os.PathLike | None = None, *args: Any, **kwargs: Any) -> Any:
    """``torch.utils.tensorboard.SummaryWriter`` on the chief; a writer that ignores every call
    on the other ranks, so logging code needs no ``if rank == 0``."""
    if not process_group.is_initialized():
        raise RuntimeError("SummaryWriter: call hvd.init() (or ringtrain.init()) first, so "
                           "that only the chief writes logs")
    if not process_group.is_chief():
        return _NullWriter()
    from torch.utils.tensorboard import SummaryWriter as TorchSummaryWriter

    return TorchSummaryWriter(log_dir, *args, **kwargs)
