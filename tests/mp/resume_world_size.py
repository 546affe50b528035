"""Run under ``ringrun -np N``: training under MirroredStrategy that stops and resumes with
another number of workers.

``resume_world_size.py DIR [--stop-after S] [--keras]``: float64 softmax regression on 47 fixed
rows, shuffled each epoch (seed 5), global batches of 7 rows (uneven shards at 2 and 3
workers), 4 epochs. Graph mode (default): a CheckpointManager checkpoint every 3 steps, the chief
prints ``step <k> loss <global mean loss before the step>``; it stops after step S. Keras
(``--keras``): ``fit`` with BackupAndRestore, the chief prints ``epoch <e> loss <epoch loss>``;
it stops after epoch S. A rerun resumes from ``DIR``.
"""

import argparse

import numpy as np

import ringtrain as tf

parser = argparse.ArgumentParser()
parser.add_argument("dir")
parser.add_argument("--stop-after", type=int, default=-1)
parser.add_argument("--keras", action="store_true")
args = parser.parse_args()

rows = np.random.default_rng(0)
features = rows.normal(size=(47, 5))
labels = rows.integers(0, 3, size=47)
strategy = tf.distribute.MirroredStrategy()
dataset = strategy.experimental_distribute_dataset(
    tf.data.Dataset.from_tensor_slices((features, labels)).shuffle(47, seed=5).batch(7))


class PrintAndStop(tf.keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if strategy.extended.is_chief:
            print(f"epoch {epoch + 1} loss {logs['loss']:.17g}", flush=True)
        if epoch + 1 == args.stop_after:
            raise SystemExit(0)


def keras() -> None:
    tf.keras.backend.set_floatx("float64")
    with strategy.scope():
        model = tf.keras.Sequential([tf.keras.layers.Dense(
            3, activation="softmax", input_shape=(5,),
            kernel_initializer=tf.keras.initializers.Constant(0.1))])
        model.compile(loss="sparse_categorical_crossentropy",
                      optimizer=tf.keras.optimizers.SGD(0.3, momentum=0.9))
    backup = tf.keras.callbacks.BackupAndRestore(args.dir, delete_checkpoint=False)
    model.fit(dataset, epochs=4, verbose=0, callbacks=[backup, PrintAndStop()])


def graph() -> None:
    with strategy.scope():
        x = tf.placeholder(tf.float64, [None, 5])
        y = tf.placeholder(tf.int64, [None])
        w = tf.Variable(np.linspace(-1, 1, 15).reshape(5, 3), name="w")
        logits = tf.matmul(x, w)
        losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
        loss_sum = tf.reduce_sum(losses)
        step = tf.train.get_or_create_global_step()
        train = tf.train.MomentumOptimizer(0.3, 0.9).minimize(tf.reduce_mean(losses),
                                                              global_step=step)
        init = tf.global_variables_initializer()

    with tf.Session() as sess:
        sess.run(init)
        manager = tf.train.CheckpointManager(tf.train.Checkpoint(session=sess, data=dataset),
                                             args.dir, max_to_keep=2)
        manager.restore_or_initialize(session=sess)
        steps_per_epoch = -(-47 // 7)
        done = int(sess.run(step))
        for _epoch in range(done // steps_per_epoch, 4):
            for local_x, local_y in dataset:
                weight = len(local_x) if strategy.extended.batch_weight else 0
                total, _ = sess.run([loss_sum, train], {x: local_x, y: local_y})
                total_sum, count = strategy.reduce("SUM", np.array([total if weight else 0.0,
                                                                    weight], dtype=np.float64))
                done = int(sess.run(step))
                if strategy.extended.is_chief:
                    print(f"step {done} loss {total_sum / count:.17g}", flush=True)
                if done % 3 == 0:
                    manager.save(session=sess)
                if done == args.stop_after:
                    raise SystemExit(0)


if args.keras:
    keras()
else:
    graph()
