"""Run under ``ringrun -np N``: MirroredStrategy's generic parts and checkpoints across workers.

Every check uses rank-dependent values with closed-form expectations; any failure raises (and
ringrun stops the job with a non-zero exit code). Prints ``strategy_generic ok`` on success.
"""

from __future__ import annotations

import os
import sys
import tempfile

import numpy as np

import ringtrain as tf
from ringtrain import checkpoint as ck
from ringtrain import errors
from ringtrain.distribute.input import shard_bounds


def check_identity(strategy):
    size = tf.size()
    assert strategy.num_replicas_in_sync == size
    assert strategy.extended.worker_index == tf.rank()
    assert strategy.extended.is_chief == (tf.rank() == 0)
    assert strategy.extended.should_checkpoint == (tf.rank() == 0)
    assert tf.distribute.get_strategy() is not strategy and not tf.distribute.has_strategy()
    with strategy.scope():
        assert tf.distribute.get_strategy() is strategy and tf.distribute.has_strategy()
        assert tf.distribute.in_cross_replica_context()
        assert tf.distribute.get_replica_context() is None

        def step(x):
            ctx = tf.distribute.get_replica_context()
            assert ctx.replica_id_in_sync_group == tf.rank()
            return ctx.all_reduce("sum", {"a": x, "b": [x * 2]})

        out = strategy.run(step, args=(np.arange(3.0) + tf.rank() * 1000,))
    total = sum(r * 1000 for r in range(size))
    np.testing.assert_array_equal(out["a"], np.arange(3.0) * size + total)
    np.testing.assert_array_equal(out["b"][0], 2 * (np.arange(3.0) * size + total))


def check_reduce(strategy):
    rank, size = tf.rank(), tf.size()
    value = rank * 1000 + np.arange(5, dtype=np.float64)
    expect_sum = np.arange(5.0) * size + 1000 * size * (size - 1) / 2
    np.testing.assert_allclose(strategy.reduce(tf.distribute.ReduceOp.SUM, value), expect_sum)
    np.testing.assert_allclose(strategy.reduce("mean", value), expect_sum / size)
    # Along an axis with a different number of rows on each rank (rank r holds r+1 rows, one
    # rank may hold none): MEAN is the mean over every row of every replica.
    rows = [np.full((r + 1 if r != 1 else 0, 2), float(r)) + [0, 10] for r in range(size)]
    mine = rows[rank]
    every = np.concatenate(rows)
    np.testing.assert_allclose(strategy.reduce("MEAN", mine, axis=0), every.mean(axis=0))
    np.testing.assert_allclose(strategy.reduce("SUM", mine, axis=0), every.sum(axis=0))
    # The same on graph tensors: an op that reduces when it runs.
    with tf.Graph().as_default():
        rows_ph = tf.placeholder(tf.float64, [None, 2])
        mean_t = strategy.reduce("MEAN", rows_ph, axis=0)
        sum_t = strategy.reduce("SUM", rows_ph, axis=0)
        total_t = strategy.reduce("SUM", tf.constant(value))
        with tf.Session() as sess:
            got_mean, got_sum, got_total = sess.run([mean_t, sum_t, total_t], {rows_ph: mine})
    np.testing.assert_allclose(got_mean, every.mean(axis=0))
    np.testing.assert_allclose(got_sum, every.sum(axis=0))
    np.testing.assert_allclose(got_total, expect_sum)
    gathered = strategy.gather(np.full((rank + 1, 2), rank), axis=0)
    np.testing.assert_array_equal(gathered, np.concatenate(
        [np.full((r + 1, 2), r) for r in range(size)]))
    # Integers averaged come back as floats (no silent truncation).
    assert strategy.reduce("MEAN", np.array(rank)).dtype == np.float64


def check_dataset(strategy):
    rank, size = tf.rank(), tf.size()
    for n, batch in [(7, 7), (1, 1), (13, 5), (2, 4)]:
        x = np.arange(n * 3, dtype=np.float64).reshape(n, 3)
        y = np.arange(n)
        ds = tf.data.Dataset.from_tensor_slices((x, {"label": y})).batch(batch)
        seen = []
        for local_x, local_y in strategy.experimental_distribute_dataset(ds):
            weight = strategy.extended.batch_weight
            seen.append((local_x, local_y["label"], weight))
        starts = range(0, n, batch)
        assert len(seen) == len(starts)
        for (lx, ly, weight), start in zip(seen, starts):
            total = min(batch, n - start)
            lo, hi = shard_bounds(total, size, rank)
            assert weight == (hi - lo) / total
            if hi > lo:
                np.testing.assert_array_equal(lx, x[start + lo:start + hi])
                np.testing.assert_array_equal(ly, y[start + lo:start + hi])
            else:            # an empty slice runs on the batch's last row with weight 0
                np.testing.assert_array_equal(lx, x[start + total - 1:start + total])
            # the slices of all workers together are the global batch, each row once
            got = np.concatenate(strategy.extended.comm.allgather_object(
                ly if hi > lo else ly[:0]))
            np.testing.assert_array_equal(got, y[start:start + total])


def check_different_orders_fail(strategy):
    rank, size = tf.rank(), tf.size()
    if size == 1:
        return
    # An unseeded shuffle gives each worker its own order: every worker must raise.
    ds = tf.data.Dataset.from_tensor_slices(np.arange(20)).shuffle(20, seed=rank).batch(4)
    try:
        next(iter(strategy.experimental_distribute_dataset(ds)))
    except ValueError as exc:
        assert "seed" in str(exc) and "different global batch" in str(exc), exc
    else:
        raise AssertionError("different dataset orders were not detected")


