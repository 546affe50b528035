"""Atomic files: each appears whole or not at all, and a SIGTERM waits until it has."""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from typing import BinaryIO


@contextlib.contextmanager
def deferred_termination() -> Iterator[None]:
    """Hold SIGTERM until the block ends, then act on it as usual.

    Stopping a job sends SIGTERM to every worker (SIGKILL follows after a grace period); a
    chief that is writing a checkpoint finishes the file first instead of leaving only the
    temporary one behind. Python handles signals in the main thread only, so elsewhere this is
    a no-op (the write stays atomic either way: it is a temporary file and a rename). Nested
    blocks act on the signal when the outermost one ends.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
    if previous is None:  # installed outside Python: the default is the closest match
        previous = signal.SIG_DFL
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        if received:
            signal.raise_signal(signal.SIGTERM)


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
    """Write ``path`` through ``write(fileobj)`` so it appears whole or not at all.

    The bytes go to a temporary file in the same directory, are flushed and fsynced, then the
    file is renamed over ``path`` and the directory is fsynced, so a crash at any point leaves
    either the old file or the new one, never a truncated mix. SIGTERM is held until the
    file is complete (in the main thread).
    """
    with deferred_termination():
        _atomic_write(os.fspath(path), write)


def _atomic_write(path: str, write: Callable[[BinaryIO], None]) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fileobj:
            write(fileobj)
            fileobj.flush()
            os.fsync(fileobj.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_directory(directory)


def remove_stale_temporaries(directory: str | os.PathLike, *names: str) -> None:
    """Delete the temporary files that killed ``atomic_write`` calls of files in ``directory``
    whose names start with one of ``names`` left behind (only the chief writes there)."""
    try:
        entries = os.listdir(directory)
    except FileNotFoundError:
        return
    prefixes = tuple(f".{name}" for name in names)
    for entry in entries:
        if entry.startswith(prefixes) and entry.endswith(".tmp"):
            try:
                os.unlink(os.path.join(directory, entry))
            except FileNotFoundError:
                pass


def fsync_directory(directory: str | os.PathLike) -> None:
    """Make the renames and unlinks in ``directory`` durable."""
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
