"""``tf.train.Checkpoint``: named objects saved to one file by the chief, restored everywhere."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from .. import errors
from .fileformat import SUFFIX, read_state_everywhere, write_state
from .files import deferred_termination
from .tracking import Adapter, adapter_for, guarded
from .workers import (
    check_replicas_before_save,
    gather_from_workers,
    is_chief,
    replicas_checked,
    worker_index,
)


def using_session(session: Any) -> contextlib.AbstractContextManager:
    """Graph objects read and restore their values in the default session: make it
    ``session`` (None: leave the default as it is)."""
    return contextlib.nullcontext() if session is None else session.as_default()


def numeric_leaves(state: Any, path: str) -> list[tuple[str, np.ndarray]]:
    """Every number or numeric array in the ``state`` tree (dicts, lists), by path."""
    if isinstance(state, dict):
        return [leaf for k, v in state.items() for leaf in numeric_leaves(v, f"{path}/{k}")]
    if isinstance(state, (list, tuple)):
        return [leaf for i, v in enumerate(state) for leaf in numeric_leaves(v, f"{path}/{i}")]
    if state is None or isinstance(state, (str, bytes)):
        return []
    array = np.asarray(state)
    return [(path, array)] if array.dtype.kind in "biufc" else []


class CheckpointLoadStatus:
    """What ``Checkpoint.restore`` did; ``save_path`` is None when there was nothing to load."""

    def __init__(self, save_path: str | None, restored: list[str], unused: list[str]):
        self.save_path = save_path
        self.restored = restored
        self.unused = unused

    def assert_consumed(self) -> CheckpointLoadStatus:
        if self.save_path is not None and self.unused:
            raise AssertionError(f"checkpoint {self.save_path} holds objects nothing restored: "
                                 f"{self.unused}")
        return self

    def assert_existing_objects_matched(self) -> CheckpointLoadStatus:
        return self

    def expect_partial(self) -> CheckpointLoadStatus:
        return self

    def __bool__(self) -> bool:
        return self.save_path is not None


class Checkpoint:
    """``tf.train.Checkpoint``: ``Checkpoint(model=model, optimizer=opt, rng=gen, ...)``.

    ``save(prefix)`` numbers checkpoints ``prefix-1``, ``prefix-2``, ... (the number is the
    ``save_counter``, restored with the rest). Every worker calls ``save`` and ``restore``:
    only the chief writes, every worker restores (the chief's file, its own random streams).
    Graph variables are read from ``session=`` (default: the default session).
    """

    def __init__(self, root: Any = None, **objects: Any):
        if root is not None:
            objects = {"root": root, **objects}
        for name, obj in objects.items():
            if name == "save_counter":
                raise ValueError("'save_counter' is the checkpoint's own counter; name the "
                                 "object something else")
            for path, leaf in self._walk(obj, name):
                adapter_for(leaf, path)          # raises for what cannot be checkpointed
        self._objects = dict(objects)
        self.save_counter = 0

    def __getattr__(self, name: str) -> Any:
        objects = self.__dict__.get("_objects", {})
        if name in objects:
            return objects[name]
        raise AttributeError(f"Checkpoint tracks no object named {name!r}")

    # state
    @staticmethod
    def _walk(obj: Any, name: str) -> Iterator[tuple[str, Any]]:
        """Every tracked leaf object under ``obj`` with its path."""
        stack = [(name, obj)]
        while stack:
            path, item = stack.pop()
            if isinstance(item, Checkpoint):
                stack.extend((f"{path}/{k}", v) for k, v in reversed(item._objects.items()))
            elif isinstance(item, dict):
                stack.extend((f"{path}/{k}", v) for k, v in reversed(item.items()))
            elif isinstance(item, (list, tuple)):
                stack.extend((f"{path}/{i}", v) for i, v in reversed(list(enumerate(item))))
            else:
                yield path, item

    @staticmethod
    def _state_of(obj: Any, name: str) -> Any:
        if isinstance(obj, Checkpoint):
            return obj._state()
        if isinstance(obj, dict):
            return {str(k): Checkpoint._state_of(v, f"{name}/{k}") for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [Checkpoint._state_of(v, f"{name}/{i}") for i, v in enumerate(obj)]
        adapter = adapter_for(obj, name)
        return adapter.state(obj) if adapter.state is not None else None

    def _objects_state(self) -> dict:
        return {name: self._state_of(obj, name) for name, obj in self._objects.items()}

    def _state(self) -> dict:
        return {"objects": self._objects_state(), "save_counter": self.save_counter}

    def _replicated(self, objects: dict) -> list[tuple[str, np.ndarray]]:
        """The numeric leaves of ``objects`` (an ``_objects_state()``) that every replica must
        hold identically, by path: all but the keys an object declares per worker
        (``_checkpoint_unshared_keys()``, e.g. a Session's local variables)."""
        out: list[tuple[str, np.ndarray]] = []

        def visit(obj: Any, value: Any, path: str) -> None:
            if isinstance(obj, Checkpoint):
                for name, item in obj._objects.items():
                    visit(item, value["objects"][name], f"{path}/{name}")
            elif isinstance(obj, dict):
                for key, item in obj.items():
                    visit(item, value[str(key)], f"{path}/{key}")
            elif isinstance(obj, (list, tuple)):
                for i, item in enumerate(obj):
                    visit(item, value[i], f"{path}/{i}")
            else:
                unshared = getattr(obj, "_checkpoint_unshared_keys", lambda: ())()
                if isinstance(value, dict):
                    value = {k: v for k, v in value.items() if k not in unshared}
                out.extend(numeric_leaves(value, path))

        for name, obj in self._objects.items():
            visit(obj, objects[name], name)
        return out

    def _per_worker(self) -> list[tuple[str, Any, Adapter]]:
        out = []
        for name, obj in self._objects.items():
            for path, leaf in self._walk(obj, name):
                adapter = adapter_for(leaf, path)
                if adapter.worker_state is not None:
                    out.append((path, leaf, adapter))
        return out

    def _worker_states(self) -> list[dict] | None:
        """Every worker's per-worker state (random streams), in rank order; gathered from all
        workers (every worker calls save) before the chief alone writes."""
        per_worker = self._per_worker()
        if not per_worker:
            return None
        mine = {path: adapter.worker_state(leaf) for path, leaf, adapter in per_worker}
        return gather_from_workers(mine)

    @staticmethod
    def _restore_into(obj: Any, value: Any, name: str) -> None:
        if isinstance(obj, Checkpoint):
            obj._restore(value)
        elif isinstance(obj, dict):
            for key, item in obj.items():
                if str(key) not in value:
                    raise errors.NotFoundError(f"checkpoint has no entry for {name}/{key}")
                Checkpoint._restore_into(item, value[str(key)], f"{name}/{key}")
        elif isinstance(obj, (list, tuple)):
            if len(value) != len(obj):
                raise ValueError(f"checkpoint holds {len(value)} entries for {name}, the object "
                                 f"has {len(obj)}")
            for i, item in enumerate(obj):
                Checkpoint._restore_into(item, value[i], f"{name}/{i}")
        else:
            adapter = adapter_for(obj, name)
            if adapter.restore is not None:
                guarded(adapter, name, adapter.restore, obj, value)

    def _restore(self, state: dict) -> tuple[list[str], list[str]]:
        saved = state["objects"]
        missing = [name for name in self._objects if name not in saved]
        if missing:
            raise errors.NotFoundError(f"checkpoint has no entry for {missing}; it holds "
                                       f"{sorted(saved)}")
        for name, obj in self._objects.items():
            self._restore_into(obj, saved[name], name)
        self.save_counter = int(state["save_counter"])
        return sorted(self._objects), sorted(set(saved) - set(self._objects))

    def _restore_workers(self, workers: list[dict] | None) -> None:
        per_worker = self._per_worker()
        if not per_worker:
            return
        if not workers:
            raise errors.NotFoundError("the checkpoint holds no per-worker state (random "
                                       "streams) for " + str([p for p, _, _ in per_worker]))
        # Worker r gets worker r's streams; with more workers than when it was saved, the
        # extra ones reuse earlier workers' streams (exact resumption needs the same count).
        mine = workers[worker_index() % len(workers)]
        for path, leaf, adapter in per_worker:
            if path not in mine:
                raise errors.NotFoundError(f"checkpoint has no per-worker entry for {path}")
            guarded(adapter, path, adapter.restore_worker, leaf, mine[path])

    # files
    def _prepare(self, what: str, session: Any) -> tuple[dict | None, list[dict] | None]:
        """Every worker's part of a save, before any file is touched (the only collectives):
        the objects' shared state, compared across the replicas first (``ReplicasDiverged``
        on every worker, nothing written, if they differ; None on workers that neither check
        nor write), and every worker's per-worker state in rank order."""
        with using_session(session):
            checked = replicas_checked()
            objects = self._objects_state() if checked or is_chief() else None
            if checked:
                check_replicas_before_save(lambda: self._replicated(objects), what)
            return objects, self._worker_states()

    def _write(self, path: str, objects: dict | None, workers: list[dict] | None) -> None:
        """The chief writes what ``_prepare`` gave (no collective here)."""
        if is_chief():
            write_state(path + SUFFIX, {"objects": objects, "save_counter": self.save_counter,
                                        "workers": workers}, time=time.time())

    def write(self, file_prefix: str | os.PathLike, session: Any = None) -> str:
        """Write a checkpoint to ``file_prefix`` (+ ``.npz``) without numbering it; returns
        the path to pass to ``restore``. Every worker calls it: the replicas are compared
        (see ``check_replicas_before_save``), then the chief writes and the other workers
        return the path. ``session``: where graph variables live (default: the default
        session). SIGTERM waits until the file is written (see ``CheckpointManager.save``).
        """
        path = os.fspath(file_prefix).removesuffix(SUFFIX)
        with deferred_termination():
            objects, workers = self._prepare(f"checkpoint {path}", session)
            self._write(path, objects, workers)
        return path

    def save(self, file_prefix: str | os.PathLike, session: Any = None) -> str:
        """Increment ``save_counter`` and write ``file_prefix-<save_counter>`` (the counter
        stays as it was when the replicas differ and nothing is written)."""
        path = f"{os.fspath(file_prefix)}-{self.save_counter + 1}"
        with deferred_termination():
            objects, workers = self._prepare(f"checkpoint {path}", session)
            self.save_counter += 1
            self._write(path, objects, workers)
        return path

    def read(self, save_path: str | os.PathLike | None, session: Any = None
             ) -> CheckpointLoadStatus:
        return self.restore(save_path, session=session)

    def restore(self, save_path: str | os.PathLike | None, session: Any = None
                ) -> CheckpointLoadStatus:
        """Load the checkpoint at ``save_path`` into the tracked objects, on every worker.

        In a job of several workers every worker must call this (the chief reads the file
        and sends it). ``None`` (e.g. ``manager.latest_checkpoint`` before the first save)
        restores nothing.
        """
        chief_path, state, _meta = read_state_everywhere(save_path)
        if chief_path is None:
            return CheckpointLoadStatus(None, [], [])
        with using_session(session):
            restored, unused = self._restore(state)
            self._restore_workers(state.get("workers"))
        return CheckpointLoadStatus(chief_path, restored, unused)


