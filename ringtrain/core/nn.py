"""``tf.nn``: activations, losses, convolution and pooling (NHWC), dropout, embeddings,
recurrent cells (``tf.nn.rnn_cell``) and loops (``dynamic_rnn``, ``static_rnn``).

The ops and their kernels are in ``ringtrain/core/ops/nn.py`` and the recurrent code in
``rnn.py``; this module is the namespace.
"""

from . import rnn_cell
from .ops.candidates import (
    log_uniform_candidate_sampler,
    nce_loss,
    sampled_softmax_loss,
    uniform_candidate_sampler,
)
from .ops.nn import *
from .rnn import bidirectional_dynamic_rnn, dynamic_rnn, static_rnn

__all__ = [
    "avg_pool",
    "avg_pool2d",
    "batch_normalization",
    "bias_add",
    "bidirectional_dynamic_rnn",
    "compute_average_loss",
    "conv2d",
    "dropout",
    "dynamic_rnn",
    "elu",
    "embedding_lookup",
    "l2_loss",
    "l2_normalize",
    "leaky_relu",
    "log_softmax",
    "log_uniform_candidate_sampler",
    "max_pool",
    "max_pool2d",
    "moments",
    "nce_loss",
    "relu",
    "relu6",
    "rnn_cell",
    "sampled_softmax_loss",
    "scale_regularization_loss",
    "sigmoid",
    "sigmoid_cross_entropy_with_logits",
    "softmax",
    "softmax_cross_entropy_with_logits",
    "softmax_cross_entropy_with_logits_v2",
    "softplus",
    "sparse_softmax_cross_entropy_with_logits",
    "static_rnn",
    "tanh",
    "uniform_candidate_sampler",
    "xw_plus_b",
]


def __getattr__(name: str):
    from .unsupported import missing
    raise missing("ringtrain.core.nn", name)
