"""Input for a strategy: each worker's slice of every global batch, and per-worker pipelines."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np


def shard_bounds(n: int, num_shards: int, index: int) -> tuple[int, int]:
    """Rows ``[start, stop)`` of shard ``index`` when ``n`` rows are split as ``np.array_split``
    does: the first ``n % num_shards`` shards get one row more."""
    base, extra = divmod(n, num_shards)
    start = index * base + min(index, extra)
    return start, start + base + (1 if index < extra else 0)


def _leaves(batch: Any, path: str = "batch") -> Iterator[tuple[str, Any]]:
    if isinstance(batch, dict):
        for key in sorted(batch, key=str):
            yield from _leaves(batch[key], f"{path}[{key!r}]")
    elif isinstance(batch, (tuple, list)):
        for i, item in enumerate(batch):
            yield from _leaves(item, f"{path}[{i}]")
    elif batch is not None:
        yield path, batch


def _map(batch: Any, fn: Callable[[Any], Any]) -> Any:
    if isinstance(batch, dict):
        return type(batch)((key, _map(value, fn)) for key, value in batch.items())
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):       # namedtuple
        return type(batch)(*(_map(item, fn) for item in batch))
    if isinstance(batch, (tuple, list)):
        return type(batch)(_map(item, fn) for item in batch)
    if batch is None:
        return None
    return fn(batch)


def batch_length(batch: Any) -> int:
    """The number of rows (leading dimension) shared by every array in a nested batch."""
    length = None
    first = None
    for path, leaf in _leaves(batch):
        shape = getattr(leaf, "shape", None)
        if shape is None or len(shape) == 0:
            raise TypeError(f"{path} is a {type(leaf).__name__} without a batch dimension; a "
                            "distributed batch must be (nested tuples/dicts of) arrays with the "
                            "global batch along axis 0")
        if length is None:
            length, first = int(shape[0]), path
        elif int(shape[0]) != length:
            raise ValueError(f"{path} has {shape[0]} rows but {first} has {length}; every "
                             "array of a batch needs the same leading (batch) dimension")
    if length is None:
        raise ValueError("the batch holds no arrays to shard")
    return length


def shard_batch(batch: Any, num_shards: int, index: int) -> tuple[Any, int, int]:
    """This worker's slice of a global ``batch``: ``(local_batch, local_rows, global_rows)``.

    Rows are split as ``np.array_split`` splits them, so a global batch that does not divide
    evenly is kept whole. A worker whose slice would be empty (fewer rows than workers) gets the
    batch's last row instead and ``local_rows == 0``: it still runs the same step as everyone
    (collectives stay in lock-step), and a weight of 0 removes its contribution.
    """
    total = batch_length(batch)
    if total == 0:
        raise ValueError("cannot shard an empty global batch")
    start, stop = shard_bounds(total, num_shards, index)
    rows = stop - start
    if rows == 0:
        start, stop = total - 1, total
    return _map(batch, lambda leaf: leaf[start:stop]), rows, total


class InputContext:
    """What a per-worker input function needs to know (``tf.distribute.InputContext``)."""

    def __init__(self, num_input_pipelines: int = 1, input_pipeline_id: int = 0,
                 num_replicas_in_sync: int = 1):
        self.num_input_pipelines = num_input_pipelines
        self.input_pipeline_id = input_pipeline_id
        self.num_replicas_in_sync = num_replicas_in_sync

    def get_per_replica_batch_size(self, global_batch_size: int) -> int:
        if global_batch_size % self.num_replicas_in_sync:
            raise ValueError(f"the global batch size ({global_batch_size}) is not divisible by "
                             f"the number of replicas ({self.num_replicas_in_sync}); pick a "
                             "multiple, or use experimental_distribute_dataset, which splits "
                             "uneven batches")
        return global_batch_size // self.num_replicas_in_sync

    def __repr__(self) -> str:
        return (f"InputContext(num_input_pipelines={self.num_input_pipelines}, "
                f"input_pipeline_id={self.input_pipeline_id}, "
                f"num_replicas_in_sync={self.num_replicas_in_sync})")


def fingerprint(batch: Any) -> str:
    """A digest of a nested batch's shapes, dtypes and bytes (to compare across workers)."""
    digest = hashlib.blake2b(digest_size=16)
    for path, leaf in _leaves(batch):
        array = np.ascontiguousarray(leaf)
        digest.update(f"{path}{array.shape}{array.dtype.str}".encode())
        digest.update(array.reshape(-1).view(np.uint8) if array.dtype != object
                      else repr(array.tolist()).encode())
    return digest.hexdigest()


