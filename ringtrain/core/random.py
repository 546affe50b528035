"""``tf.random``: the random ops under their ``tf.random`` names (the ops are in ops/random.py)."""

from .graph import set_random_seed
from .ops.candidates import log_uniform_candidate_sampler, uniform_candidate_sampler
from .ops.random import categorical, multinomial, truncated_normal
from .ops.random import random_normal as normal
from .ops.random import random_shuffle as shuffle
from .ops.random import random_uniform as uniform

__all__ = ["categorical", "log_uniform_candidate_sampler", "multinomial", "normal",
           "set_random_seed", "shuffle", "truncated_normal", "uniform",
           "uniform_candidate_sampler"]


def __getattr__(name: str):
    from .unsupported import missing
    raise missing(__name__, name)
