"""Per-worker shards of a torch DataLoader: DistributedSampler semantics (the loader's batch
size is each worker's) or Accelerate's ``split_batches`` (it is the global batch, split across
workers), reshuffled per epoch, the same number of batches on every worker, and a position
that checkpoints (``state_dict``) and resumes, with ``split_batches`` on another number of
workers."""

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


class _EpochSampler(Sampler):
    """What both samplers share: this rank's place, the seed, the epoch whose shuffle
    ``set_epoch`` picks, and ``start``, where the next pass begins (resuming mid-epoch)."""

    def __init__(self, source: Any, rank: int, world_size: int, seed: int = 0):
        self.source = source
        self.rank = rank
        self.world_size = world_size
        self.seed = seed
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)


class ShardSampler(_EpochSampler):
    """This worker's share of ``source`` (a sampler of indices, or a loader's custom batch
    sampler), in the order shared by every rank and padded so every rank runs the same number
    of steps; ``set_epoch`` picks the epoch's shuffle; ``start`` items of the next pass are
    skipped (resuming mid-epoch)."""

    def __iter__(self) -> Iterator:
        order = _epoch_order(self.source, self.seed, self.epoch)
        return iter(shard_indices(order, self.rank, self.world_size)[self.start:])

    def __len__(self) -> int:
        return math.ceil(len(self.source) / self.world_size)


class GlobalBatchSampler(_EpochSampler):
    """``split_batches``: the epoch's order (shared by every rank) cut into global batches of
    ``global_batch`` indices, the last one padded with indices from the start of the order
    (or dropped, ``drop_last``); rank r gets part r of each (``global_batch / world_size``
    indices). The global batches do not depend on the number of workers, so a run can resume
    on another number; ``start`` global batches of the next pass are skipped."""

    def __init__(self, source: Any, global_batch: int, drop_last: bool, rank: int,
                 world_size: int, seed: int = 0):
        super().__init__(source, rank, world_size, seed)
        self.global_batch = global_batch
        self.drop_last = drop_last

    def __iter__(self) -> Iterator[list]:
        order = _epoch_order(self.source, self.seed, self.epoch)
        size = self.global_batch
        per_rank = size // self.world_size
        first, last = self.rank * per_rank, (self.rank + 1) * per_rank
        for b in range(self.start, len(self)):
            batch = order[b * size:(b + 1) * size]
            if len(batch) < size:
                batch = batch + (order * math.ceil(size / len(order)))[:size - len(batch)]
            yield batch[first:last]

    def __len__(self) -> int:
        n = len(self.source)
        return n // self.global_batch if self.drop_last else math.ceil(n / self.global_batch)