class DistributedIterator:
    """Yields this worker's slice of each global batch and tells the strategy its weight.

    Checkpointable: its state is the number of batches drawn; restoring a fresh iterator of
    the same dataset skips that many (the dataset must give the same order again, e.g. a
    seeded shuffle).
    """

    def __init__(self, dataset: DistributedDataset):
        self._dataset = dataset
        self._iterator = iter(dataset.global_dataset)
        self._peeked: list = []
        self.batches_consumed = 0
        self.exhausted = False
        # The straggler report: steps recorded before this pass (its end reports the rest).
        self._steps_before = getattr(dataset.extended, "steps_recorded", lambda: 0)()

    def __iter__(self) -> DistributedIterator:
        return self

    def _next_global(self) -> Any:
        if self._peeked:
            batch = self._peeked.pop()
        else:
            try:
                batch = next(self._iterator)
            except StopIteration:
                self.exhausted = True
                raise
        self.batches_consumed += 1
        return batch

    def _at_end(self) -> bool:
        """True when no batch is left (looks one batch ahead and keeps it)."""
        if self._peeked:
            return False
        try:
            self._peeked.append(next(self._iterator))
        except StopIteration:
            self.exhausted = True
            return True
        return False

    def __next__(self) -> Any:
        extended = self._dataset.extended
        started = time.perf_counter()
        try:
            batch = self._next_global()
        except StopIteration:
            if hasattr(extended, "training_ended"):
                extended.training_ended(since=self._steps_before)
            raise
        if hasattr(extended, "record_phase"):
            extended.record_phase("data", time.perf_counter() - started)
        if self.batches_consumed == 1:              # once per pass
            self._dataset.extended.check_same_batch(batch)
            self._dataset.extended._checked_first_batch = True
        return self._dataset.extended.shard_batch(batch)

    def get_next(self) -> Any:
        return next(self)

    def get_next_as_optional(self) -> Any:
        """The next local batch, or None at the end (a plain-Python stand-in for TF's Optional)."""
        try:
            return next(self)
        except StopIteration:
            return None

    def skip(self, num_batches: int) -> None:
        """Draw ``num_batches`` global batches without using them (resuming mid-epoch)."""
        for _ in range(num_batches):
            try:
                self._next_global()
            except StopIteration:
                return

    def _checkpoint_state(self) -> dict:
        return {"batches": self.batches_consumed}

    def _restore_checkpoint_state(self, state: dict) -> None:
        target = int(state["batches"])
        if target < self.batches_consumed:
            raise ValueError(f"this iterator already drew {self.batches_consumed} batches and "
                             f"cannot go back to {target}; restore into a fresh iterator")
        self.skip(target - self.batches_consumed)


