"""``import ringtrain.v2 as tf``: ringtrain with TensorFlow 2's behaviour (eager execution).

Importing it enables eager execution for the whole program (as ``tf.enable_eager_execution()``
does) and gives the same names as ``import ringtrain``: ops run at once and return tensors with
values, ``tf.GradientTape`` and ``tf.function`` work, ``with tf.Graph().as_default():`` switches
to graph mode inside. Import it at program start, before any op is created.
"""

import ringtrain as _ringtrain
from ringtrain import *
from ringtrain import __all__  # noqa: F401

_ringtrain.enable_eager_execution()


def __getattr__(name: str):
    return getattr(_ringtrain, name)
