"""Per-worker shards of a torch DataLoader: DistributedSampler semantics, reshuffled per epoch,
and the same number of batches on every worker."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import BatchSampler, DataLoader, IterableDataset, RandomSampler, Sampler

from ..comm import stragglers


def shard_indices(indices: list[int], rank: int, world_size: int) -> list[int]:
    """Rank ``rank``'s share of ``indices``: every ``world_size``-th one, starting at ``rank``,
    after padding with indices from the start so that all ranks get ``ceil(n / world_size)``."""
    n = len(indices)
    if n == 0:
        return []
    per_rank = math.ceil(n / world_size)
    total = per_rank * world_size
    padded = indices + (indices * math.ceil(total / n))[:total - n]
    return padded[rank:total:world_size]


def _epoch_order(source: Any, seed: int, epoch: int) -> list:
    """``list(source)`` with torch's global RNG seeded by ``seed + epoch`` (restored after), so
    every rank draws the same order from samplers that use the global RNG (RandomSampler,
    SubsetRandomSampler, ...), a new one each epoch."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + epoch)
        return list(source)


class ShardSampler(Sampler):
    """This worker's share of ``source`` (a sampler of indices, or a loader's custom batch
    sampler), in the order shared by every rank and padded so every rank runs the same number
    of steps; ``set_epoch`` picks the epoch's shuffle."""

    def __init__(self, source: Any, rank: int, world_size: int, seed: int = 0):
        self.source = source
        self.rank = rank
        self.world_size = world_size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator:
        order = _epoch_order(self.source, self.seed, self.epoch)
        return iter(shard_indices(order, self.rank, self.world_size))

    def __len__(self) -> int:
        return math.ceil(len(self.source) / self.world_size)


class DistributedDataLoader:
    """Iterates this worker's shard of a DataLoader; each pass over it is one epoch.

    Epoch ``e`` uses the shuffle seeded by ``seed + e``: every pass advances the epoch, and
    ``set_epoch(e)`` chooses it explicitly (as with ``DistributedSampler``). Every worker gets
    ``ceil(len(dataset) / world_size)`` samples per epoch (a few repeated when the dataset does
    not divide evenly), hence the same number of batches and steps.
    """

    def __init__(self, loader: DataLoader, rank: int, world_size: int, seed: int = 0):
        if not isinstance(loader, DataLoader):
            raise TypeError(f"distribute_dataloader needs a torch.utils.data.DataLoader, got "
                            f"{type(loader).__name__}")
        if isinstance(loader.dataset, IterableDataset):
            raise TypeError("distribute_dataloader cannot shard an IterableDataset (its length "
                            "and order are unknown); shard it inside the dataset with "
                            "hvd.rank()/hvd.size() (import ringtrain.torch as hvd), or use "
                            "a map-style dataset")
        self.rank, self.world_size = rank, world_size
        self._epoch = 0
        options: dict[str, Any] = {
            "num_workers": loader.num_workers, "collate_fn": loader.collate_fn,
            "pin_memory": loader.pin_memory, "timeout": loader.timeout,
            "worker_init_fn": loader.worker_init_fn,
            "multiprocessing_context": loader.multiprocessing_context,
            "persistent_workers": loader.persistent_workers}
        if loader.num_workers > 0:
            options["prefetch_factor"] = loader.prefetch_factor
        standard = type(loader.batch_sampler) is BatchSampler and \
            loader.batch_sampler.sampler is loader.sampler
        if loader.batch_sampler is None:
            # batch_size=None: the loader yields single samples.
            self.sampler: Any = ShardSampler(loader.sampler, rank, world_size, seed)
            self.loader = DataLoader(loader.dataset, batch_size=None, sampler=self.sampler,
                                     **options)
        elif standard:
            self.sampler = ShardSampler(loader.sampler, rank, world_size, seed)
            self.loader = DataLoader(loader.dataset, batch_size=loader.batch_size,
                                     sampler=self.sampler, drop_last=loader.drop_last, **options)
        else:
            self.sampler = ShardSampler(loader.batch_sampler, rank, world_size, seed)
            self.loader = DataLoader(loader.dataset, batch_sampler=self.sampler, **options)
        self.dataset = loader.dataset
        self.batch_size = loader.batch_size
        self.shuffle = isinstance(loader.sampler, RandomSampler)

    def set_epoch(self, epoch: int) -> None:
        """Use epoch ``epoch``'s order for the next pass (then continue from there)."""
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"set_epoch: epoch must be an int >= 0, got {epoch!r}")
        self._epoch = epoch

    @property
    def epoch(self) -> int:
        """The epoch the next pass will use."""
        return self._epoch

    def __iter__(self) -> Iterator[Any]:
        self.sampler.set_epoch(self._epoch)
        self._epoch += 1
        recorder = stragglers.current()
        if recorder is None:
            return iter(self.loader)
        return _timed(iter(self.loader), recorder)

    def __len__(self) -> int:
        return len(self.loader)


def _timed(batches: Iterator[Any], recorder: stragglers.StepRecorder) -> Iterator[Any]:
    """``batches``, each wait for the next one added to the straggler report's data phase; a
    pass that ran training steps reports the steps since the last report when it ends (every
    rank ends the pass at the same step; a pass without steps, e.g. an evaluation on the chief
    only, reports nothing, so it runs no collective)."""
    steps_before = recorder.steps
    while True:
        started = time.perf_counter()
        try:
            batch = next(batches)
        except StopIteration:
            break
        recorder.add("data", time.perf_counter() - started)
        yield batch
    if recorder.steps > steps_before:
        recorder.finish()
