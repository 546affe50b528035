"""The checkpoint file: one NumPy ``.npz`` (loaded without pickle) holding a state tree.

A state tree is arrays, numbers, strings and dicts/lists of them. Its arrays are stored as
``a/<path>`` members; a JSON record (``__meta__``) holds the structure, the format name and
version, and whatever the writer adds (time, save counter).
"""

from __future__ import annotations

import io
import json
import os
import zipfile
import zlib
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


# What to do about a damaged checkpoint file, unless the caller knows better.
DAMAGED_ADVICE = ("Put back a good copy, or move it away and restore an earlier checkpoint "
                  "(for a CheckpointManager directory, also remove its name from the "
                  "'checkpoint' index file)")


def loads(data: bytes, what: str = "checkpoint", advice: str = DAMAGED_ADVICE
          ) -> tuple[Any, dict]:
    """``(tree, meta)`` from the bytes of a checkpoint file; ``errors.DataLossError`` naming
    ``what``, what is wrong with it and ``advice`` when they are not one."""
    def damaged(problem: str) -> errors.DataLossError:
        return errors.DataLossError(f"{what} is damaged: {problem}. {advice}.")

    if not data:
        raise damaged("it is empty (0 bytes; a copy or a disk that filled up?)")
    if not data.startswith(b"PK"):
        raise damaged(f"it is not a NumPy .npz archive (it starts with {data[:8]!r})")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            if "__meta__" not in npz.files:
                raise damaged("it holds no ringtrain record (__meta__): it was not "
                              "written by ringtrain's checkpoints")
            raw = bytes(npz["__meta__"])
            arrays = {k[2:]: npz[k] for k in npz.files if k.startswith("a/")}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise damaged(f"its zip archive is truncated or corrupt ({exc})") from None
    try:
        record = json.loads(raw.decode("utf-8"))
    except ValueError as exc:           # UnicodeDecodeError and JSONDecodeError
        raise damaged(f"its ringtrain record (__meta__) is not JSON text ({exc})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT or "tree" not in record:
        raise damaged("its record (__meta__) is not a ringtrain checkpoint's")
    version = record.get("version")
    if not isinstance(version, int):
        raise damaged(f"its record has no format version (got {version!r})")
    if version > VERSION:
        raise errors.DataLossError(
            f"{what} was written by a newer ringtrain (checkpoint format version {version}; "
            f"this one reads up to {VERSION}). Restore it with that version of ringtrain.")
    try:
        tree = _decode(record.pop("tree"), arrays)
    except (KeyError, TypeError) as exc:
        raise damaged(f"its record names arrays the archive lacks ({exc})") from None
    return tree, record


def write_state(path: str | os.PathLike, tree: Any, **meta: Any) -> None:
    """Write ``tree`` (arrays, numbers, strings, dicts, lists) to ``path`` atomically.

    Call it on the chief only (``is_chief()``); it never communicates.
    """
    data = dumps(tree, **meta)
    atomic_write(path, lambda f: f.write(data))


def read_state(path: str | os.PathLike, advice: str = DAMAGED_ADVICE) -> tuple[Any, dict]:
    """``(tree, meta)`` of the checkpoint file at ``path`` (this process only)."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise errors.NotFoundError(
            f"checkpoint file {path!r} does not exist: check the path (the 'checkpoint' index "
            f"of a directory names the checkpoints kept there; a worker restores the chief's "
            f"files)") from None
    except OSError as exc:
        raise errors.DataLossError(f"checkpoint file {path!r} cannot be read ({exc})") from None
    return loads(data, what=f"checkpoint file {path!r}", advice=advice)


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
