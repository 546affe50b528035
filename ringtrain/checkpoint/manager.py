"""``tf.train.CheckpointManager``: numbered checkpoints in one directory, the last few kept,
listed in a ``checkpoint`` index file."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from .fileformat import SUFFIX, data_file
from .files import deferred_termination, remove_stale_temporaries
from .index import INDEX_FILE, CheckpointState, read_index, write_index
from .saving import Checkpoint, using_session
from .tracking import adapter_for
from .workers import is_chief


def latest_checkpoint(checkpoint_dir: str | os.PathLike, latest_filename: str | None = None
                      ) -> str | None:
    """The newest checkpoint the ``checkpoint`` index of ``checkpoint_dir`` names (written by
    a ``CheckpointManager`` or a ``Saver``), or None."""
    state = read_index(checkpoint_dir, latest_filename)
    return (state.model_checkpoint_path or None) if state else None


class CheckpointManager:
    """``tf.train.CheckpointManager``: numbered checkpoints in ``directory``, the last
    ``max_to_keep`` kept (None: all), plus one every ``keep_checkpoint_every_n_hours``.

    ``save()`` writes ``<directory>/<checkpoint_name>-<n>.npz`` and then the ``checkpoint``
    index (both atomically, chief only) and deletes checkpoints beyond the limit.
    ``restore_or_initialize()`` (every worker) restores the latest one or calls ``init_fn``.
    """

    def __init__(self, checkpoint: Checkpoint, directory: str | os.PathLike,
                 max_to_keep: int | None = 5, keep_checkpoint_every_n_hours: float | None = None,
                 checkpoint_name: str = "ckpt", step_counter: Any = None,
                 checkpoint_interval: int | None = None, init_fn: Callable[[], Any] | None = None):
        if not isinstance(checkpoint, Checkpoint):
            raise TypeError("CheckpointManager needs a tf.train.Checkpoint, got "
                            f"{type(checkpoint).__name__}")
        if max_to_keep is not None and (not isinstance(max_to_keep, int) or max_to_keep < 1):
            raise ValueError(f"max_to_keep must be a positive int or None (keep all), "
                             f"got {max_to_keep!r}")
        if not re.fullmatch(r"[A-Za-z0-9_.]+", checkpoint_name or ""):
            raise ValueError(f"checkpoint_name must be letters, digits, '_' or '.', got "
                             f"{checkpoint_name!r}")
        if checkpoint_interval is not None:
            if step_counter is None:
                raise ValueError("checkpoint_interval needs a step_counter")
            if not isinstance(checkpoint_interval, int) or checkpoint_interval < 1:
                raise ValueError(f"checkpoint_interval must be a positive int, got "
                                 f"{checkpoint_interval!r}")
        self._checkpoint = checkpoint
        self.directory = os.fspath(directory)
        self._max_to_keep = max_to_keep
        self._keep_hours = keep_checkpoint_every_n_hours
        self._name = checkpoint_name
        self._step_counter = step_counter
        self._interval = checkpoint_interval
        self._init_fn = init_fn
        self._last_step: int | None = None
        state = read_index(self.directory) or CheckpointState()
        self._checkpoints: list[str] = list(state.all_model_checkpoint_paths)
        self._times: dict[str, float] = dict(zip(
            (os.path.basename(p) for p in self._checkpoints),
            state.all_model_checkpoint_timestamps))
        self._latest: str | None = state.model_checkpoint_path or None
        self._last_preserved = state.last_preserved_timestamp or time.time()

    @property
    def checkpoint(self) -> Checkpoint:
        return self._checkpoint

    @property
    def latest_checkpoint(self) -> str | None:
        return self._latest

    @property
    def checkpoints(self) -> list[str]:
        """The checkpoints kept, oldest first."""
        return list(self._checkpoints)

    @property
    def checkpoint_interval(self) -> int | None:
        return self._interval

    def _step(self) -> int:
        value = self._step_counter
        adapter = adapter_for(value, "step_counter") if not callable(value) else None
        value = value() if adapter is None else adapter.state(value)
        return int(np.asarray(value))

    def save(self, checkpoint_number: int | None = None, check_interval: bool = True,
             session: Any = None) -> str | None:
        """Write a checkpoint; returns its path, or None when ``checkpoint_interval`` says
        it is too early. Every worker calls it: the replicas are compared first (a worker
        whose state differs stops every worker with ``ReplicasDiverged`` and nothing is
        written), then only the chief writes. ``session``: where graph variables live
        (default: the default session).

        SIGTERM (ringrun stopping the job) waits on every worker from the first line until
        the file and the index are written: the workers that are saving all finish it. If
        a worker dies before its part (the gathering of random streams), the save is
        abandoned before any file is touched; its temporary files, if a kill left any, are
        removed by the next save.
        """
        with deferred_termination():
            return self._save(checkpoint_number, check_interval, session)

    def _save(self, checkpoint_number: int | None, check_interval: bool,
              session: Any) -> str | None:
        if self._interval is not None and check_interval:
            with using_session(session):
                step = self._step()
            if self._last_step is not None and step - self._last_step < self._interval:
                return None
            self._last_step = step
        if checkpoint_number is None:
            checkpoint_number = self._checkpoint.save_counter + 1
        elif not isinstance(checkpoint_number, (int, np.integer)) or checkpoint_number < 0:
            raise ValueError(f"checkpoint_number must be a non-negative int, got "
                             f"{checkpoint_number!r}")
        path = os.path.join(self.directory, f"{self._name}-{int(checkpoint_number)}")
        objects, workers = self._checkpoint._prepare(f"checkpoint {path}", session)
        self._checkpoint.save_counter += 1
        if is_chief():
            remove_stale_temporaries(self.directory, f"{self._name}-", INDEX_FILE)
        self._checkpoint._write(path, objects, workers)
        now = time.time()
        if path in self._checkpoints:
            self._checkpoints.remove(path)
        self._checkpoints.append(path)
        self._times[os.path.basename(path)] = now
        self._latest = path
        doomed = self._sweep(now)
        if is_chief():
            self._write_index()
            for old in doomed:
                try:
                    os.unlink(data_file(old))
                except FileNotFoundError:
                    pass
        return path

    def _sweep(self, now: float) -> list[str]:
        if self._max_to_keep is None:
            return []
        doomed = []
        while len(self._checkpoints) > self._max_to_keep:
            old = self._checkpoints.pop(0)
            saved_at = self._times.pop(os.path.basename(old), now)
            if self._keep_hours is not None and \
                    saved_at - self._last_preserved >= self._keep_hours * 3600:
                self._last_preserved = saved_at          # kept for good, out of rotation
                continue
            doomed.append(old)
        return doomed

    def _write_index(self) -> None:
        times = [self._times.get(os.path.basename(p), 0.0) for p in self._checkpoints]
        write_index(self.directory, CheckpointState(self._latest or "", list(self._checkpoints),
                                                    times, self._last_preserved))

    def restore_or_initialize(self, session: Any = None) -> str | None:
        """Restore the latest checkpoint (the chief's view) on every worker; with none, call
        ``init_fn``. Returns the restored path or None."""
        status = self._checkpoint.restore(self._latest, session=session)
        if status.save_path is None:
            if self._init_fn is not None:
                self._init_fn()
            return None
        self._latest = status.save_path
        return status.save_path


def all_checkpoint_files(directory: str | os.PathLike) -> Iterable[str]:
    """Every checkpoint data file in ``directory`` (for tests and cleanup)."""
    directory = os.fspath(directory)
    return sorted(os.path.join(directory, n) for n in os.listdir(directory)
                  if n.endswith(SUFFIX) and not n.startswith("."))
