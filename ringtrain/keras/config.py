"""tf.keras.config: the global Keras settings (float type, epsilon, image layout)."""

from __future__ import annotations

from .backend import (
    epsilon,
    floatx,
    image_data_format,
    set_epsilon,
    set_floatx,
    set_image_data_format,
)


def backend() -> str:
    """The backend Keras runs on: ringtrain implements TensorFlow's API."""
    return "tensorflow"


__all__ = ["backend", "epsilon", "floatx", "image_data_format", "set_epsilon", "set_floatx",
           "set_image_data_format"]


def __getattr__(name: str):
    from ..core.unsupported import missing
    raise missing(__name__, name)
