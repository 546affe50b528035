"""Checkpoints: the chief writes them atomically, every worker restores, the last K are kept.

One checkpoint is one ``<prefix>-<n>.npz`` file (``fileformat``): the arrays of every tracked
object plus a JSON record of the structure, the save counter and non-array state (RNG states,
data positions). ``CheckpointManager`` keeps a ``checkpoint`` index file (JSON) next to them.

Rules that keep a data-parallel job consistent:

- Only the chief writes (replicas are identical, so its copy is everyone's); the write path
  calls no collective, so a slow or failed write cannot deadlock the other workers. State
  that differs per worker (random streams) is gathered first, on every worker, and each
  worker gets its own back on restore.
- Every file appears whole or not at all (``files``: temporary file, fsync, rename; then the
  index).
- Saves that every worker calls (``Checkpoint.write``/``save``, ``CheckpointManager.save``,
  Keras ``ModelCheckpoint``, ``BackupAndRestore`` and ``Model.save`` under a multi-worker
  strategy) first compare the replicas' state
  (``comm.replicas``); a mismatch raises ``ReplicasDiverged`` on every worker before any file
  is touched. ``tf.train.Saver.save`` and ``hvd.save_checkpoint`` may be called by the chief
  alone, so they run no collective and are not compared.
- ``restore`` is called by every worker: the chief reads the file and broadcasts it
  (``workers.chief_then_everyone``), so all workers load the same checkpoint even without a
  shared filesystem.

What can be tracked, and the protocol library objects implement, is in ``tracking``.
"""

from .fileformat import dumps, loads, read_state, read_state_everywhere, write_state
from .files import atomic_write, deferred_termination, remove_stale_temporaries
from .manager import CheckpointManager, all_checkpoint_files, latest_checkpoint
from .saving import Checkpoint, CheckpointLoadStatus, numeric_leaves
from .tracking import register_adapter
from .workers import chief_then_everyone, is_chief

__all__ = [
    "Checkpoint", "CheckpointLoadStatus", "CheckpointManager", "all_checkpoint_files",
    "atomic_write", "chief_then_everyone", "deferred_termination", "dumps", "is_chief",
    "latest_checkpoint", "loads", "numeric_leaves", "read_state", "read_state_everywhere",
    "register_adapter", "remove_stale_temporaries", "write_state",
]
