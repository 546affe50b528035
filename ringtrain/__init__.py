"""ringtrain: synchronous data-parallel training with a ring all-reduce, and a TF1-style core.

``import ringtrain as tf`` gives TensorFlow 1's names (Graph, Session, placeholder, train, nn,
summary, data, keras, distribute, errors); ``ringtrain.init()/rank()/size()/comm()`` give the
process group. Nothing here starts MPI, NCCL or CUDA: that happens in ``init()``.
"""

import importlib

from . import _tf_imports, data, distribute, env, errors, keras, layers
from .comm.base import ReduceOp
from .core import *
from .core import __all__ as _core_all
from .core import rank as _tf1_rank
from .core import size as _tf1_size
from .spawn import LaunchError, launch
from .world import process_group as _process_group
from .world.process_group import (
    comm,
    init,
    is_chief,
    is_initialized,
    local_rank,
    local_size,
    shutdown,
)

# tf.train is the core's optimizers plus checkpoints, which sit above the core: bind the
# top-level namespace module in place of the core's (from .core import * bound core.train).
train = importlib.import_module(".train", __name__)


# `from ringtrain.contrib.layers import conv2d` and the other TF module paths (_tf_imports.py)
_tf_imports.install()

# tf.compat.v1 is TensorFlow 1's API, which is what ringtrain speaks.
compat.v1 = importlib.import_module(__name__)

# One public name, two meanings: with no argument the process group's rank()/size(); with a
# tensor TensorFlow 1's tf.rank(input)/tf.size(input), so TF1 programs and ringtrain.rank() work.
def rank(*args, **kwargs):
    """This worker's rank (no arguments), or TF1's ``tf.rank(input, name=None)``."""
    if not args and not kwargs:
        return _process_group.rank()
    return _tf1_rank(*args, **kwargs)


def size(*args, **kwargs):
    """The number of workers (no arguments), or TF1's ``tf.size(input, name=None, ...)``."""
    if not args and not kwargs:
        return _process_group.size()
    return _tf1_size(*args, **kwargs)


def __getattr__(name: str):
    # TensorFlow APIs ringtrain leaves out get an error naming the alternative (still an
    # AttributeError, so hasattr() checks keep working).
    from .core.unsupported import missing
    raise missing(__name__, name)


__version__ = "0.1.0"

__all__ = [
    "LaunchError", "ReduceOp", "comm", "data", "distribute", "env", "errors", "init",
    "is_chief", "is_initialized", "keras", "launch", "layers", "local_rank", "local_size", "rank",
    "shutdown", "size",
]
__all__ += [name for name in _core_all if name not in __all__]
