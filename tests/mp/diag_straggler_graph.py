"""Worker for tests/test_stragglers.py: Keras ``fit`` (``keras``) or a TF1 graph-mode loop over
``strategy.experimental_distribute_dataset`` (``graph``) under MirroredStrategy, in which rank
``SLOW`` (argv[2]; -1: none) waits ``DELAY`` seconds (argv[3]) more for each batch."""

import sys
import time

import numpy as np

import ringtrain as tf

MODE, SLOW, DELAY, STEPS, BATCH = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), \
    int(sys.argv[4]), 6
strategy = tf.distribute.MirroredStrategy()
rank = strategy.extended.worker_index


def batches():
    rng = np.random.default_rng(7)
    for _ in range(STEPS):
        if rank == SLOW:
            time.sleep(DELAY)
        x = rng.normal(size=(BATCH, 3))
        yield x, x.sum(axis=1, keepdims=True)


dataset = tf.data.Dataset.from_generator(batches, output_types=(tf.float64, tf.float64),
                                         output_shapes=((None, 3), (None, 1)))
if MODE == "keras":
    with strategy.scope():
        model = tf.keras.Sequential([tf.keras.layers.Dense(1, input_shape=(3,))])
        model.compile(loss="mse", optimizer=tf.keras.optimizers.SGD(0.01))
    model.fit(dataset, epochs=1, verbose=0)
else:
    with tf.Graph().as_default(), strategy.scope():
        x = tf.placeholder(tf.float64, [None, 3])
        y = tf.placeholder(tf.float64, [None, 1])
        w = tf.get_variable("w", [3, 1], tf.float64, initializer=tf.zeros_initializer())
        loss = tf.reduce_mean(tf.square(tf.matmul(x, w) - y))
        train_op = tf.train.GradientDescentOptimizer(0.01).minimize(loss)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            for local_x, local_y in strategy.experimental_distribute_dataset(dataset):
                sess.run(train_op, feed_dict={x: local_x, y: local_y})
print(f"STEPS {STEPS}", flush=True)
