"""MirroredStrategy in one process: API surface, argument checks, sharding arithmetic."""

from __future__ import annotations

import numpy as np
import pytest

import ringtrain as tf
from ringtrain.distribute import cross_device_ops as cdo
from ringtrain.distribute.input import batch_length, shard_batch, shard_bounds


@pytest.fixture(scope="module", autouse=True)
def _own_process_group():
    """MirroredStrategy() calls ringtrain.init(); leave the process as this module found it."""
    was_initialized = tf.is_initialized()
    yield
    if not was_initialized and tf.is_initialized():
        tf.shutdown()


@pytest.fixture(scope="module")
def strategy():
    return tf.distribute.MirroredStrategy()


def test_single_worker_strategy(strategy):
    assert strategy.num_replicas_in_sync == 1
    assert strategy.extended.worker_index == 0 and strategy.extended.is_chief
    assert strategy.extended.task_type == "chief" and strategy.extended.task_id == 0
    np.testing.assert_array_equal(strategy.reduce("SUM", np.arange(3)), np.arange(3))
    np.testing.assert_allclose(strategy.reduce("MEAN", np.arange(6.0).reshape(3, 2), axis=0),
                               [2.0, 3.0])
    assert strategy.reduce(tf.distribute.ReduceOp.SUM, np.ones((2, 3)), axis=1).tolist() == \
        [3.0, 3.0]
    assert strategy.experimental_local_results(5) == (5,)
    assert strategy.run(lambda a, b=0: a + b, args=(1,), kwargs={"b": 2}) == 3


def test_scopes_and_contexts(strategy):
    default = tf.distribute.get_strategy()
    assert default is not strategy and default.num_replicas_in_sync == 1
    assert not tf.distribute.has_strategy()
    assert tf.distribute.get_replica_context() is not None      # default replica context
    with strategy.scope():
        assert tf.distribute.get_strategy() is strategy
        assert tf.distribute.in_cross_replica_context()
        assert tf.distribute.get_replica_context() is None
        assert tf.distribute.get_cross_replica_context() is strategy
        with strategy.scope():                                  # re-entering is fine
            assert tf.distribute.get_strategy() is strategy
        seen = strategy.run(lambda: tf.distribute.get_replica_context())
        assert seen.replica_id_in_sync_group == 0 and seen.num_replicas_in_sync == 1
        other = tf.distribute.MirroredStrategy()
        with pytest.raises(ValueError, match="mixing different"), other.scope():
            pass
    assert not tf.distribute.has_strategy()


def test_cross_device_ops_choices():
    ring = tf.distribute.RingAllReduce(bucket_bytes=1 << 20)
    assert (ring.algorithm, ring.bucket_bytes) == ("ring", 1 << 20)
    assert tf.distribute.NativeAllReduce().algorithm == "native"
    assert tf.distribute.NcclAllReduce(num_packs=2).algorithm == "native"
    s = tf.distribute.MirroredStrategy(cross_device_ops=ring)
    assert s.extended.cross_device_ops is ring
    impl = tf.distribute.experimental.CommunicationImplementation
    opts = tf.distribute.experimental.CommunicationOptions(bytes_per_pack=4096,
                                                           implementation=impl.RING)
    s = tf.distribute.MirroredStrategy(communication_options=opts)
    assert s.extended.cross_device_ops == cdo.CrossDeviceOps("ring", 4096)
    s = tf.distribute.experimental.MultiWorkerMirroredStrategy(
        communication_options=tf.distribute.experimental.CommunicationOptions(
            implementation="nccl"))
    assert s.extended.cross_device_ops.algorithm == "native"
    assert tf.distribute.MirroredStrategy(cross_device_ops="Ring").extended \
        .cross_device_ops.algorithm == "ring"


@pytest.mark.parametrize("kwargs, error, match", [
    ({"cross_device_ops": "tree"}, ValueError, "must be one of"),
    ({"cross_device_ops": 3}, TypeError, "cross_device_ops must be"),
    ({"cross_device_ops": "ring",
      "communication_options": cdo.CommunicationOptions()}, ValueError, "not both"),
    ({"communication_options": "fast"}, TypeError, "CommunicationOptions"),
    ({"devices": ["/gpu:0", "/gpu:1", "/gpu:2"]}, ValueError, "one replica per worker"),
    ({"devices": [3]}, TypeError, "device names"),
])
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        tf.distribute.MirroredStrategy(**kwargs)


def test_bad_options():
    with pytest.raises(ValueError, match="bucket_bytes must be >= 0"):
        tf.distribute.RingAllReduce(bucket_bytes=-1)
    with pytest.raises(TypeError, match="bucket_bytes must be an int"):
        tf.distribute.RingAllReduce(bucket_bytes=1.5)
    with pytest.raises(ValueError, match="implementation must be one of"):
        cdo.CommunicationOptions(implementation="carrier-pigeon")
    with pytest.raises(ValueError, match="timeout_seconds"):
        cdo.CommunicationOptions(timeout_seconds=0)


