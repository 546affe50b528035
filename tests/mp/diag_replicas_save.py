"""Worker for tests/test_diagnostics.py: the replica guard before every checkpoint.

``diag_replicas_save.py API PERTURB DIR``: trains 2 steps (``manager``, ``write``: a TF1 graph
under MirroredStrategy saved by ``CheckpointManager.save`` / ``Checkpoint.write``; ``backup``,
``modelcheckpoint``: Keras ``fit`` for 2 epochs of 2 steps with ``BackupAndRestore`` /
``ModelCheckpoint``; ``save``: two ``fit`` calls of one epoch, each followed by ``Model.save``
on every worker), saving after each of them into DIR. After the first save, rank PERTURB
(``-1``: none) adds 0.25 to element (1, 2) of the first weight, so the second save must stop.
Every worker also holds a metric (a local variable) that differs per rank, which must not
count. RINGTRAIN_CHECK_REPLICAS_EVERY keeps its default, so only the saves check. Prints
``SAVED <n>`` after each save, ``DIVERGED <message>`` when the guard stops it, and on the chief
``FILES <json: name -> sha256 of every file in DIR>`` after each save and at the end (a stopped
save must leave the directory as the save before it left it: no new file, none rewritten).
"""

import hashlib
import json
import os
import sys

import numpy as np

import ringtrain as tf

api, perturb, directory = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def saved(step: int, rank: int) -> None:
    print(f"SAVED {step}", flush=True)
    if rank == 0:
        print_files()


def print_files() -> None:
    def digest(name: str) -> str:
        with open(os.path.join(directory, name), "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()[:16]

    print("FILES " + json.dumps({n: digest(n) for n in sorted(os.listdir(directory))}),
          flush=True)


BUMP = np.where(np.arange(12).reshape(4, 3) == 5, 0.25, 0.0)


def train_graph(rank: int, strategy) -> None:
    with tf.Graph().as_default(), strategy.scope():
        x = tf.placeholder(tf.float64, [None, 4])
        w1 = tf.get_variable("w1", [4, 3], tf.float64, initializer=tf.ones_initializer())
        w2 = tf.get_variable("w2", [3, 2], tf.float64, initializer=tf.ones_initializer())
        loss = tf.reduce_mean(tf.square(tf.matmul(tf.tanh(tf.matmul(x, w1)), w2)))
        train_op = tf.train.GradientDescentOptimizer(0.1).minimize(loss)
        _, mean_update = tf.metrics.mean(loss)         # local variables: per worker
        bump = tf.assign_add(w1, BUMP)
        with tf.Session() as sess:
            sess.run([tf.global_variables_initializer(), tf.local_variables_initializer()])
            ckpt = tf.train.Checkpoint(session=sess)
            manager = tf.train.CheckpointManager(ckpt, directory, max_to_keep=3)
            batch = np.arange(20.0).reshape(5, 4) / 10 + rank
            for step in (1, 2):
                sess.run([train_op, mean_update], feed_dict={x: batch})
                if api == "manager":
                    manager.save(session=sess)
                else:
                    ckpt.write(os.path.join(directory, f"single-{step}"), session=sess)
                saved(step, rank)
                if rank == perturb:
                    sess.run(bump)


def bump_first_weight(model) -> None:
    weights = model.get_weights()
    weights[0] = weights[0] + BUMP
    model.set_weights(weights)


def train_keras(rank: int, strategy) -> None:
    class Bump(tf.keras.callbacks.Callback):     # after the first save, as in the graph
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0 and rank == perturb:
                bump_first_weight(self.model)

    class Saved(tf.keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            saved(epoch + 1, rank)

    with strategy.scope():
        model = tf.keras.Sequential([
            tf.keras.layers.Dense(3, activation="tanh", input_shape=(4,),
                                  kernel_initializer="ones"),
            tf.keras.layers.Dense(2, kernel_initializer="ones")])
        model.compile(optimizer=tf.keras.optimizers.SGD(0.1), loss="mse", metrics=["mae"])
    x = np.arange(48.0).reshape(12, 4) / 48
    y = np.ones((12, 2))
    if api == "save":
        for epoch in (1, 2):
            model.fit(x, y, batch_size=6, epochs=1, shuffle=False, verbose=0)
            model.save(os.path.join(directory, f"model-{epoch}.h5"))
            saved(epoch, rank)
            if epoch == 1 and rank == perturb:
                bump_first_weight(model)
        return
    saver = (tf.keras.callbacks.BackupAndRestore(directory, delete_checkpoint=False)
             if api == "backup" else
             tf.keras.callbacks.ModelCheckpoint(os.path.join(directory, "w-{epoch}.h5"),
                                                save_best_only=False))
    model.fit(x, y, batch_size=6, epochs=2, shuffle=False, verbose=0,
              callbacks=[saver, Saved(), Bump()])


strategy = tf.distribute.MirroredStrategy()
rank = strategy.extended.worker_index
try:
    train_graph(rank, strategy) if api in ("manager", "write") else train_keras(rank, strategy)
except tf.errors.ReplicasDiverged as exc:
    print(f"DIVERGED {exc}", flush=True)
    code = 3
else:
    code = 0
if rank == 0:
    print_files()
sys.exit(code)
