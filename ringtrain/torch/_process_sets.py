"""Horovod's process sets: collectives among a subset of the workers.

A process set is a sorted list of global ranks. ``add_process_set`` (a collective over every
worker, which must all pass the same ranks) splits the world's MPI communicator and gives the
members their own communicator: its own contract checks, communication thread and stall
watchdog, so a set's collectives never mix with the world's or another set's. Inside a call
with ``process_set=``, ``current()`` names that set; ranks such as ``root_rank`` stay global,
as in Horovod, and results come in the set's rank order.
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import functools
import inspect
import itertools
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ..errors import CollectiveMismatch
from ..world import process_group


class ProcessSet:
    """``hvd.ProcessSet(ranks)``: the workers with these global ranks. Usable in collectives
    once registered (``add_process_set``, or ``init(process_sets=[...])``). An empty set may
    be registered (e.g. the odd ranks of a world of one); it has no members to call it."""

    def __init__(self, ranks: Sequence[int]):
        if isinstance(ranks, (str, bytes)) or not isinstance(ranks, Sequence) or any(
                isinstance(r, bool) or not isinstance(r, int) for r in ranks):
            raise TypeError(f"ProcessSet: ranks must be a list of int ranks, got {ranks!r} "
                            f"(an mpi4py communicator is not supported: pass its ranks)")
        self.ranks = sorted(set(ranks))
        if self.ranks and self.ranks[0] < 0:
            raise ValueError(f"ProcessSet: ranks must be >= 0, got {ranks!r}")
        self.process_set_id: int | None = None
        self.comm: Any = None           # this worker's communicator for the set (members)

    def size(self) -> int:
        return len(self.ranks)

    def included(self) -> bool:
        """Whether this worker is in the set."""
        return process_group.rank() in self.ranks

    def rank(self) -> int:
        """This worker's rank within the set (-1 when not included)."""
        me = process_group.rank()
        return self.ranks.index(me) if me in self.ranks else -1

    def set_rank(self, global_rank: int, what: str) -> int:
        """The set's rank of a global rank (root_rank arguments are global, as in Horovod)."""
        if global_rank not in self.ranks:
            raise ValueError(f"{what}: root_rank={global_rank} is not in process set "
                             f"{self.ranks}; pass the global rank of one of its members")
        return self.ranks.index(global_rank)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ProcessSet) and other.ranks == self.ranks

    def __hash__(self) -> int:
        return hash(tuple(self.ranks))

    def __repr__(self) -> str:
        return f"ProcessSet(process_set_id={self.process_set_id}, ranks={self.ranks})"


class _GlobalProcessSet(ProcessSet):
    """``hvd.global_process_set``: every worker, over the world's communicator."""

    def __init__(self):
        self.process_set_id = 0

    @property
    def ranks(self) -> list[int]:       # type: ignore[override]
        return list(range(process_group.size()))

    def __repr__(self) -> str:
        return "hvd.global_process_set"


global_process_set = _GlobalProcessSet()
_registered: dict[int, ProcessSet] = {0: global_process_set}
_ids = itertools.count(1)
_lock = threading.Lock()
_current: contextvars.ContextVar[ProcessSet | None] = contextvars.ContextVar(
    "ringtrain_process_set", default=None)


def current() -> ProcessSet | None:
    """The process set of the collective being called (None: the world)."""
    return _current.get()


@contextlib.contextmanager
def active(process_set: ProcessSet | None) -> Iterator[None]:
    token = _current.set(process_set)
    try:
        yield
    finally:
        _current.reset(token)


def resolve(process_set: Any, what: str) -> ProcessSet | None:
    """The registered set a ``process_set=`` argument names (None for the world), or an error
    naming the fix."""
    if process_set is None or process_set is global_process_set:
        return None
    if not isinstance(process_set, ProcessSet):
        raise TypeError(f"{what}: process_set must be an hvd.ProcessSet, got "
                        f"{type(process_set).__name__}")
    if process_set.process_set_id is None or \
            _registered.get(process_set.process_set_id) is not process_set:
        raise ValueError(f"{what}: {process_set!r} is not registered; call "
                         f"hvd.add_process_set(...) on every worker first")
    if process_set.comm is None:
        raise ValueError(f"{what}: this worker (rank {process_group.rank()}) is not in "
                         f"{process_set!r}; only its members may call its collectives")
    return process_set