def check_data_position(strategy, shared_dir):
    """Interrupt a 2-epoch pass mid-epoch, restore into new objects: same batches follow."""
    def make():
        ds = tf.data.Dataset.from_tensor_slices(np.arange(22)).shuffle(22, seed=7).batch(5)
        return strategy.experimental_distribute_dataset(ds)

    def run(dist, epochs, stop_after=None, ckpt=None):
        seen = []
        for _ in range(epochs):
            for batch in dist:
                seen.append(batch.tolist())
                if stop_after is not None and len(seen) == stop_after:
                    return seen, ckpt.save(os.path.join(shared_dir, "position", "data"))
        return seen, None

    full, _ = run(make(), 3)
    first = make()
    head, path = run(first, 3, stop_after=7, ckpt=ck.Checkpoint(data=first))
    second = make()
    ck.Checkpoint(data=second).restore(path)
    # the restored dataset continues inside epoch 2 (7 = 5 batches + 2)
    tail = [b.tolist() for b in second]
    tail += [b.tolist() for b in second]
    assert head + tail == full, (head, tail, full)


def check_metric_mean(strategy):
    rank, size = tf.rank(), tf.size()
    # rank r saw r samples (rank 0 none: its NaN must not leak into the mean)
    values = {"loss": float("nan") if rank == 0 else rank * 1.5, "acc": rank / 10}
    out = strategy.extended.mean_across_replicas(values, weight=rank)
    weights = np.arange(size, dtype=np.float64)
    if weights.sum() == 0:
        assert np.isnan(out["loss"])
    else:
        np.testing.assert_allclose(out["loss"], (weights * 1.5 * weights).sum() / weights.sum())
        np.testing.assert_allclose(out["acc"], (weights * weights / 10).sum() / weights.sum())


def check_gradient_weighting(strategy):
    rank, size = tf.rank(), tf.size()
    grads = [rank * 1000 + np.arange(4.0), np.full((2, 2), float(rank))]
    ext = strategy.extended
    ext.clear_batch_weight()
    out = ext.reduce_gradient_arrays(grads)
    np.testing.assert_allclose(out[0], np.arange(4.0) + 1000 * (size - 1) / 2)
    # With uneven slices, gradient r is weighted by its share of the global batch.
    total = 7
    shares = [shard_bounds(total, size, r) for r in range(size)]
    weights = [(hi - lo) / total for lo, hi in shares]
    ext._batch_weight = weights[rank]
    out = ext.reduce_gradient_arrays(grads)
    np.testing.assert_allclose(out[0], sum(w * (r * 1000 + np.arange(4.0))
                                           for r, w in enumerate(weights)))
    np.testing.assert_allclose(out[1], np.full((2, 2), sum(w * r for r, w in
                                                           enumerate(weights))))
    ext.clear_batch_weight()


def check_checkpoint(strategy, shared_dir):
    rank = tf.rank()
    # Only the chief writes, into the shared directory; every worker restores from it.
    x = np.full(3, float(rank))
    gen = np.random.default_rng(rank)
    manager = ck.CheckpointManager(ck.Checkpoint(x=x, rng=gen), shared_dir, max_to_keep=2)
    for step in range(3):
        x[:] = step
        manager.save()
    files = ck.all_checkpoint_files(shared_dir)
    strategy.extended.barrier()
    if rank == 0:
        assert [os.path.basename(f) for f in files] == ["ckpt-2.npz", "ckpt-3.npz"], files
    # A worker without that directory (no shared filesystem) still restores the chief's file.
    private = tempfile.mkdtemp(prefix=f"rank{rank}-")
    directory = shared_dir if rank == 0 else private
    y = np.full(3, -1.0)
    gen2 = np.random.default_rng(1234 + rank)
    checkpoint = ck.Checkpoint(x=y, rng=gen2)
    again = ck.CheckpointManager(checkpoint, directory, max_to_keep=2)
    path = again.restore_or_initialize()
    assert path == os.path.join(shared_dir, "ckpt-3"), path
    np.testing.assert_array_equal(y, np.full(3, 2.0))
    assert checkpoint.save_counter == 3
    # random streams are per worker: each worker gets its own stream back, not the chief's
    assert gen2.random() == np.random.default_rng(rank).random()
    # Every worker calls write (the replicas are compared first); only the chief writes.
    solo = os.path.join(shared_dir if rank == 0 else private, "solo", "only-chief")
    assert ck.Checkpoint(x=np.arange(3.0)).write(solo) == solo
    assert os.path.exists(solo + ".npz") == (rank == 0), solo
    solo = os.path.join(shared_dir, "solo", "only-chief")
    strategy.extended.barrier()
    z = np.zeros(3)
    ck.Checkpoint(x=z).restore(solo)
    np.testing.assert_array_equal(z, np.arange(3.0))
    # A missing file on the chief is an error on every worker, not a hang.
    try:
        ck.Checkpoint(x=y).restore(os.path.join(shared_dir, "ckpt-99"))
    except errors.NotFoundError as exc:
        assert "ckpt-99" in str(exc)
    else:
        raise AssertionError("restoring a missing checkpoint did not raise")


def main():
    shared_dir = sys.argv[1]
    strategy = tf.distribute.MirroredStrategy(
        cross_device_ops=tf.distribute.RingAllReduce(bucket_bytes=64))
    assert tf.is_initialized()
    check_identity(strategy)
    check_reduce(strategy)
    check_dataset(strategy)
    check_different_orders_fail(strategy)
    check_data_position(strategy, shared_dir)
    check_metric_mean(strategy)
    check_gradient_weighting(strategy)
    check_checkpoint(strategy, shared_dir)
    native = tf.distribute.MirroredStrategy(cross_device_ops="native")
    assert native.extended.cross_device_ops.algorithm == "native"
    check_gradient_weighting(native)
    print("strategy_generic ok", flush=True)


if __name__ == "__main__":
    main()
