"""tf.keras.preprocessing: sequence padding."""

from . import sequence

__all__ = ["sequence"]


def __getattr__(name: str):
    from ...core.unsupported import missing
    raise missing(__name__, name)