def excludes_me(process_set: Any) -> bool:
    """True for a registered set this worker is not a member of."""
    return (isinstance(process_set, ProcessSet) and process_set is not global_process_set
            and process_set.process_set_id is not None
            and _registered.get(process_set.process_set_id) is process_set
            and process_set.comm is None)


def takes_process_set(fn: Callable) -> Callable:
    """Run ``fn`` with its ``process_set=`` argument as the current set (omitted: the
    caller's, i.e. the world's for a user's call)."""
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        given = signature.bind_partial(*args, **kwargs).arguments.get("process_set")
        if given is None:           # inherit: a call inside another runs in the same set
            return fn(*args, **kwargs)
        chosen = resolve(given, fn.__name__)
        if chosen is current():
            return fn(*args, **kwargs)
        with active(chosen):
            return fn(*args, **kwargs)

    return wrapper


def add_process_set(process_set: ProcessSet | Sequence[int]) -> ProcessSet:
    """Register a process set (a collective: every worker calls it with the same ranks) and
    return it; its members get a communicator of their own."""
    ps = process_set if isinstance(process_set, ProcessSet) else ProcessSet(process_set)
    world = process_group.comm()
    what = "add_process_set"
    if ps.process_set_id is not None:
        raise ValueError(f"{what}: {ps!r} is already registered")
    if ps.ranks and ps.ranks[-1] >= world.world_size:
        raise ValueError(f"{what}: ranks {ps.ranks} are not all ranks of this job of "
                         f"{world.world_size} worker(s)")
    everyone = world.allgather_object(ps.ranks)
    if any(theirs != everyone[0] for theirs in everyone):
        detail = ", ".join(f"rank {r}: {s}" for r, s in enumerate(everyone))
        raise CollectiveMismatch(f"{what}: every worker must add the same process set; got "
                                 f"{detail}")
    with _lock:
        if any(other.ranks == ps.ranks for other in _registered.values()
               if other is not global_process_set):
            raise ValueError(f"{what}: a process set with ranks {ps.ranks} is already "
                             f"registered")
    ps.comm = _sub_communicator(world, ps.ranks)
    with _lock:
        ps.process_set_id = next(_ids)
        _registered[ps.process_set_id] = ps
    _release_at_exit()
    return ps


@functools.cache
def _release_at_exit() -> None:
    """Sets still registered when the program ends are released before the world's
    communicator (atexit runs last-registered first): their communication threads must stop
    before MPI is finalized."""
    atexit.register(remove_all)


def _sub_communicator(world: Any, ranks: list[int]) -> Any:
    """The members' communicator over ``ranks`` (None on the other workers)."""
    member = world.rank in ranks
    if world.world_size == 1:
        return world if member else None
    from ..comm.mpi import MPICommunicator

    split = getattr(world, "split", None)      # the MPI backend's (a device wrapper forwards it)
    if split is None:
        raise NotImplementedError(f"add_process_set: process sets need the MPI backend; this "
                                  f"job's communicator is {world.backend!r}")
    sub = split(member, ranks.index(world.rank) if member else 0)
    if sub is None:
        return None
    return MPICommunicator(sub, check=world.check, dup=False)


def remove_process_set(process_set: ProcessSet) -> bool:
    """Unregister a process set (a collective among its members, who shut its communicator
    down); True if it was registered."""
    if process_set is global_process_set:
        raise ValueError("remove_process_set: the global process set cannot be removed")
    with _lock:
        registered = _registered.pop(process_set.process_set_id, None) is process_set
    if not registered:
        return False
    if process_set.comm is not None and process_set.comm is not process_group.comm():
        process_set.comm.shutdown()
    process_set.comm = None
    process_set.process_set_id = None
    return True


def remove_all() -> None:
    """At shutdown: every added set is released."""
    for ps in [p for p in _registered.values() if p is not global_process_set]:
        remove_process_set(ps)
