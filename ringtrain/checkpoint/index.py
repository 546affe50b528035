"""The ``checkpoint`` index file of a checkpoint directory, in TensorFlow's text format.

TensorFlow's ``Saver`` and ``CheckpointManager`` both keep a ``checkpoint`` file (a
``CheckpointState`` protocol buffer in text form) naming the latest checkpoint and the kept
ones::

    model_checkpoint_path: "ckpt-4"
    all_model_checkpoint_paths: "ckpt-3"
    all_model_checkpoint_paths: "ckpt-4"
    all_model_checkpoint_timestamps: 1733550000.5
    all_model_checkpoint_timestamps: 1733550060.25
    last_preserved_timestamp: 1733549000.0

Paths inside the directory are written relative to it and read back joined to it, as
TensorFlow does. Only the chief writes the file (atomically); a damaged one is an error that
names it and says what to do (TensorFlow would ignore it and start over).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re

from .. import errors
from .files import atomic_write

INDEX_FILE = "checkpoint"

_LINE = re.compile(r'([a-z_]+):\s*(?:"((?:[^"\\]|\\.)*)"|([-+0-9.eE]+|inf|nan))\s*')


@dataclasses.dataclass
class CheckpointState:
    """``tf.train.get_checkpoint_state``'s answer (TensorFlow's ``CheckpointState``)."""

    model_checkpoint_path: str = ""
    all_model_checkpoint_paths: list[str] = dataclasses.field(default_factory=list)
    all_model_checkpoint_timestamps: list[float] = dataclasses.field(default_factory=list)
    last_preserved_timestamp: float = 0.0


def index_path(directory: str | os.PathLike, latest_filename: str | None = None) -> str:
    return os.path.join(os.fspath(directory), latest_filename or INDEX_FILE)


def read_index(directory: str | os.PathLike, latest_filename: str | None = None
               ) -> CheckpointState | None:
    """The index of ``directory`` (paths joined to it), or None when it has none."""
    path = index_path(directory, latest_filename)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise errors.DataLossError(f"checkpoint index {path!r} cannot be read ({exc})") from None
    state = _parse(data, path, os.fspath(directory))
    directory = os.fspath(directory)

    def full(name: str) -> str:
        return name if os.path.isabs(name) else os.path.join(directory, name)

    state.model_checkpoint_path = full(state.model_checkpoint_path) \
        if state.model_checkpoint_path else ""
    state.all_model_checkpoint_paths = [full(p) for p in state.all_model_checkpoint_paths]
    return state


def write_index(directory: str | os.PathLike, state: CheckpointState,
                latest_filename: str | None = None) -> None:
    """Write ``state`` as ``directory``'s index, atomically (call it on the chief only)."""
    directory = os.fspath(directory)

    def name(path: str) -> str:
        inside = os.path.dirname(os.path.abspath(path)) == os.path.abspath(directory)
        return os.path.basename(path) if inside else path

    lines = [f"model_checkpoint_path: {_quote(name(state.model_checkpoint_path))}"]
    lines += [f"all_model_checkpoint_paths: {_quote(name(p))}"
              for p in state.all_model_checkpoint_paths]
    lines += [f"all_model_checkpoint_timestamps: {t!r}"
              for t in state.all_model_checkpoint_timestamps]
    lines.append(f"last_preserved_timestamp: {state.last_preserved_timestamp!r}")
    data = ("\n".join(lines) + "\n").encode()
    atomic_write(index_path(directory, latest_filename), lambda f: f.write(data))


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _parse(data: bytes, path: str, directory: str) -> CheckpointState:
    def damaged(problem: str) -> errors.DataLossError:
        found = sorted(n.removesuffix(".npz") for n in _listdir(directory)
                       if n.endswith(".npz") and not n.startswith("."))
        advice = (f"The directory holds {', '.join(found)}: to resume from the newest, "
                  f"replace the index with the line model_checkpoint_path: \"{found[-1]}\"; "
                  f"to start over, delete the directory" if found else
                  "Delete it to start over")
        return errors.DataLossError(f"checkpoint index {path!r} is damaged: {problem}. "
                                    f"{advice}.")

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise damaged(f"it is not text ({exc})") from None
    stripped = text.lstrip()
    if stripped.startswith("{"):           # the JSON index of ringtrain before 0.2
        return _parse_json(stripped, damaged)
    state = CheckpointState()
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _LINE.fullmatch(line.strip())
        if match is None:
            raise damaged(f"line {number} is not 'field: value' ({line[:60]!r})")
        key, quoted, number_text = match.groups()
        try:
            if key in ("model_checkpoint_path", "all_model_checkpoint_paths") and \
                    quoted is not None:
                value = json.loads(f'"{quoted}"')
                if key == "model_checkpoint_path":
                    state.model_checkpoint_path = value
                else:
                    state.all_model_checkpoint_paths.append(value)
            elif key == "all_model_checkpoint_timestamps" and number_text is not None:
                state.all_model_checkpoint_timestamps.append(float(number_text))
            elif key == "last_preserved_timestamp" and number_text is not None:
                state.last_preserved_timestamp = float(number_text)
            else:
                raise ValueError(f"unknown field or wrong kind of value: {key}")
        except ValueError as exc:
            raise damaged(f"line {number}: {exc}") from None
    return state


def _parse_json(text: str, damaged) -> CheckpointState:
    try:
        index = json.loads(text)
        names = index.get("all", [])
        times = index.get("times", {})
        if not all(isinstance(n, str) for n in names):
            raise TypeError("'all' must list names")
        return CheckpointState(index.get("latest") or "", list(names),
                               [float(times.get(n) or 0.0) for n in names])
    except (ValueError, TypeError, AttributeError) as exc:
        raise damaged(f"it is not a valid index ({exc})") from None


def _listdir(directory: str) -> list[str]:
    try:
        return os.listdir(directory)
    except OSError:
        return []
