"""``tf.nn``: activations, losses, convolution and pooling (NHWC), dropout, embeddings.

The ops and their kernels are in ``ringtrain/core/ops/nn.py``; this module is the namespace.
"""

from .ops.nn import *
from .ops.nn import __all__  # noqa: F401
