"""``tf.train``: optimizers with TF1's exact update rules, slot variables, the global step."""

from __future__ import annotations

from typing import Any

from . import dtypes as _dt
from . import ops as _ops
from .graph import GraphKeys, Tensor, get_default_graph
from .optimizers import (
    AdadeltaOptimizer,
    AdagradDAOptimizer,
    AdagradOptimizer,
    AdamOptimizer,
    GradientDescentOptimizer,
    MomentumOptimizer,
    Optimizer,
    RMSPropOptimizer,
)
from .variables import Variable

__all__ = [
    "AdadeltaOptimizer",
    "AdagradDAOptimizer",
    "AdagradOptimizer",
    "AdamOptimizer",
    "GradientDescentOptimizer",
    "MomentumOptimizer",
    "Optimizer",
    "RMSPropOptimizer",
    "create_global_step",
    "exponential_decay",
    "get_global_step",
    "get_or_create_global_step",
    "global_step",
]


# --- global step and schedules -----------------------------------------------------------------

def get_global_step(graph: Any = None) -> Variable | None:
    g = graph or get_default_graph()
    found = g.get_collection(GraphKeys.GLOBAL_STEP)
    if len(found) > 1:
        raise TypeError("there are several global_step variables in the graph")
    return found[0] if found else None


def create_global_step(graph: Any = None) -> Variable:
    g = graph or get_default_graph()
    if get_global_step(g) is not None:
        raise ValueError("global_step already exists")
    with g.as_default(), g.name_scope(None), g.control_dependencies(None):
        return Variable(_ops.constant(0, _dt.int64), name="global_step", trainable=False,
                        collections=[GraphKeys.GLOBAL_VARIABLES, GraphKeys.GLOBAL_STEP])


def get_or_create_global_step(graph: Any = None) -> Variable:
    """The graph's global step (an int64 variable counting training steps), created once."""
    step = get_global_step(graph)
    return step if step is not None else create_global_step(graph)


def global_step(sess: Any, global_step_tensor: Tensor) -> int:
    return int(sess.run(global_step_tensor))


def exponential_decay(learning_rate: Any, global_step: Any, decay_steps: Any, decay_rate: Any,
                      staircase: bool = False, name: str | None = None) -> Tensor:
    """learning_rate * decay_rate ^ (global_step / decay_steps) (floored when staircase)."""
    if global_step is None:
        raise ValueError("global_step is required for exponential_decay")
    g = get_default_graph()
    with g.name_scope(name or "ExponentialDecay"):
        lr = _ops.convert_to_tensor(learning_rate, preferred_dtype=_dt.float32)
        step = _ops.cast(global_step, lr.dtype)
        p = step / _ops.cast(_ops.convert_to_tensor(decay_steps), lr.dtype)
        if staircase:
            p = _ops.floor(p)
        return lr * _ops.pow(_ops.cast(_ops.convert_to_tensor(decay_rate), lr.dtype), p)


def __getattr__(name: str):
    # TensorFlow APIs ringtrain leaves out get an error naming the alternative (still an
    # AttributeError, so hasattr() checks keep working).
    from .unsupported import missing
    raise missing(__name__, name)

