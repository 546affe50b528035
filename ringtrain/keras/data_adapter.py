"""What fit/evaluate/predict iterate: arrays cut into (shuffled) batches, or a Dataset/iterable.

Each source is an object with ``steps()`` (batches per epoch, None if unknown), ``epoch(e)``
(an iterator over epoch ``e``'s global batches) and ``exhausted`` (the input ran out before the
requested steps).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..data.dataset import Dataset, advance_to_epoch
from ..data.structure import flatten, is_nested, map_structure


def batch_length(batch: Any) -> int:
    leaves = flatten(batch)
    return int(np.shape(leaves[0])[0]) if leaves else 0


# --- data ----------------------------------------------------------------------------------------

def unpack(element: Any) -> tuple[Any, Any, Any]:
    """A dataset element as (x, y, sample_weight), Keras's convention."""
    if type(element) is tuple:
        if len(element) == 1:
            return element[0], None, None
        if len(element) == 2:
            return element[0], element[1], None
        if len(element) == 3:
            return element
        raise ValueError(f"a batch must be x, (x,), (x, y) or (x, y, sample_weight); got a tuple "
                         f"of {len(element)}")
    return element, None, None


class ArrayBatches:
    """Batches of in-memory arrays, each pass over them shuffled from (seed, pass).

    Without ``steps`` an epoch is one pass. With ``steps`` (Keras's ``steps_per_epoch`` or
    ``evaluate``'s ``steps``) an epoch is ``steps`` batches of one stream that runs through
    ``passes`` passes (fit: one per epoch, as Keras repeats array data ``epochs`` times), so
    epoch ``e`` starts at batch ``e * steps`` of the stream, and the stream running out ends
    training with a warning (``exhausted``).
    """

    def __init__(self, x: Any, y: Any, batch_size: int, shuffle: bool, seed: int,
                 steps: int | None = None, passes: int = 1):
        self.x, self.y = x, y
        self.n = batch_length(x)
        if y is not None and batch_length(y) != self.n:
            raise ValueError(f"x has {self.n} samples but y has {batch_length(y)}; they must "
                             f"match")
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.steps_per_epoch = check_steps(steps)
        self.passes = passes
        self.exhausted = False

    def steps(self) -> int:
        per_pass = math.ceil(self.n / self.batch_size)
        return per_pass if self.steps_per_epoch is None else self.steps_per_epoch

    def epoch(self, epoch: int) -> Iterator:
        if self.steps_per_epoch is None:
            yield from self._pass(epoch, 0)
            return
        per_pass = math.ceil(self.n / self.batch_size)
        index, remaining = epoch * self.steps_per_epoch, self.steps_per_epoch
        while remaining:
            pass_, batch = divmod(index, per_pass) if per_pass else (self.passes, 0)
            if pass_ >= self.passes:
                self.exhausted = True
                return
            for element in itertools.islice(self._pass(pass_, batch), remaining):
                yield element
                index, remaining = index + 1, remaining - 1

    def _pass(self, pass_: int, first_batch: int) -> Iterator:
        """The batches of one pass over the arrays, from batch ``first_batch`` on."""
        order = np.random.default_rng([self.seed, pass_]).permutation(self.n) \
            if self.shuffle else None
        for start in range(first_batch * self.batch_size, self.n, self.batch_size):
            if order is None:
                sel: Any = slice(start, start + self.batch_size)
            else:
                sel = np.sort(order[start:start + self.batch_size])
            xb = take(self.x, sel)
            yield (xb,) if self.y is None else (xb, take(self.y, sel))


def check_steps(steps: Any) -> int | None:
    if steps is None:
        return None
    if isinstance(steps, bool) or int(steps) != steps or steps <= 0:
        raise ValueError(f"steps/steps_per_epoch must be a positive int or None, got {steps!r}")
    return int(steps)


class IterableBatches:
    """Batches from a Dataset (a fresh pass per epoch) or from any iterable / generator."""

    def __init__(self, data: Any, steps: int | None):
        self.data = data
        self.steps_per_epoch = check_steps(steps)
        self._persistent: Iterator | None = None
        self.exhausted = False

    def steps(self) -> int | None:
        if self.steps_per_epoch is not None:
            return self.steps_per_epoch
        card = self.data.cardinality() if isinstance(self.data, Dataset) else -2
        return card if card >= 0 else None

    def epoch(self, epoch: int) -> Iterator:
        if isinstance(self.data, Dataset):
            advance_to_epoch(self.data, epoch)
        if self.steps_per_epoch is None:
            if not isinstance(self.data, Dataset) and self._persistent is not None:
                raise ValueError("a generator can be iterated once: pass a tf.data.Dataset, or "
                                 "steps_per_epoch")
            it = iter(self.data)
            if not isinstance(self.data, Dataset):
                self._persistent = it
            yield from it
            return
        # With steps_per_epoch, one iterator runs across epochs (e.g. a repeated dataset).
        for _ in range(self.steps_per_epoch):
            if self._persistent is None:
                self._persistent = iter(self.data)
            try:
                yield next(self._persistent)
            except StopIteration:
                self.exhausted = True
                return


def take(x: Any, sel: Any) -> Any:
    return map_structure(lambda a: a[sel], x)


def as_arrays(x: Any) -> Any:
    """Arrays of ``x``; a list of arrays is several inputs (a tuple), as in Keras."""
    if x is None:
        return None
    if isinstance(x, list) and x and all(isinstance(a, np.ndarray) for a in x):
        x = tuple(x)
    if is_nested(x):
        return map_structure(np.asarray, x)
    return np.asarray(x)


def make_batches(x: Any, y: Any, batch_size: int | None, steps: int | None, shuffle: bool,
                  seed: int, what: str, passes: int = 1) -> Any:
    x = getattr(x, "global_dataset", x)  # a strategy's distributed dataset: shard here
    if isinstance(x, Dataset) or (hasattr(x, "__iter__") and not isinstance(
            x, (np.ndarray, list, tuple, dict))):
        if y is not None:
            raise ValueError(f"{what}: y must be None when x is a dataset or generator (the "
                             f"dataset yields (x, y) pairs)")
        return IterableBatches(x, steps)
    if x is None:
        raise ValueError(f"{what}: x is required")
    bs = 32 if batch_size is None else int(batch_size)
    if bs <= 0:
        raise ValueError(f"batch_size must be a positive int, got {batch_size}")
    return ArrayBatches(as_arrays(x), as_arrays(y), bs, shuffle, seed, steps, passes)

