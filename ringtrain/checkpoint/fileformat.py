"""The checkpoint file: one NumPy ``.npz`` (loaded without pickle) holding a state tree.

A state tree is arrays, numbers, strings and dicts/lists of them. Its arrays are stored as
``a/<path>`` members; a JSON record (``__meta__``) holds the structure, the format name and
version, and whatever the writer adds (time, save counter).
"""

from __future__ import annotations

import io
import json
import os
from typing import Any

import numpy as np

from .. import errors
from .files import atomic_write
from .workers import chief_then_everyone

FORMAT = "ringtrain-checkpoint"
VERSION = 1
SUFFIX = ".npz"


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
    """The bytes of a checkpoint file holding ``tree``."""
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
        return (os.fspath(path), *read_state(data_file(path)))

    return chief_then_everyone(read)


def data_file(path: str | os.PathLike) -> str:
    """The file of the checkpoint ``path`` (a prefix with or without ``.npz``)."""
    path = os.fspath(path)
    return path if path.endswith(SUFFIX) else path + SUFFIX
