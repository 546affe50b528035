"""Checkpoints: the chief writes them atomically, every worker restores, the last K are kept.

One checkpoint is one ``<prefix>-<n>.npz`` file (NumPy's zip of arrays, loaded without
pickle): the arrays of every tracked object plus a JSON record of the structure, the save
counter and non-array state (RNG states, data positions). ``CheckpointManager`` keeps a
``checkpoint`` index file (JSON) next to them.

Rules that keep a data-parallel job consistent:

- Only the chief writes (replicas are identical, so its copy is everyone's); the write path
  calls no collective, so a slow or failed write cannot deadlock the other workers. State
  that differs per worker (random streams) is gathered first, on every worker, and each
  worker gets its own back on restore.
- Every file appears whole or not at all (temporary file, fsync, rename; then the index).
- ``restore`` is called by every worker: the chief reads the file and broadcasts it, so all
  workers load the same checkpoint even without a shared filesystem.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import re
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, BinaryIO

import numpy as np

from . import errors

FORMAT = "ringtrain-checkpoint"
VERSION = 1
SUFFIX = ".npz"
INDEX_FILE = "checkpoint"


# --- atomic files -------------------------------------------------------------------------------

@contextlib.contextmanager
def deferred_termination() -> Iterator[None]:
    """Hold SIGTERM until the block ends, then act on it as usual.

    Stopping a job sends SIGTERM to every worker (SIGKILL follows after a grace period); a
    chief that is writing a checkpoint finishes the file first instead of leaving only the
    temporary one behind. Python handles signals in the main thread only, so elsewhere this is
    a no-op (the write stays atomic either way: it is a temporary file and a rename).
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
    # A SIGTERM (ringrun stopping the job) waits until the file is complete.
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
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


# --- the process group, seen from here (no collective unless the job has several workers) ----

def _group():
    """The communicator when this process is one of several workers, else None."""
    from .world import process_group

    if not process_group.is_initialized():
        return None
    comm = process_group.comm()
    return comm if comm.world_size > 1 else None


def is_chief() -> bool:
    """True on the worker that writes checkpoints (any process outside a multi-worker job)."""
    from .world import process_group

    return process_group.is_chief() if process_group.is_initialized() else True


def _chief_then_everyone(read: Callable[[], Any]) -> Any:
    """``read()`` on the chief, its result (or its error) on every worker.

    Only the chief touches the filesystem; an error there is sent to the others too, so every
    worker raises instead of some waiting forever in the broadcast.
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


# --- encoding state trees ----------------------------------------------------------------------

def _encode(tree: Any, arrays: dict[str, np.ndarray], path: str) -> Any:
    """A JSON-able copy of ``tree`` with arrays moved into ``arrays`` (keyed by path)."""
    if isinstance(tree, (np.bool_, np.str_)):
        return tree.item()
    if isinstance(tree, (np.ndarray, np.generic)):
        key = path or "value"
        if key in arrays:                   # a dict key with '/' in it can repeat a path
            key = f"{key}#{len(arrays)}"
        arrays[key] = np.asarray(tree)
        return {"__array__": key}
    if isinstance(tree, dict):
        out = {}
        for key, value in tree.items():
            if not isinstance(key, str):
                raise TypeError(f"checkpoint state keys must be strings, got {key!r} at {path!r}")
            out[key] = _encode(value, arrays, f"{path}/{key}" if path else key)
        return out
    if isinstance(tree, (list, tuple)):
        return {"__list__": [_encode(v, arrays, f"{path}/{i}") for i, v in enumerate(tree)]}
    if tree is None or isinstance(tree, (bool, int, float, str)):
        return tree
    raise TypeError(f"cannot checkpoint a {type(tree).__name__} at {path!r}: state must be "
                    "arrays, numbers, strings and dicts/lists of them")


def _decode(tree: Any, arrays: Any) -> Any:
    if isinstance(tree, dict):
        if "__array__" in tree:
            return np.array(arrays[tree["__array__"]])
        if "__list__" in tree:
            return [_decode(v, arrays) for v in tree["__list__"]]
        return {k: _decode(v, arrays) for k, v in tree.items()}
    return tree


def dumps(tree: Any, **meta: Any) -> bytes:
    """The bytes of a checkpoint file holding ``tree`` (see the module docstring)."""
    arrays: dict[str, np.ndarray] = {}
    record = {"format": FORMAT, "version": VERSION, **meta, "tree": _encode(tree, arrays, "")}
    payload = {f"a/{k}": v for k, v in arrays.items()}
    payload["__meta__"] = np.frombuffer(json.dumps(record).encode(), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **payload)
    return buffer.getvalue()


def loads(data: bytes, what: str = "checkpoint") -> tuple[Any, dict]:
    """``(tree, meta)`` from the bytes of a checkpoint file."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            record = json.loads(bytes(npz["__meta__"]).decode())
            arrays = {k[2:]: npz[k] for k in npz.files if k.startswith("a/")}
    except (ValueError, KeyError, OSError, json.JSONDecodeError) as exc:
        raise errors.InvalidArgumentError(f"{what} is not a ringtrain checkpoint ({exc})") \
            from None
    if record.get("format") != FORMAT:
        raise errors.InvalidArgumentError(f"{what} is not a ringtrain checkpoint")
    tree = _decode(record.pop("tree"), arrays)
    return tree, record


