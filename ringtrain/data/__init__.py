"""tf.data: Dataset pipelines (slices, generators, shuffle, batch, threaded map, prefetch) and
TF1's graph-mode iterators."""

from . import experimental
from .dataset import AUTOTUNE, INFINITE_CARDINALITY, UNKNOWN_CARDINALITY, Dataset
from .iterator import (
    Iterator,
    get_output_classes,
    get_output_shapes,
    get_output_types,
    make_initializable_iterator,
    make_one_shot_iterator,
)
from .structure import TensorSpec


def __getattr__(name: str):
    # TensorFlow APIs ringtrain leaves out get an error naming the alternative (still an
    # AttributeError, so hasattr() checks keep working).
    from ..core.unsupported import missing
    raise missing(__name__, name)


OneShotIterator = Iterator  # the name of ringtrain's first (one-shot only) iterator

__all__ = [
    "AUTOTUNE",
    "INFINITE_CARDINALITY",
    "UNKNOWN_CARDINALITY",
    "Dataset",
    "Iterator",
    "OneShotIterator",
    "TensorSpec",
    "experimental",
    "get_output_classes",
    "get_output_shapes",
    "get_output_types",
    "make_initializable_iterator",
    "make_one_shot_iterator",
]
