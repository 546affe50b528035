"""ringtrain.torch in one process: the gradient engine's buckets and hooks, data sharding,
argument errors, the strategy seam and the chief helpers (world of one, local backend)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    IterableDataset,
    SequentialSampler,
    TensorDataset,
)

import ringtrain
import ringtrain.torch as hvd
from ringtrain.comm.local import LocalCommunicator
from ringtrain.torch import _strategy
from ringtrain.torch._data import DistributedDataLoader, shard_indices
from ringtrain.torch._engine import GradientEngine

pytestmark = pytest.mark.torch


@pytest.fixture(autouse=True)
def world_of_one():
    hvd.init()
    assert hvd.size() == 1
    yield


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 5)
        self.fc2 = nn.Linear(5, 3)
        self.spare = nn.Linear(2, 2)        # never used in forward

    def forward(self, x):
        return self.fc2(torch.tanh(self.fc1(x)))


def make_net(seed=0):
    torch.manual_seed(seed)
    return Net()


def test_importing_ringtrain_does_not_import_torch():
    code = ("import sys, ringtrain, ringtrain.distribute; "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# --- the gradient engine (forced on in a world of one) ---------------------------------------------

def engine_for(model, **kwargs):
    kwargs.setdefault("bucket_bytes", 1)          # one parameter per bucket
    kwargs.setdefault("overlap", True)
    return GradientEngine(list(model.named_parameters()), active=True, **kwargs)


def test_engine_buckets_come_from_the_shared_planner():
    # One planner for graph models and torch: the engine's buckets are plan_buckets' groups
    # of its parameters (in plan order), whatever the bucket size.
    from ringtrain.comm.common import plan_buckets

    model = make_net()
    for limit in (0, 60, 100, 1 << 20):
        engine = engine_for(model, bucket_bytes=limit)
        slots = [s for b in engine.buckets for s in b.slots]
        groups = [[slots[i].name for i in g] for g in plan_buckets([s.param for s in slots],
                                                                   limit)]
        assert [b.names for b in engine.buckets if b.slots] == groups, limit
        engine.close()


@pytest.mark.parametrize("env, expected", [
    ({"HOROVOD_FUSION_THRESHOLD": "96"}, 96),
    ({"HOROVOD_FUSION_THRESHOLD": "96", "RINGTRAIN_BUCKET_BYTES": "200"}, 200),
    ({}, 16 << 20),
])
def test_horovod_fusion_threshold_is_an_alias_of_bucket_bytes(monkeypatch, env, expected):
    for name in ("HOROVOD_FUSION_THRESHOLD", "RINGTRAIN_BUCKET_BYTES"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    model = make_net()
    opt = hvd.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=0.1),
                                   named_parameters=model.named_parameters())
    assert opt._ringtrain_engine.bucket_bytes == expected


def test_grads_are_views_of_bucket_buffers_even_after_set_to_none():
    model = make_net()
    engine = engine_for(model, bucket_bytes=1 << 20)
    for _ in range(3):
        for p in model.parameters():
            p.grad = None                           # zero_grad(set_to_none=True)
        model(torch.randn(6, 4)).sum().backward()
        assert len(engine.buckets) == 1
        flat = engine.buckets[0].flat
        start, stop = flat.data_ptr(), flat.data_ptr() + flat.numel() * flat.element_size()
        for name, p in model.named_parameters():
            if name.startswith("spare"):
                assert p.grad is None, name         # no gradient anywhere: stays None
            else:
                assert start <= p.grad.data_ptr() < stop, name


def test_gradients_match_plain_torch():
    model, plain = make_net(), make_net()
    engine_for(model)
    x = torch.randn(6, 4)
    model(x).pow(2).sum().backward()
    plain(x).pow(2).sum().backward()
    for (name, p), q in zip(model.named_parameters(), plain.parameters()):
        assert (p.grad is None) == (q.grad is None), name
        if p.grad is not None:
            assert torch.equal(p.grad, q.grad), name


def test_buckets_follow_the_observed_gradient_order_after_the_first_round():
    model = make_net()
    engine = engine_for(model)
    # Reverse registration order first: spare.* (never used) would block everything after it.
    assert [b.names for b in engine.buckets][:2] == [["spare.bias"], ["spare.weight"]]
    launched = []
    # Registered after the engine's hook, so it runs after it: fc1.weight gets the last
    # gradient of backward; buckets launched by then overlap with backward.
    model.fc1.weight.register_post_accumulate_grad_hook(lambda p: launched.append(engine._next))
    model(torch.randn(3, 4)).sum().backward()
    assert launched == [0]                      # spare.* had no gradient: nothing could go
    order = [name for b in engine.buckets for name in b.names]
    assert order[-2:] == ["spare.bias", "spare.weight"]
    assert set(order[:2]) == {"fc2.weight", "fc2.bias"}
    model(torch.randn(3, 4)).sum().backward()
    assert launched[1] >= 2                      # fc2's buckets went out during backward
    assert engine._next == 0 and engine._rounds_since_step == 2


def test_registration_order_overlaps_from_the_first_step():
    model = make_net()
    engine = GradientEngine(
        [(n, p) for n, p in model.named_parameters() if not n.startswith("spare")],
        active=True, bucket_bytes=1, overlap=True)
    order = [b.names for b in engine.buckets]
    assert order == [["fc2.bias"], ["fc2.weight"], ["fc1.bias"], ["fc1.weight"], []]
    launched = []
    model.fc1.weight.register_post_accumulate_grad_hook(lambda p: launched.append(engine._next))
    model(torch.randn(3, 4)).sum().backward()
    assert launched[0] >= 2                      # fc2's buckets went out early


def test_without_overlap_every_bucket_goes_at_the_end(monkeypatch):
    model = make_net()
    monkeypatch.setenv("RINGTRAIN_OVERLAP", "0")
    engine = GradientEngine(list(model.named_parameters()), active=True, bucket_bytes=1)
    assert not engine.overlap
    launched = []
    model.fc1.weight.register_post_accumulate_grad_hook(lambda p: launched.append(engine._next))
    model(torch.randn(3, 4)).sum().backward()
    assert launched == [0] and engine._rounds_since_step == 1


def test_overlap_setting(monkeypatch):
    from ringtrain.errors import ConfigError
    from ringtrain.torch._engine import overlap_by_default

    group = LocalCommunicator()
    monkeypatch.setenv("RINGTRAIN_OVERLAP", "1")
    assert overlap_by_default(group)
    monkeypatch.setenv("RINGTRAIN_OVERLAP", "auto")
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    cores = len(os.sched_getaffinity(0))
    assert overlap_by_default(group) == (cores >= 2)
    monkeypatch.setattr(torch, "get_num_threads", lambda: cores)
    assert not overlap_by_default(group)             # no core left for communication
    monkeypatch.setenv("RINGTRAIN_OVERLAP", "sometimes")
    with pytest.raises(ConfigError, match="RINGTRAIN_OVERLAP"):
        overlap_by_default(group)


def test_replan_keeps_the_gradients():
    model, plain = make_net(), make_net()
    engine = engine_for(model, bucket_bytes=100)
    before = [b.names for b in engine.buckets]
    x = torch.randn(3, 4)
    model(x).sum().backward()                   # the first round re-plans the buckets
    plain(x).sum().backward()
    assert [b.names for b in engine.buckets] != before
    for (name, p), q in zip(model.named_parameters(), plain.parameters()):
        assert (p.grad is None and q.grad is None) or torch.equal(p.grad, q.grad), name
        slot = engine.slots[name]
        if p.grad is not None and slot.view is not None:
            assert p.grad is slot.view, name                          # a view of a bucket


class Doubling(LocalCommunicator):
    """A world of one whose all-reduce doubles: SUM over two identical ranks."""

    def _allreduce(self, src, dst, op, alg):
        np.multiply(src, 2, out=dst)


@pytest.mark.parametrize("bucket_bytes", [1, 100, 1 << 20])
def test_every_bucket_kind_is_reduced_in_place(bucket_bytes):
    model, plain = make_net(), make_net()
    engine = GradientEngine(list(model.named_parameters()), active=True,
                            op=ringtrain.ReduceOp.SUM, bucket_bytes=bucket_bytes,
                            group=Doubling())
    for step in range(3):                       # the plan changes after the first round
        x = torch.randn(3, 4)
        for m in (model, plain):
            m.zero_grad()
            m(x).pow(2).sum().backward()
        for (name, p), q in zip(model.named_parameters(), plain.parameters()):
            if q.grad is None:
                assert p.grad is None, name
            else:
                assert torch.allclose(p.grad, 2 * q.grad), (step, name)
    kinds = {b.direct for b in engine.buckets if b.slots}
    assert kinds == ({True} if bucket_bytes == 1 else {False} if bucket_bytes > 1000
                     else {True, False})


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64])
def test_low_and_high_precision_parameters(dtype):
    # 16-bit buckets take the alltoall + float32 sum + allgather path (tests/mp/torch_amp.py
    # checks its sums across processes); in a world of one the sum is the gradient itself.
    sixteen_bit = dtype in (torch.bfloat16, torch.float16)
    model, plain = make_net().to(dtype), make_net().to(dtype)
    GradientEngine(list(model.named_parameters()), active=True, op=ringtrain.ReduceOp.SUM,
                   bucket_bytes=100, group=LocalCommunicator() if sixteen_bit else Doubling())
    factor = 1 if sixteen_bit else 2
    x = torch.randn(3, 4, dtype=dtype)
    for m in (model, plain):
        m(x).sum().backward()
    for (name, p), q in zip(model.named_parameters(), plain.parameters()):
        assert (p.grad is None) == (q.grad is None), name
        if q.grad is not None:
            assert p.grad.dtype == dtype and torch.equal(p.grad, factor * q.grad), name


def test_a_direct_bucket_sends_autograds_own_tensor():
    model = make_net()
    engine = engine_for(model, bucket_bytes=1)
    seen = []
    model.fc1.weight.register_post_accumulate_grad_hook(
        lambda p: seen.append(p.grad.data_ptr()))
    model(torch.randn(3, 4)).sum().backward()
    assert engine.slots["fc1.weight"].view is None
    assert model.fc1.weight.grad.data_ptr() == seen[0]        # no copy, reduced in place


def test_backward_passes_per_step_accumulates_then_averages():
    model, plain = make_net(), make_net()
    engine = engine_for(model, backward_passes_per_step=2)
    x1, x2 = torch.randn(3, 4), torch.randn(3, 4)
    model(x1).sum().backward()
    assert engine._passes == 1 and engine._rounds_since_step == 0
    model(x2).sum().backward()
    assert engine._passes == 0 and engine._rounds_since_step == 1
    plain(x1).sum().backward()
    plain(x2).sum().backward()
    assert torch.allclose(model.fc1.weight.grad, plain.fc1.weight.grad)


def test_no_sync_does_not_count_passes():
    model = make_net()
    engine = engine_for(model)
    engine.accumulate += 1
    model(torch.randn(2, 4)).sum().backward()
    assert engine._rounds_since_step == 0 and engine._passes == 0
    engine.accumulate -= 1
    model(torch.randn(2, 4)).sum().backward()
    assert engine._rounds_since_step == 1


def test_step_without_backward_still_runs_a_round():
    model = make_net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    engine = engine_for(model)
    engine.attach(opt)
    opt.step()                                   # no gradients at all: a round of zeros
    assert all(p.grad is None for p in model.parameters())
    assert engine._rounds_since_step == 0        # reset by the post-step hook
    model(torch.randn(2, 4)).sum().backward()
    opt.step()


def test_a_newer_engine_takes_parameters_over():
    model = make_net()
    old_opt = torch.optim.SGD(model.parameters(), lr=0.1)
    old = engine_for(model)
    old.attach(old_opt)
    new_opt = torch.optim.SGD(model.parameters(), lr=0.1)
    engine_for(model).attach(new_opt)
    model(torch.randn(2, 4)).sum().backward()
    new_opt.step()
    with pytest.raises(RuntimeError, match="no longer averages"):
        old_opt.step()


def test_fp16_compression_and_predivide_keep_the_average():
    model, plain = make_net(), make_net()
    engine_for(model, compression=hvd.Compression.fp16, predivide=4.0)
    x = torch.randn(3, 4)
    model(x).sum().backward()
    plain(x).sum().backward()
    assert torch.allclose(model.fc1.weight.grad, plain.fc1.weight.grad, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("kwargs, match", [
    ({"op": ringtrain.ReduceOp.MAX}, "averaged"),
    ({"backward_passes_per_step": 0}, "backward_passes_per_step"),
    ({"bucket_bytes": -1}, "bucket_bytes"),
])
def test_engine_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        engine_for(make_net(), **kwargs)


def test_inactive_in_a_world_of_one():
    model = make_net()
    engine = GradientEngine(list(model.named_parameters()))
    assert not engine.active
    model(torch.randn(2, 4)).sum().backward()
    assert engine._rounds_since_step == 0        # no hooks installed


# --- DistributedOptimizer arguments -----------------------------------------------------------------

def test_distributed_optimizer_is_the_same_kind_of_optimizer():
    model = make_net()
    base = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    opt = hvd.DistributedOptimizer(base, named_parameters=model.named_parameters())
    assert isinstance(opt, torch.optim.SGD) and type(opt).__name__ == "SGD"
    assert opt.param_groups is base.param_groups and opt.state is base.state
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    model(torch.randn(2, 4)).sum().backward()
    opt.step()
    sched.step()
    assert opt.param_groups[0]["lr"] == 0.25
    opt.synchronize()
    with opt.skip_synchronize():
        opt.step()
    with pytest.raises(TypeError, match="already a DistributedOptimizer"):
        hvd.DistributedOptimizer(opt)


def test_distributed_optimizer_argument_errors():
    model = make_net()
    sgd = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="gradient_predivide_factor"):
        hvd.DistributedOptimizer(sgd, op=hvd.Sum, gradient_predivide_factor=2.0)
    with pytest.raises(ValueError, match="op must be"):
        hvd.DistributedOptimizer(sgd, op=hvd.Max)
    with pytest.raises(ValueError, match="no name"):
        hvd.DistributedOptimizer(sgd, named_parameters=list(model.fc1.named_parameters()))
    with pytest.raises(ValueError, match="duplicates"):
        hvd.DistributedOptimizer(sgd, named_parameters=[("w", p) for p in model.parameters()])
    with pytest.raises(TypeError, match="torch.optim.Optimizer"):
        hvd.DistributedOptimizer(model)
    with pytest.raises(TypeError, match="hvd.ProcessSet"):
        hvd.DistributedOptimizer(sgd, process_set=object())


def test_collective_argument_errors():
    with pytest.raises(ValueError, match="root_rank=3"):
        hvd.broadcast(torch.ones(2), root_rank=3)
    with pytest.raises(TypeError, match="root_rank"):
        hvd.broadcast_(torch.ones(2), root_rank="0")
    with pytest.raises(TypeError, match="torch.Tensor"):
        hvd.allgather([1, 2])
    with pytest.raises(TypeError, match="bool"):
        hvd.allreduce(torch.ones(2, dtype=torch.bool))
    assert torch.equal(hvd.allreduce(torch.tensor([True, False]), op=hvd.Max),
                       torch.tensor([True, False]))
    with pytest.raises(TypeError, match="prescale_factor"):
        hvd.allreduce(torch.ones(2), prescale_factor="2")
    with pytest.raises(ValueError, match="at least one dimension"):
        hvd.alltoall(torch.tensor(1.0))
    with pytest.raises(ValueError, match="splits must hold integers"):
        hvd.alltoall(torch.ones(2), splits=[1.5])
    with pytest.raises(ValueError, match="not a handle"):
        hvd.poll(10 ** 9)
    assert hvd.synchronize(10 ** 9) is None
    with pytest.raises(ValueError, match="add_process_set"):
        hvd.allreduce(torch.ones(1), process_set=hvd.ProcessSet([0]))
    with pytest.raises(TypeError, match="ProcessSet"):
        hvd.allreduce(torch.ones(1), process_set=[0])
    with pytest.raises(TypeError, match="single tensor"):
        hvd.broadcast_parameters(torch.ones(2), 0)
    with pytest.raises(TypeError, match="torch.optim.Optimizer"):
        hvd.broadcast_optimizer_state(object(), 0)


# --- data sharding ----------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [0, 1, 2, 5, 7, 10])
@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_shard_indices_cover_everything_in_equal_parts(n, world):
    shards = [shard_indices(list(range(n)), r, world) for r in range(world)]
    assert {len(s) for s in shards} == {math.ceil(n / world)}
    assert set().union(*map(set, shards)) == set(range(n))
    assert shards[0][:1] == ([0] if n else [])


def loaders(world, **kwargs):
    dataset = TensorDataset(torch.arange(11))
    return [DistributedDataLoader(DataLoader(dataset, **kwargs), r, world) for r in range(world)]


def epoch_of(shard):
    return [int(v) for (batch,) in shard for v in batch.reshape(-1)]


def test_shuffled_shards_cover_the_dataset_and_reshuffle_per_epoch():
    shards = loaders(3, batch_size=2, shuffle=True)
    first = [epoch_of(s) for s in shards]
    second = [epoch_of(s) for s in shards]
    for epoch in (first, second):
        assert [len(e) for e in epoch] == [4, 4, 4]
        assert set().union(*map(set, epoch)) == set(range(11))
    assert first != second
    assert len({len(s) for s in shards}) == 1 and len(shards[0]) == 2
    for s in shards:
        s.set_epoch(0)
    assert [epoch_of(s) for s in shards] == first
    with pytest.raises(ValueError, match="epoch"):
        shards[0].set_epoch(-1)


def test_sequential_shards_are_strided_and_drop_last_is_kept():
    # 11 samples, 3 workers: 4 each (rank 2 repeats sample 0); batches of 3 drop the 4th
    shards = loaders(3, batch_size=3, drop_last=True)
    assert [epoch_of(s) for s in shards] == [[0, 3, 6], [1, 4, 7], [2, 5, 8]]
    assert [len(s) for s in shards] == [1, 1, 1]
    assert [epoch_of(s) for s in loaders(3, batch_size=3)] == [[0, 3, 6, 9], [1, 4, 7, 10],
                                                               [2, 5, 8, 0]]
    single = loaders(2, batch_size=None)
    assert [int(v[0]) for v in single[1]] == [1, 3, 5, 7, 9, 0]


def test_custom_batch_sampler_is_sharded_by_batch():
    dataset = TensorDataset(torch.arange(10))
    sampler = BatchSampler(SequentialSampler(range(10)), batch_size=3, drop_last=False)

    class MyBatches(BatchSampler):
        pass

    custom = MyBatches(SequentialSampler(range(10)), batch_size=3, drop_last=False)
    shards = [DistributedDataLoader(DataLoader(dataset, batch_sampler=custom), r, 2)
              for r in range(2)]
    assert [len(s) for s in shards] == [2, 2]
    assert epoch_of(shards[0]) == [0, 1, 2, 6, 7, 8]
    assert epoch_of(shards[1]) == [3, 4, 5, 9]
    assert len(sampler) == 4


def split_loaders(world, **kwargs):
    dataset = TensorDataset(torch.arange(11))
    return [DistributedDataLoader(DataLoader(dataset, **kwargs), r, world, split_batches=True)
            for r in range(world)]


def global_batches(shards):
    """Each step's global batch: the workers' parts concatenated in rank order."""
    parts = [[[int(v) for v in batch.reshape(-1)] for (batch,) in s] for s in shards]
    return [[v for part in step for v in part] for step in zip(*parts)]


@pytest.mark.parametrize("shuffle", [False, True])
def test_split_batches_give_the_same_global_batches_on_any_number_of_workers(shuffle):
    # 11 samples in global batches of 6: the second is padded with the epoch's first sample.
    expected = None
    for world in (1, 2, 3, 6):
        shards = split_loaders(world, batch_size=6, shuffle=shuffle)
        assert [len(s) for s in shards] == [2] * world
        epochs = [global_batches(shards), global_batches(shards)]
        if not shuffle:
            assert epochs[0] == [[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 0]]
        assert sorted(epochs[0][0] + epochs[0][1][:5]) == list(range(11))
        assert epochs[0][1][5] == epochs[0][0][0]
        expected = epochs if expected is None else expected
        assert epochs == expected, world
    assert expected[0] != expected[1] if shuffle else expected[0] == expected[1]
    dropped = split_loaders(2, batch_size=6, drop_last=True)
    assert [len(s) for s in dropped] == [1, 1] and global_batches(dropped) == [[0, 1, 2, 3, 4, 5]]


def test_a_saved_position_resumes_on_another_number_of_workers():
    # Uninterrupted: 3 epochs of 4 global batches of 4 (15 samples, shuffled).
    def dataset():
        return TensorDataset(torch.arange(15))

    def run(world, state=None, stop=None):
        shards = [DistributedDataLoader(DataLoader(dataset(), batch_size=4, shuffle=True), r,
                                        world, split_batches=True) for r in range(world)]
        if state is not None:
            for s in shards:
                s.load_state_dict(state)
        seen, saved = [], None
        for epoch in range(shards[0].epoch, 3):
            for s in shards:
                s.set_epoch(epoch)            # the DistributedSampler idiom keeps the position
            iterators = [iter(s) for s in shards]
            for step in zip(*iterators):
                seen.append([int(v) for (b,) in step for v in b.reshape(-1)])
                if len(seen) == stop:
                    return seen, shards[0].state_dict()
        return seen, saved

    everything, _ = run(1)
    assert len(everything) == 12
    for before, after in ((2, 4), (4, 2), (1, 2)):
        for stop in (1, 4, 6):                 # mid-epoch, the end of an epoch, mid-epoch
            head, state = run(before, stop=stop)
            assert state["epoch"] == stop // 4 and state["batches"] == stop % 4, state
            tail, _ = run(after, state)
            assert head + tail == everything, (before, after, stop)


def test_positions_and_their_errors():
    shards = loaders(2, batch_size=2, shuffle=True)
    whole = epoch_of(loaders(2, batch_size=2, shuffle=True)[1])
    iterator = iter(shards[1])
    first = [int(v) for v in next(iterator)[0]]
    state = shards[1].state_dict()
    assert state["epoch"] == 0 and state["batches"] == 1
    again = loaders(2, batch_size=2, shuffle=True)[1]
    again.load_state_dict(state)
    assert first + epoch_of(again) == whole                       # same workers: resumes
    with pytest.raises(ValueError, match="split_batches=True"):
        loaders(3, batch_size=2, shuffle=True)[0].load_state_dict(state)
    with pytest.raises(ValueError, match="batch_size=3"):
        loaders(2, batch_size=3)[0].load_state_dict(state)
    with pytest.raises(ValueError, match="lacks"):
        shards[0].load_state_dict({"epoch": 0})
    with pytest.raises(ValueError, match="multiple of the number of workers"):
        split_loaders(4, batch_size=6)
    with pytest.raises(TypeError, match="batch_size"):
        split_loaders(2, batch_size=None)


def test_distribute_dataloader_rejects_what_it_cannot_shard():
    class Stream(IterableDataset):
        def __iter__(self):
            return iter(range(3))

    with pytest.raises(TypeError, match="IterableDataset"):
        DistributedDataLoader(DataLoader(Stream()), 0, 2)
    with pytest.raises(TypeError, match="DataLoader"):
        DistributedDataLoader([1, 2, 3], 0, 2)


# --- the strategy seam ------------------------------------------------------------------------------

def test_scope_names_parameters_and_undoes_its_patches():
    original = torch.optim.Optimizer.__init__
    strategy = ringtrain.distribute.MirroredStrategy()
    outside = torch.optim.SGD(make_net().parameters(), lr=0.1)
    with strategy.scope():
        assert torch.optim.Optimizer.__init__ is not original
        model = make_net()
        opt = torch.optim.Adam(model.parameters(), lr=0.1)
        other_thread = {}
        thread = threading.Thread(target=lambda: other_thread.setdefault(
            "opt", torch.optim.SGD(make_net().parameters(), lr=0.1)))
        thread.start()
        thread.join()
    assert torch.optim.Optimizer.__init__ is original
    assert not _strategy._global_hooks
    engine = opt._ringtrain_engine
    names = sorted(n for b in engine.buckets for n in b.names)
    assert names == sorted(n for n, _ in model.named_parameters())
    assert getattr(outside, "_ringtrain_engine", None) is None
    assert getattr(other_thread["opt"], "_ringtrain_engine", None) is None
    model(torch.randn(2, 4)).sum().backward()
    opt.step()
    with strategy.no_sync():
        assert engine.accumulate == 1
    assert engine.accumulate == 0


def test_scope_warns_when_the_optimizer_is_created_outside():
    strategy = ringtrain.distribute.MirroredStrategy()
    with pytest.warns(UserWarning, match="create the optimizer inside"), strategy.scope():
        model = make_net()
    with strategy.scope():                          # a later scope still knows the names
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
    names = {n for b in opt._ringtrain_engine.buckets for n in b.names}
    assert names == {n for n, _ in model.named_parameters()}


def test_strategy_reduce_and_run_on_tensors():
    strategy = ringtrain.distribute.MirroredStrategy()
    value = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert torch.equal(strategy.reduce("SUM", value, axis=None), value)
    assert torch.equal(strategy.reduce("MEAN", value, axis=0), torch.tensor([2.0, 3.0]))
    assert torch.equal(strategy.reduce("SUM", value, axis=1), torch.tensor([3.0, 7.0]))
    mean = strategy.reduce("MEAN", torch.tensor([1, 2]), axis=None)
    assert mean.dtype == torch.float64
    with pytest.raises(ValueError, match="out of range"):
        strategy.reduce("SUM", value, axis=2)
    assert torch.equal(strategy.run(torch.neg, args=(value,)), -value)


# --- chief duties -----------------------------------------------------------------------------------

def test_checkpoints_and_summaries_in_a_world_of_one(tmp_path):
    path = tmp_path / "sub" / "model.pt"
    assert hvd.save_checkpoint({"w": torch.arange(3)}, path)
    assert torch.equal(hvd.load_checkpoint(path)["w"], torch.arange(3))
    assert list((tmp_path / "sub").iterdir()) == [path]         # no temporary file left
    assert hvd.load_checkpoint(tmp_path / "missing.pt", default=None) is None
    with pytest.raises(FileNotFoundError, match="default=None"):
        hvd.load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match=r"(?s)bad.pt could not be loaded .*If it is "
                                           r"damaged, put back a good copy"):
        hvd.load_checkpoint(tmp_path / "bad.pt")
    with hvd.SummaryWriter(tmp_path / "logs") as writer:
        writer.add_scalar("loss", 0.5, 1)
    assert [f.name.startswith("events.") for f in (tmp_path / "logs").iterdir()] == [True]


def test_null_writer_ignores_everything():
    from ringtrain.torch._chief import _NullWriter

    with _NullWriter() as writer:
        assert writer.add_scalar("x", 1.0, 0) is None
        assert writer.add_histogram("h", torch.ones(3), 0) is None
        writer.flush()
        writer.close()


def test_horovod_names_not_provided_raise_an_error_naming_the_alternative():
    import ringtrain.torch as hvd
    from ringtrain.errors import UnsupportedFeatureError

    for name, alternative in (("elastic", "--max-restarts"),
                              ("HostsUpdatedInterrupt", "--max-restarts"),
                              ("start_timeline", "RINGTRAIN_TIMELINE"),
                              ("stop_timeline", "RINGTRAIN_TIMELINE")):
        with pytest.raises(UnsupportedFeatureError, match=alternative):
            getattr(hvd, name)
        assert not hasattr(hvd, name)       # still an AttributeError, for feature checks
    with pytest.raises(AttributeError) as raised:
        hvd.no_such_name  # noqa: B018
    assert not isinstance(raised.value, UnsupportedFeatureError)


def test_adasum_in_a_world_of_one_is_the_plain_step():
    # Adasum of one worker's change is that change: the step of the wrapped optimizer.
    torch.manual_seed(0)
    model, twin = make_net(), make_net()
    twin.load_state_dict(model.state_dict())
    opt = hvd.DistributedOptimizer(torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
                                   named_parameters=model.named_parameters(), op=hvd.Adasum)
    plain = torch.optim.SGD(twin.parameters(), lr=0.1, momentum=0.9)
    x = torch.randn(8, 4)
    for _ in range(3):
        for o, m in ((opt, model), (plain, twin)):
            o.zero_grad()
            m(x).pow(2).sum().backward()
            o.step()
    for p, q in zip(model.parameters(), twin.parameters()):
        assert torch.allclose(p, q, atol=1e-6)
    t = torch.tensor([3.0, -4.0])
    assert torch.equal(hvd.allreduce(t, op=hvd.Adasum), t)
    with pytest.raises(TypeError, match="floating-point"):
        hvd.allreduce(torch.tensor([1, 2]), op=hvd.Adasum)
