"""``tf.contrib``: of TensorFlow's contributed modules, ``layers``, ``rnn`` and ``eager``."""

from . import eager, layers, rnn

__all__ = ["eager", "layers", "rnn"]


def __getattr__(name: str):
    from ..unsupported import missing
    raise missing(__name__, name)
