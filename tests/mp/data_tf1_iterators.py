"""Run under ``ringrun -np N``: TF1 iterators of a strategy's distributed dataset, and unseeded
shuffles (the chief's seed is shared), in graph mode and in Keras fit.

Every check allgathers what each worker saw and compares with the closed form: the workers'
slices of a step, in rank order, are that step's global batch (np.array_split of it), and a
pass covers the 7 rows once. Prints ``data_tf1_iterators ok`` on success.
"""

from __future__ import annotations

import numpy as np

import ringtrain as tf

ROWS, BATCH = 7, 3  # a prime number of rows: global batches of 3, 3 and 1


def gather(strategy, value):
    return strategy.extended.comm.allgather_object(value)


def check_graph_iterator(strategy):
    rank, size = tf.rank(), tf.size()
    # Unseeded: each process draws its own seed, the strategy replaces it by the chief's.
    ds = tf.data.Dataset.from_tensor_slices(np.arange(ROWS)).shuffle(ROWS).batch(BATCH)
    iterator = strategy.make_dataset_iterator(ds)
    assert iterator.output_types == tf.int64
    assert iterator.output_shapes.as_list() == [None]
    rows = iterator.get_next()
    passes = []
    with tf.Session() as sess:
        for _ in range(2):
            sess.run(iterator.initialize())
            seen = []
            while True:
                try:
                    seen.append(sess.run(rows).tolist())
                except tf.errors.OutOfRangeError:
                    break
            passes.append(seen)
    for seen in passes:
        everyone = gather(strategy, seen)
        assert all(len(s) == ROWS // BATCH + 1 for s in everyone), everyone
        order = []
        for step, total in enumerate((3, 3, 1)):
            slices = [everyone[r][step] for r in range(size)]
            # np.array_split of the global batch; a worker left without rows repeats the last
            # row (with weight 0), so every worker runs the step
            sizes = [len(part) for part in np.array_split(np.arange(total), size)]
            assert [len(s) for s in slices] == [n or 1 for n in sizes], (slices, sizes)
            real = [row for s, n in zip(slices, sizes) for row in s[:n]]
            assert all(s == real[-1:] for s, n in zip(slices, sizes) if not n), slices
            order.extend(real)
        assert sorted(order) == list(range(ROWS)), order
    assert rank >= 0


def check_initializable_iterator_restarts(strategy):
    ds = tf.data.Dataset.range(5).batch(2)
    dist = strategy.experimental_distribute_dataset(ds)
    iterator = dist.make_initializable_iterator()
    rows = iterator.get_next()
    with tf.Session() as sess:
        try:
            sess.run(rows)
        except tf.errors.FailedPreconditionError:
            pass
        else:
            raise AssertionError("get_next before the initializer did not fail")
        sess.run(iterator.initializer)
        first = sess.run(rows).tolist()
        sess.run(iterator.initializer)  # a fresh pass starts over
        assert sess.run(rows).tolist() == first
    everyone = gather(strategy, first)
    sizes = [len(part) for part in np.array_split(np.arange(2), tf.size())]
    assert [x for part, n in zip(everyone, sizes) for x in part[:n]] == [0, 1], everyone


def check_keras_fit_with_unseeded_shuffle(strategy):
    x = np.arange(12, dtype=np.float32)[:, None]
    ds = tf.data.Dataset.from_tensor_slices((x, 2 * x)).shuffle(12).batch(4)
    with strategy.scope():
        model = tf.keras.Sequential([tf.keras.layers.Dense(1, use_bias=False,
                                                           kernel_initializer="zeros",
                                                           input_shape=(1,))])
        model.compile(tf.keras.optimizers.SGD(0.001), "mse")
    hist = model.fit(ds, epochs=2, verbose=0)
    losses = gather(strategy, hist.history["loss"])
    assert all(np.allclose(l, losses[0]) for l in losses), losses
    # the first epoch's loss is the mean over all 12 rows of a weight that starts at 0 and
    # moves toward 2 (the fit is real: the loss falls)
    assert losses[0][1] < losses[0][0]
    weights = gather(strategy, model.get_weights()[0].tolist())
    assert all(w == weights[0] for w in weights), weights


def main():
    strategy = tf.distribute.MirroredStrategy()
    check_graph_iterator(strategy)
    check_initializable_iterator_restarts(strategy)
    check_keras_fit_with_unseeded_shuffle(strategy)
    print("data_tf1_iterators ok", flush=True)


if __name__ == "__main__":
    main()
