"""``tf.contrib.eager`` (``tfe``): TensorFlow 1's names for eager execution (see core/eager.py)."""

from ..eager import (
    GradientTape,
    defun,
    enable_eager_execution,
    function,
    gradients_function,
    value_and_gradients_function,
)
from ..graph import executing_eagerly
from ..variables import Variable

__all__ = [
    "GradientTape",
    "Variable",
    "defun",
    "enable_eager_execution",
    "executing_eagerly",
    "function",
    "gradients_function",
    "value_and_gradients_function",
]


def __getattr__(name: str):
    from ..unsupported import missing
    raise missing(__name__, name)