def write_state(path: str | os.PathLike, tree: Any, **meta: Any) -> None:
    """Write ``tree`` (arrays, numbers, strings, dicts, lists) to ``path`` atomically.

    Call it on the chief only (``is_chief()``); it never communicates.
    """
    data = dumps(tree, **meta)
    atomic_write(path, lambda f: f.write(data))


def read_state(path: str | os.PathLike) -> tuple[Any, dict]:
    """``(tree, meta)`` of the checkpoint file at ``path`` (this process only)."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise errors.NotFoundError(f"checkpoint file {path!r} does not exist") from None
    return loads(data, what=repr(path))


def read_state_everywhere(path: str | os.PathLike | None
                          ) -> tuple[str | None, Any, dict | None]:
    """``(path, tree, meta)`` read on the chief and sent to every worker (all must call it).

    The chief's ``path`` decides; ``None`` there means "nothing to read" on every worker
    (``(None, None, None)``).
    """
    def read():
        if path is None:
            return None, None, None
        return (os.fspath(path), *read_state(_data_file(path)))

    return _chief_then_everyone(read)


def _data_file(path: str | os.PathLike) -> str:
    path = os.fspath(path)
    return path if path.endswith(SUFFIX) else path + SUFFIX


# --- what can be tracked -----------------------------------------------------------------------

class _Adapter:
    """How to read and restore one kind of object.

    ``state``/``restore`` handle what replicas share (variables, data position): the chief's
    copy is everyone's. ``worker_state``/``restore_worker`` handle what differs per worker
    (random streams): every worker's copy is gathered into the checkpoint and each worker
    gets its own back. Either pair may be None.
    """

    def __init__(self, name: str, accepts: Callable[[Any], bool],
                 state: Callable[[Any], Any] | None, restore: Callable[[Any, Any], None] | None,
                 worker_state: Callable[[Any], Any] | None = None,
                 restore_worker: Callable[[Any, Any], None] | None = None):
        self.name, self.accepts = name, accepts
        self.state, self.restore = state, restore
        self.worker_state, self.restore_worker = worker_state, restore_worker


def _restore_array(obj: np.ndarray, value: Any) -> None:
    value = np.asarray(value)
    if value.shape != obj.shape:
        raise ValueError(f"checkpoint holds shape {value.shape}, the array has {obj.shape}")
    obj[...] = value


def _restore_weights(obj: Any, value: Any) -> None:
    obj.set_weights([np.asarray(v) for v in value])


def _restore_python_random(obj: random.Random, value: Any) -> None:
    version, internal, gauss = value
    obj.setstate((version, tuple(internal), gauss))


def _generator_state(gen: np.random.Generator) -> dict:
    return {"bit_generator": type(gen.bit_generator).__name__, "state": gen.bit_generator.state}


def _restore_generator(obj: np.random.Generator, value: Any) -> None:
    if value["bit_generator"] != type(obj.bit_generator).__name__:
        raise ValueError(f"checkpoint holds a {value['bit_generator']} generator state, the "
                         f"generator uses {type(obj.bit_generator).__name__}")
    obj.bit_generator.state = value["state"]


def _restore_random_state(obj: np.random.RandomState, value: Any) -> None:
    obj.set_state(value)


# --- graph state: variables live in a Session ---------------------------------------------------

_local = threading.local()


@contextlib.contextmanager
def _using_session(session: Any) -> Iterator[None]:
    previous = getattr(_local, "session", None)
    _local.session = session
    try:
        yield
    finally:
        _local.session = previous


def _core_module():
    return sys.modules.get("ringtrain.core")


def _is_core(obj: Any, *names: str) -> bool:
    core = _core_module()
    if core is None:
        return False
    types = tuple(t for t in (getattr(core, n, None) for n in names) if isinstance(t, type))
    return bool(types) and isinstance(obj, types)


def _session_for(graph: Any) -> Any:
    """The Session holding ``graph``'s variable values: the one passed to save/restore, else
    the default session, else the Keras session of that graph."""
    core = _core_module()
    for candidate in (getattr(_local, "session", None), core.get_default_session()):
        if candidate is not None and candidate.graph is graph:
            return candidate
    keras_state = getattr(graph, "_keras_state", None)   # a Keras model's graph
    if keras_state is not None:
        return keras_state.session
    raise ValueError("checkpointing graph variables needs their Session: pass session=sess to "
                     "save/restore, or call them inside `with sess.as_default():`")


def _variable_values(variables: list) -> list:
    if not variables:
        return []
    return [np.array(v, copy=True) for v in _session_for(variables[0].graph).run(variables)]


def _load_variables(variables: list, values: list) -> None:
    if not variables:
        return
    session = _session_for(variables[0].graph)
    for var, value in zip(variables, values):
        var.load(np.asarray(value), session)


def _named_variables_state(variables: list) -> dict:
    return dict(zip((v.op.name for v in variables), _variable_values(variables)))


def _restore_named_variables(variables: list, state: dict, what: str) -> None:
    missing = [v.op.name for v in variables if v.op.name not in state]
    if missing:
        raise KeyError(f"{what} in the checkpoint has no value for {missing}")
    _load_variables(variables, [state[v.op.name] for v in variables])


def _session_state(session: Any) -> dict:
    """Every initialized variable of the session's graph (shared by the replicas)."""
    graph = session.graph
    store = session._rt.store
    live = [v for v in graph._variables if v._index < len(store) and store[v._index] is not None]
    with _using_session(session):
        return _named_variables_state(live)