class DistributedDataLoader:
    """Iterates this worker's shard of a DataLoader; each pass over it is one epoch.

    Epoch ``e`` uses the shuffle seeded by ``seed + e``: every pass advances the epoch, and
    ``set_epoch(e)`` chooses it explicitly (as with ``DistributedSampler``). The order depends
    on nothing else (not on torch's global random state, which is left as it was).

    Per-worker batches (default): every worker gets ``ceil(len(dataset) / world_size)``
    samples per epoch (a few repeated when the dataset does not divide evenly), hence the same
    number of batches and steps; the global batch is ``batch_size * world_size``.
    ``split_batches=True`` (Accelerate's name): the loader's ``batch_size`` is the global batch,
    a multiple of ``world_size``; each worker gets its equal part of every global batch (see
    GlobalBatchSampler), so the global batches are the same on any number of workers.

    ``state_dict()`` is the position (epoch, batches drawn in it); ``load_state_dict`` on a
    fresh loader makes the next pass continue from there: on any number of workers with
    ``split_batches=True``, on the same number otherwise.
    """

    def __init__(self, loader: DataLoader, rank: int, world_size: int, seed: int = 0,
                 split_batches: bool = False):
        if not isinstance(loader, DataLoader):
            raise TypeError(f"distribute_dataloader needs a torch.utils.data.DataLoader, got "
                            f"{type(loader).__name__}")
        if isinstance(loader.dataset, IterableDataset):
            raise TypeError("distribute_dataloader cannot shard an IterableDataset (its length "
                            "and order are unknown); shard it inside the dataset with "
                            "hvd.rank()/hvd.size() (import ringtrain.torch as hvd), or use "
                            "a map-style dataset")
        self.rank, self.world_size = rank, world_size
        self.split_batches = bool(split_batches)
        self._epoch = 0
        self._skip = 0              # batches of the next pass to skip (a restored position)
        self._drawn: int | None = None   # batches drawn in the pass under way (None: none)
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
        # What one skipped batch means to the sampler: indices (batched loaders), else items.
        self._items_per_batch = 1
        if self.split_batches:
            if loader.batch_sampler is None or not standard:
                raise TypeError("distribute_dataloader(split_batches=True) needs a DataLoader "
                                "built with batch_size (the global batch) and a sampler, not "
                                "batch_size=None or a custom batch_sampler")
            if loader.batch_size % world_size:
                raise ValueError(f"distribute_dataloader(split_batches=True): the loader's "
                                 f"batch_size ({loader.batch_size}) is the global batch and "
                                 f"must be a multiple of the number of workers ({world_size}), "
                                 f"so that every worker gets an equal part; pick a batch size "
                                 f"that {world_size} divides")
            self.sampler = GlobalBatchSampler(loader.sampler, loader.batch_size,
                                              loader.drop_last, rank, world_size, seed)
            self.loader = DataLoader(loader.dataset, batch_sampler=self.sampler, **options)
        elif loader.batch_sampler is None:
            # batch_size=None: the loader yields single samples.
            self.sampler: Any = ShardSampler(loader.sampler, rank, world_size, seed)
            self.loader = DataLoader(loader.dataset, batch_size=None, sampler=self.sampler,
                                     **options)
        elif standard:
            self.sampler = ShardSampler(loader.sampler, rank, world_size, seed)
            self.loader = DataLoader(loader.dataset, batch_size=loader.batch_size,
                                     sampler=self.sampler, drop_last=loader.drop_last, **options)
            self._items_per_batch = loader.batch_size
        else:
            self.sampler = ShardSampler(loader.batch_sampler, rank, world_size, seed)
            self.loader = DataLoader(loader.dataset, batch_sampler=self.sampler, **options)
        self.dataset = loader.dataset
        self.batch_size = loader.batch_size
        self.shuffle = isinstance(loader.sampler, RandomSampler)

    def set_epoch(self, epoch: int) -> None:
        """Use epoch ``epoch``'s order for the next pass (then continue from there). A
        restored position is kept when ``epoch`` is its epoch (the DistributedSampler loop
        ``for e in range(loader.epoch, E): loader.set_epoch(e)`` resumes mid-epoch)."""
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"set_epoch: epoch must be an int >= 0, got {epoch!r}")
        if epoch != self._epoch:
            self._skip = 0
        self._epoch = epoch

    @property
    def epoch(self) -> int:
        """The epoch the next pass will use."""
        return self._epoch

    def __iter__(self) -> Iterator[Any]:
        self.sampler.set_epoch(self._epoch)
        self.sampler.start = self._skip * self._items_per_batch
        self._drawn, self._skip = self._skip, 0
        self._epoch += 1
        batches = self._counted(iter(self.loader))
        recorder = stragglers.current()
        if recorder is None:
            return batches
        return _timed(batches, recorder)

    def _counted(self, batches: Iterator[Any]) -> Iterator[Any]:
        for batch in batches:
            self._drawn += 1
            yield batch
        self._drawn = None

    def __len__(self) -> int:
        """Batches in a whole pass (a resumed pass yields the rest of them)."""
        return len(self.loader)

    def state_dict(self) -> dict[str, Any]:
        """The position: the epoch under way (or next) and the batches drawn in it, with what
        ``load_state_dict`` checks (put it in the checkpoint with the model's state)."""
        if self._drawn is None:
            epoch, drawn = self._epoch, self._skip
        else:
            epoch, drawn = self._epoch - 1, self._drawn
            if drawn >= len(self):      # the pass is over: the next one starts afresh
                epoch, drawn = epoch + 1, 0
        return {"epoch": epoch, "batches": drawn, "world_size": self.world_size,
                "batch_size": self.batch_size, "split_batches": self.split_batches,
                "samples": len(self.dataset)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state`` (``state_dict()`` of the run being resumed): the next pass
        is its epoch, from the batch after the last one drawn. With ``split_batches=True``
        the saved run may have had any number of workers (the global batches are the same);
        without it, the same number (each worker's batch size fixes the global batch)."""
        missing = {"epoch", "batches", "world_size", "batch_size", "split_batches",
                   "samples"} - set(state)
        if missing:
            raise ValueError(f"DistributedDataLoader.load_state_dict: not a loader state (it "
                             f"lacks {sorted(missing)}); pass what state_dict() returned")
        if state["samples"] != len(self.dataset):
            raise ValueError(f"DistributedDataLoader.load_state_dict: the state was saved "
                             f"with a dataset of {state['samples']} samples, this one has "
                             f"{len(self.dataset)}; resume with the same dataset")
        if bool(state["split_batches"]) != self.split_batches or \
                state["batch_size"] != self.batch_size:
            raise ValueError(f"DistributedDataLoader.load_state_dict: the state was saved "
                             f"with batch_size={state['batch_size']}, split_batches="
                             f"{state['split_batches']}; this loader has batch_size="
                             f"{self.batch_size}, split_batches={self.split_batches}: build "
                             f"the loader as the saved run did")
        if not self.split_batches and state["world_size"] != self.world_size:
            raise ValueError(f"DistributedDataLoader.load_state_dict: the state was saved by "
                             f"{state['world_size']} workers with per-worker batches of "
                             f"{self.batch_size}, a global batch of {state['world_size']} x "
                             f"{self.batch_size}; on {self.world_size} workers that global "
                             f"batch cannot be kept. Resume on {state['world_size']} workers, "
                             f"or train with distribute_dataloader(loader, split_batches=True) "
                             f"(the loader's batch_size is then the global batch)")
        self._epoch, self._skip, self._drawn = int(state["epoch"]), int(state["batches"]), None


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