class DistributedDataset:
    """``strategy.experimental_distribute_dataset(ds)``: iterate it to get this worker's slice
    of every global batch of ``ds``.

    Every worker iterates the same global dataset (same order, given the same shuffle seed) and
    keeps its own rows, so the workers together see each global batch exactly once; the first
    batch of each pass is compared across workers, and a difference is an error.
    ``global_dataset`` is the wrapped dataset; Keras' ``fit`` unwraps it and shards itself.

    Checkpointable: the state is the number of finished passes and the batches drawn from the
    current one; after a restore, the next ``iter()`` continues exactly there (finished passes
    are replayed so reshuffling datasets are at the same epoch).
    """

    def __init__(self, dataset: Iterable, extended):
        if isinstance(dataset, DistributedDataset):
            raise TypeError("this dataset is already distributed; pass the original dataset")
        if not hasattr(dataset, "__iter__"):
            raise TypeError("experimental_distribute_dataset needs an iterable of global batches "
                            f"(a tf.data.Dataset), got {type(dataset).__name__}")
        self.global_dataset = dataset
        self.extended = extended
        if extended.num_workers > 1:  # unseeded shuffles take the chief's seed
            from ..data.dataset import share_shuffle_seeds
            share_shuffle_seeds(dataset, extended.broadcast_object)
        self._passes_started = 0
        self._live: DistributedIterator | None = None
        self._resume: tuple[int, int] | None = None

    def __iter__(self) -> DistributedIterator:
        skip = 0
        if self._resume is not None:
            passes_done, skip = self._resume
            self._resume = None
            while self._passes_started < passes_done:
                self._replay_pass()
        self._passes_started += 1
        self._live = DistributedIterator(self)
        if skip:
            self._live.skip(skip)
            if self._live._at_end():
                # Saved after the last batch of a pass: what comes next is the next pass.
                self._passes_started += 1
                self._live = DistributedIterator(self)
        return self._live

    def _replay_pass(self) -> None:
        # Starting a pass is what advances a reshuffling dataset's epoch; draw one batch so
        # that lazy pipelines really start, then drop the pass.
        iterator = iter(self.global_dataset)
        next(iterator, None)
        close = getattr(iterator, "close", None)
        if close is not None:
            close()
        self._passes_started += 1

    def _checkpoint_state(self) -> dict:
        live = self._live
        if live is None or live.exhausted:
            return {"passes_done": self._passes_started, "batches": 0}
        return {"passes_done": self._passes_started - 1, "batches": live.batches_consumed}

    def _restore_checkpoint_state(self, state: dict) -> None:
        passes_done, batches = int(state["passes_done"]), int(state["batches"])
        if passes_done < self._passes_started:
            raise ValueError(f"this dataset was already iterated {self._passes_started} times "
                             f"and cannot go back to pass {passes_done + 1}; restore before "
                             "iterating it")
        self._resume = (passes_done, batches)

    # -- TF1 graph mode: iterators whose get_next() gives this worker's slice per run --
    @property
    def element_spec(self) -> Any:
        """The global dataset's element structure, with the batch dimension unknown (a
        worker's slice of a batch can be smaller)."""
        from ..data.structure import TensorSpec, map_structure

        def local(spec: Any) -> Any:
            shape = None if spec.shape is None else (None, *spec.shape[1:])
            return TensorSpec(shape, spec.dtype)
        return map_structure(local, self.global_dataset.element_spec)

    def make_initializable_iterator(self) -> Any:
        """``get_next()`` tensors of this worker's slices; run ``initializer`` (every worker)
        to start each pass."""
        from ..data.iterator import make_initializable_iterator
        return make_initializable_iterator(self)

    def make_one_shot_iterator(self) -> Any:
        from ..data.iterator import make_one_shot_iterator
        return make_one_shot_iterator(self)

    @property
    def output_types(self) -> Any:
        from ..data.iterator import output_types
        return output_types(self.element_spec)

    @property
    def output_shapes(self) -> Any:
        from ..data.iterator import output_shapes
        return output_shapes(self.element_spec)

    def __repr__(self) -> str:
        return f"DistributedDataset({self.global_dataset!r})"


class PerWorkerDataset:
    """``strategy.distribute_datasets_from_function(fn)``: the dataset ``fn`` built for this
    worker, whose batches are already local (equal weights across workers)."""

    def __init__(self, dataset: Iterable, extended):
        self.local_dataset = dataset
        self.extended = extended

    def __iter__(self) -> Iterator:
        for batch in self.local_dataset:
            self.extended.clear_batch_weight()
            yield batch