def _restore_session(session: Any, state: dict) -> None:
    by_name = {v.op.name: v for v in session.graph._variables}
    unknown = sorted(set(state) - set(by_name))
    if unknown:
        raise KeyError(f"the session's graph has no variables {unknown}")
    with _using_session(session):
        chosen = [by_name[n] for n in sorted(state)]
        _load_variables(chosen, [state[v.op.name] for v in chosen])


def _session_rng_state(session: Any) -> dict:
    """The session's random generators (dropout, random ops) by op name: per worker."""
    by_id = {op._id: op for op in session.graph.get_operations()}
    return {by_id[key].name: _generator_state(gen)
            for key, gen in session._rt._rngs.items() if key in by_id}


def _restore_session_rng(session: Any, state: dict) -> None:
    for op_name, value in state.items():
        op = session.graph.get_operation_by_name(op_name)
        gen = np.random.Generator(getattr(np.random, value["bit_generator"])())
        gen.bit_generator.state = value["state"]
        session._rt._rngs[op._id] = gen


def _is_optimizer(obj: Any) -> bool:
    """A TF1 (``tf.train``) or Keras optimizer: its state is its variables (slots, steps)."""
    for module_name in ("ringtrain.core.train", "ringtrain.keras.optimizers"):
        module = sys.modules.get(module_name)
        base = getattr(module, "Optimizer", None) if module is not None else None
        if isinstance(base, type) and isinstance(obj, base):
            return True
    return False


