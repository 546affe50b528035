"""``tf.train``: the core's optimizers and global step, plus checkpoints (a layer above the core).

``import ringtrain as tf`` makes this module ``tf.train``; names it does not define are looked
up in ``ringtrain.core.train`` (which also raises the errors naming alternatives for TF APIs
ringtrain leaves out).
"""

from .checkpoint import Checkpoint, CheckpointManager, latest_checkpoint
from .checkpoint.saver import Saver, checkpoint_exists, get_checkpoint_state
from .core import train as _core_train
from .core.train import *
from .core.train import __all__ as _core_all

__all__ = ["Checkpoint", "CheckpointManager", "Saver", "checkpoint_exists", "get_checkpoint_state",
           "latest_checkpoint"]
__all__ += list(_core_all)


def __getattr__(name: str):
    return getattr(_core_train, name)
