"""``tf.contrib``: of TensorFlow's contributed modules, ``layers`` and ``rnn``."""

from . import layers, rnn

__all__ = ["layers", "rnn"]


def __getattr__(name: str):
    from ..unsupported import missing
    raise missing(__name__, name)