_ADAPTERS: list[_Adapter] = [
    _Adapter("protocol", lambda o: hasattr(o, "_checkpoint_state"),
             lambda o: o._checkpoint_state(), lambda o, v: o._restore_checkpoint_state(v)),
    _Adapter("graph variable", lambda o: _is_core(o, "Variable"),
             lambda o: _variable_values([o])[0], lambda o, v: _load_variables([o], [v])),
    _Adapter("session", lambda o: _is_core(o, "Session"), _session_state, _restore_session,
             _session_rng_state, _restore_session_rng),
    _Adapter("Keras model", lambda o: hasattr(o, "_training_state")
             and hasattr(o, "_restore_training_state"),
             lambda o: o._training_state(), lambda o, v: o._restore_training_state(v)),
    _Adapter("optimizer", _is_optimizer,
             lambda o: _named_variables_state(list(o.variables())),
             lambda o, v: _restore_named_variables(list(o.variables()), v, "the optimizer")),
    _Adapter("numpy Generator", lambda o: isinstance(o, np.random.Generator), None, None,
             _generator_state, _restore_generator),
    _Adapter("numpy RandomState", lambda o: isinstance(o, np.random.RandomState), None, None,
             lambda o: o.get_state(legacy=False), _restore_random_state),
    _Adapter("random.Random", lambda o: isinstance(o, random.Random), None, None,
             lambda o: o.getstate(), _restore_python_random),
    _Adapter("array", lambda o: isinstance(o, np.ndarray),
             lambda o: np.array(o, copy=True), _restore_array),
    _Adapter("weights", lambda o: hasattr(o, "get_weights") and hasattr(o, "set_weights"),
             lambda o: [np.asarray(w) for w in o.get_weights()], _restore_weights),
]


def register_adapter(accepts: Callable[[Any], bool], state: Callable[[Any], Any] | None,
                     restore: Callable[[Any, Any], None] | None, name: str = "custom",
                     worker_state: Callable[[Any], Any] | None = None,
                     restore_worker: Callable[[Any, Any], None] | None = None) -> None:
    """Teach checkpoints a new kind of object: ``state(obj)`` returns arrays/numbers/dicts/lists
    (the same on every replica), ``restore(obj, state)`` puts them back; ``worker_state`` /
    ``restore_worker`` do the same for state that differs per worker. Objects may instead
    define ``_checkpoint_state()`` and ``_restore_checkpoint_state(state)``."""
    _ADAPTERS.insert(1, _Adapter(name, accepts, state, restore, worker_state, restore_worker))


def _adapter_for(obj: Any, name: str) -> _Adapter:
    for adapter in _ADAPTERS:
        if adapter.accepts(obj):
            return adapter
    raise TypeError(f"cannot checkpoint {name}={type(obj).__name__}: track variables, models "
                    "and optimizers (get_weights/set_weights), NumPy arrays, random generators, "
                    "iterators of strategy.experimental_distribute_dataset, or objects with "
                    "_checkpoint_state()/_restore_checkpoint_state()")


# --- Checkpoint ---------------------------------------------------------------------------------

def _guarded(adapter: _Adapter, name: str, fn: Callable[[Any, Any], None], obj: Any,
             value: Any) -> None:
    try:
        fn(obj, value)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise ValueError(f"cannot restore {name} ({adapter.name}) from the checkpoint: "
                         f"{exc}") from exc


