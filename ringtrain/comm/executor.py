"""One communication thread per communicator, running collectives in submission order.

Async collectives are queued and run by the thread; a synchronous collective waits until
everything submitted before it has finished and then runs in the caller's thread (which saves
the thread hand-off, tens of microseconds, on every small call). Either way exactly one thread
is inside the engine at any moment and every rank issues its collectives in the order they were
submitted, so async and sync calls can be mixed freely. The engine therefore needs at least
MPI_THREAD_SERIALIZED. Handles keep their buffers referenced until the job has finished.

One exception to submission order: named operations (Horovod's ``name=``). When the ranks
find that they started differently named operations, they agree on one that every rank has
queued, and the thread inside the current job takes it out of the queue and runs it first
(``run_queued``).
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from typing import Any

from ..errors import CommError
from .base import Handle

# Threads blocked in a collective (waiting for a handle or their turn, or running a synchronous
# one), with how many times: a main thread in here cannot start the operation another rank waits
# for (CommunicatorBase._run_agreed_name).
_waiting_threads: collections.Counter = collections.Counter()


def main_thread_waits() -> bool:
    """Whether the program's main thread is blocked in a collective."""
    return _waiting_threads[threading.main_thread().ident] > 0


class _Waiting:
    """Marks this thread as blocked in a collective while inside."""

    def __enter__(self) -> None:
        _waiting_threads[threading.get_ident()] += 1

    def __exit__(self, *exc: object) -> None:
        _waiting_threads[threading.get_ident()] -= 1


class FutureHandle(Handle):
    """Completed by the communication thread; ``wait()`` returns the result or re-raises."""

    __slots__ = ("_error", "_event", "_refs", "_result", "finished", "started")

    def __init__(self, refs: tuple = ()):
        self._event = threading.Event()
        self._result: Any = None
        self._error: BaseException | None = None
        self._refs = refs   # input/output buffers stay alive until the collective is done
        self.started: float | None = None
        self.finished: float | None = None

    def _finish(self, result: Any, error: BaseException | None) -> None:
        self.finished = time.time()
        self._result, self._error = result, error
        self._refs = ()
        self._event.set()

    def wait(self, timeout: float | None = None) -> Any:
        if not self._event.is_set():
            with _Waiting():
                finished = self._event.wait(timeout)
            if not finished:
                raise TimeoutError(f"collective did not finish within {timeout} s")
        if self._error is not None:
            raise self._error
        return self._result

    def done(self) -> bool:
        return self._event.is_set()


class DoneHandle(Handle):
    """A handle for a collective that already finished (world of one, or a sync fallback)."""

    __slots__ = ("_result",)

    def __init__(self, result: Any):
        self._result = result

    def wait(self, timeout: float | None = None) -> Any:
        return self._result

    def done(self) -> bool:
        return True


class OrderedExecutor:
    """Runs jobs one at a time in submission order (async on a thread, sync inline)."""

    def __init__(self, name: str = "ringtrain-comm"):
        self._cv = threading.Condition(threading.Lock())
        self._queue: collections.deque = collections.deque()
        self._busy = False
        self._waiters = 0       # threads blocked in cv.wait(): notify only when someone waits
        self._closed = False
        self._thread: threading.Thread | None = None
        self._name = name
        # the names of the jobs running now (None: unnamed), the outermost first: a job run
        # inside another by run_queued is on top
        self._running: list[str | None] = []

    def _wait_until(self, ready: Callable[[], bool]) -> None:
        # caller holds the lock
        if ready():
            return
        self._waiters += 1
        try:
            with _Waiting():
                while not ready():
                    self._cv.wait()
        finally:
            self._waiters -= 1

    def submit(self, job: Callable[[], Any], refs: tuple = (), name: str | None = None
               ) -> FutureHandle:
        """Queue ``job``; ``name``: the label of its named operation (None: unnamed)."""
        handle = FutureHandle(refs)
        with self._cv:
            if self._closed:
                raise CommError("the communicator was shut down; call ringtrain.init() again")
            self._queue.append((job, handle, name))
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                self._thread.start()
            if self._waiters:
                self._cv.notify_all()
        return handle

    def run(self, job: Callable[[], Any], name: str | None = None) -> Any:
        """Run ``job`` in this thread once every earlier submission has finished; ``name``:
        the label of its named operation (None: unnamed)."""
        cv = self._cv
        with cv:
            if self._busy or self._queue:
                self._wait_until(lambda: not (self._busy or self._queue))
            if self._closed:
                raise CommError("the communicator was shut down; call ringtrain.init() again")
            self._busy = True
        self._running.append(name)
        try:
            with _Waiting():
                return job()
        finally:
            self._running.pop()
            with cv:
                self._busy = False
                if self._waiters:
                    cv.notify_all()

    def _loop(self) -> None:
        cv = self._cv
        while True:
            with cv:
                self._wait_until(lambda: self._closed or (self._queue and not self._busy))
                if not self._queue:
                    return          # closed and drained
                job, handle, name = self._queue.popleft()
                self._busy = True
            self._run_into(job, handle, name)
            with cv:
                self._busy = False
                if self._waiters:
                    cv.notify_all()

    def queued_names(self) -> list[str]:
        """The labels of the named jobs waiting in the queue, in submission order."""
        with self._cv:
            return [name for _, _, name in self._queue if name is not None]

    def run_queued(self, name: str) -> None:
        """Take the first queued job named ``name`` out of the queue and run it in this thread,
        which must be the one running the current job (every rank does the same, so the
        collectives stay in step)."""
        with self._cv:
            for i, (job, handle, queued) in enumerate(self._queue):
                if queued == name:
                    del self._queue[i]
                    break
            else:
                raise KeyError(name)
        self._run_into(job, handle, name)

    def running_name(self) -> str | None:
        """The name of the innermost job running now (None: unnamed, or none running); only
        the thread running it may ask."""
        return self._running[-1] if self._running else None

    def _run_into(self, job: Callable[[], Any], handle: FutureHandle, name: str | None) -> None:
        handle.started = time.time()
        self._running.append(name)
        try:
            result, error = job(), None
        except BaseException as exc:  # noqa: BLE001 -- re-raised by the handle's wait()
            result, error = None, exc
        finally:
            self._running.pop()
        handle._finish(result, error)

    def drain(self) -> None:
        """Block until every submitted job has finished."""
        with self._cv:
            self._wait_until(lambda: not (self._busy or self._queue))

    def close(self) -> None:
        """Finish queued work, then stop the thread; later submissions raise CommError."""
        with self._cv:
            self._wait_until(lambda: not (self._busy or self._queue))
            self._closed = True
            if self._waiters:
                self._cv.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
