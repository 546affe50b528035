"""Run under ``ringrun -np N``: Keras ``fit`` with BackupAndRestore and ModelCheckpoint under
MirroredStrategy, killed mid-epoch and run again.

``strategy_keras_resume.py WORK_DIR [--kill-epoch E --kill-batch B --kill-rank R]
[--kill-in-backup STAGE] [--dropout]``
Worker R SIGKILLs itself at batch B of epoch E unless ``WORK_DIR/killed`` exists (it creates it
first), so running the same command twice gives one interrupted and one resumed run. With
``--kill-in-backup`` the chief kills itself inside the backup written after epoch E instead, at
STAGE: ``written`` (temporary file complete, not yet fsynced), ``renaming`` (before the
rename) or ``renamed`` (after it). ``--dropout`` adds a Dropout layer, whose random streams a
resumed run must continue. Each rank writes ``WORK_DIR/out/rank<r>.npz`` with its final weights.
"""

from __future__ import annotations

import argparse
import os
import signal

import numpy as np
from sklearn.datasets import load_digits

import ringtrain as tf


class KillAt(tf.keras.callbacks.Callback):
    def __init__(self, epoch: int, batch: int, rank: int, marker: str):
        super().__init__()
        self.target, self.batch, self.rank, self.marker = epoch, batch, rank, marker
        self.epoch = -1

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == (self.target, self.batch) and \
                tf.rank() == self.rank and not os.path.exists(self.marker):
            open(self.marker, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)


def kill_inside_backup(stage: str, epoch: int, marker: str) -> None:
    """SIGKILL this process at ``stage`` of the atomic write of the backup after ``epoch``."""
    renamed = [0]                        # backups renamed into place so far
    real_fsync, real_replace = os.fsync, os.replace

    def armed(backup_number: int) -> bool:
        return backup_number == epoch + 1 and not os.path.exists(marker)

    def die() -> None:
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)

    def fsync(fd):
        if stage == "written" and armed(renamed[0] + 1) and os.path.basename(os.readlink(
                f"/proc/self/fd/{fd}")).startswith(".backup.npz."):
            die()
        return real_fsync(fd)

    def replace(src, dst, **kwargs):
        if os.path.basename(dst) != "backup.npz":
            return real_replace(src, dst, **kwargs)
        if stage == "renaming" and armed(renamed[0] + 1):
            die()
        real_replace(src, dst, **kwargs)
        renamed[0] += 1
        if stage == "renamed" and armed(renamed[0]):
            die()
        return None

    os.fsync, os.replace = fsync, replace


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("work")
    parser.add_argument("--kill-epoch", type=int, default=-1)
    parser.add_argument("--kill-batch", type=int, default=-1)
    parser.add_argument("--kill-rank", type=int, default=0)
    parser.add_argument("--kill-in-backup", choices=["written", "renaming", "renamed"])
    parser.add_argument("--dropout", action="store_true")
    args = parser.parse_args()

    tf.keras.utils.set_random_seed(0)
    digits = load_digits()
    x = (digits.data[:600] / 16.0).astype(np.float32)
    y = digits.target[:600].astype(np.int64)
    strategy = tf.distribute.MirroredStrategy()
    rank = strategy.extended.worker_index
    if args.kill_in_backup:
        if rank == 0:
            kill_inside_backup(args.kill_in_backup, args.kill_epoch,
                               os.path.join(args.work, "killed"))
        args.kill_epoch = -1
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(600, seed=1).batch(50)
    with strategy.scope():
        model = tf.keras.Sequential([
            tf.keras.layers.Dense(32, activation="relu", input_shape=(64,)),
            *([tf.keras.layers.Dropout(0.3)] if args.dropout else []),
            tf.keras.layers.Dense(10, activation="softmax"),
        ])
        model.compile(loss="sparse_categorical_crossentropy",
                      optimizer=tf.keras.optimizers.Adam(0.01), metrics=["accuracy"])
    work = args.work
    callbacks = [
        tf.keras.callbacks.BackupAndRestore(os.path.join(work, "backup"),
                                            delete_checkpoint=False),
        tf.keras.callbacks.ModelCheckpoint(os.path.join(work, "weights", "w-{epoch:02d}.npz")),
        KillAt(args.kill_epoch, args.kill_batch, args.kill_rank, os.path.join(work, "killed")),
    ]
    model.fit(dataset, epochs=4, callbacks=callbacks, verbose=2)
    os.makedirs(os.path.join(work, "out"), exist_ok=True)
    np.savez(os.path.join(work, "out", f"rank{rank}.npz"), *model.get_weights())
    print("strategy_keras_resume ok", flush=True)


if __name__ == "__main__":
    main()
