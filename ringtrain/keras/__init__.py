"""tf.keras: Sequential, functional and subclassed models on the graph core, with fit/evaluate."""

from . import (
    activations,
    backend,
    callbacks,
    config,
    initializers,
    layers,
    losses,
    metrics,
    models,
    optimizers,
    preprocessing,
    regularizers,
    utils,
)
from .layers import Input, Layer
from .models import Model, Sequential

__all__ = [
    "Input", "Layer", "Model", "Sequential", "activations", "backend", "callbacks", "config",
    "initializers", "layers", "losses", "metrics", "models", "optimizers", "preprocessing",
    "regularizers", "utils",
]


def __getattr__(name: str):
    # TensorFlow APIs ringtrain leaves out get an error naming the alternative (still an
    # AttributeError, so hasattr() checks keep working).
    from ..core.unsupported import missing
    raise missing(__name__, name)