def test_one_reduce_op_enum(strategy):
    assert tf.distribute.ReduceOp is tf.ReduceOp
    assert tf.ReduceOp.AVG is tf.ReduceOp.MEAN
    # Names and members reach the same reduction: over axis 0 of [0, 1, 2, 3], SUM 6, MEAN 1.5.
    for op, expected in (("sum", 6.0), (tf.ReduceOp.SUM, 6.0), ("Mean", 1.5),
                         ("AVG", 1.5), (tf.ReduceOp.AVG, 1.5), (tf.ReduceOp.MEAN, 1.5)):
        assert strategy.reduce(op, np.arange(4.0), axis=0) == expected, op


def test_reduce_errors(strategy):
    with pytest.raises(ValueError, match="ReduceOp.SUM or .MEAN"):
        strategy.reduce("max", 1.0)
    with pytest.raises(ValueError, match="ReduceOp.SUM or .MEAN"):
        strategy.reduce(tf.ReduceOp.MIN, 1.0)
    with pytest.raises(ValueError, match="out of range"):
        strategy.reduce("SUM", np.ones(3), axis=1)
    with pytest.raises(ValueError, match="scalar"):
        strategy.reduce("SUM", 1.0, axis=0)
    with pytest.raises(TypeError, match="callable"):
        strategy.run(3)


def test_torch_methods_need_torch(strategy, monkeypatch):
    import sys

    monkeypatch.delitem(sys.modules, "torch", raising=False)
    with pytest.raises(TypeError, match="PyTorch"):
        strategy.distribute_dataloader([])
    with pytest.raises(TypeError, match="PyTorch"):
        strategy.no_sync()


@pytest.mark.parametrize("n", [0, 1, 2, 5, 7, 13])
@pytest.mark.parametrize("shards", [1, 2, 3, 5])
def test_shard_bounds_match_array_split(n, shards):
    parts = np.array_split(np.arange(n), shards)
    for index, part in enumerate(parts):
        start, stop = shard_bounds(n, shards, index)
        np.testing.assert_array_equal(np.arange(n)[start:stop], part)


def test_shard_batch_structure_and_empty_slices():
    batch = ({"x": np.arange(12).reshape(3, 4)}, np.arange(3), None)
    local, rows, total = shard_batch(batch, 2, 1)
    assert (rows, total) == (1, 3)
    np.testing.assert_array_equal(local[0]["x"], [[8, 9, 10, 11]])
    assert local[2] is None
    # 3 rows over 5 workers: workers 3 and 4 get the last row with zero weight
    local, rows, total = shard_batch(batch, 5, 4)
    assert rows == 0 and total == 3
    np.testing.assert_array_equal(local[1], [2])
    with pytest.raises(ValueError, match="same leading"):
        batch_length((np.ones(3), np.ones(4)))
    with pytest.raises(TypeError, match="batch dimension"):
        batch_length((np.ones(3), 5))
    with pytest.raises(ValueError, match="empty global batch"):
        shard_batch(np.ones((0, 2)), 2, 0)


def test_distribute_datasets_from_function(strategy):
    seen = []

    def fn(context):
        seen.append(context)
        assert context.get_per_replica_batch_size(8) == 8
        return [np.ones(2), np.zeros(2)]

    batches = list(strategy.distribute_datasets_from_function(fn))
    assert len(batches) == 2 and strategy.extended.batch_weight is None
    assert seen[0].input_pipeline_id == 0 and seen[0].num_input_pipelines == 1


def test_distributed_dataset_wraps_once(strategy):
    ds = tf.data.Dataset.from_tensor_slices(np.arange(5)).batch(2)
    dist = strategy.experimental_distribute_dataset(ds)
    assert [b.tolist() for b in dist] == [[0, 1], [2, 3], [4]]
    it = iter(dist)
    it.skip(1)
    assert it.get_next().tolist() == [2, 3] and it.batches_consumed == 2
    with pytest.raises(TypeError, match="already distributed"):
        strategy.experimental_distribute_dataset(dist)
    with pytest.raises(TypeError, match="iterable of global batches"):
        strategy.experimental_distribute_dataset(5)


@pytest.mark.parametrize("stop_after", [0, 1, 3, 4, 5, 8, 9])
def test_distributed_dataset_resumes_at_the_next_batch(strategy, stop_after):
    """Whatever batch a run stopped after (epoch boundaries included), a restored dataset
    yields exactly the batches the uninterrupted run drew next."""
    def make():
        ds = tf.data.Dataset.from_tensor_slices(np.arange(10)).shuffle(10, seed=1).batch(3)
        return strategy.experimental_distribute_dataset(ds)

    def epochs(dist, count):
        return [b.tolist() for _ in range(count) for b in dist]

    full = epochs(make(), 3)                                    # 4 batches per epoch
    first = make()
    drawn: list = []
    for _ in range(3):
        iterator = iter(first)
        while len(drawn) < stop_after:
            try:
                drawn.append(next(iterator).tolist())
            except StopIteration:
                break
        if len(drawn) == stop_after:
            break
    state = first._checkpoint_state()
    second = make()
    second._restore_checkpoint_state(state)
    rest = []
    while len(drawn) + len(rest) < len(full):
        rest.extend(b.tolist() for b in second)
    assert drawn + rest == full
