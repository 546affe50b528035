"""Candidate sampling and the sampled losses (``tf.nn.nce_loss``, ``sampled_softmax_loss``).

For a classifier over many classes, each step draws ``num_sampled`` negative classes from a
proposal distribution and scores only those and the true ones. TensorFlow's rules, kept here:
log-uniform (Zipfian) proposals P(k) = log((k + 2) / (k + 1)) / log(range_max + 1); with
``unique`` the draw repeats until ``num_sampled`` distinct classes came up, and the expected
count of a class with probability p is 1 - (1 - p)^tries (else p * num_sampled); the logits are
corrected by subtracting log(expected count); sampled classes equal to a row's true class
("accidental hits") can be masked out of that row.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import dtypes as _dt
from ..graph import Tensor, get_default_graph
from .array import (
    cast,
    concat,
    convert_to_tensor,
    ones_like,
    reshape,
    stop_gradient,
    zeros_like,
)
from .base import _make, kernel
from .math import equal, log, matmul, reduce_any, reduce_sum, where
from .nn import (
    embedding_lookup,
    sigmoid_cross_entropy_with_logits,
    softmax_cross_entropy_with_logits_v2,
)
from .random import _seeds

__all__ = ["log_uniform_candidate_sampler", "nce_loss", "sampled_softmax_loss",
           "uniform_candidate_sampler"]


# --- samplers ----------------------------------------------------------------------------------

def _sampler(distribution: str, true_classes: Any, num_true: int, num_sampled: int,
             unique: bool, range_max: int, seed: int | None, name: str | None) -> tuple:
    true_classes = convert_to_tensor(true_classes)
    if true_classes.dtype != _dt.int64:
        true_classes = cast(true_classes, _dt.int64)
    if unique and num_sampled > range_max:
        raise ValueError(f"{distribution}_candidate_sampler: num_sampled ({num_sampled}) must be "
                         f"<= range_max ({range_max}) when unique=True")
    s1, s2 = _seeds(true_classes.graph, seed)
    batch = true_classes.shape.as_list()[0] if true_classes.shape.ndims == 2 else None
    op = _make("CandidateSampler", (true_classes,),
               [(_dt.int64, [num_sampled]), (_dt.float32, [batch, num_true]),
                (_dt.float32, [num_sampled])],
               name or f"{distribution}_candidate_sampler",
               {"distribution": distribution, "num_sampled": int(num_sampled),
                "unique": bool(unique), "range_max": int(range_max), "seed": s1, "seed2": s2})
    return tuple(op.outputs)


def log_uniform_candidate_sampler(true_classes: Any, num_true: int, num_sampled: int,
                                  unique: bool, range_max: int, seed: int | None = None,
                                  name: str | None = None) -> tuple:
    """(sampled_candidates [num_sampled] int64, true_expected_count [batch, num_true],
    sampled_expected_count [num_sampled]) from the log-uniform (Zipfian) distribution over
    [0, range_max): small class ids, the frequent words of a sorted vocabulary, come up most."""
    return _sampler("log_uniform", true_classes, num_true, num_sampled, unique, range_max, seed,
                    name)


def uniform_candidate_sampler(true_classes: Any, num_true: int, num_sampled: int, unique: bool,
                              range_max: int, seed: int | None = None, name: str | None = None
                              ) -> tuple:
    """As log_uniform_candidate_sampler, with every class in [0, range_max) equally likely."""
    return _sampler("uniform", true_classes, num_true, num_sampled, unique, range_max, seed, name)


# --- the sampled losses ------------------------------------------------------------------------

def _weights(weights: Any) -> Tensor:
    if isinstance(weights, (list, tuple)):
        if len(weights) != 1:
            raise NotImplementedError("sampled losses: sharded weights are not supported by "
                                      "ringtrain; pass one [num_classes, dim] tensor (tf.concat "
                                      "the shards)")
        weights = weights[0]
    return convert_to_tensor(weights)


def _sampled_logits(weights: Any, biases: Any, labels: Any, inputs: Any, num_sampled: int,
                    num_classes: int, num_true: int, sampled_values: Any,
                    subtract_log_q: bool, remove_accidental_hits: bool, seed: int | None
                    ) -> tuple[Tensor, Tensor]:
    """(logits [batch, num_true + num_sampled], labels of the same shape: 1/num_true for the
    true classes, 0 for the sampled ones)."""
    weights, inputs = _weights(weights), convert_to_tensor(inputs)
    biases = convert_to_tensor(biases)
    labels = convert_to_tensor(labels)
    if labels.dtype != _dt.int64:
        labels = cast(labels, _dt.int64)
    labels = reshape(labels, [-1, num_true])
    if sampled_values is None:
        sampled_values = log_uniform_candidate_sampler(labels, num_true, num_sampled, True,
                                                       num_classes, seed)
    sampled, true_expected, sampled_expected = (
        stop_gradient(convert_to_tensor(v)) for v in sampled_values)
    if sampled.dtype != _dt.int64:
        sampled = cast(sampled, _dt.int64)
    dim = inputs.shape.as_list()[-1]
    true_w = reshape(embedding_lookup(weights, reshape(labels, [-1])), [-1, num_true, dim])
    true_b = reshape(embedding_lookup(biases, reshape(labels, [-1])), [-1, num_true])
    sampled_w = embedding_lookup(weights, sampled)
    sampled_b = embedding_lookup(biases, sampled)
    # true logits: each row's input dotted with its own true classes' weights
    true_logits = reduce_sum(reshape(inputs, [-1, 1, dim]) * true_w, axis=2) + true_b
    sampled_logits = matmul(inputs, sampled_w, transpose_b=True) + sampled_b
    if remove_accidental_hits:
        hits = reduce_any(equal(reshape(labels, [-1, num_true, 1]),
                                reshape(sampled, [1, 1, -1])), axis=1)
        lowest = float(np.finfo(sampled_logits.dtype.np_dtype).min)  # as TF: -FLT_MAX
        sampled_logits = where(hits, sampled_logits + lowest, sampled_logits)
    if subtract_log_q:
        true_logits = true_logits - log(cast(true_expected, true_logits.dtype))
        sampled_logits = sampled_logits - log(cast(sampled_expected, sampled_logits.dtype))
    logits = concat([true_logits, sampled_logits], 1)
    target = concat([ones_like(true_logits) / float(num_true), zeros_like(sampled_logits)], 1)
    return logits, target


def nce_loss(weights: Any, biases: Any, labels: Any, inputs: Any, num_sampled: int,
             num_classes: int, num_true: int = 1, sampled_values: Any = None,
             remove_accidental_hits: bool = False, partition_strategy: str = "mod",
             name: str = "nce_loss") -> Tensor:
    """Noise-contrastive estimation: per row, the sigmoid cross entropy of the true classes
    (label 1/num_true) and of ``num_sampled`` sampled classes (label 0), summed: [batch]."""
    with get_default_graph().name_scope(name):
        logits, target = _sampled_logits(weights, biases, labels, inputs, num_sampled,
                                         num_classes, num_true, sampled_values, True,
                                         remove_accidental_hits, None)
        per_class = sigmoid_cross_entropy_with_logits(labels=target, logits=logits)
        return reduce_sum(per_class, axis=1)


def sampled_softmax_loss(weights: Any, biases: Any, labels: Any, inputs: Any, num_sampled: int,
                         num_classes: int, num_true: int = 1, sampled_values: Any = None,
                         remove_accidental_hits: bool = True, partition_strategy: str = "mod",
                         name: str = "sampled_softmax_loss", seed: int | None = None
                         ) -> Tensor:
    """Softmax cross entropy over the true classes and ``num_sampled`` sampled ones (accidental
    hits removed by default): [batch]. Use it for training; evaluate with the full softmax."""
    with get_default_graph().name_scope(name):
        logits, target = _sampled_logits(weights, biases, labels, inputs, num_sampled,
                                         num_classes, num_true, sampled_values, True,
                                         remove_accidental_hits, seed)
        return softmax_cross_entropy_with_logits_v2(labels=stop_gradient(target), logits=logits)


# --- kernel ------------------------------------------------------------------------------------

@kernel("CandidateSampler")
def _candidate_sampler(rt, distribution, num_sampled, unique, range_max, seed=None, seed2=None):
    gen = rt.rng(seed, seed2)
    xp = rt.xp
    log_range = math.log(range_max + 1)

    def prob(k):
        if distribution == "uniform":
            return xp.full(xp.shape(k), 1.0 / range_max)
        k = k.astype("float64")
        return (xp.log(k + 2.0) - xp.log(k + 1.0)) / log_range

    def draw(n):
        if distribution == "uniform":
            return gen.integers(0, range_max, size=n)
        values = xp.floor(xp.exp(gen.random(n) * log_range)).astype("int64") - 1
        return xp.clip(values, 0, range_max - 1)

    def expected(p, tries):
        if unique:
            return -xp.expm1(tries * xp.log1p(-p))
        return p * num_sampled

    def run(true_classes):
        if unique:
            picked: list = []
            seen: set = set()
            tries = 0
            while len(picked) < num_sampled:
                for value in draw(max(num_sampled - len(picked), 1)).tolist():
                    tries += 1
                    if value not in seen:
                        seen.add(value)
                        picked.append(value)
                        if len(picked) == num_sampled:
                            break
            sampled = xp.asarray(picked, dtype="int64")
        else:
            sampled = draw(num_sampled).astype("int64")
            tries = num_sampled
        return (sampled, expected(prob(true_classes), tries).astype("float32"),
                expected(prob(sampled), tries).astype("float32"))
    return run
