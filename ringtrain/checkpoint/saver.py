"""``tf.train.Saver``: TensorFlow 1's name-based checkpoints of graph variables.

``saver.save(sess, "dir/model.ckpt", global_step=100)`` writes ``dir/model.ckpt-100.npz`` (our
checkpoint file: every variable's value by name) and updates ``dir/checkpoint``, TensorFlow's
index, so ``tf.train.latest_checkpoint`` and ``tf.train.get_checkpoint_state`` find it; it
returns the prefix ``dir/model.ckpt-100`` that ``restore`` takes. As with our other
checkpoints only the chief writes, every file appears whole or not at all, and ``restore``,
called by every worker, gives every worker the chief's values. No ``.meta`` graph file is
written (rebuild the graph in Python, then restore).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import Any

import numpy as np

from .. import core, errors
from . import fileformat
from .fileformat import SUFFIX, data_file, read_state_everywhere
from .files import deferred_termination
from .index import CheckpointState, read_index, write_index
from .workers import is_chief

_UNSUPPORTED = {
    "reshape": "restoring into variables of another shape",
    "saver_def": "building a Saver from a SaverDef",
    "builder": "a custom SaverBuilder",
}


class Saver:
    """Saves and restores graph variables by name (TensorFlow 1's ``tf.train.Saver``).

    ``var_list``: the variables (a list, keyed by their op names, or a dict name -> variable);
    default every global variable of the default graph when the Saver is made.
    ``max_to_keep``: the newest checkpoints this Saver keeps (older files are deleted); None
    or 0 keeps all files and lists only the latest in the index. One checkpoint every
    ``keep_checkpoint_every_n_hours`` is kept out of that rotation.
    """

    def __init__(self, var_list: Any = None, reshape: bool = False, sharded: bool = False,
                 max_to_keep: int | None = 5, keep_checkpoint_every_n_hours: float = 10000.0,
                 name: str | None = None, restore_sequentially: bool = False,
                 saver_def: Any = None, builder: Any = None, defer_build: bool = False,
                 allow_empty: bool = False, write_version: Any = None,
                 pad_step_number: bool = False, save_relative_paths: bool = False,
                 filename: str | None = None):
        for arg, value in (("reshape", reshape), ("saver_def", saver_def),
                           ("builder", builder)):
            if value:
                raise errors.UnsupportedFeatureError(
                    f"tf.train.Saver({arg}=...) ({_UNSUPPORTED[arg]}) is not supported by "
                    f"ringtrain; save and restore variables of the same shapes by name")
        if max_to_keep is not None and (not isinstance(max_to_keep, int) or max_to_keep < 0):
            raise ValueError(f"max_to_keep must be a non-negative int or None, got "
                             f"{max_to_keep!r}")
        self._variables = _named(var_list)
        if not self._variables and not allow_empty:
            raise ValueError("No variables to save: create the variables before the Saver, "
                             "or pass allow_empty=True")
        self._max_to_keep = max_to_keep or 0
        self._keep_seconds = float(keep_checkpoint_every_n_hours) * 3600
        self._next_kept_time = time.time() + self._keep_seconds
        self._pad_step_number = pad_step_number
        self._last: list[tuple[str, float]] = []      # (prefix, time), oldest first

    # -- what TensorFlow's Saver also offers --
    @property
    def last_checkpoints(self) -> list[str]:
        """The checkpoints this Saver has not deleted, oldest first."""
        return [path for path, _ in self._last]

    def set_last_checkpoints_with_time(self, last_checkpoints_with_time: Iterable) -> None:
        self._last = [(os.fspath(p), float(t)) for p, t in last_checkpoints_with_time]

    def recover_last_checkpoints(self, checkpoint_paths: Iterable[str]) -> None:
        """Adopt the existing ``checkpoint_paths`` (e.g. ``get_checkpoint_state(d)
        .all_model_checkpoint_paths``) so the rotation deletes them in turn."""
        now = time.time()
        self._last = [(os.fspath(p), now) for p in checkpoint_paths
                      if os.path.exists(data_file(p))]

    def build(self) -> None:
        """Nothing to build (kept for ``defer_build=True`` programs)."""

    # -- saving --
    def save(self, sess: Any, save_path: str | os.PathLike, global_step: Any = None,
             latest_filename: str | None = None, meta_graph_suffix: str = "meta",
             write_meta_graph: bool = True, write_state: bool = True,
             strip_default_attrs: bool = False, save_debug_info: bool = False) -> str:
        """Write the variables' values in ``sess`` to ``save_path`` (``-<global_step>``
        appended when given) and return that path prefix. Only the chief writes; calling it
        on every worker or on the chief alone are both fine (no collective)."""
        prefix = os.fspath(save_path).removesuffix(SUFFIX)
        if global_step is not None:
            step = global_step if isinstance(global_step, (int, np.integer)) else \
                core.train.global_step(sess, global_step)
            prefix = f"{prefix}-{int(step):08d}" if self._pad_step_number else \
                f"{prefix}-{int(step)}"
        directory = os.path.dirname(os.path.abspath(prefix))
        if not os.path.isdir(directory):
            raise ValueError(f"Parent directory of {save_path} doesn't exist, can't save: "
                             f"create {directory!r} first")
        if not is_chief():
            return prefix
        names = sorted(self._variables)
        values = sess.run([self._variables[n] for n in names])
        with deferred_termination():       # a SIGTERM waits for the file and the index
            fileformat.write_state(prefix + SUFFIX, {"variables": dict(zip(names, values))},
                        kind="saver", time=time.time())
            self._record(prefix)
            if write_state:
                latest = self.last_checkpoints if self._max_to_keep else [prefix]
                write_index(os.path.dirname(prefix) or ".",
                            CheckpointState(prefix, latest, [t for p, t in self._last
                                                             if p in latest]),
                            latest_filename)
        return prefix

    def _record(self, prefix: str) -> None:
        """Put ``prefix`` last in the rotation and delete what falls out of it."""
        self._last = [(p, t) for p, t in self._last if p != prefix]
        self._last.append((prefix, time.time()))
        if not self._max_to_keep:
            return
        while len(self._last) > self._max_to_keep:
            old, saved_at = self._last.pop(0)
            if saved_at > self._next_kept_time:        # kept for good, out of the rotation
                self._next_kept_time += self._keep_seconds
                continue
            try:
                os.unlink(data_file(old))
            except FileNotFoundError:
                pass

    # -- restoring --
    def restore(self, sess: Any, save_path: str | os.PathLike | None) -> None:
        """Load the variables from the checkpoint ``save_path`` (a prefix ``save`` returned)
        into ``sess``. Every worker calls it: the chief reads its file, every worker gets
        the chief's values."""
        if save_path is None:
            raise ValueError("Can't load save_path when it is None.")
        try:
            _path, tree, meta = read_state_everywhere(os.fspath(save_path))
        except errors.NotFoundError as exc:
            raise ValueError(f"The passed save_path is not a valid checkpoint: "
                             f"{os.fspath(save_path)} ({exc})") from None
        saved = tree.get("variables") if isinstance(tree, dict) else None
        if meta.get("kind") != "saver" or not isinstance(saved, dict):
            raise errors.InvalidArgumentError(
                f"{os.fspath(save_path)} was not written by tf.train.Saver; restore it with "
                f"tf.train.Checkpoint")
        for name in sorted(self._variables):
            if name not in saved:
                raise errors.NotFoundError(
                    f"Key {name} not found in checkpoint {os.fspath(save_path)} (it holds "
                    f"{sorted(saved)[:10]}); name the variables as when they were saved, or "
                    f"pass var_list={{saved_name: variable}}")
            variable = self._variables[name]
            value = np.asarray(saved[name])
            expected = tuple(variable.shape.as_list())
            if value.shape != expected:
                raise errors.InvalidArgumentError(
                    f"Assign requires shapes of both tensors to match: {name} is "
                    f"{expected} in the graph and {value.shape} in {os.fspath(save_path)}")
            variable.load(value, sess)

    def as_saver_def(self) -> Any:
        raise errors.UnsupportedFeatureError(
            "tf.train.Saver.as_saver_def is not supported by ringtrain (there is no SaverDef)")

    def export_meta_graph(self, *args: Any, **kwargs: Any) -> Any:
        raise errors.UnsupportedFeatureError(
            "tf.train.Saver.export_meta_graph is not supported by ringtrain (no MetaGraphDef "
            "files); rebuild the graph in Python and restore the variables")