def _worker_index() -> int:
    from .world import process_group

    return process_group.rank() if process_group.is_initialized() else 0


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
                _adapter_for(leaf, path)          # raises for what cannot be checkpointed
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
        adapter = _adapter_for(obj, name)
        return adapter.state(obj) if adapter.state is not None else None

    def _state(self) -> dict:
        return {"objects": {name: self._state_of(obj, name)
                            for name, obj in self._objects.items()},
                "save_counter": self.save_counter}

    def _per_worker(self) -> list[tuple[str, Any, _Adapter]]:
        out = []
        for name, obj in self._objects.items():
            for path, leaf in self._walk(obj, name):
                adapter = _adapter_for(leaf, path)
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
        comm = _group()
        return [mine] if comm is None else list(comm.allgather_object(mine))

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
            adapter = _adapter_for(obj, name)
            if adapter.restore is not None:
                _guarded(adapter, name, adapter.restore, obj, value)

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
        mine = workers[_worker_index() % len(workers)]
        for path, leaf, adapter in per_worker:
            if path not in mine:
                raise errors.NotFoundError(f"checkpoint has no per-worker entry for {path}")
            _guarded(adapter, path, adapter.restore_worker, leaf, mine[path])

    # files
    def write(self, file_prefix: str | os.PathLike, session: Any = None) -> str:
        """Write a checkpoint to ``file_prefix`` (+ ``.npz``) without numbering it; returns
        the path to pass to ``restore``. The chief writes; other workers only return the path.
        ``session``: where graph variables live (default: the default session).
        """
        with _using_session(session):
            workers = self._worker_states()            # the one collective, on every worker
        return self._write(file_prefix, workers, session)

    def _write(self, file_prefix: str | os.PathLike, workers: list[dict] | None,
               session: Any) -> str:
        """The chief writes (no collective here); every worker returns the path."""
        path = os.fspath(file_prefix).removesuffix(SUFFIX)
        if is_chief():
            with _using_session(session):
                state = self._state()
            state["workers"] = workers
            write_state(path + SUFFIX, state, time=time.time())
        return path

    def save(self, file_prefix: str | os.PathLike, session: Any = None) -> str:
        """Increment ``save_counter`` and write ``file_prefix-<save_counter>``."""
        self.save_counter += 1
        return self.write(f"{os.fspath(file_prefix)}-{self.save_counter}", session=session)

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
        with _using_session(session):
            restored, unused = self._restore(state)
            self._restore_workers(state.get("workers"))
        return CheckpointLoadStatus(chief_path, restored, unused)


def latest_checkpoint(checkpoint_dir: str | os.PathLike) -> str | None:
    """The newest checkpoint a ``CheckpointManager`` recorded in ``checkpoint_dir``, or None."""
    index = _read_index(os.fspath(checkpoint_dir))
    return index["latest"] if index else None


def _read_index(directory: str) -> dict | None:
    try:
        with open(os.path.join(directory, INDEX_FILE)) as f:
            index = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as exc:
        raise errors.InvalidArgumentError(f"checkpoint index {directory}/{INDEX_FILE} is "
                                          f"unreadable ({exc})") from None
    paths = [os.path.join(directory, name) for name in index.get("all", [])]
    latest = index.get("latest")
    return {"latest": os.path.join(directory, latest) if latest else None, "all": paths,
            "times": index.get("times", {})}


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
        index = _read_index(self.directory)
        self._checkpoints: list[str] = index["all"] if index else []
        self._times: dict[str, float] = index["times"] if index else {}
        self._latest: str | None = index["latest"] if index else None
        self._last_preserved = time.time()

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
        adapter = _adapter_for(value, "step_counter") if not callable(value) else None
        value = value() if adapter is None else adapter.state(value)
        return int(np.asarray(value))

    def save(self, checkpoint_number: int | None = None, check_interval: bool = True,
             session: Any = None) -> str | None:
        """Write a checkpoint; returns its path, or None when ``checkpoint_interval`` says
        it is too early. Every worker calls it (only the chief writes). ``session``: where
        graph variables live (default: the default session)."""
        if self._interval is not None and check_interval:
            with _using_session(session):
                step = self._step()
            if self._last_step is not None and step - self._last_step < self._interval:
                return None
            self._last_step = step
        if checkpoint_number is None:
            checkpoint_number = self._checkpoint.save_counter + 1
        elif not isinstance(checkpoint_number, (int, np.integer)) or checkpoint_number < 0:
            raise ValueError(f"checkpoint_number must be a non-negative int, got "
                             f"{checkpoint_number!r}")
        self._checkpoint.save_counter += 1
        prefix = os.path.join(self.directory, f"{self._name}-{int(checkpoint_number)}")
        with _using_session(session):
            workers = self._checkpoint._worker_states()      # collective: before SIGTERM waits
        # A SIGTERM (ringrun stopping the job) waits until the file and the index are written.
        with deferred_termination():
            path = self._checkpoint._write(prefix, workers, session)
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
                        os.unlink(_data_file(old))
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
        names = [os.path.basename(p) for p in self._checkpoints]
        index = {"latest": os.path.basename(self._latest) if self._latest else None,
                 "all": names, "times": {n: self._times.get(n) for n in names}}
        data = json.dumps(index, indent=1).encode()
        atomic_write(os.path.join(self.directory, INDEX_FILE), lambda f: f.write(data))

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
