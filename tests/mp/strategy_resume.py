"""Run under ``ringrun -np N``: graph-mode training that checkpoints mid-epoch and resumes.

``strategy_resume.py CKPT_DIR OUT_DIR [--kill-at STEP ... --kill-rank R --marker FILE]``
An MLP with dropout (per-worker random streams) and Adam trains for 3 epochs over a seeded,
reshuffled dataset whose last batch is uneven, saving a checkpoint every 3 steps (mid-epoch).
With ``--kill-at``, worker R SIGKILLs itself after that step unless MARKER exists (it creates
it first), so running the same command twice gives one interrupted and one resumed run; with
several ``--kill-at`` steps each has its own marker, ``MARKER.STEP``. Each
worker writes its final parameters to ``OUT_DIR/rank<r>.npz``.
"""

from __future__ import annotations

import argparse
import os
import signal

import numpy as np

import ringtrain as tf

EPOCHS, GLOBAL_BATCH, SAMPLES, SAVE_EVERY = 3, 10, 46, 3


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("ckpt_dir")
    parser.add_argument("out")
    parser.add_argument("--kill-at", type=int, action="append", default=[])
    parser.add_argument("--kill-rank", type=int, default=0)
    parser.add_argument("--marker", default=None)
    args = parser.parse_args()

    strategy = tf.distribute.MirroredStrategy()
    rank = strategy.extended.worker_index
    tf.set_random_seed(7 + rank)             # dropout streams differ per worker
    rng = np.random.default_rng(0)
    x_all = rng.normal(size=(SAMPLES, 6))
    y_all = (x_all[:, 0] + x_all[:, 1] > 0).astype(np.int64)
    dataset = tf.data.Dataset.from_tensor_slices((x_all, y_all)).shuffle(
        SAMPLES, seed=3).batch(GLOBAL_BATCH)
    dist_dataset = strategy.experimental_distribute_dataset(dataset)
    steps_per_epoch = -(-SAMPLES // GLOBAL_BATCH)

    with strategy.scope():
        x = tf.placeholder(tf.float64, [None, 6])
        y = tf.placeholder(tf.int64, [None])
        w1 = tf.get_variable("w1", [6, 16], tf.float64)
        w2 = tf.get_variable("w2", [16, 2], tf.float64)
        hidden = tf.nn.dropout(tf.nn.relu(tf.matmul(x, w1)), rate=0.3)
        logits = tf.matmul(hidden, w2)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y,
                                                                             logits=logits))
        step = tf.train.get_or_create_global_step()
        train_op = tf.train.AdamOptimizer(0.01).minimize(loss, global_step=step)
        init = tf.global_variables_initializer()

    sess = tf.Session()
    sess.run(init)
    ckpt = tf.train.Checkpoint(session=sess, data=dist_dataset)
    manager = tf.train.CheckpointManager(ckpt, args.ckpt_dir, max_to_keep=2)
    resumed = manager.restore_or_initialize(session=sess)
    done = int(sess.run(step))
    print(f"start at step {done} (resumed from {resumed})", flush=True)
    for _epoch in range(done // steps_per_epoch, EPOCHS):
        for local_x, local_y in dist_dataset:
            _, done = sess.run([train_op, step], {x: local_x, y: local_y})
            if done % SAVE_EVERY == 0:
                manager.save(session=sess)
            marker = args.marker if len(args.kill_at) == 1 else f"{args.marker}.{done}"
            if done in args.kill_at and rank == args.kill_rank and args.marker \
                    and not os.path.exists(marker):
                open(marker, "w").close()
                os.kill(os.getpid(), signal.SIGKILL)
    assert done == EPOCHS * steps_per_epoch, done
    np.savez(os.path.join(args.out, f"rank{rank}.npz"), w1=sess.run(w1), w2=sess.run(w2))
    print("strategy_resume ok", flush=True)


if __name__ == "__main__":
    main()