def _named(var_list: Any) -> dict[str, Any]:
    if var_list is None:
        var_list = core.global_variables()
    if isinstance(var_list, dict):
        named = {str(k): v for k, v in var_list.items()}
    else:
        named = {}
        for variable in var_list:
            name = variable.op.name
            if name in named:
                raise ValueError(f"At least two variables have the same name: {name}")
            named[name] = variable
    for name, variable in named.items():
        if not isinstance(variable, core.Variable):
            raise TypeError(f"Saver's var_list holds {type(variable).__name__} for {name!r}; "
                            f"give tf.Variable objects")
    return named


def get_checkpoint_state(checkpoint_dir: str | os.PathLike,
                         latest_filename: str | None = None) -> CheckpointState | None:
    """The ``checkpoint`` index of ``checkpoint_dir`` (paths joined to it), or None."""
    state = read_index(checkpoint_dir, latest_filename)
    if state is not None and not state.model_checkpoint_path:
        raise ValueError(f"Invalid checkpoint state loaded from {os.fspath(checkpoint_dir)}: "
                         f"it names no model_checkpoint_path")
    return state


def checkpoint_exists(checkpoint_prefix: str | os.PathLike) -> bool:
    """Whether a checkpoint with this prefix (as ``save`` returned it) exists."""
    return os.path.exists(data_file(checkpoint_prefix))
